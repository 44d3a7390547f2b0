// The test API server's mutating admission (admission.ts) against a small HTTPS webhook of the test's own: which
// creates reach it (rules, namespaceSelector, objectSelector), its patch applied, a refusal, and every way a call
// can fail under failurePolicy Fail and Ignore (untrusted certificate, no such service, timeout); then the
// Deployment controller's pods going through it.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import anyTest, { type TestFn } from 'ava';
import { generateRoot, MeshCA } from '../../controlplane/certs/index.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { KubeApiError } from '../../controlplane/k8s/errors.ts';
import { DeploymentController } from './deployment-controller.ts';
import { type Cluster, eventually, startCluster } from './support.ts';

interface Ctx {
  c: Cluster;
  webhook: Server;
  port: number;
  caBundle: string;
  /** What the webhook does with the next reviews. */
  mode: 'patch' | 'deny' | 'hang';
  reviews: { namespace: string; object: { metadata?: { labels?: Record<string, string> } } }[];
}

const test = anyTest as TestFn<Ctx>;
const PODS = KIND_INFO.get('Pod')!;

// One CA for the file: RSA key generation is the slow part.
const ca = MeshCA.fromPem(generateRoot('cluster.local', Date.now()), { trustDomain: 'cluster.local' });
const serving = ca.issueServing({ dnsNames: ['hook.infra.svc'], ips: [] });
const otherCa = MeshCA.fromPem(generateRoot('cluster.local', Date.now()), { trustDomain: 'cluster.local' });

test.beforeEach(async (t) => {
  t.context.mode = 'patch';
  t.context.reviews = [];
  t.context.webhook = createServer({ cert: serving.certChainPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      t.context.reviews.push(review.request);
      if (t.context.mode === 'hang') return;
      const response =
        t.context.mode === 'deny'
          ? { uid: review.request.uid, allowed: false, status: { code: 403, message: 'pods here need a label' } }
          : {
              uid: review.request.uid,
              allowed: true,
              patchType: 'JSONPatch',
              patch: Buffer.from(
                JSON.stringify([{ op: 'add', path: '/metadata/annotations', value: { 'seen-by': 'hook' } }]),
              ).toString('base64'),
            };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  await new Promise<void>((r) => t.context.webhook.listen(0, '127.0.0.1', r));
  t.context.port = (t.context.webhook.address() as AddressInfo).port;
  t.context.caBundle = Buffer.from(ca.rootCAsPem).toString('base64');
  const c = await startCluster({
    resolveService: (ns, name, port) =>
      ns === 'infra' && name === 'hook' && port === 443 ? { host: '127.0.0.1', port: t.context.port } : undefined,
  });
  t.context.c = c;
  for (const [name, labels] of [
    ['shop', { 'weft.dev/inject': 'enabled' }],
    ['plain', {}],
  ] as const)
    c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
});

test.afterEach.always(async (t) => {
  await t.context.c?.close();
  t.context.webhook?.closeAllConnections();
  await new Promise<void>((r) => t.context.webhook?.close(() => r()));
});

function configuration(t: { context: Ctx }, webhook: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'hook' },
    webhooks: [
      {
        name: 'hook.example.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        clientConfig: { service: { namespace: 'infra', name: 'hook', path: '/mutate' }, caBundle: t.context.caBundle },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchLabels: { 'weft.dev/inject': 'enabled' } },
        objectSelector: { matchExpressions: [{ key: 'skip', operator: 'DoesNotExist' }] },
        ...webhook,
      },
    ],
  };
}

const pod = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels },
  spec: { containers: [{ name: 'app', image: 'echo' }] },
});

const annotations = (o: unknown) => (o as { metadata: { annotations?: Record<string, string> } }).metadata.annotations;

test('a matching create is reviewed and patched; other namespaces, excluded objects and kinds are not', async (t) => {
  const { client, server } = t.context.c;
  server.put(configuration(t));
  const created = await client.create(PODS, 'v1', 'shop', pod('a'));
  t.deepEqual(annotations(created), { 'seen-by': 'hook' });
  t.deepEqual(annotations(server.get('Pod', 'shop', 'a')), { 'seen-by': 'hook' });
  // The review carries the defaulted object and the namespace.
  const review = t.context.reviews[0] as unknown as { namespace: string; operation: string; object: { spec: object } };
  t.is(review.namespace, 'shop');
  t.is(review.operation, 'CREATE');
  t.like(review.object.spec, { serviceAccountName: 'default', restartPolicy: 'Always' });
  t.is(annotations(await client.create(PODS, 'v1', 'plain', pod('b'))), undefined);
  t.is(annotations(await client.create(PODS, 'v1', 'shop', pod('c', { skip: 'yes' }))), undefined);
  await client.create(KIND_INFO.get('ConfigMap')!, 'v1', 'shop', { metadata: { name: 'cm' }, data: {} });
  t.is(t.context.reviews.length, 1);
  t.deepEqual(server.admissions, [{ webhook: 'hook.example.dev', outcome: 'patched' }]);
});

test('a refusal fails the create with the webhook message', async (t) => {
  const { client, server } = t.context.c;
  server.put(configuration(t));
  t.context.mode = 'deny';
  const err = await client.create(PODS, 'v1', 'shop', pod('a')).catch((e: unknown) => e);
  t.true(err instanceof KubeApiError);
  t.is((err as KubeApiError).statusCode, 403);
  t.regex(
    (err as KubeApiError).message,
    /admission webhook "hook.example.dev" denied the request: pods here need a label/,
  );
  t.is(server.get('Pod', 'shop', 'a'), undefined);
});

test('a failing call refuses the create under Fail and is skipped under Ignore', async (t) => {
  const { client, server } = t.context.c;
  const failing: [string, Record<string, unknown>, RegExp][] = [
    [
      'certificate from another CA',
      {
        clientConfig: {
          service: { namespace: 'infra', name: 'hook' },
          caBundle: Buffer.from(otherCa.rootCAsPem).toString('base64'),
        },
      },
      /failed calling webhook "hook.example.dev": .*(certificate|self.signed|verify)/i,
    ],
    ['no caBundle', { clientConfig: { service: { namespace: 'infra', name: 'hook' } } }, /failed calling webhook/],
    [
      'a service that cannot be resolved',
      { clientConfig: { service: { namespace: 'infra', name: 'nothing' }, caBundle: t.context.caBundle } },
      /service "nothing" not found/,
    ],
  ];
  let n = 0;
  for (const [what, webhook, message] of failing) {
    server.put(configuration(t, webhook));
    const err = await client.create(PODS, 'v1', 'shop', pod(`fail-${n}`)).catch((e: unknown) => e);
    t.is((err as KubeApiError).statusCode, 500, what);
    t.regex((err as KubeApiError).message, message, what);
    server.put(configuration(t, { ...webhook, failurePolicy: 'Ignore' }));
    const created = await client.create(PODS, 'v1', 'shop', pod(`ignored-${n++}`));
    t.is(annotations(created), undefined, what);
  }
});

test('a webhook slower than its timeoutSeconds is a failed call', async (t) => {
  const { client, server } = t.context.c;
  server.put(configuration(t, { timeoutSeconds: 1 }));
  t.context.mode = 'hang';
  const err = await client.create(PODS, 'v1', 'shop', pod('slow')).catch((e: unknown) => e);
  t.is((err as KubeApiError).statusCode, 500);
  t.regex((err as KubeApiError).message, /context deadline exceeded/);
});

test("the Deployment controller's pods go through admission; refused creates are retried", async (t) => {
  const { client, server } = t.context.c;
  server.put(configuration(t));
  t.context.mode = 'deny';
  const controller = new DeploymentController(server, client, { retryMs: 50 });
  controller.start();
  t.teardown(() => controller.close());
  await client.create(KIND_INFO.get('Deployment')!, 'v1', 'shop', {
    metadata: { name: 'web' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'echo' }] } },
    },
  });
  await eventually(() => controller.failures.length >= 2, 'refused creates');
  t.is(server.list('Pod').length, 0);
  t.context.mode = 'patch';
  const pods = await eventually(() => {
    const list = server.list('Pod');
    return list.length === 2 ? list : undefined;
  }, 'two pods');
  for (const p of pods) {
    const m = p.metadata as { name: string; labels: Record<string, string>; ownerReferences: { name: string }[] };
    t.regex(m.name, /^web-[0-9a-f]{10}-[0-9a-f]{5}$/);
    t.is(m.labels.app, 'web');
    t.is(m.ownerReferences[0].name, 'web');
    t.deepEqual(annotations(p), { 'seen-by': 'hook' });
  }
  server.remove('Pod', 'shop', (pods[0].metadata as { name: string }).name);
  await eventually(
    () => server.list('Pod').length === 2 && !server.get('Pod', 'shop', (pods[0].metadata as { name: string }).name),
    'a replacement pod',
  );
  t.pass();
});

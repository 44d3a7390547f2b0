// The cluster control plane (controlplane/k8s/cluster.ts) in-process against the test API server, which calls the
// injector webhook it hosts (MutatingWebhookConfiguration weft-injector, failurePolicy Fail) and runs a Deployment
// controller: a namespace labelled weft.dev/inject=enabled plus a Deployment gives injected pods, while pods elsewhere,
// in kube-system and opted out do not; the root CA reaches the labelled namespaces and the webhook's caBundle and is
// put back when edited; a proxy with a TokenReview-valid token gets its certificate and then its config over push;
// two replicas starting at once share one root.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import type { Logger } from 'pino';
import { type ClusterControlPlane, startClusterControlPlane } from '../../controlplane/k8s/cluster.ts';
import { injectSettings, startWebhook } from '../../injector/index.ts';
import { buildCsr, requestCertificate } from '../../sidecar/identity/index.ts';
import { PushClient } from '../../sidecar/push/client.ts';
import type { Obj } from './api-server.ts';
import { INJECTOR_CONFIGURATION, deployment, WEFT_NAMESPACE as NS } from './cluster-fixtures.ts';
import { DeploymentController } from './deployment-controller.ts';
import { type CapturedLogs, type Cluster, captureLogs, eventually, startCluster } from './support.ts';
import { TokenAuthority } from './token-authority.ts';

interface Ctx {
  c: Cluster;
  logs: CapturedLogs;
  tokens: TokenAuthority;
  planes: ClusterControlPlane[];
  controller: DeploymentController;
}

const test = anyTest as TestFn<Ctx>;

type Meta = { name: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string> };
type PodObj = {
  metadata: Meta;
  spec: { containers: { name: string }[]; initContainers?: { name: string; restartPolicy?: string }[] };
};

function plane(t: { context: Ctx }, logger: Logger, webhook = true): Promise<ClusterControlPlane> {
  return startClusterControlPlane({
    proxyImage: 'registry.test/weft:0.0.0-test',
    client: t.context.c.client,
    namespace: NS,
    host: '127.0.0.1',
    ports: { push: 0, ca: 0, admin: 0, webhook: 0 },
    logger,
    startupBackoff: { initialMs: 20, maxMs: 200 },
    provider: { debounceMs: 10, backoff: { initialMs: 20, maxMs: 200 } },
    leader: { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200 },
    ...(webhook
      ? {
          webhook: (h) =>
            startWebhook({
              ...h,
              settings: injectSettings({ version: '0.0.0-test', nativeSidecar: h.nativeSidecar }),
            }),
        }
      : {}),
  }).then((cp) => {
    t.context.planes.push(cp);
    return cp;
  });
}

test.beforeEach(async (t) => {
  t.context.logs = captureLogs('info');
  t.context.tokens = new TokenAuthority();
  t.context.planes = [];
  const c = await startCluster({ tokenReview: t.context.tokens.review });
  t.context.c = c;
  // The API server dials the webhook Service; here it is the first control plane's webhook port.
  c.server.resolveService = (ns, name, port) =>
    ns === NS && name === 'weft-controlplane' && port === 443 && t.context.planes[0]
      ? { host: '127.0.0.1', port: t.context.planes[0].ports.webhook }
      : undefined;
  for (const [name, labels] of [
    [NS, {}],
    ['shop', { 'weft.dev/inject': 'enabled' }],
    ['plain', {}],
    ['kube-system', { 'weft.dev/inject': 'enabled' }],
  ] as const)
    c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  t.context.controller = new DeploymentController(c.server, c.client, { retryMs: 50 });
});

test.afterEach.always(async (t) => {
  await t.context.controller?.close();
  for (const cp of t.context.planes) await cp.close();
  await t.context.c?.close();
});

const podsOf = (t: { context: Ctx }, ns: string, app: string) =>
  t.context.c.server
    .list('Pod')
    .filter((p) => (p.metadata as Meta & { namespace: string }).namespace === ns)
    .filter((p) => (p.metadata as Meta).labels?.app === app) as unknown as PodObj[];

const hasProxy = (p: PodObj) =>
  [...p.spec.containers, ...(p.spec.initContainers ?? [])].some((c) => c.name === 'weft-proxy');

test('a labelled namespace plus a Deployment gives injected pods; elsewhere, kube-system and opted-out do not', async (t) => {
  const { server } = t.context.c;
  server.put(INJECTOR_CONFIGURATION);
  for (const d of [
    deployment('shop', 'web', 2),
    deployment('shop', 'batch', 1, { 'weft.dev/inject': 'false' }),
    deployment('plain', 'api', 1),
    deployment('kube-system', 'dns', 1),
  ])
    server.put(d);
  // The controller starts before the control plane: creates fail (failurePolicy Fail) until the webhook serves with
  // the caBundle in place, and are retried.
  t.context.controller.start();
  const cp = await plane(t, t.context.logs.logger);
  await cp.whenReady();
  t.true(cp.nativeSidecar, 'the test API server says v1.35');
  const web = await eventually(
    () => (podsOf(t, 'shop', 'web').length === 2 ? podsOf(t, 'shop', 'web') : undefined),
    'web pods',
  );
  for (const p of web) {
    t.true(hasProxy(p), p.metadata.name);
    const proxy = p.spec.initContainers?.find((c) => c.name === 'weft-proxy');
    t.is(proxy?.restartPolicy, 'Always', 'a native sidecar');
    t.is(p.metadata.annotations?.['weft.dev/injected'], '0.0.0-test');
  }
  for (const [ns, app] of [
    ['shop', 'batch'],
    ['plain', 'api'],
    ['kube-system', 'dns'],
  ]) {
    const pods = await eventually(
      () => (podsOf(t, ns, app).length === 1 ? podsOf(t, ns, app) : undefined),
      `${ns}/${app}`,
    );
    t.false(hasProxy(pods[0]), `${ns}/${app} is not injected`);
  }
  // Every pod went through the webhook: the two web pods patched, the other three allowed unchanged.
  t.is(server.admissions.filter((a) => a.outcome === 'patched').length, 2);
  t.is(server.admissions.filter((a) => a.outcome === 'allowed').length, 3);
  t.true(server.admissions.every((a) => a.webhook === 'inject.weft.dev'));

  // The root CA: in the labelled namespaces only, and as the webhook's caBundle.
  const root = cp.ca!.rootCAsPem;
  const cm = await eventually(() => server.get('ConfigMap', 'shop', 'weft-root-ca'), 'weft-root-ca in shop');
  t.is((cm.data as Record<string, string>)['ca.crt'], root);
  t.is(server.get('ConfigMap', 'plain', 'weft-root-ca'), undefined);
  const webhooks = server.get('MutatingWebhookConfiguration', undefined, 'weft-injector')!.webhooks as Obj[];
  t.is((webhooks[0].clientConfig as { caBundle: string }).caBundle, Buffer.from(root).toString('base64'));
  const secret = server.get('Secret', NS, 'weft-ca')!;
  t.is(Buffer.from((secret.data as Record<string, string>)['ca.crt'], 'base64').toString(), cp.ca!.certPem);

  // A proxy of a web pod: a certificate for a TokenReview-valid token, then its config over push.
  const pod = web[0];
  const token = t.context.tokens.mint({
    namespace: 'shop',
    serviceAccount: 'default',
    pod: { name: pod.metadata.name, uid: pod.metadata.uid },
  });
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spiffeId = 'spiffe://cluster.local/ns/shop/sa/default';
  const issued = await requestCertificate(
    {
      url: `https://127.0.0.1:${cp.ports.ca}`,
      serverName: 'weft-controlplane.weft-system.svc',
      trustedRootsPem: (cm.data as Record<string, string>)['ca.crt'],
    },
    { csr: buildCsr(keys, { spiffeId, commonName: 'default.shop' }), token },
  );
  t.is(new X509Certificate(issued.certChain).subjectAltName, `URI:${spiffeId}`);
  const proxyId = `sidecar:shop/${pod.metadata.name}`;
  const client = new PushClient({
    host: '127.0.0.1',
    port: cp.ports.push,
    proxyId,
    nodeVersion: 'test',
    credentials: () => ({
      key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certChain: issued.certChain,
      rootCAs: issued.rootCAs,
    }),
    apply: () => {},
    logger: t.context.logs.logger,
  });
  const applied = new Promise<{ proxy: { id: string; identity: string } }>((resolve) =>
    client.once('applied', (_v, config) => resolve(config as never)),
  );
  client.start();
  t.teardown(() => client.close());
  const config = await applied;
  t.is(config.proxy.id, proxyId);
  t.is(config.proxy.identity, spiffeId);
});

test('the root CA ConfigMap follows the label and the caBundle is put back after an edit', async (t) => {
  const { server } = t.context.c;
  server.put(INJECTOR_CONFIGURATION);
  const cp = await plane(t, t.context.logs.logger);
  await cp.whenReady();
  const bundle = Buffer.from(cp.ca!.rootCAsPem).toString('base64');
  const caBundle = () =>
    (
      (server.get('MutatingWebhookConfiguration', undefined, 'weft-injector')!.webhooks as Obj[])[0].clientConfig as {
        caBundle?: string;
      }
    ).caBundle;
  await eventually(() => caBundle() === bundle, 'caBundle set');
  // A `helm upgrade` re-applying the configuration without a bundle.
  server.put(INJECTOR_CONFIGURATION);
  t.is(caBundle(), undefined);
  await eventually(() => caBundle() === bundle, 'caBundle put back');

  await eventually(() => server.get('ConfigMap', 'shop', 'weft-root-ca'), 'published in shop');
  server.put({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'plain', labels: { 'weft.dev/inject': 'enabled' } },
  });
  await eventually(() => server.get('ConfigMap', 'plain', 'weft-root-ca'), 'published in plain once labelled');
  server.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'weft-root-ca', namespace: 'shop' },
    data: { 'ca.crt': 'tampered', extra: 'kept' },
  });
  const fixed = await eventually(() => {
    const d = server.get('ConfigMap', 'shop', 'weft-root-ca')?.data as Record<string, string> | undefined;
    return d?.['ca.crt'] === cp.ca!.rootCAsPem ? d : undefined;
  }, 'ConfigMap repaired');
  t.is(fixed.extra, 'kept');
  server.remove('ConfigMap', 'plain', 'weft-root-ca');
  await eventually(() => server.get('ConfigMap', 'plain', 'weft-root-ca'), 'ConfigMap recreated');

  // A Gateway of weft's class in a namespace not labelled for injection: its edge proxy, and the root CA it mounts.
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'edge' } });
  server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft' },
    spec: { controllerName: 'weft.dev/gateway-controller' },
  });
  server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'public', namespace: 'edge' },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  });
  await eventually(() => server.get('ConfigMap', 'edge', 'weft-root-ca'), 'published in the Gateway namespace');
  const edge = await eventually(() => server.get('Deployment', 'edge', 'public-weft'), 'the edge proxy Deployment');
  const container = (edge.spec as { template: { spec: { containers: { image: string; args: string[] }[] } } }).template
    .spec.containers[0];
  t.is(container.image, 'registry.test/weft:0.0.0-test');
  t.true(container.args.includes('weft-controlplane.weft-system.svc:15010'), container.args.join(' '));
});

test('two replicas starting together share one root CA from one Secret; only one leads', async (t) => {
  const [a, b] = await Promise.all([plane(t, t.context.logs.logger, false), plane(t, t.context.logs.logger, false)]);
  t.is(a.ca!.rootCAsPem, b.ca!.rootCAsPem);
  t.is(t.context.c.server.count({ verb: 'create', resource: 'secrets', code: 201 }), 1);
  await Promise.all([a.whenReady(), b.whenReady()]);
  await eventually(() => [a, b].filter((cp) => cp.kubernetes?.leader?.isLeader).length === 1, 'one leader');
  t.pass();
});

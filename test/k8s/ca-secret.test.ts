// The CA Secret: generated and created once, an operator-supplied root used as is, unusable contents refused with
// the Secret's name; and the control plane's start waiting (with backoff) while the Secret cannot be written yet,
// stoppable meanwhile.
import anyTest, { type TestFn } from 'ava';
import { pino } from 'pino';
import { CaSetupError, generateRoot } from '../../controlplane/certs/index.ts';
import { loadOrCreateCaSecret } from '../../controlplane/k8s/ca-secret.ts';
import { startClusterControlPlane } from '../../controlplane/k8s/cluster.ts';
import { KubeError } from '../../controlplane/k8s/errors.ts';
import { type Cluster, eventually, startCluster } from './support.ts';

const test = anyTest as TestFn<{ c: Cluster }>;
const silent = pino({ level: 'silent' });
const b64 = (s: string) => Buffer.from(s).toString('base64');

test.beforeEach(async (t) => {
  t.context.c = await startCluster();
  t.context.c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
});

test.afterEach.always(async (t) => {
  await t.context.c?.close();
});

const load = (t: { context: { c: Cluster } }) =>
  loadOrCreateCaSecret({
    client: t.context.c.client,
    namespace: 'weft-system',
    name: 'weft-ca',
    trustDomain: 'cluster.local',
  });

test('the first load creates an Opaque Secret; the next one loads the same root', async (t) => {
  const first = await load(t);
  t.true(first.created);
  const secret = t.context.c.server.get('Secret', 'weft-system', 'weft-ca')!;
  t.is(secret.type, 'Opaque', 'not kubernetes.io/tls: the informers must not read the key into snapshots');
  t.deepEqual(Object.keys(secret.data as object).sort(), ['ca.crt', 'ca.key']);
  const second = await load(t);
  t.false(second.created);
  t.is(second.ca.rootCAsPem, first.ca.rootCAsPem);
});

test("an operator's root in the Secret is used; unusable contents are refused naming the Secret", async (t) => {
  const { server } = t.context.c;
  const own = generateRoot('cluster.local', Date.now());
  const secret = (data: Record<string, string>) =>
    server.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'weft-ca', namespace: 'weft-system' }, data });
  secret({ 'ca.crt': b64(own.certPem), 'ca.key': b64(own.keyPem) });
  const loaded = await load(t);
  t.false(loaded.created);
  t.is(loaded.ca.certPem.trim(), own.certPem.trim());
  secret({ 'ca.crt': b64(own.certPem) });
  const incomplete = await t.throwsAsync(load(t), { instanceOf: CaSetupError });
  t.is((incomplete as CaSetupError).code, 'WEFT_ERR_CA_STORE_INCOMPLETE');
  t.regex(incomplete!.message, /Secret weft-system\/weft-ca lacks ca\.key/);
  secret({ 'ca.crt': b64(own.certPem), 'ca.key': b64(generateRoot('cluster.local', Date.now()).keyPem) });
  const mismatch = await t.throwsAsync(load(t), { instanceOf: CaSetupError });
  t.regex(mismatch!.message, /Secret weft-system\/weft-ca: CA key does not match/);
});

test('start waits while the Secret cannot be created (namespace missing), and a stop meanwhile ends it', async (t) => {
  const { server, client } = t.context.c;
  server.remove('Namespace', undefined, 'weft-system');
  const options = {
    client,
    host: '127.0.0.1',
    ports: { push: 0, ca: 0, admin: 0 },
    logger: silent,
    leaderElect: false,
    startupBackoff: { initialMs: 20, maxMs: 100 },
    provider: { debounceMs: 10 },
  };
  const stop = new AbortController();
  const stopped = startClusterControlPlane({ ...options, signal: stop.signal });
  await eventually(() => server.count({ verb: 'create', resource: 'secrets', code: 404 }) >= 2, 'retried creates');
  stop.abort();
  const err = await t.throwsAsync(stopped, { instanceOf: KubeError });
  t.is((err as KubeError).code, 'WEFT_ERR_K8S_CLOSED');

  const starting = startClusterControlPlane(options);
  await eventually(() => server.count({ verb: 'create', resource: 'secrets', code: 404 }) >= 4, 'retrying again');
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
  const cp = await starting;
  t.teardown(() => cp.close());
  await cp.whenReady();
  t.truthy(server.get('Secret', 'weft-system', 'weft-ca'));
  const ready = await fetch(`http://127.0.0.1:${cp.ports.admin}/readyz`);
  t.is(ready.status, 200);
});

// The test API server against weft's REST client and client-node's watch (through weft's provider code paths):
// what the controlplane's Kubernetes code relies on must behave as a real API server does.
import anyTest, { type TestFn } from 'ava';
import { type KubeClient, LEASES, TOKEN_REVIEWS } from '../../controlplane/k8s/client.ts';
import { KubeApiError } from '../../controlplane/k8s/errors.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { microTime } from '../../controlplane/k8s/leader.ts';
import { type Cluster, startCluster } from './support.ts';

const test = anyTest as TestFn<{ c: Cluster }>;

test.beforeEach(async (t) => {
  t.context.c = await startCluster();
});
test.afterEach.always(async (t) => {
  await t.context.c.close();
});

const ROUTE = KIND_INFO.get('HTTPRoute')!;
const NS = KIND_INFO.get('Namespace')!;
const SVC = KIND_INFO.get('Service')!;
const SECRET = KIND_INFO.get('Secret')!;
const POD = KIND_INFO.get('Pod')!;

async function apiError(p: Promise<unknown>): Promise<KubeApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KubeApiError) return e;
    throw e;
  }
  throw new Error('expected an API error');
}

const route = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, ...extra },
  spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
});

async function ns(client: KubeClient, name: string, labels?: Record<string, string>) {
  await client.create(NS, 'v1', undefined, { metadata: { name, ...(labels ? { labels } : {}) } });
}

interface WatchLine {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string };
}

/** Reads watch events as raw lines until `count` arrived (or the stream ends). */
async function readWatch(url: string, path: string, query: string, count: number): Promise<WatchLine[]> {
  const res = await fetch(`${url}${path}?watch=true&${query}`);
  const out: WatchLine[] = [];
  const reader = res.body!.getReader();
  let buf = '';
  while (out.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += new TextDecoder().decode(value);
    let i = buf.indexOf('\n');
    while (i >= 0) {
      out.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  }
  await reader.cancel();
  return out;
}

test('discovery lists served resources; an uninstalled CRD is absent and 404', async (t) => {
  const { c } = t.context;
  const core = await c.client.request<{ resources: { name: string }[] }>('GET', '/api/v1');
  t.true(core.resources.some((r) => r.name === 'pods/status'));
  const groups = await c.client.request<{ groups: { name: string; preferredVersion: { version: string } }[] }>(
    'GET',
    '/apis',
  );
  t.is(groups.groups.find((g) => g.name === 'gateway.networking.k8s.io')?.preferredVersion.version, 'v1');
  c.server.uninstallCrd('GRPCRoute');
  const gv = await c.client.request<{ resources: { name: string }[] }>('GET', '/apis/gateway.networking.k8s.io/v1');
  t.false(gv.resources.some((r) => r.name === 'grpcroutes'));
  t.true(gv.resources.some((r) => r.name === 'httproutes'));
  const e = await apiError(c.client.list(KIND_INFO.get('GRPCRoute')!, 'v1'));
  t.is(e.statusCode, 404);
  for (const k of ['GatewayClass', 'Gateway', 'HTTPRoute', 'ReferenceGrant']) c.server.uninstallCrd(k);
  t.is((await apiError(c.client.request('GET', '/apis/gateway.networking.k8s.io'))).statusCode, 404);
  c.server.installCrd('ReferenceGrant', ['v1beta1']);
  const beta = await c.client.request<{ resources: { name: string }[] }>(
    'GET',
    '/apis/gateway.networking.k8s.io/v1beta1',
  );
  t.deepEqual(
    beta.resources.map((r) => r.name),
    ['referencegrants'],
  );
  t.is((await apiError(c.client.request('GET', '/apis/gateway.networking.k8s.io/v1'))).statusCode, 404);
});

test('create: uid, generation, resourceVersion from one counter, CRD defaults; namespace must exist; 409 on duplicates', async (t) => {
  const { c } = t.context;
  t.is((await apiError(c.client.create(ROUTE, 'v1', 'shop', route('a')))).statusCode, 404);
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', route('a'));
  const b = await c.client.create(ROUTE, 'v1', 'shop', route('b'));
  t.is(a.metadata?.generation, 1);
  t.truthy(a.metadata?.uid);
  t.is(Number(b.metadata?.resourceVersion), Number(a.metadata?.resourceVersion) + 1);
  const spec = a.spec as { parentRefs: unknown[]; rules: { matches: unknown[]; backendRefs: unknown[] }[] };
  t.deepEqual(spec.parentRefs, [{ name: 'gw', group: 'gateway.networking.k8s.io', kind: 'Gateway' }]);
  t.deepEqual(spec.rules[0].matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
  t.deepEqual(spec.rules[0].backendRefs, [{ name: 'web', port: 80, group: '', kind: 'Service', weight: 1 }]);
  const dup = await apiError(c.client.create(ROUTE, 'v1', 'shop', route('a')));
  t.is(dup.statusCode, 409);
  t.is(dup.reason, 'AlreadyExists');
  const svc = await c.client.create(SVC, 'v1', 'shop', { metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } });
  t.like(svc.spec, { type: 'ClusterIP', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] });
  t.regex(String((svc.spec as { clusterIP: string }).clusterIP), /^10\.96\./);
});

test('list: built-in items carry no apiVersion/kind, CRD items do; pages stay consistent', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  for (let i = 0; i < 5; i++) await c.client.create(ROUTE, 'v1', 'shop', route(`r${i}`));
  const nsList = await c.client.list(NS, 'v1');
  t.is(nsList.items[0].kind, undefined);
  const first = await c.client.list(ROUTE, 'v1', { limit: 2 });
  t.is(first.items.length, 2);
  t.is(first.items[0].kind, 'HTTPRoute');
  t.truthy(first.metadata?.continue);
  await c.client.create(ROUTE, 'v1', 'shop', route('r9'));
  const rest = await c.client.list(ROUTE, 'v1', { limit: 10, continue: first.metadata?.continue });
  t.deepEqual(
    rest.items.map((i) => i.metadata?.name),
    ['r2', 'r3', 'r4'],
  );
  t.is(rest.metadata?.resourceVersion, first.metadata?.resourceVersion);
  const all = await c.client.listAll(ROUTE, 'v1', { limit: 2 });
  t.is(all.items.length, 6);
});

test('label and field selectors on lists; Secret type; unsupported field is 400', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  await ns(c.client, 'other');
  await c.client.create(ROUTE, 'v1', 'shop', route('a', { labels: { app: 'web', tier: 'front' } }));
  await c.client.create(ROUTE, 'v1', 'shop', route('b', { labels: { app: 'api' } }));
  await c.client.create(ROUTE, 'v1', 'other', route('a', { labels: { app: 'web' } }));
  const names = async (q: { labelSelector?: string; fieldSelector?: string }) =>
    (await c.client.list(ROUTE, 'v1', q)).items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`);
  t.deepEqual(await names({ labelSelector: 'app=web' }), ['other/a', 'shop/a']);
  t.deepEqual(await names({ labelSelector: 'app in (api, web),!tier' }), ['other/a', 'shop/b']);
  t.deepEqual(await names({ labelSelector: 'app!=web' }), ['shop/b']);
  t.deepEqual(await names({ fieldSelector: 'metadata.namespace=shop,metadata.name!=b' }), ['shop/a']);
  await c.client.create(SECRET, 'v1', 'shop', { metadata: { name: 'cert' }, type: 'kubernetes.io/tls', data: {} });
  await c.client.create(SECRET, 'v1', 'shop', { metadata: { name: 'token' }, data: {} });
  const tls = await c.client.list(SECRET, 'v1', { fieldSelector: 'type=kubernetes.io/tls' });
  t.deepEqual(
    tls.items.map((i) => i.metadata?.name),
    ['cert'],
  );
  const bad = await apiError(c.client.list(ROUTE, 'v1', { fieldSelector: 'spec.hostnames=x' }));
  t.is(bad.statusCode, 400);
  t.regex(bad.message, /field label not supported/);
});

test('update: 409 on a stale resourceVersion; CRDs refuse unconditional updates; spec bumps generation, metadata does not', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', route('a'));
  const labelled = await c.client.replace(ROUTE, 'v1', 'shop', 'a', {
    ...a,
    metadata: { ...a.metadata, labels: { x: 'y' } },
  });
  t.is(labelled.metadata?.generation, 1);
  const stale = await apiError(c.client.replace(ROUTE, 'v1', 'shop', 'a', a));
  t.is(stale.statusCode, 409);
  t.is(stale.reason, 'Conflict');
  const { resourceVersion: _rv, ...noRv } = labelled.metadata ?? {};
  const unconditional = await apiError(c.client.replace(ROUTE, 'v1', 'shop', 'a', { ...labelled, metadata: noRv }));
  t.is(unconditional.statusCode, 422);
  const changed = await c.client.replace(ROUTE, 'v1', 'shop', 'a', {
    ...labelled,
    spec: { ...(labelled.spec as object), hostnames: ['a.example'] },
  });
  t.is(changed.metadata?.generation, 2);
  // A no-op update changes nothing, not even the resourceVersion.
  const same = await c.client.replace(ROUTE, 'v1', 'shop', 'a', changed);
  t.is(same.metadata?.resourceVersion, changed.metadata?.resourceVersion);
});

test('status subresource: main updates ignore status, status updates ignore the rest and keep generation', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', { ...route('a'), status: { parents: [{ x: 1 }] } });
  t.is(a.status, undefined);
  const parents = [
    {
      parentRef: { name: 'gw' },
      controllerName: 'example.com/c',
      conditions: [
        {
          type: 'Accepted',
          status: 'True',
          reason: 'Accepted',
          message: '',
          lastTransitionTime: '2024-01-01T00:00:00Z',
        },
      ],
    },
  ];
  const withStatus = await c.client.replaceStatus(ROUTE, 'v1', 'shop', 'a', {
    ...a,
    spec: { hostnames: ['ignored.example'] },
    status: { parents },
  });
  t.deepEqual(withStatus.status, { parents });
  t.deepEqual((withStatus.spec as { hostnames?: string[] }).hostnames, undefined);
  t.is(withStatus.metadata?.generation, 1);
  const main = await c.client.replace(ROUTE, 'v1', 'shop', 'a', { ...withStatus, status: { parents: [] } });
  t.deepEqual(main.status, { parents });
  const gwc = await c.client.create(KIND_INFO.get('GatewayClass')!, 'v1', undefined, {
    metadata: { name: 'weft' },
    spec: { controllerName: 'weft.dev/gateway-controller' },
  });
  t.like(gwc.status, { conditions: [{ type: 'Accepted', status: 'Unknown', reason: 'Pending' }] });
});

test('merge patch and JSON patch, on the object and on status; a patch with a stale resourceVersion conflicts', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', route('a', { labels: { a: '1', b: '2' } }));
  const merged = await c.client.patch(ROUTE, 'v1', 'shop', 'a', { metadata: { labels: { a: null, c: '3' } } });
  t.deepEqual(merged.metadata?.labels, { b: '2', c: '3' });
  const patched = await c.client.patch(
    ROUTE,
    'v1',
    'shop',
    'a',
    [
      { op: 'test', path: '/metadata/labels/b', value: '2' },
      { op: 'add', path: '/spec/hostnames', value: ['x.example'] },
    ],
    'json',
  );
  t.deepEqual((patched.spec as { hostnames: string[] }).hostnames, ['x.example']);
  t.is(patched.metadata?.generation, 2);
  const failed = await apiError(
    c.client.patch(ROUTE, 'v1', 'shop', 'a', [{ op: 'test', path: '/metadata/labels/b', value: 'no' }], 'json'),
  );
  t.is(failed.statusCode, 422);
  const stale = await apiError(
    c.client.patch(ROUTE, 'v1', 'shop', 'a', { metadata: { resourceVersion: a.metadata?.resourceVersion } }),
  );
  t.is(stale.statusCode, 409);
  const st = await c.client.patch(ROUTE, 'v1', 'shop', 'a', { status: { parents: [] }, spec: null }, 'merge', 'status');
  t.deepEqual(st.status, { parents: [] });
  t.truthy(st.spec);
  const unsupported = await apiError(
    c.client.request('PATCH', '/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/a', {
      body: {},
      contentType: 'application/strategic-merge-patch+json',
    }),
  );
  t.is(unsupported.statusCode, 415);
});

test('delete; deleting a namespace deletes what is in it', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  await c.client.create(ROUTE, 'v1', 'shop', route('a'));
  await c.client.create(POD, 'v1', 'shop', { metadata: { name: 'p' }, spec: { containers: [{ name: 'c' }] } });
  const gone = await c.client.delete(ROUTE, 'v1', 'shop', 'a');
  t.is(gone.metadata?.name, 'a');
  t.is((await apiError(c.client.get(ROUTE, 'v1', 'shop', 'a'))).statusCode, 404);
  await c.client.delete(NS, 'v1', undefined, 'shop');
  t.is(c.server.get('Pod', 'shop', 'p'), undefined);
});

test('watch: initial ADDED without a resourceVersion, replay from one, transitions across a selector, bookmarks', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', route('a', { labels: { app: 'web' } }));
  await c.client.create(ROUTE, 'v1', 'shop', route('b'));
  const initial = await readWatch(c.url, '/apis/gateway.networking.k8s.io/v1/httproutes', '', 2);
  t.deepEqual(
    initial.map((e) => `${e.type} ${e.object.metadata?.name}`),
    ['ADDED a', 'ADDED b'],
  );
  // a stops matching app=web, then matches again; b is deleted (never matched).
  await c.client.patch(ROUTE, 'v1', 'shop', 'a', { metadata: { labels: { app: 'api' } } });
  await c.client.patch(ROUTE, 'v1', 'shop', 'a', { metadata: { labels: { app: 'web' } } });
  await c.client.delete(ROUTE, 'v1', 'shop', 'b');
  await c.client.patch(ROUTE, 'v1', 'shop', 'a', { spec: { hostnames: ['h.example'] } });
  const replay = await readWatch(
    c.url,
    '/apis/gateway.networking.k8s.io/v1/httproutes',
    `resourceVersion=${a.metadata?.resourceVersion}&labelSelector=app%3Dweb&allowWatchBookmarks=true`,
    4,
  );
  t.deepEqual(
    replay.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`),
    ['DELETED a', 'ADDED a', 'MODIFIED a', 'BOOKMARK '],
  );
  t.is(replay[3].object.metadata?.resourceVersion, c.server.resourceVersion);
});

test('watch from a compacted resourceVersion: the 410 Expired ERROR event (or HTTP 410 when asked)', async (t) => {
  const { c } = t.context;
  await ns(c.client, 'shop');
  const a = await c.client.create(ROUTE, 'v1', 'shop', route('a'));
  await c.client.create(ROUTE, 'v1', 'shop', route('b'));
  c.server.compact();
  const events = await readWatch(
    c.url,
    '/apis/gateway.networking.k8s.io/v1/httproutes',
    `resourceVersion=${a.metadata?.resourceVersion}`,
    5,
  );
  t.is(events.length, 1);
  t.is(events[0].type, 'ERROR');
  t.like(events[0].object, { code: 410, reason: 'Expired' });
  c.server.expireNextWatch({ resource: 'httproutes' }, 'http');
  const res = await fetch(`${c.url}/apis/gateway.networking.k8s.io/v1/httproutes?watch=true`);
  t.is(res.status, 410);
  await res.body?.cancel();
});

test('bounded history: old resourceVersions expire on their own', async (t) => {
  const small = await startCluster({ historySize: 3 });
  t.teardown(() => small.close());
  await ns(small.client, 'shop');
  const a = await small.client.create(ROUTE, 'v1', 'shop', route('a'));
  for (let i = 0; i < 4; i++)
    await small.client.patch(ROUTE, 'v1', 'shop', 'a', { metadata: { labels: { i: `${i}` } } });
  const events = await readWatch(
    small.url,
    '/apis/gateway.networking.k8s.io/v1/httproutes',
    `resourceVersion=${a.metadata?.resourceVersion}`,
    5,
  );
  t.like(events[0], { type: 'ERROR', object: { code: 410 } });
});

test('injected failures, counted in the request log', async (t) => {
  const { c } = t.context;
  c.server.failNext({ verb: 'list', resource: 'namespaces', code: 503, times: 2 });
  t.is((await apiError(c.client.list(NS, 'v1'))).statusCode, 503);
  t.is((await apiError(c.client.list(NS, 'v1'))).statusCode, 503);
  t.is((await c.client.list(NS, 'v1')).items.length, 4);
  c.server.failNext({ verb: 'get', drop: true });
  await t.throwsAsync(c.client.get(NS, 'v1', undefined, 'default'), { message: /GET/ });
  t.is(c.server.count({ verb: 'list', resource: 'namespaces', code: 503 }), 2);
});

test('TokenReview is answered by the function the test sets', async (t) => {
  const { c } = t.context;
  c.server.tokenReview = ({ token, audiences }) =>
    token === 'good'
      ? { authenticated: true, user: { username: 'system:serviceaccount:shop:web' }, audiences: audiences ?? [] }
      : { authenticated: false, error: 'invalid token' };
  const ok = await c.client.create<{ status: { authenticated: boolean; user: { username: string } } }>(
    TOKEN_REVIEWS,
    'v1',
    undefined,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'good', audiences: ['weft'] } },
  );
  t.true(ok.status.authenticated);
  t.is(ok.status.user.username, 'system:serviceaccount:shop:web');
  const bad = await c.client.create<{ status: { authenticated: boolean } }>(TOKEN_REVIEWS, 'v1', undefined, {
    spec: { token: 'bad' },
  });
  t.false(bad.status.authenticated);
});

test('Leases: MicroTime needs six fractional digits, as metav1.MicroTime parses it', async (t) => {
  const { c } = t.context;
  const spec = { holderIdentity: 'me', leaseDurationSeconds: 15 };
  const millis = await apiError(
    c.client.create(LEASES, 'v1', 'default', {
      metadata: { name: 'l' },
      spec: { ...spec, renewTime: new Date().toISOString() },
    }),
  );
  t.is(millis.statusCode, 400);
  const ok = await c.client.create(LEASES, 'v1', 'default', {
    metadata: { name: 'l' },
    spec: { ...spec, renewTime: microTime(new Date()) },
  });
  t.regex(String((ok.spec as { renewTime: string }).renewTime), /\.\d{6}Z$/);
});

test('bearer token required when configured', async (t) => {
  const secured = await startCluster({ token: 's3cret' });
  t.teardown(() => secured.close());
  t.is((await secured.client.list(NS, 'v1')).items.length, 4);
  const res = await fetch(`${secured.url}/api/v1/namespaces`);
  t.is(res.status, 401);
  await res.body?.cancel();
});

// KubernetesProvider against the test API server: first sync behind a readiness gate, changes reaching new
// snapshots (and status-only changes not), recovery from informer errors, 410s and dropped watches, and Gateway API
// CRDs that are missing, installed later and removed.
import anyTest, { type TestFn } from 'ava';
import { KubeError } from '../../controlplane/k8s/errors.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { KubernetesProvider, type KubernetesProviderUpdate } from '../../controlplane/k8s/provider.ts';
import type { ResourceKind } from '../../controlplane/resources/types.ts';
import { Pipeline } from '../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import type { TestApiServerOptions } from './api-server.ts';
import { type CapturedLogs, type Cluster, captureLogs, eventually, startCluster } from './support.ts';

interface Ctx {
  c: Cluster;
  logs: CapturedLogs;
  updates: KubernetesProviderUpdate[];
  providers: KubernetesProvider[];
}

const test = anyTest as TestFn<Ctx>;

test.beforeEach((t) => {
  t.context.logs = captureLogs();
  t.context.updates = [];
  t.context.providers = [];
});

test.afterEach.always(async (t) => {
  for (const p of t.context.providers) await p.close();
  await t.context.c?.close();
});

const ROUTE = KIND_INFO.get('HTTPRoute')!;

async function cluster(t: { context: Ctx }, options: TestApiServerOptions = {}): Promise<Cluster> {
  t.context.c = await startCluster(options);
  const { server } = t.context.c;
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'shop' } } });
  server.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
  });
  server.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
    spec: { containers: [{ name: 'app', image: 'echo' }] },
    status: { phase: 'Running', podIP: '10.0.0.5', conditions: [{ type: 'Ready', status: 'True' }] },
  });
  server.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'cert', namespace: 'shop' },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': '', 'tls.key': '' },
  });
  server.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'token', namespace: 'shop' }, data: {} });
  server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
      rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
    },
  });
  return t.context.c;
}

function provider(t: { context: Ctx }, options: Partial<ConstructorParameters<typeof KubernetesProvider>[0]> = {}) {
  const p = new KubernetesProvider({
    client: t.context.c.client,
    logger: t.context.logs.logger,
    debounceMs: 10,
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  p.onUpdate((u) => t.context.updates.push(u));
  t.context.providers.push(p);
  return p;
}

const names = (u: KubernetesProviderUpdate | undefined, kind: ResourceKind) =>
  (u?.snapshot.list(kind) ?? []).map((r) => `${r.metadata.namespace ?? ''}/${r.metadata.name}`);

const route = (name: string, labels?: Record<string, string>) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, ...(labels ? { labels } : {}) },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }] },
});

test('first sync: one update with every kind before start() resolves; Secrets only of type kubernetes.io/tls', async (t) => {
  const c = await cluster(t);
  c.server.failNext({ verb: 'list', resource: 'pods', code: 500, times: 2 });
  const p = provider(t);
  t.false(p.ready);
  await p.start();
  t.true(p.ready);
  t.is(t.context.updates.length, 1);
  const u = t.context.updates[0];
  t.deepEqual(names(u, 'HTTPRoute'), ['shop/web']);
  t.deepEqual(names(u, 'Pod'), ['shop/web-1']);
  t.deepEqual(names(u, 'Secret'), ['shop/cert']);
  t.true(names(u, 'Namespace').includes('/shop'));
  t.deepEqual(u.missingKinds, []);
  // The failed lists were retried, not fatal; every informer watches now.
  t.is(t.context.logs.events('k8s.informer-failed').filter((l) => l.kind === 'Pod').length, 2);
  t.is(c.server.count({ verb: 'list', resource: 'pods' }), 3);
  t.is(p.status().find((s) => s.kind === 'Pod')?.state, 'synced');
  // Typed as the translator reads them: apiVersion/kind set (list items have none), no resourceVersion.
  const pod = u.snapshot.get('Pod', 'shop/web-1');
  t.is(pod?.apiVersion, 'v1');
  t.is(pod?.metadata.resourceVersion, undefined);
  t.is(pod?.status?.podIP, '10.0.0.5');
  t.true(Object.isFrozen(pod));
});

test('a change through the API reaches a new snapshot; status-only changes of Gateway API objects give none', async (t) => {
  const c = await cluster(t);
  const p = provider(t);
  await p.start();
  await c.client.create(ROUTE, 'v1', 'shop', route('extra'));
  await eventually(() => names(p.current, 'HTTPRoute').includes('shop/extra'), 'the new route in a snapshot');
  const before = t.context.updates.length;
  const web = await c.client.get(ROUTE, 'v1', 'shop', 'web');
  await c.client.replaceStatus(ROUTE, 'v1', 'shop', 'web', { ...web, status: { parents: [] } });
  await c.client.patch(ROUTE, 'v1', 'shop', 'extra', { metadata: { labels: { v: '2' } } });
  await eventually(
    () => p.snapshot.get('HTTPRoute', 'shop/extra')?.metadata.labels?.v === '2',
    'the label change in a snapshot',
  );
  // Every update after the status write carries a real change: the label.
  const after = t.context.updates.slice(before);
  t.true(after.length >= 1);
  for (const u of after) t.is(u.snapshot.get('HTTPRoute', 'shop/extra')?.metadata.labels?.v, '2');
  // The raw object (status included) is there for the status writer.
  t.deepEqual(p.getObject('HTTPRoute', 'shop', 'web')?.status, { parents: [] });
  await c.client.delete(ROUTE, 'v1', 'shop', 'extra');
  await eventually(() => !names(p.current, 'HTTPRoute').includes('shop/extra'), 'the deletion in a snapshot');
});

test('an object the API server accepted but weft cannot read is reported; its last good version stays', async (t) => {
  const c = await cluster(t);
  const p = provider(t);
  await p.start();
  // The test server checks no CRD schema: a hostname that is not a string gets through, as from a broken webhook.
  await c.client.patch(ROUTE, 'v1', 'shop', 'web', { spec: { hostnames: [42] } });
  await eventually(() => (p.current?.errors.length ?? 0) > 0, 'the error reported');
  t.regex(String(p.current?.errors[0]), /HTTPRoute shop\/web: spec\.hostnames/);
  t.truthy(p.snapshot.get('HTTPRoute', 'shop/web'));
  await c.client.patch(ROUTE, 'v1', 'shop', 'web', { spec: { hostnames: ['web.example'] } });
  await eventually(() => p.current?.errors.length === 0, 'the error cleared');
  t.deepEqual(p.snapshot.get('HTTPRoute', 'shop/web')?.spec.hostnames, ['web.example']);
});

test('an informer error (500 on watch, then a dropped connection) is retried with backoff and loses nothing', async (t) => {
  const c = await cluster(t);
  const p = provider(t);
  await p.start();
  c.server.failNext({ verb: 'watch', resource: 'httproutes', code: 500, times: 2 });
  t.is(c.server.dropWatches('httproutes'), 1);
  // Changed while the informer is down: seen after it resumes from its resourceVersion.
  await c.client.create(ROUTE, 'v1', 'shop', route('during'));
  await eventually(() => names(p.current, 'HTTPRoute').includes('shop/during'), 'the route created meanwhile');
  const st = p.status().find((s) => s.kind === 'HTTPRoute')!;
  t.is(st.state, 'synced');
  t.true(st.failures >= 2, `failures: ${st.failures}`);
  t.true(st.restarts >= 2);
  const failed = t.context.logs.events('k8s.informer-failed').filter((l) => l.kind === 'HTTPRoute');
  t.true(failed.some((l) => l.statusCode === 500));
  // Restarts resume the watch; no relist was needed.
  t.is(c.server.count({ verb: 'list', resource: 'httproutes' }), 1);
  c.server.dropWatches('httproutes');
  await c.client.create(ROUTE, 'v1', 'shop', route('after-drop'));
  await eventually(() => names(p.current, 'HTTPRoute').includes('shop/after-drop'), 'the route after a second drop');
});

test('410 Gone (watch ERROR event, and HTTP 410): the informer relists and catches up', async (t) => {
  const c = await cluster(t);
  const p = provider(t);
  await p.start();
  for (const mode of ['event', 'http'] as const) {
    const lists = c.server.count({ verb: 'list', resource: 'httproutes' });
    c.server.expireNextWatch({ resource: 'httproutes' }, mode);
    await c.client.delete(ROUTE, 'v1', 'shop', 'web');
    c.server.endWatches('httproutes');
    await eventually(() => c.server.count({ verb: 'list', resource: 'httproutes' }) > lists, `a relist (${mode})`);
    await eventually(() => !names(p.current, 'HTTPRoute').includes('shop/web'), 'the deletion');
    await c.client.create(ROUTE, 'v1', 'shop', route('web'));
    await eventually(() => names(p.current, 'HTTPRoute').includes('shop/web'), 'the route again');
  }
  // client-node handled both 410s itself: no failure reached the provider for routes.
  t.is(p.status().find((s) => s.kind === 'HTTPRoute')?.failures, 0);
});

test('a missing CRD is reported once and skipped; installed later it is watched; removed, its objects go', async (t) => {
  const c = await cluster(t, { crds: ['GatewayClass', 'Gateway', 'HTTPRoute'] });
  const p = provider(t, { discoveryIntervalMs: 30 });
  await p.start();
  t.deepEqual(p.current?.missingKinds, ['GRPCRoute', 'ReferenceGrant']);
  const discoveries = c.server.count({ verb: 'discovery' });
  await eventually(() => c.server.count({ verb: 'discovery' }) >= discoveries + 15, 'several discovery rounds');
  const missing = t.context.logs.events('k8s.kind-missing');
  t.deepEqual(
    missing.map((l) => l.kind),
    ['GRPCRoute', 'ReferenceGrant'],
  );
  t.regex(String(missing[0].msg), /GRPCRoute is not served by the API server .*CRD is not installed/);
  t.is(c.server.count({ resource: 'grpcroutes' }), 0);

  c.server.installCrd('GRPCRoute');
  const grpc = KIND_INFO.get('GRPCRoute')!;
  await eventually(async () => {
    try {
      await c.client.create(grpc, 'v1', 'shop', {
        metadata: { name: 'g' },
        spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }] },
      });
      return true;
    } catch {
      return false;
    }
  }, 'GRPCRoute served');
  await eventually(() => names(p.current, 'GRPCRoute').includes('shop/g'), 'the GRPCRoute in a snapshot');
  t.deepEqual(p.current?.missingKinds, ['ReferenceGrant']);
  t.is(t.context.logs.events('k8s.kind-installed').length, 1);

  c.server.uninstallCrd('GRPCRoute');
  await eventually(
    () => names(p.current, 'GRPCRoute').length === 0 && p.missingKinds.includes('GRPCRoute'),
    'GRPCRoute gone',
  );
  t.is(t.context.logs.events('k8s.kind-missing').filter((l) => l.kind === 'GRPCRoute').length, 2);
});

test('the older served version is watched when the preferred one is absent (ReferenceGrant v1beta1)', async (t) => {
  const c = await cluster(t, { crds: ['HTTPRoute'] });
  c.server.installCrd('ReferenceGrant', ['v1beta1']);
  c.server.put({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: 'rg', namespace: 'shop' },
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'other' }],
      to: [{ group: '', kind: 'Service' }],
    },
  });
  const p = provider(t);
  await p.start();
  t.is(p.servedVersion('ReferenceGrant'), 'v1beta1');
  t.is(p.snapshot.get('ReferenceGrant', 'shop/rg')?.apiVersion, 'gateway.networking.k8s.io/v1beta1');
});

test('start() waits through failed discovery; close() during start rejects it and stops everything', async (t) => {
  const c = await cluster(t);
  c.server.failNext({ verb: 'discovery', code: 503, times: 3 });
  const p = provider(t);
  await p.start();
  t.true(t.context.logs.events('k8s.discovery-failed').length >= 1);

  c.server.failNext({ verb: 'list', resource: 'services', code: 500, times: 1000 });
  const q = provider(t);
  const starting = q.start();
  await eventually(() => c.server.count({ verb: 'list', resource: 'services', code: 500 }) >= 2, 'failing lists');
  await q.close();
  const err = await t.throwsAsync(starting, { instanceOf: KubeError });
  t.is(err.code, 'WEFT_ERR_K8S_CLOSED');
  t.is(t.context.updates.length, 1); // only p's first update
});

test('through the pipeline: the translator runs on the provider snapshots', async (t) => {
  const c = await cluster(t);
  const pipeline = new Pipeline({
    provider: () => provider(t),
    logger: t.context.logs.logger,
  });
  const sup = new Supervisor({ logger: t.context.logs.logger });
  for (const r of pipeline.runners) await sup.add(r);
  await sup.start();
  t.teardown(() => sup.close());
  await eventually(() => pipeline.statuses.has('HTTPRoute/shop/web'), 'the route status');
  await c.client.create(ROUTE, 'v1', 'shop', route('second'));
  await eventually(() => pipeline.statuses.has('HTTPRoute/shop/second'), 'the new route status');
  t.true(pipeline.ready);
});

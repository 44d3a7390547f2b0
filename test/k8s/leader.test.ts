// Lease-based leader election against the test API server, then two whole control planes sharing one cluster:
// only the leader writes status, and when it dies the other takes over and writes what is pending.
import { KubeClient, kubeConfigFor } from '../../controlplane/k8s/client.ts';
import { type KubernetesControlPlane, kubernetesControlPlane } from '../../controlplane/k8s/control-plane.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { LeaderElector, type LeaseSpec } from '../../controlplane/k8s/leader.ts';
import type { Condition } from '../../controlplane/resources/types.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import { type CapturedLogs, type Cluster, clusterTest, eventually } from './support.ts';

const test = clusterTest();

const TIMING = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 };

function elector(
  t: { context: { c: Cluster; logs: CapturedLogs; cleanup: (() => Promise<void>)[] } },
  identity: string,
) {
  const e = new LeaderElector({
    client: t.context.c.client,
    namespace: 'default',
    identity,
    logger: t.context.logs.logger,
    ...TIMING,
  });
  t.context.cleanup.push(() => e.close());
  return e;
}

const lease = (c: Cluster) => c.server.get('Lease', 'default', 'weft-controlplane')?.spec as LeaseSpec | undefined;

test('acquires a free Lease, renews it, releases it on close', async (t) => {
  const { c } = t.context;
  const a = elector(t, 'a');
  const changes: boolean[] = [];
  a.onChange((l) => changes.push(l));
  await a.start();
  t.true(a.isLeader);
  t.like(lease(c), { holderIdentity: 'a', leaseDurationSeconds: 1, leaseTransitions: 0 });
  const first = lease(c)?.renewTime;
  await eventually(() => lease(c)?.renewTime !== first, 'a renewal');
  t.regex(String(lease(c)?.renewTime), /\.\d{6}Z$/);
  await a.close();
  t.false(a.isLeader);
  t.deepEqual(changes, [true, false]);
  t.is(lease(c)?.holderIdentity, undefined);
});

test('two candidates: one leader; on release the other takes over at once', async (t) => {
  const { c } = t.context;
  const a = elector(t, 'a');
  const b = elector(t, 'b');
  await a.start();
  await b.start();
  t.true(a.isLeader);
  t.false(b.isLeader);
  await eventually(() => b.leader === 'a', 'b sees a as leader');
  await a.close();
  await eventually(() => b.isLeader, 'b leads');
  t.like(lease(c), { holderIdentity: 'b', leaseTransitions: 1 });
});

test('a leader that dies without releasing is replaced only once its Lease expired', async (t) => {
  const { c } = t.context;
  const a = elector(t, 'a');
  const b = elector(t, 'b');
  await a.start();
  await b.start();
  await eventually(() => b.leader === 'a', 'b sees a');
  await a.close({ release: false }); // a crash: the Lease still names a
  const died = performance.now();
  t.is(lease(c)?.holderIdentity, 'a');
  await eventually(() => b.isLeader, 'b takes over');
  // b waited at least a whole lease duration after a's last renewal, on its own clock.
  t.true(performance.now() - died >= TIMING.leaseDurationMs - TIMING.retryPeriodMs);
  t.like(lease(c), { holderIdentity: 'b', leaseTransitions: 1 });
});

test('a leader that cannot renew steps down after renewDeadline', async (t) => {
  const { c } = t.context;
  const a = elector(t, 'a');
  const changes: boolean[] = [];
  a.onChange((l) => changes.push(l));
  await a.start();
  t.true(a.isLeader);
  c.server.failNext({ resource: 'leases', code: 503, times: 1000 });
  await eventually(() => !a.isLeader && changes.length === 2, 'a steps down');
  t.deepEqual(changes, [true, false]);
  t.is(t.context.logs.events('leader.lost').length, 1);
});

test('two candidates racing for a new Lease: exactly one wins', async (t) => {
  const { c } = t.context;
  const all = ['a', 'b', 'c', 'd'].map((id) => elector(t, id));
  await Promise.all(all.map((e) => e.start()));
  await eventually(() => all.every((e) => e.leader !== undefined), 'everyone sees a leader');
  t.is(all.filter((e) => e.isLeader).length, 1);
  t.is(all.find((e) => e.isLeader)?.identity, lease(c)?.holderIdentity);
});

// ---- two control planes ----

const ROUTE = KIND_INFO.get('HTTPRoute')!;

interface Replica {
  cp: KubernetesControlPlane;
  sup: Supervisor;
  client: KubeClient;
}

async function replica(
  t: { context: { c: Cluster; logs: CapturedLogs; cleanup: (() => Promise<void>)[] } },
  id: string,
) {
  const client = new KubeClient(kubeConfigFor(t.context.c.url), { userAgent: `weft-${id}` });
  const cp = kubernetesControlPlane({
    client,
    namespace: 'default',
    identity: id,
    logger: t.context.logs.logger.child({ replica: id }),
    provider: { debounceMs: 10 },
    leader: TIMING,
  });
  const sup = new Supervisor({ logger: t.context.logs.logger });
  for (const r of cp.runners) await sup.add(r);
  await sup.start();
  const r: Replica = { cp, sup, client };
  t.context.cleanup.push(async () => {
    await sup.close();
    await client.close();
  });
  return r;
}

const route = (name: string, hostnames?: string[]) => ({
  metadata: { name },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
    ...(hostnames ? { hostnames } : {}),
    rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
  },
});

function weftParents(c: Cluster, name: string) {
  const st = c.server.get('HTTPRoute', 'shop', name)?.status as
    | { parents?: { controllerName: string; conditions: Condition[] }[] }
    | undefined;
  return (st?.parents ?? []).filter((p) => p.controllerName === 'weft.dev/gateway-controller');
}

const acceptedAt = (c: Cluster, name: string, generation: number) =>
  weftParents(c, name).some((p) =>
    p.conditions.some((x) => x.type === 'Accepted' && x.status === 'True' && x.observedGeneration === generation),
  );

test('leader change loses no status update: the survivor writes what changed while the leader was dead', async (t) => {
  const { c } = t.context;
  c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  c.server.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }], clusterIP: '10.96.0.10' },
  });
  await c.client.create(ROUTE, 'v1', 'shop', route('one'));
  const a = await replica(t, 'a');
  await eventually(() => a.cp.leader?.isLeader, 'a leads');
  const b = await replica(t, 'b');
  await eventually(() => acceptedAt(c, 'one', 1), 'route one written by a');
  await eventually(() => b.cp.pipeline.statuses.has('HTTPRoute/shop/one'), 'b translated too');
  await a.cp.writer.idle();
  t.is(c.server.count({ verb: 'update', subresource: 'status' }), 1);
  t.true(
    c.server.requests.every((r) => !(r.verb === 'update' && r.subresource === 'status' && r.userAgent === 'weft-b')),
  );

  // a dies without releasing its Lease; meanwhile a route is added and another changed.
  await a.cp.leader?.close({ release: false });
  const died = performance.now();
  await a.sup.close();
  await c.client.create(ROUTE, 'v1', 'shop', route('two'));
  await c.client.patch(ROUTE, 'v1', 'shop', 'one', { spec: { hostnames: ['one.example'] } });
  await eventually(
    () =>
      b.cp.pipeline.statuses.has('HTTPRoute/shop/two') &&
      (b.cp.pipeline.statuses.load('HTTPRoute/shop/one')?.generation ?? 0) === 2,
    'b has the pending statuses',
  );
  await eventually(() => b.cp.leader?.isLeader, 'b takes over');
  await eventually(() => acceptedAt(c, 'two', 1) && acceptedAt(c, 'one', 2), 'the pending statuses written');
  await b.cp.writer.idle();
  const writes = c.server.requests.filter((r) => r.verb === 'update' && r.subresource === 'status' && r.code === 200);
  t.deepEqual(writes.map((r) => `${r.userAgent} ${r.name}`).sort(), ['weft-a one', 'weft-b one', 'weft-b two']);
  // b did not write while a's Lease was valid (a renewed at most one retry period before it died).
  const firstB = Math.min(...writes.filter((r) => r.userAgent === 'weft-b').map((r) => r.at));
  t.true(firstB - died >= TIMING.leaseDurationMs - TIMING.retryPeriodMs);
});

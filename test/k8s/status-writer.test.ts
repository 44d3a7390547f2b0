// Status write-back: the merge rules (own route parents only, order-independent comparison, lastTransitionTime),
// then the StatusWriter against the test API server — no write when unchanged, conflicts retried with a fresh
// read, and the whole chain from a route applied through the API to its status, next to another controller's.
import type { KubeObject } from '../../controlplane/k8s/client.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { KubernetesProvider } from '../../controlplane/k8s/provider.ts';
import { nextStatus } from '../../controlplane/k8s/status.ts';
import { type ObjectCache, StatusWriter } from '../../controlplane/k8s/status-writer.ts';
import type { Condition } from '../../controlplane/resources/types.ts';
import { Pipeline } from '../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import type { GatewayStatusOut, RouteStatusOut } from '../../controlplane/translate/types.ts';
import { type Cluster, clusterTest, eventually } from './support.ts';

const test = clusterTest();

const WEFT = 'weft.dev/gateway-controller';
const OTHER = 'example.com/other-controller';
const ROUTE = KIND_INFO.get('HTTPRoute')!;
const T0 = '2024-01-01T00:00:00Z';

const cond = (type: string, status: 'True' | 'False', reason = type, message = '', observedGeneration = 1) => ({
  type,
  status,
  reason,
  message,
  observedGeneration,
});

const meshRef = (name: string) => ({ group: '', kind: 'Service', name, port: 80 });

function routeStatus(parents: RouteStatusOut['status']['parents'], name = 'web'): RouteStatusOut {
  return { kind: 'HTTPRoute', namespace: 'shop', name, generation: 1, status: { parents } };
}

function routeObject(parents: unknown[]): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop', resourceVersion: '7' },
    status: { parents },
  };
}

// ---- merge rules (pure) ----

test('route: only weft-owned parents are replaced; other controllers keep theirs', (t) => {
  const theirs = {
    parentRef: { name: 'gw', namespace: 'infra' },
    controllerName: OTHER,
    conditions: [{ ...cond('Accepted', 'True'), lastTransitionTime: T0 }],
  };
  const staleMine = {
    parentRef: meshRef('old'),
    controllerName: WEFT,
    conditions: [{ ...cond('Accepted', 'True'), lastTransitionTime: T0 }],
  };
  const desired = routeStatus([
    {
      parentRef: meshRef('web'),
      controllerName: WEFT,
      conditions: [cond('Accepted', 'True'), cond('ResolvedRefs', 'True')],
    },
  ]);
  const next = nextStatus(routeObject([theirs, staleMine]), desired, WEFT, '2025-05-05T05:05:05Z') as {
    parents: { controllerName: string; parentRef: unknown; conditions: Condition[] }[];
  };
  t.deepEqual(next.parents[0], theirs);
  t.is(next.parents.length, 2);
  t.deepEqual(next.parents[1].parentRef, meshRef('web'));
  t.true(next.parents[1].conditions.every((c) => c.lastTransitionTime === '2025-05-05T05:05:05Z'));
  // No desired status any more: weft's entries go, the other controller's stay.
  t.deepEqual(nextStatus(routeObject([theirs, staleMine]), null, WEFT, T0), { parents: [theirs] });
  t.is(nextStatus(routeObject([theirs]), null, WEFT, T0), undefined);
});

test('route: the same status in another order, with other timestamps, is unchanged (no write)', (t) => {
  const a = {
    parentRef: meshRef('a'),
    controllerName: WEFT,
    conditions: [cond('Accepted', 'True'), cond('ResolvedRefs', 'True')],
  };
  const b = {
    parentRef: meshRef('b'),
    controllerName: WEFT,
    conditions: [cond('Accepted', 'False', 'NotAllowedByListeners')],
  };
  const current = routeObject([
    { ...b, conditions: b.conditions.map((c) => ({ ...c, lastTransitionTime: T0 })) },
    { parentRef: { name: 'gw' }, controllerName: OTHER, conditions: [] },
    {
      ...a,
      conditions: [...a.conditions].reverse().map((c) => ({ ...c, lastTransitionTime: '2023-03-03T03:03:03Z' })),
    },
  ]);
  t.is(nextStatus(current, routeStatus([a, b]), WEFT, '2030-01-01T00:00:00Z'), undefined);
  // parentRef defaults do not make a difference either (group/kind/namespace as the API server fills them).
  const defaulted = routeObject([
    {
      parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'shop', name: 'gw' },
      controllerName: WEFT,
      conditions: [{ ...cond('Accepted', 'True'), lastTransitionTime: T0 }],
    },
  ]);
  const desired = routeStatus([
    { parentRef: { name: 'gw' }, controllerName: WEFT, conditions: [cond('Accepted', 'True')] },
  ]);
  t.is(nextStatus(defaulted, desired, WEFT, '2030-01-01T00:00:00Z'), undefined);
});

test('lastTransitionTime: kept when the status of a condition is unchanged, new when it changed or is new', (t) => {
  const current = routeObject([
    {
      parentRef: meshRef('web'),
      controllerName: WEFT,
      conditions: [
        { ...cond('Accepted', 'True'), lastTransitionTime: T0 },
        { ...cond('ResolvedRefs', 'True'), lastTransitionTime: T0 },
      ],
    },
  ]);
  const now = '2025-06-01T12:00:00Z';
  const desired = routeStatus([
    {
      parentRef: meshRef('web'),
      controllerName: WEFT,
      conditions: [
        cond('Accepted', 'True', 'Accepted', 'a new message', 2),
        cond('ResolvedRefs', 'False', 'BackendNotFound'),
        cond('PartiallyInvalid', 'True', 'UnsupportedValue'),
      ],
    },
  ]);
  const next = nextStatus(current, desired, WEFT, now) as { parents: { conditions: Condition[] }[] };
  const times = Object.fromEntries(next.parents[0].conditions.map((c) => [c.type, c.lastTransitionTime]));
  t.deepEqual(times, { Accepted: T0, ResolvedRefs: now, PartiallyInvalid: now });
  t.is(next.parents[0].conditions[0].message, 'a new message');
  t.is(next.parents[0].conditions[0].observedGeneration, 2);
});

test('gateway: listener conditions keep their times per listener; extra status fields are kept', (t) => {
  const listener = (name: string, status: 'True' | 'False', time?: string) => ({
    name,
    supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }],
    attachedRoutes: 1,
    conditions: [{ ...cond('Accepted', status), ...(time ? { lastTransitionTime: time } : {}) }],
  });
  const current: KubeObject = {
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'infra' },
    status: {
      addresses: [{ type: 'IPAddress', value: '10.0.0.1' }],
      conditions: [{ ...cond('Programmed', 'True'), lastTransitionTime: T0 }],
      listeners: [listener('http', 'True', T0), listener('https', 'True', T0)],
      vendorField: 'kept',
    },
  };
  const desired: GatewayStatusOut = {
    kind: 'Gateway',
    namespace: 'infra',
    name: 'gw',
    generation: 1,
    status: {
      addresses: [{ type: 'IPAddress', value: '10.0.0.1' }],
      conditions: [cond('Programmed', 'True')],
      listeners: [listener('https', 'False'), listener('http', 'True')],
    },
  };
  const now = '2025-01-01T00:00:00Z';
  const next = nextStatus(current, desired, WEFT, now) as Record<string, unknown> & {
    listeners: { name: string; conditions: Condition[] }[];
  };
  t.is(next.vendorField, 'kept');
  t.deepEqual(
    next.listeners.map((l) => [l.name, l.conditions[0].lastTransitionTime]),
    [
      ['https', now],
      ['http', T0],
    ],
  );
  const same: GatewayStatusOut = {
    ...desired,
    status: { ...desired.status, listeners: [listener('https', 'True'), listener('http', 'True')] },
  };
  t.is(nextStatus(current, same, WEFT, now), undefined);
});

// ---- the writer against the API server ----

async function seedRoute(c: Cluster, otherParents: unknown[] = []) {
  c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  c.server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { parentRefs: [meshRef('web'), { name: 'gw', namespace: 'infra' }] },
    status: { parents: otherParents },
  });
}

const statusWrites = (c: Cluster, code?: number) =>
  c.server.count({ verb: 'update', subresource: 'status', ...(code ? { code } : {}) });

test('writer: writes once, keeps the other controller’s entry, does not write an unchanged status', async (t) => {
  const { c } = t.context;
  const theirs = { parentRef: { name: 'gw', namespace: 'infra' }, controllerName: OTHER, conditions: [] };
  await seedRoute(c, [theirs]);
  const w = new StatusWriter({ client: c.client, logger: t.context.logs.logger, now: () => new Date(T0) });
  t.context.cleanup.push(() => w.close());
  w.start();
  const desired = routeStatus([
    { parentRef: meshRef('web'), controllerName: WEFT, conditions: [cond('Accepted', 'True')] },
  ]);
  w.set(desired);
  await w.idle();
  t.is(statusWrites(c), 1);
  const parents = (c.server.get('HTTPRoute', 'shop', 'web')!.status as { parents: { controllerName: string }[] })
    .parents;
  t.deepEqual(
    parents.map((p) => p.controllerName),
    [OTHER, WEFT],
  );
  // The same desired status again, and a resync: read, compared, not written.
  w.set(structuredClone(desired));
  await w.idle();
  w.set(routeStatus([{ parentRef: meshRef('web'), controllerName: WEFT, conditions: [cond('Accepted', 'True')] }]));
  await w.idle();
  t.is(statusWrites(c), 1);
  t.true(w.stats.unchanged >= 2);
  // Many changes before the writer runs coalesce into one write of the last.
  for (let i = 0; i < 5; i++)
    w.set(
      routeStatus([
        { parentRef: meshRef('web'), controllerName: WEFT, conditions: [cond('Accepted', 'False', 'R', `m${i}`)] },
      ]),
    );
  await w.idle();
  t.is(statusWrites(c), 2);
  const mine = (c.server.get('HTTPRoute', 'shop', 'web')!.status as { parents: { conditions: Condition[] }[] })
    .parents[1];
  t.is(mine.conditions[0].message, 'm4');
});

test('writer: a 409 Conflict is retried with a fresh read, and the newer object is not clobbered', async (t) => {
  const { c } = t.context;
  await seedRoute(c);
  const stale = structuredClone(c.server.get('HTTPRoute', 'shop', 'web')) as KubeObject;
  // Someone changes the route after the cache's copy was taken.
  await c.client.patch(ROUTE, 'v1', 'shop', 'web', { metadata: { labels: { edited: 'yes' } } });
  const cache: ObjectCache = { getObject: () => stale, onObjectChange: () => () => {} };
  const w = new StatusWriter({ client: c.client, cache, logger: t.context.logs.logger });
  t.context.cleanup.push(() => w.close());
  w.start();
  w.set(routeStatus([{ parentRef: meshRef('web'), controllerName: WEFT, conditions: [cond('Accepted', 'True')] }]));
  await w.idle();
  t.is(w.stats.conflicts, 1);
  t.is(w.stats.writes, 1);
  t.is(statusWrites(c, 409), 1);
  t.is(statusWrites(c, 200), 1);
  const now = c.server.get('HTTPRoute', 'shop', 'web')!;
  t.deepEqual((now.metadata as { labels: unknown }).labels, { edited: 'yes' });
  t.is((now.status as { parents: unknown[] }).parents.length, 1);
});

test('writer: other errors are retried with backoff; a deleted object is let go', async (t) => {
  const { c } = t.context;
  await seedRoute(c);
  c.server.failNext({ verb: 'update', subresource: 'status', code: 500, times: 2 });
  const w = new StatusWriter({
    client: c.client,
    logger: t.context.logs.logger,
    backoff: { initialMs: 10, maxMs: 50 },
  });
  t.context.cleanup.push(() => w.close());
  w.start();
  w.set(routeStatus([{ parentRef: meshRef('web'), controllerName: WEFT, conditions: [cond('Accepted', 'True')] }]));
  await w.idle();
  t.is(w.stats.failures, 2);
  t.is(w.stats.writes, 1);
  t.is(t.context.logs.events('status.write-failed').length, 2);
  w.set(routeStatus([{ parentRef: meshRef('web'), controllerName: WEFT, conditions: [] }], 'gone'));
  await w.idle();
  t.is(w.stats.writes, 1);
  t.is(w.stats.pending, 0);
});

test('pipeline to status: a route applied through the API gets weft’s status beside another controller’s; a rewrite by someone else is repaired', async (t) => {
  const { c, logs } = t.context;
  const { server, client } = c;
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  server.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], clusterIP: '10.96.0.10' },
  });
  let provider: KubernetesProvider | undefined;
  const pipeline = new Pipeline({
    provider: () => {
      provider = new KubernetesProvider({ client, logger: logs.logger, debounceMs: 10 });
      writer.setCache(provider);
      return provider;
    },
    logger: logs.logger,
  });
  const writer = new StatusWriter({ client, logger: logs.logger });
  writer.attach(pipeline.statuses);
  const sup = new Supervisor({ logger: logs.logger });
  for (const r of [...pipeline.runners, writer]) await sup.add(r);
  await sup.start();
  t.context.cleanup.push(() => sup.close());

  const created = await client.create(ROUTE, 'v1', 'shop', {
    metadata: { name: 'web' },
    spec: {
      parentRefs: [meshRef('web'), { name: 'gw', namespace: 'infra' }],
      rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
    },
  });
  // The other controller (owner of Gateway infra/gw) writes its entry too.
  const theirs = {
    parentRef: { name: 'gw', namespace: 'infra' },
    controllerName: OTHER,
    conditions: [cond('Accepted', 'True')],
  };
  await eventually(async () => {
    const cur = await client.get(ROUTE, 'v1', 'shop', 'web');
    const parents = ((cur.status as { parents?: unknown[] })?.parents ?? []) as unknown[];
    await client.replaceStatus(ROUTE, 'v1', 'shop', 'web', { ...cur, status: { parents: [...parents, theirs] } });
    return true;
  }, 'the other controller’s write');
  const ours = () =>
    (
      server.get('HTTPRoute', 'shop', 'web')?.status as {
        parents?: { controllerName: string; conditions: Condition[] }[];
      }
    )?.parents ?? [];
  await eventually(
    () => ours().some((p) => p.controllerName === WEFT) && ours().some((p) => p.controllerName === OTHER),
    'both entries',
  );
  const mine = ours().find((p) => p.controllerName === WEFT)!;
  t.like(
    mine.conditions.find((x) => x.type === 'Accepted'),
    { status: 'True', observedGeneration: created.metadata?.generation },
  );
  await writer.idle();
  const writesBefore = statusWrites(c);

  // Someone wipes the status: weft's entry is written again (only its own), the other one stays gone.
  const cur = await client.get(ROUTE, 'v1', 'shop', 'web');
  await client.replaceStatus(ROUTE, 'v1', 'shop', 'web', { ...cur, status: { parents: [] } });
  await eventually(() => ours().length === 1 && ours()[0].controllerName === WEFT, 'weft’s entry restored');
  // The spec changes: the new generation shows in weft's conditions.
  await client.patch(ROUTE, 'v1', 'shop', 'web', { spec: { hostnames: ['web.example'] } });
  await eventually(() => ours()[0]?.conditions.every((x) => x.observedGeneration === 2), 'observedGeneration 2');
  await writer.idle();
  t.true(statusWrites(c) > writesBefore);
  t.is(writer.stats.failures, 0);
  // The route stops naming weft's parents: weft's entry is removed.
  await client.patch(ROUTE, 'v1', 'shop', 'web', { spec: { parentRefs: [{ name: 'gw', namespace: 'infra' }] } });
  await eventually(() => ours().length === 0, 'weft’s entry removed');
});

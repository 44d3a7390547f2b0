// 1,000 HTTPRoutes created in a burst through the API: each settles to the right status with exactly one status
// write (counted by the test API server), however the creations were batched into snapshots and translations.
import test from 'ava';
import { kubernetesControlPlane } from '../../controlplane/k8s/control-plane.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import type { Condition } from '../../controlplane/resources/types.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import { captureLogs, eventually, sleep, startCluster } from './support.ts';

const ROUTES = 1000;
const ROUTE = KIND_INFO.get('HTTPRoute')!;
const WEFT = 'weft.dev/gateway-controller';

test('1,000 routes created in a burst settle to their status with one write each', async (t) => {
  const c = await startCluster({ historySize: 20_000 });
  t.teardown(() => c.close());
  const { server, client } = c;
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'infra' } });
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft' },
    spec: { controllerName: WEFT },
  });
  server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'infra' },
    spec: {
      gatewayClassName: 'weft',
      listeners: [{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } }],
    },
  });
  server.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], clusterIP: '10.96.0.10' },
  });
  server.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
    spec: { containers: [{ name: 'app', image: 'echo', ports: [{ containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: '10.0.0.5', conditions: [{ type: 'Ready', status: 'True' }] },
  });

  const logs = captureLogs('info');
  const cp = kubernetesControlPlane({ client, namespace: 'default', identity: 'solo', logger: logs.logger });
  const sup = new Supervisor({ logger: logs.logger });
  for (const r of cp.runners) await sup.add(r);
  await sup.start();
  t.teardown(() => sup.close());
  await eventually(() => cp.leader?.isLeader, 'leadership');
  await eventually(() => cp.pipeline.statuses.has('Gateway/infra/edge'), 'the first translation');
  await cp.writer.idle();
  const translationsBefore = cp.pipeline.stats.translations;

  const began = performance.now();
  const names = Array.from({ length: ROUTES }, (_, i) => `r${String(i).padStart(4, '0')}`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < names.length) {
        const name = names[next++];
        await client.create(ROUTE, 'v1', 'shop', {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name },
          spec: {
            parentRefs: [{ name: 'edge', namespace: 'infra' }],
            hostnames: [`${name}.example.com`],
            rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
          },
        });
      }
    }),
  );
  const created = performance.now();
  const routeWrites = () =>
    server.requests.filter((r) => r.verb === 'update' && r.subresource === 'status' && r.resource === 'httproutes');
  await eventually(
    () => routeWrites().filter((r) => r.code === 200).length >= ROUTES,
    'a status write per route',
    90_000,
  );
  await cp.writer.idle();
  const settled = performance.now();

  // Right status on every route: weft's one parent, Accepted and ResolvedRefs True for generation 1.
  for (const name of names) {
    const parents =
      (
        (server.get('HTTPRoute', 'shop', name)?.status ?? {}) as {
          parents?: { controllerName: string; conditions: Condition[] }[];
        }
      ).parents ?? [];
    const ok =
      parents.length === 1 &&
      parents[0].controllerName === WEFT &&
      ['Accepted', 'ResolvedRefs'].every((type) =>
        parents[0].conditions.some((x) => x.type === type && x.status === 'True' && x.observedGeneration === 1),
      );
    if (!ok) t.fail(`${name}: ${JSON.stringify(parents)}`);
  }
  // Let anything still in the pipeline through: nothing more is written.
  await sleep(300);
  await cp.writer.idle();
  const perRoute = new Map<string, number>();
  for (const r of routeWrites()) perRoute.set(r.name ?? '', (perRoute.get(r.name ?? '') ?? 0) + 1);
  t.is(perRoute.size, ROUTES);
  t.deepEqual(
    [...perRoute].filter(([, n]) => n !== 1),
    [],
  );
  t.is(cp.writer.stats.conflicts, 0);
  t.is(cp.writer.stats.failures, 0);
  const gatewayWrites = server.count({ verb: 'update', subresource: 'status', resource: 'gateways' });
  t.log(
    `${ROUTES} routes: created in ${Math.round(created - began)} ms, all statuses written ${Math.round(settled - began)} ms after the first create; ` +
      `${cp.pipeline.stats.translations - translationsBefore} translations, ${gatewayWrites} Gateway status writes`,
  );
});

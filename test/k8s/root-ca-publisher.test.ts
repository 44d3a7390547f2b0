// RootCaPublisher alone, fed snapshots by hand: the namespaces it writes to, keys of others kept, a refused write
// retried, and nothing written while another replica leads.
import anyTest, { type TestFn } from 'ava';
import { RootCaPublisher } from '../../controlplane/k8s/root-ca-publisher.ts';
import { ResourceSnapshot } from '../../controlplane/resources/snapshot.ts';
import type { Resource } from '../../controlplane/resources/types.ts';
import { WatchableMap } from '../../controlplane/runtime/watchable.ts';
import { type CapturedLogs, type Cluster, captureLogs, eventually, manualLeadership, startCluster } from './support.ts';

interface Ctx {
  c: Cluster;
  logs: CapturedLogs;
  snapshots: WatchableMap<'current', ResourceSnapshot>;
  publisher?: RootCaPublisher;
}

const test = anyTest as TestFn<Ctx>;
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n';

const ns = (name: string, labels: Record<string, string> = {}): Resource => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels },
});

test.beforeEach(async (t) => {
  t.context.c = await startCluster();
  t.context.logs = captureLogs('info');
  t.context.snapshots = new WatchableMap({ equals: (a, b) => a === b });
  for (const name of ['shop', 'plain', 'extra'])
    t.context.c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
});

test.afterEach.always(async (t) => {
  await t.context.publisher?.close();
  await t.context.c?.close();
});

function publish(t: { context: Ctx }, o: Partial<ConstructorParameters<typeof RootCaPublisher>[0]> = {}) {
  const p = new RootCaPublisher({
    client: t.context.c.client,
    snapshots: t.context.snapshots,
    rootCAsPem: PEM,
    backoff: { initialMs: 20, maxMs: 100 },
    logger: t.context.logs.logger,
    ...o,
  });
  t.context.publisher = p;
  p.start();
  return p;
}

const data = (t: { context: Ctx }, namespace: string) =>
  t.context.c.server.get('ConfigMap', namespace, 'weft-root-ca')?.data as Record<string, string> | undefined;

test('labelled namespaces (and the extra ones asked for) get ca.crt; other keys of the ConfigMap are kept', async (t) => {
  const { server } = t.context.c;
  server.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'weft-root-ca', namespace: 'extra' },
    data: { 'ca.crt': 'old', note: 'mine' },
  });
  const p = publish(t, {
    namespaces: (s) => [...s.list('Namespace').map((n) => n.metadata.name)].filter((n) => n !== 'plain'),
  });
  t.context.snapshots.store(
    'current',
    ResourceSnapshot.from([
      ns('shop', { 'weft.dev/inject': 'enabled' }),
      ns('plain'),
      ns('extra'),
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'weft-root-ca', namespace: 'extra' },
        data: { 'ca.crt': 'old' },
      },
    ]),
  );
  await eventually(() => data(t, 'shop')?.['ca.crt'] === PEM && data(t, 'extra')?.['ca.crt'] === PEM, 'published');
  t.is(data(t, 'extra')?.note, 'mine');
  t.is(data(t, 'plain'), undefined);
  await p.idle();
  t.like(p.stats, { creates: 1, patches: 1, failures: 0 });
});

test('a refused write is retried; a follower writes nothing until it leads', async (t) => {
  const { server } = t.context.c;
  const leader = manualLeadership();
  const p = publish(t, { leader });
  t.context.snapshots.store('current', ResourceSnapshot.from([ns('shop', { 'weft.dev/inject': 'enabled' })]));
  await p.idle();
  t.is(server.count({ resource: 'configmaps', verb: 'create' }), 0);
  server.failNext({ resource: 'configmaps', verb: 'create', code: 403, reason: 'Forbidden', times: 2 });
  leader.lead();
  await eventually(() => data(t, 'shop')?.['ca.crt'] === PEM, 'published after the refusals');
  t.is(server.count({ resource: 'configmaps', verb: 'create', code: 403 }), 2);
  t.is(t.context.logs.events('root-ca.publish-failed').length, 1, 'one line per distinct failure, not per retry');
});

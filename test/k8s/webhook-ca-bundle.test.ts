// WebhookCaBundle alone against the test API server: a configuration installed after it started is waited for, a
// dropped watch, a failed write or an edit shown while a write is answered does not leave a wrong bundle behind, and a
// follower writes only once it leads.
import anyTest, { type TestFn } from 'ava';
import type { KubeClient } from '../../controlplane/k8s/client.ts';
import type { Leadership } from '../../controlplane/k8s/status-writer.ts';
import { WebhookCaBundle } from '../../controlplane/k8s/webhook-ca-bundle.ts';
import type { Obj } from './api-server.ts';
import { INJECTOR_CONFIGURATION } from './cluster-fixtures.ts';
import { type CapturedLogs, type Cluster, captureLogs, eventually, manualLeadership, startCluster } from './support.ts';

const test = anyTest as TestFn<{ c: Cluster; logs: CapturedLogs; keeper?: WebhookCaBundle }>;
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n';
const BUNDLE = Buffer.from(PEM).toString('base64');

test.beforeEach(async (t) => {
  t.context.c = await startCluster();
  t.context.logs = captureLogs('info');
});

test.afterEach.always(async (t) => {
  await t.context.keeper?.close();
  await t.context.c?.close();
});

function keeper(
  t: { context: { c: Cluster; logs: CapturedLogs; keeper?: WebhookCaBundle } },
  leader?: Leadership,
  client = t.context.c.client,
) {
  const k = new WebhookCaBundle({
    client,
    caBundlePem: PEM,
    backoff: { initialMs: 20, maxMs: 100 },
    logger: t.context.logs.logger,
    ...(leader ? { leader } : {}),
  });
  t.context.keeper = k;
  k.start();
  return k;
}

const bundles = (c: Cluster) =>
  ((c.server.get('MutatingWebhookConfiguration', undefined, 'weft-injector')?.webhooks ?? []) as Obj[]).map(
    (w) => (w.clientConfig as { caBundle?: string }).caBundle,
  );

test('a configuration installed later is waited for; a dropped watch and a failed write are recovered', async (t) => {
  const { c } = t.context;
  const k = keeper(t);
  await eventually(() => t.context.logs.events('webhook-ca-bundle.missing').length === 1, 'missing, said once');
  const two = structuredClone(INJECTOR_CONFIGURATION) as unknown as { webhooks: Obj[] };
  two.webhooks.push({ ...two.webhooks[0], name: 'inject-again.weft.dev' });
  c.server.put(two as unknown as Obj);
  await eventually(() => bundles(c).every((b) => b === BUNDLE) && bundles(c).length === 2, 'both bundles set');
  // The server holds the write a moment before its answer reaches the keeper.
  await eventually(() => k.inSync, 'the keeper saw its write');

  c.server.dropWatches('mutatingwebhookconfigurations');
  c.server.put(INJECTOR_CONFIGURATION);
  await eventually(() => bundles(c)[0] === BUNDLE, 'set again after the watch was cut');

  c.server.failNext({ resource: 'mutatingwebhookconfigurations', verb: 'update', code: 500, times: 2 });
  c.server.put(INJECTOR_CONFIGURATION);
  await eventually(() => bundles(c)[0] === BUNDLE, 'set again after failed writes');
  t.true(t.context.logs.events('webhook-ca-bundle.update-failed').length >= 1);
});

test('a follower does not write; it does once it leads', async (t) => {
  const { c } = t.context;
  c.server.put(INJECTOR_CONFIGURATION);
  const leadership = manualLeadership();
  const k = keeper(t, leadership);
  await eventually(() => c.server.count({ verb: 'watch', resource: 'mutatingwebhookconfigurations' }) >= 1, 'watching');
  c.server.put(INJECTOR_CONFIGURATION); // an event while following
  await eventually(() => c.server.count({ verb: 'watch', resource: 'mutatingwebhookconfigurations' }) >= 1, 'seen');
  t.is(c.server.count({ verb: 'update', resource: 'mutatingwebhookconfigurations' }), 0);
  t.false(k.inSync);
  leadership.lead();
  await eventually(() => bundles(c)[0] === BUNDLE, 'written once leading');
  await eventually(() => k.writes === 1, 'the keeper saw its write');
  t.is(c.server.count({ verb: 'update', resource: 'mutatingwebhookconfigurations' }), 1);
});

test('an edit the watch shows while a write is being answered is written back too', async (t) => {
  const { c } = t.context;
  c.server.put(INJECTOR_CONFIGURATION);
  // The real client, but the first write's answer is held until the watch has shown the written object and then a
  // newer edit that empties the bundle again (a `helm upgrade` at that moment).
  let held = false;
  let released = false;
  const replace: KubeClient['replace'] = async (...args) => {
    const written = await c.client.replace(...args);
    if (!held) {
      held = true;
      await eventually(() => k.inSync, 'the watch showed the write');
      c.server.put(INJECTOR_CONFIGURATION);
      await eventually(() => !k.inSync, 'the watch showed the edit');
      released = true;
    }
    return written as never;
  };
  const client = new Proxy(c.client, {
    get: (target, key) => {
      if (key === 'replace') return replace;
      const v = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const k = keeper(t, undefined, client);
  await eventually(() => released && bundles(c)[0] === BUNDLE && k.writes === 2, 'the edit written back');
  t.true(k.inSync);
});

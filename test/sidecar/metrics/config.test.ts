// weft_proxy_config_rejections_total: every refused config counted once, by reason — through `update` (invalid,
// unsupported apiVersion, a config for the other mode) and through `weft proxy --push` against a real push server,
// where the push client refuses some configs before they reach the proxy (invalid, another proxy's) and the proxy
// refuses another when its listener cannot bind. The last good config keeps serving throughout.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { snapshotAuthorizer } from '../../../controlplane/push/identity.ts';
import { startPushServer } from '../../../controlplane/push/server.ts';
import type { VersionedConfig } from '../../../controlplane/runtime/pipeline.ts';
import { WatchableMap } from '../../../controlplane/runtime/watchable.ts';
import { runProxyCli } from '../../../sidecar/cli.ts';
import { CONFIG_REJECT_REASONS } from '../../../sidecar/metrics.ts';
import {
  ca,
  captureLogs,
  invalidSidecarConfig,
  sidecarConfig,
  snapshotOf,
  TD,
  versioned,
  workloadCredentials,
} from '../../controlplane/push/support.ts';
import { type Sample, sampleValue, scrapeUrl } from '../../helpers/prometheus.ts';
import { edgeConfig, startTestProxy } from '../harness.ts';

const rejections = (s: Sample[], reason: string) => sampleValue(s, 'weft_proxy_config_rejections_total', { reason });
const rejected = (s: Sample[]) => sampleValue(s, 'weft_proxy_config_updates_total', { result: 'rejected' });

test('update: invalid, unsupported apiVersion and other-mode configs, each by its reason', async (t) => {
  const p = await startTestProxy(edgeConfig({ routes: [] }), { mode: 'edge' });
  t.teardown(() => p.close());
  const scrape = async () => (await scrapeUrl(`http://127.0.0.1:${p.adminPort}/metrics`)).samples;
  let samples = await scrape();
  for (const reason of CONFIG_REJECT_REASONS) t.is(rejections(samples, reason), 0, reason);

  await t.throwsAsync(p.proxy.update({ ...edgeConfig({ routes: [] }), listeners: 'none' }));
  await t.throwsAsync(p.proxy.update({ ...edgeConfig({ routes: [] }), apiVersion: 'weft.dev/v9' }));
  const sidecar = sidecarConfig('shop', 'web-1', 'web');
  await t.throwsAsync(p.proxy.update(sidecar), { message: /config is for a sidecar proxy/ });
  samples = await scrape();
  t.is(rejections(samples, 'invalid'), 1);
  t.is(rejections(samples, 'unsupported_version'), 1);
  t.is(rejections(samples, 'wrong_mode'), 1);
  t.is(rejected(samples), 3);
});

test('weft proxy --push: refusals by the push client and by the proxy are each counted once', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-metrics-push-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const creds = workloadCredentials('shop', 'web');
  const files = { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key'), roots: path.join(dir, 'ca.crt') };
  await writeFile(files.cert, creds.certChain);
  await writeFile(files.key, creds.key);
  await writeFile(files.roots, creds.rootCAs);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => busy.close(() => r(undefined))));
  const busyPort = (busy.address() as AddressInfo).port;

  const { logger } = captureLogs('warn');
  const configs = new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  const push = await startPushServer({
    configs,
    authorize: snapshotAuthorizer({
      snapshot: () => snapshotOf([{ namespace: 'shop', name: 'web-1', serviceAccount: 'web' }]),
      trustDomain: TD,
    }),
    ca,
    port: 0,
    logger,
  });
  t.teardown(() => push.close());
  const id = 'sidecar:shop/web-1';
  configs.store(id, versioned(sidecarConfig('shop', 'web-1', 'web')));
  const handle = await runProxyCli([
    ...['--mode', 'sidecar', '--push', `127.0.0.1:${push.port}`, '--proxy-id', id],
    ...['--cert', files.cert, '--key', files.key, '--roots', files.roots, '--admin-port', '0', '--log-level', 'silent'],
  ]);
  t.teardown(() => handle.stop());
  if (handle.push!.appliedVersion === undefined) await once(handle.push!, 'applied');
  const scrape = async () => (await scrapeUrl(`http://127.0.0.1:${handle.proxy.addresses.admin.port}/metrics`)).samples;

  const refuse = async (config: VersionedConfig) => {
    const nacked = once(handle.push!, 'rejected');
    configs.store(id, config);
    t.is((await nacked)[0], config.version);
  };
  // Refused by the push client's own validation, and as another proxy's: apply never ran.
  await refuse(versioned(invalidSidecarConfig('shop', 'web-1', 'web')));
  await refuse(versioned(sidecarConfig('shop', 'web-2', 'web')));
  // Valid, but its inbound listener cannot bind: refused by the proxy.
  await refuse(versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'busy', inboundPort: busyPort })));

  const samples = await scrape();
  t.is(rejections(samples, 'invalid'), 1);
  t.is(rejections(samples, 'wrong_proxy'), 1);
  t.is(rejections(samples, 'listen'), 1);
  t.is(rejected(samples), 3);
  t.is(sampleValue(samples, 'weft_proxy_config_updates_total', { result: 'applied' }), 1);
  t.is(handle.proxy.config?.routeTables['marker/v1'] !== undefined, true, 'the first config keeps serving');
});

// The control plane's /metrics on its admin endpoint, each metric moved by the real event: a proxy connecting over
// config push and acking (connected proxies, push latency), nacking, and going away with a config unanswered; a TLS
// handshake without a client certificate; certificates issued and refused by the CA endpoint; a translation of a
// directory of manifests; status writes against the test API server; the CA's certificate expiry.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ControlPlaneMetrics } from '../../controlplane/admin/metrics.ts';
import { startAdminServer } from '../../controlplane/admin/server.ts';
import { type CAServer, startCAServer } from '../../controlplane/certs/server.ts';
import { BootstrapTokens } from '../../controlplane/certs/tokens.ts';
import { StatusWriter } from '../../controlplane/k8s/status-writer.ts';
import { snapshotAuthorizer } from '../../controlplane/push/identity.ts';
import { startPushServer } from '../../controlplane/push/server.ts';
import { FileProvider } from '../../controlplane/resources/files.ts';
import { Pipeline, type VersionedConfig } from '../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import { WatchableMap } from '../../controlplane/runtime/watchable.ts';
import { requestCertificate } from '../../sidecar/identity/ca-client.ts';
import { buildCsr } from '../../sidecar/identity/csr.ts';
import { PushClient } from '../../sidecar/push/client.ts';
import { type Sample, sampleValue, scrapeUrl } from '../helpers/prometheus.ts';
import { startCluster } from '../k8s/support.ts';
import {
  ca,
  captureLogs,
  invalidSidecarConfig,
  rawPeer,
  sidecarConfig,
  snapshotOf,
  TD,
  versioned,
  workloadCredentials,
} from './push/support.ts';

/** A control plane's metrics served by a real admin endpoint on port 0. */
async function served(t: ExecutionContext) {
  const metrics = new ControlPlaneMetrics();
  const { logger } = captureLogs('warn');
  const admin = await startAdminServer({
    port: 0,
    ready: () => ({ ready: true }),
    proxies: () => [],
    statuses: () => [],
    metrics: metrics.registry,
    logger,
  });
  t.teardown(() => admin.close());
  return { metrics, logger, scrape: () => scrapeUrl(`${admin.url}/metrics`) };
}

/** Waits until `pred` holds for a fresh scrape (events arrive over real sockets), then returns that scrape. */
async function until(scrape: () => Promise<{ samples: Sample[] }>, pred: (s: Sample[]) => boolean) {
  for (let i = 0; i < 200; i++) {
    const { samples } = await scrape();
    if (pred(samples)) return samples;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the metrics never reached the expected state');
}

test('config push: connected proxies, configs sent, acks with their latency, nacks, a config lost with its connection, refusals', async (t) => {
  const { metrics, logger, scrape } = await served(t);
  const configs = new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  const snapshot = snapshotOf([
    { namespace: 'shop', name: 'web-1', serviceAccount: 'web' },
    { namespace: 'shop', name: 'web-2', serviceAccount: 'web' },
  ]);
  const server = await startPushServer({
    configs,
    authorize: snapshotAuthorizer({ snapshot: () => snapshot, trustDomain: TD }),
    ca,
    port: 0,
    logger,
    metrics,
  });
  t.teardown(() => server.close());
  const v = (s: Sample[], name: string, labels: Record<string, string> = {}) => sampleValue(s, name, labels);

  const before = (await scrape()).samples;
  t.is(v(before, 'weft_controlplane_connected_proxies'), 0);
  for (const result of ['ack', 'nack', 'error']) t.is(v(before, 'weft_controlplane_pushes_total', { result }), 0);

  const good = versioned(sidecarConfig('shop', 'web-1', 'web'));
  configs.store('sidecar:shop/web-1', good);
  const client = new PushClient({
    host: '127.0.0.1',
    port: server.port,
    proxyId: 'sidecar:shop/web-1',
    nodeVersion: 'test',
    credentials: () => workloadCredentials('shop', 'web'),
    apply: () => {},
    logger,
  });
  t.teardown(() => client.close());
  client.start();
  let s = await until(scrape, (x) => v(x, 'weft_controlplane_pushes_total', { result: 'ack' }) === 1);
  t.is(v(s, 'weft_controlplane_connected_proxies'), 1);
  t.is(v(s, 'weft_controlplane_configs_sent_total'), 1);
  t.is(v(s, 'weft_controlplane_push_duration_seconds_count'), 1);
  t.is(v(s, 'weft_controlplane_push_duration_seconds_bucket', { le: '+Inf' }), 1);

  // A config the proxy's validator refuses: nacked, and not a latency sample.
  configs.store('sidecar:shop/web-1', versioned(invalidSidecarConfig('shop', 'web-1', 'web')));
  s = await until(scrape, (x) => v(x, 'weft_controlplane_pushes_total', { result: 'nack' }) === 1);
  t.is(v(s, 'weft_controlplane_configs_sent_total'), 2);
  t.is(v(s, 'weft_controlplane_push_duration_seconds_count'), 1);

  // A proxy that says hello, gets its config and leaves without answering: that push ends in error.
  configs.store('sidecar:shop/web-2', versioned(sidecarConfig('shop', 'web-2', 'web')));
  const peer = await rawPeer(server.port, workloadCredentials('shop', 'web'));
  peer.send(`${JSON.stringify({ type: 'hello', proxyId: 'sidecar:shop/web-2', nodeVersion: 'raw' })}\n`);
  await peer.next((f) => f.type === 'config');
  t.is(v((await scrape()).samples, 'weft_controlplane_connected_proxies'), 2);
  peer.socket.destroy();
  s = await until(scrape, (x) => v(x, 'weft_controlplane_pushes_total', { result: 'error' }) === 1);
  t.is(v(s, 'weft_controlplane_connected_proxies'), 1);

  // No client certificate: the handshake fails, counted as a `tls` refusal.
  await rawPeer(server.port, undefined).then(
    (p) => p.closed,
    () => undefined,
  );
  await until(scrape, (x) => (v(x, 'weft_controlplane_push_refusals_total', { reason: 'tls' }) ?? 0) >= 1);

  await client.close();
  s = await until(scrape, (x) => v(x, 'weft_controlplane_connected_proxies') === 0);
  t.is(v(s, 'weft_controlplane_pushes_total', { result: 'ack' }), 1);
});

test('mesh CA: certificates issued and refused by reason; the CA certificate expiry', async (t) => {
  const { metrics, logger, scrape } = await served(t);
  metrics.watchCa(ca);
  const tokens = new BootstrapTokens({ secret: Buffer.alloc(32, 3) });
  const server: CAServer = await startCAServer({ ca, verifier: tokens, port: 0, logger, metrics });
  t.teardown(() => server.close());
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spiffeId = `spiffe://${TD}/ns/shop/sa/web`;
  const csr = buildCsr(keys, { spiffeId, commonName: 'web.shop' });
  const client = { url: server.url, trustedRootsPem: ca.rootCAsPem };

  await requestCertificate(client, { csr, token: tokens.mint({ namespace: 'shop', serviceAccount: 'web' }) });
  const refused = await t.throwsAsync(requestCertificate(client, { csr, token: 'not-a-token' }));
  const code = (refused as { caCode?: string }).caCode;
  t.regex(code ?? '', /^WEFT_ERR_/);

  const { samples, types } = await scrape();
  t.is(types.get('weft_controlplane_certificates_issued_total'), 'counter');
  t.is(sampleValue(samples, 'weft_controlplane_certificates_issued_total', { result: 'issued', reason: 'none' }), 1);
  t.is(sampleValue(samples, 'weft_controlplane_certificates_issued_total', { result: 'refused', reason: code! }), 1);
  const expiry = 'weft_controlplane_ca_certificate_expiry_timestamp_seconds';
  t.is(sampleValue(samples, expiry, { kind: 'issuer' }), ca.notAfter.getTime() / 1000);
  t.is(sampleValue(samples, expiry, { kind: 'root' }), ca.notAfter.getTime() / 1000, 'a root CA signs itself');
});

test('translation durations and proxy configs from a pipeline over a directory; status writes against the API', async (t) => {
  const { metrics, logger, scrape } = await served(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-cp-metrics-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    path.join(dir, 'shop.yaml'),
    [
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {weft.dev/inject: enabled}}',
      'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: app}]}\nstatus: {podIP: 10.0.0.5}',
    ].join('\n---\n'),
  );
  const pipeline = new Pipeline({
    provider: () => new FileProvider({ paths: [dir], debounceMs: 10 }),
    translateOptions: { trustDomain: TD },
    logger,
  });
  t.teardown(metrics.watchPipeline(pipeline));
  const supervisor = new Supervisor({ logger });
  for (const r of pipeline.runners) supervisor.add(r);
  t.teardown(() => supervisor.close());
  const translated = new Promise<void>((resolve) => pipeline.onTranslation((e) => e.ok && resolve()));
  await supervisor.start();
  await translated;
  let { samples } = await scrape();
  t.true((sampleValue(samples, 'weft_controlplane_translate_duration_seconds_count', { result: 'ok' }) ?? 0) >= 1);
  t.true(pipeline.proxies.size > 0);
  t.is(sampleValue(samples, 'weft_controlplane_proxy_configs'), pipeline.proxies.size);

  const cluster = await startCluster();
  t.teardown(() => cluster.close());
  cluster.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  cluster.server.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }] },
  });
  const writer = new StatusWriter({ client: cluster.client, logger });
  t.teardown(() => writer.close());
  metrics.watchStatusWriter(writer);
  writer.start();
  const parentRef = { group: '', kind: 'Service', name: 'web', port: 80 };
  const conditions = [
    { type: 'Accepted', status: 'True' as const, reason: 'Accepted', message: '', observedGeneration: 1 },
  ];
  const status = { parents: [{ parentRef, controllerName: 'weft.dev/gateway-controller', conditions }] };
  writer.set({ kind: 'HTTPRoute', namespace: 'shop', name: 'web', generation: 1, status });
  await writer.idle();
  ({ samples } = await scrape());
  t.is(sampleValue(samples, 'weft_controlplane_status_writes_total', { result: 'written' }), 1);
  t.is(sampleValue(samples, 'weft_controlplane_status_writes_total', { result: 'failed' }), 0);
  t.is(sampleValue(samples, 'weft_controlplane_status_writes_pending'), 0);
});

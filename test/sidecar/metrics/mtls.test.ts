// mTLS and certificate metrics with real certificates from a MeshCA over real sockets: connections by direction,
// verified peer identity and result at both ends of A → B, handshakes refused for a foreign, expired or missing
// client certificate and for a peer with the wrong identity, open connections going back to 0, the workload
// certificate's expiry and its rotation, and a renewal that fails because the CA is unreachable.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { WorkloadIdentity } from '../../../sidecar/identity/workload-cert.ts';
import { MTLS_RESULTS } from '../../../sidecar/metrics.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { type Sample, sampleValue, scrapeUrl } from '../../helpers/prometheus.ts';
import { send } from '../harness.ts';
import {
  HOUR,
  meshRequest,
  mint,
  newCa,
  spiffe,
  startClientSidecar,
  startServerSidecar,
  TRUST_DOMAIN,
} from '../mesh/support.ts';

const ca = newCa();
const aCreds = mint(ca, 'a', 'a');
const bCreds = mint(ca, 'b', 'b');

const scrape = async (adminPort: number) => (await scrapeUrl(`http://127.0.0.1:${adminPort}/metrics`)).samples;

/** Scrapes until `pred` holds (socket events land a moment after the client saw its answer). */
async function until(adminPort: number, pred: (s: Sample[]) => boolean): Promise<Sample[]> {
  let samples = await scrape(adminPort);
  for (let i = 0; i < 150 && !pred(samples); i++) {
    await sleep(20);
    samples = await scrape(adminPort);
  }
  return samples;
}

const conns = (s: Sample[], labels: Record<string, string>) =>
  sampleValue(s, 'weft_proxy_mtls_connections_total', labels);

test('A → B: both ends count the connection under the verified peer identity; open until it closes', async (t) => {
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity: new StaticIdentity(aCreds),
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
  t.is((await send(a.port, { host: 'echo.b' })).status, 200);
  t.is((await send(a.port, { host: 'echo.b' })).status, 200);

  const inbound = { direction: 'inbound', peer_identity: aCreds.spiffeId };
  const outbound = { direction: 'outbound', peer_identity: bCreds.spiffeId };
  const atB = await until(b.adminPort, (s) => conns(s, { ...inbound, result: 'ok' }) === 1);
  // Keep-alive: the second request rode the first connection.
  t.is(conns(atB, { ...inbound, result: 'ok' }), 1);
  t.is(sampleValue(atB, 'weft_proxy_mtls_connections_open', inbound), 1);
  const atA = await scrape(a.adminPort);
  t.is(conns(atA, { ...outbound, result: 'ok' }), 1);
  t.is(sampleValue(atA, 'weft_proxy_mtls_connections_open', outbound), 1);

  await a.close();
  const after = await until(b.adminPort, (s) => sampleValue(s, 'weft_proxy_mtls_connections_open', inbound) === 0);
  t.is(sampleValue(after, 'weft_proxy_mtls_connections_open', inbound), 0);
  t.is(conns(after, { ...inbound, result: 'ok' }), 1);
});

test('refused handshakes at the mesh listener, by reason, never under a name from an unverified certificate', async (t) => {
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  t.teardown(() => Promise.all([b.close(), app.close()]));
  const foreign = mint(newCa(), 'a', 'a');
  const expired = mint(newCa({ backdateMs: 2 * HOUR }), 'a', 'a', HOUR);
  for (const creds of [foreign, expired, undefined]) {
    await t.throwsAsync(meshRequest(b.meshPort, { creds, ca: ca.rootCAsPem, headers: { 'x-weft-target-port': '1' } }));
  }
  const inbound = { direction: 'inbound', peer_identity: 'unknown' };
  const samples = await until(b.adminPort, (s) => conns(s, { ...inbound, result: 'no_certificate' }) === 1);
  t.is(conns(samples, { ...inbound, result: 'untrusted_certificate' }), 1);
  t.is(conns(samples, { ...inbound, result: 'certificate_expired' }), 1);
  t.is(conns(samples, { ...inbound, result: 'no_certificate' }), 1);
  const all = samples.filter((s) => s.name === 'weft_proxy_mtls_connections_total');
  t.false(
    all.some((s) => s.labels.peer_identity === spiffe('a', 'a')),
    'the foreign certificate named a/a',
  );
  for (const s of all) t.true(MTLS_RESULTS.includes(s.labels.result as never));
  t.is(app.requests.length, 0);
});

test('a peer with another identity than the config names: identity_mismatch at the caller', async (t) => {
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  const expected = spiffe('b', 'someone-else');
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: expected }], {
    identity: new StaticIdentity(aCreds),
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
  t.is((await send(a.port, { host: 'echo.b' })).status, 503);
  const samples = await scrape(a.adminPort);
  t.is(conns(samples, { direction: 'outbound', peer_identity: expected, result: 'identity_mismatch' }), 1);
  t.is(conns(samples, { direction: 'outbound', result: 'ok' }), undefined);
  t.is(sampleValue(samples, 'weft_proxy_request_errors_total', { reason: 'upstream_identity' }), 1);
});

test('certificate expiry of the leaf, its chain and the roots; a rotation is counted and moves the leaf', async (t) => {
  const identity = new StaticIdentity(aCreds);
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity });
  t.teardown(() => Promise.all([b.close(), app.close()]));
  const expiry = 'weft_proxy_certificate_expiry_timestamp_seconds';
  let samples = await scrape(b.adminPort);
  const leaf = samples.filter((s) => s.name === expiry && s.labels.kind === 'leaf');
  t.is(leaf.length, 1);
  t.is(leaf[0].value, aCreds.notAfter.getTime() / 1000);
  t.is(leaf[0].labels.serial_number.toLowerCase().replace(/^0+/, ''), aCreds.serialNumber.toLowerCase());
  t.is(sampleValue(samples, expiry, { kind: 'root' }), ca.notAfter.getTime() / 1000);
  t.is(sampleValue(samples, 'weft_proxy_certificate_rotations_total'), 0);

  const next = mint(ca, 'a', 'a', 2 * HOUR);
  identity.set(next);
  samples = await scrape(b.adminPort);
  t.is(sampleValue(samples, 'weft_proxy_certificate_rotations_total'), 1);
  t.is(sampleValue(samples, expiry, { kind: 'leaf' }), next.notAfter.getTime() / 1000);
});

test('a renewal that cannot reach the CA is counted by its reason', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const identity = new WorkloadIdentity({
    ca: { url: `https://127.0.0.1:${port}`, rootsPem: ca.rootCAsPem },
    trustDomain: TRUST_DOMAIN,
    namespace: 'a',
    serviceAccount: 'a',
    token: 'unused',
    backoff: { initialMs: 10_000, maxMs: 10_000 },
  });
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity });
  t.teardown(() => {
    identity.close();
    return Promise.all([b.close(), app.close()]);
  });
  const failed = once(identity, 'renewalFailed');
  identity.start().catch(() => {});
  const [err] = (await failed) as [{ code: string }];
  const samples = await scrape(b.adminPort);
  t.is(sampleValue(samples, 'weft_proxy_certificate_renewal_failures_total', { reason: err.code }), 1);
  t.is(samples.filter((s) => s.name === 'weft_proxy_certificate_expiry_timestamp_seconds').length, 0);
});

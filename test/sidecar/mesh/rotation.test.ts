// Certificate rotation under load: both proxies get new certificates (new keys) several times while requests flow
// A → B → app without pause. No request may fail; after each rotation, new connections — B's next handshake and
// A's next connection to a recording peer — carry the new certificates, while connections opened before finish
// their requests on the old ones.
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import type { ProxyConfigInput } from '../../../sidecar/config/proxy-config.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { send, startTestProxy } from '../harness.ts';
import { clientConfig, meshRequest, mint, newCa, spiffe, startServerSidecar } from './support.ts';

const serial = (s: string) => s.toLowerCase().replace(/^0+/, '');

test('rotating both certificates under continuous load: zero failed requests, new connections use the new ones', async (t) => {
  const ca = newCa();
  const app = await startEchoServer({ pod: 'b-0' });
  const aIdentity = new StaticIdentity(mint(ca, 'a', 'a'));
  const bIdentity = new StaticIdentity(mint(ca, 'b', 'b'));
  const b = await startServerSidecar([app.port], { identity: bIdentity });

  // A peer that reports the serial of the client certificate on its connection, then closes it, so every
  // request to it is a new connection from A.
  const recCreds = mint(ca, 'rec', 'rec');
  const recorder = createHttpsServer(
    { key: recCreds.key, cert: recCreds.certChain, ca: ca.rootCAsPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' });
      res.end((req.socket as TLSSocket).getPeerCertificate().serialNumber);
    },
  );
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  const recPort = (recorder.address() as AddressInfo).port;

  const config = clientConfig({ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') });
  const outbound = config.listeners[0] as Extract<ProxyConfigInput['listeners'][number], { kind: 'outbound' }>;
  outbound.services.push({
    service: 'rec/rec',
    hostnames: ['rec.rec'],
    clusterIPs: [],
    ports: [{ port: 80, routeTable: 'rec' }],
  });
  config.routeTables.rec = {
    virtualHosts: [
      { domains: ['*'], routes: [{ route: 'rec/rec', rule: 0, match: {}, backends: [{ cluster: 'rec', weight: 1 }] }] },
    ],
  };
  config.clusters.rec = {
    service: 'rec/rec',
    port: 80,
    endpoints: [{ address: '127.0.0.1', port: 8080, meshPort: recPort, identity: spiffe('rec', 'rec') }],
  };
  const a = await startTestProxy(config, { mode: 'sidecar', identity: aIdentity });
  const aPort = a.proxy.addresses.listeners.outbound.port;
  t.teardown(async () => {
    await Promise.all([a.close(), b.close(), app.close()]);
    recorder.closeAllConnections();
    await new Promise((r) => recorder.close(r));
  });

  let ok = 0;
  const failures: string[] = [];
  let running = true;
  const one = async (headers: Record<string, string> = {}) => {
    try {
      const r = await send(aPort, { host: 'echo.b', headers });
      if (r.status === 200 && r.json().headers['x-weft-peer-identity'] === spiffe('a', 'a')) ok++;
      else failures.push(`${r.status} ${r.body.slice(0, 200)}`);
    } catch (err) {
      failures.push(String(err));
    }
  };
  // Eight clients back to back, every fourth request slow enough to span a rotation.
  const workers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; running; i++) await one(i % 4 === w % 4 ? { 'x-echo-delay-ms': '100' } : {});
  });
  const until = async (count: number) => {
    while (ok < count && failures.length === 0) await new Promise((r) => setTimeout(r, 5));
  };

  for (let round = 1; round <= 4; round++) {
    await until(ok + 60);
    const nextA = mint(ca, 'a', 'a');
    const nextB = mint(ca, 'b', 'b');
    aIdentity.set(nextA);
    bIdentity.set(nextB);
    // More concurrent requests than open connections: new connections are made beside the old ones.
    await Promise.all(Array.from({ length: 16 }, () => one({ 'x-echo-delay-ms': '50' })));
    // B's next handshake presents its new certificate…
    const probe = await meshRequest(b.meshPort, {
      creds: nextA,
      ca: ca.rootCAsPem,
      headers: { 'x-weft-target-port': String(app.port) },
    });
    t.is(probe.status, 200);
    t.is(serial(probe.serverSerial), serial(nextB.serialNumber), `round ${round}: B's certificate`);
    // …and A's next connection presents A's.
    const rec = await send(aPort, { host: 'rec.rec' });
    t.is(rec.status, 200, rec.body);
    t.is(serial(rec.body), serial(nextA.serialNumber), `round ${round}: A's certificate`);
  }
  await until(ok + 60);
  running = false;
  await Promise.all(workers);
  t.deepEqual(failures, []);
  t.true(ok > 300, `only ${ok} requests`);
});

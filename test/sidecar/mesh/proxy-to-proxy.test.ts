// Sidecar A (outbound) → sidecar B (mesh listener, mTLS) → app, with real certificates from a MeshCA: the app sees
// A's verified identity, A accepts only the SPIFFE ID the config names for B, and without a valid certificate A
// answers 503 and never sends anything, plaintext or otherwise.
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import test from 'ava';
import { startEchoServer } from '../../helpers/echo-server.ts';
import type { Forwarder } from '../../../sidecar/upstream/forwarder.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { NodeHttpForwarder } from '../../../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../../../sidecar/upstream/undici-forwarder.ts';
import { rawStatus, send, startTestProxy } from '../harness.ts';
import {
  clientConfig,
  connectionCounter,
  HOUR,
  mint,
  newCa,
  ready,
  spiffe,
  startClientSidecar,
  startServerSidecar,
} from './support.ts';

const ca = newCa();
const aCreds = mint(ca, 'a', 'a');
const bCreds = mint(ca, 'b', 'b');

const engines: [string, () => Forwarder][] = [
  ['undici', () => new UndiciForwarder()],
  ['node:http', () => new NodeHttpForwarder()],
];

for (const [name, engine] of engines) {
  test(`${name}: A → B → app; the app sees A's SPIFFE ID, the caller's claim and the target port header are not passed on`, async (t) => {
    const app = await startEchoServer({ pod: 'b-0' });
    const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
    const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
      identity: new StaticIdentity(aCreds),
      forwarder: engine(),
    });
    t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
    for (let i = 0; i < 3; i++) {
      const r = await send(a.port, {
        host: 'echo.b',
        path: `/hello?i=${i}`,
        headers: {
          'x-weft-peer-identity': 'spiffe://cluster.local/ns/kube-system/sa/admin',
          'x-weft-target-port': '1',
        },
      });
      t.is(r.status, 200, r.body);
      const seen = r.json();
      t.is(seen.path, `/hello?i=${i}`);
      t.is(seen.host, 'echo.b');
      t.is(seen.headers['x-weft-peer-identity'], aCreds.spiffeId);
      t.false('x-weft-target-port' in seen.headers);
    }
    t.is(app.requests.length, 3);
    t.is(await ready(a.adminPort), 200);
    t.is(await ready(b.adminPort), 200);
  });

  test(`${name}: B presenting another identity than the config names is refused by A (503, no request reaches the app)`, async (t) => {
    const app = await startEchoServer();
    const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
    const a = await startClientSidecar(
      [{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'someone-else') }],
      { identity: new StaticIdentity(aCreds), forwarder: engine() },
    );
    t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
    const r = await send(a.port, { host: 'echo.b' });
    t.is(r.status, 503);
    t.is(r.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_IDENTITY');
    t.regex(r.body, /presented spiffe:\/\/cluster\.local\/ns\/b\/sa\/b, expected .*someone-else/);
    t.is(app.requests.length, 0);
  });

  test(`${name}: an expired client certificate → 503 WEFT_ERR_NO_CERTIFICATE and no connection anywhere`, async (t) => {
    const expired = mint(newCa({ backdateMs: 2 * HOUR }), 'a', 'a', HOUR);
    t.true(expired.notAfter.getTime() < Date.now());
    // The app's plaintext port and the peer's mesh port both only count connections.
    const plaintext = await connectionCounter();
    const meshPort = await connectionCounter();
    const a = await startClientSidecar(
      [{ port: plaintext.port, meshPort: meshPort.port, identity: spiffe('b', 'b') }],
      {
        identity: new StaticIdentity(expired),
        forwarder: engine(),
      },
    );
    t.teardown(() => Promise.all([a.close(), plaintext.close(), meshPort.close()]));
    for (let i = 0; i < 3; i++) {
      const r = await send(a.port, { host: 'echo.b' });
      t.is(r.status, 503);
      t.is(r.headers['x-weft-error'], 'WEFT_ERR_NO_CERTIFICATE');
    }
    t.is(plaintext.connections(), 0);
    t.is(meshPort.connections(), 0);
    t.is(await ready(a.adminPort), 503);
  });
}

test('no certificate yet: 503 WEFT_ERR_NO_CERTIFICATE and not ready; once it arrives, ready and served; dropped again, 503', async (t) => {
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  const identity = new StaticIdentity();
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity,
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
  t.is(await ready(a.adminPort), 503);
  const before = await send(a.port, { host: 'echo.b' });
  t.is(before.status, 503);
  t.is(before.headers['x-weft-error'], 'WEFT_ERR_NO_CERTIFICATE');
  t.is(app.requests.length, 0);

  identity.set(aCreds);
  t.is(await ready(a.adminPort), 200);
  t.is((await send(a.port, { host: 'echo.b' })).status, 200);

  // The source drops the certificate (WorkloadIdentity does at notAfter): pooled connections are not used either.
  identity.set(undefined);
  const after = await send(a.port, { host: 'echo.b' });
  t.is(after.status, 503);
  t.is(after.headers['x-weft-error'], 'WEFT_ERR_NO_CERTIFICATE');
  t.is(app.requests.length, 1);
  t.is(await ready(a.adminPort), 503);
});

test('a target port that is not one of B’s app ports is refused by B (403 WEFT_ERR_TARGET_PORT)', async (t) => {
  const app = await startEchoServer();
  const other = await startEchoServer({ pod: 'not-an-app-port' });
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  const a = await startClientSidecar([{ port: other.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity: new StaticIdentity(aCreds),
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close(), other.close()]));
  const r = await send(a.port, { host: 'echo.b' });
  t.is(r.status, 403);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_TARGET_PORT');
  t.is(app.requests.length + other.requests.length, 0);
});

test('a client certificate from another root is refused by B; A answers 503 and the app sees nothing', async (t) => {
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  // A trusts B's root (so it accepts B) but holds a certificate from a root B does not trust.
  const foreign = mint(newCa(), 'a', 'a');
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity: new StaticIdentity({ ...foreign, rootCAs: ca.rootCAsPem }),
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
  const r = await send(a.port, { host: 'echo.b' });
  t.is(r.status, 503);
  // TLS 1.3: A's handshake completes before B's alert arrives, so A sees the connection closed.
  t.true(['WEFT_ERR_UPSTREAM_CONNECT', 'WEFT_ERR_UPSTREAM_TLS'].includes(String(r.headers['x-weft-error'])));
  t.is(app.requests.length, 0);
});

test('a WebSocket upgrade travels A → B → app over mTLS, with A’s identity', async (t) => {
  const seen: IncomingMessage[] = [];
  const tunnels = new Set<Duplex>();
  const backend = createServer((_req, res) => res.end('plain'));
  backend.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    seen.push(req);
    tunnels.add(socket);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const appPort = (backend.address() as AddressInfo).port;
  const b = await startServerSidecar([appPort], { identity: new StaticIdentity(bCreds) });
  const config = clientConfig({ port: appPort, meshPort: b.meshPort, identity: spiffe('b', 'b') });
  config.clusters.c.protocol = 'websocket';
  const a = await startTestProxy(config, { mode: 'sidecar', identity: new StaticIdentity(aCreds) });
  const socket = connect(a.port, '127.0.0.1');
  t.teardown(async () => {
    socket.destroy();
    for (const s of tunnels) s.destroy();
    await Promise.all([a.close(), b.close(), new Promise((r) => backend.close(r))]);
  });
  const read = (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      let text = '';
      const onData = (d: Buffer) => {
        text += d.toString('latin1');
        if (!pattern.test(text)) return;
        socket.off('data', onData);
        resolve(text);
      };
      socket.on('data', onData);
      socket.once('close', () => resolve(text));
    });
  socket.write(
    'GET /chat HTTP/1.1\r\nHost: echo.b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  t.is(rawStatus(await read(/\r\n\r\n/)), 101);
  t.is(seen[0].url, '/chat');
  t.is(seen[0].headers['x-weft-peer-identity'], aCreds.spiffeId);
  socket.write('hello');
  t.is(await read(/HELLO/), 'HELLO');
});

// The mesh listener on its own, driven by hand-made TLS clients: who gets in (a certificate chaining to the trust
// bundle, with a SPIFFE ID in the trust domain, over TLS 1.3), what reaches the app (the verified caller ID, never
// the caller's own claim), and which app port (only those listed).
import { request as httpRequest } from 'node:http';
import test from 'ava';
import { MeshCA } from '../../../controlplane/certs/index.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { send } from '../harness.ts';
import { meshRequest, mint, newCa, newRoot, ready, startServerSidecar } from './support.ts';

const { root, ca } = newRoot();
const bCreds = mint(ca, 'b', 'b');
const caller = mint(ca, 'a', 'a');

async function setUp(t: import('ava').ExecutionContext) {
  const app = await startEchoServer({ pod: 'b-0' });
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  t.teardown(() => Promise.all([b.close(), app.close()]));
  return { app, b, target: String(app.port) };
}

test('a caller with a mesh certificate reaches the app; its verified ID replaces the one it claims', async (t) => {
  const { app, b, target } = await setUp(t);
  const r = await meshRequest(b.meshPort, {
    creds: caller,
    ca: ca.rootCAsPem,
    path: '/x/../y?q=1',
    headers: {
      'x-weft-target-port': target,
      'x-weft-peer-identity': 'spiffe://cluster.local/ns/kube-system/sa/admin',
    },
  });
  t.is(r.status, 200, r.body);
  t.is(r.serverSerial.toLowerCase(), bCreds.serialNumber.toLowerCase());
  t.is(app.requests.length, 1);
  const seen = app.requests[0];
  t.is(seen.path, '/y?q=1');
  t.is(seen.headers['x-weft-peer-identity'], caller.spiffeId);
  t.false('x-weft-target-port' in seen.headers);
});

test('no client certificate: refused during the handshake, nothing reaches the app', async (t) => {
  const { app, b, target } = await setUp(t);
  await t.throwsAsync(meshRequest(b.meshPort, { ca: ca.rootCAsPem, headers: { 'x-weft-target-port': target } }));
  t.is(app.requests.length, 0);
});

test('a client certificate from another root: refused during the handshake', async (t) => {
  const { app, b, target } = await setUp(t);
  const foreign = mint(newCa(), 'a', 'a');
  await t.throwsAsync(
    meshRequest(b.meshPort, { creds: foreign, ca: ca.rootCAsPem, headers: { 'x-weft-target-port': target } }),
  );
  t.is(app.requests.length, 0);
});

test('a certificate from the trusted root naming another trust domain: 403 WEFT_ERR_PEER_IDENTITY', async (t) => {
  const { app, b, target } = await setUp(t);
  // Same root and key, another trust domain: the chain verifies, the identity is not of this mesh.
  const outsider = mint(MeshCA.fromPem(root, { trustDomain: 'evil.example' }), 'a', 'a');
  t.is(outsider.spiffeId, 'spiffe://evil.example/ns/a/sa/a');
  const r = await meshRequest(b.meshPort, {
    creds: outsider,
    ca: ca.rootCAsPem,
    headers: { 'x-weft-target-port': target },
  });
  t.is(r.status, 403);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_PEER_IDENTITY');
  t.is(app.requests.length, 0);
});

test('x-weft-target-port: missing or malformed → 400, not an app port → 403 (WEFT_ERR_TARGET_PORT)', async (t) => {
  const { app, b } = await setUp(t);
  const ask = (headers: Record<string, string>) =>
    meshRequest(b.meshPort, { creds: caller, ca: ca.rootCAsPem, headers });
  for (const [headers, status] of [
    [{}, 400],
    [{ 'x-weft-target-port': 'eighty' }, 400],
    [{ 'x-weft-target-port': '80, 81' }, 400],
    [{ 'x-weft-target-port': '15020' }, 403],
    [{ 'x-weft-target-port': String(b.adminPort) }, 403],
  ] as const) {
    const r = await ask(headers);
    t.is(r.status, status, JSON.stringify(headers));
    t.is(r.headers['x-weft-error'], 'WEFT_ERR_TARGET_PORT');
  }
  t.is(app.requests.length, 0);
});

test('TLS 1.2 and plaintext HTTP are refused on the mesh port', async (t) => {
  const { app, b, target } = await setUp(t);
  await t.throwsAsync(
    meshRequest(b.meshPort, {
      creds: caller,
      ca: ca.rootCAsPem,
      maxVersion: 'TLSv1.2',
      headers: { 'x-weft-target-port': target },
    }),
  );
  const plain = await new Promise<number | Error>((resolve) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: b.meshPort, headers: { 'x-weft-target-port': target }, agent: false },
      (res) => resolve(res.statusCode ?? 0),
    );
    req.on('error', resolve);
    req.end();
  });
  // Either the connection dies or Node's TLS server answers the stray HTTP with a 400 of its own.
  t.true(plain instanceof Error || plain === 400, String(plain));
  t.is(app.requests.length, 0);
});

test('a server without a certificate completes no handshake and is not ready; with one it serves', async (t) => {
  const app = await startEchoServer();
  const identity = new StaticIdentity();
  const b = await startServerSidecar([app.port], { identity });
  t.teardown(() => Promise.all([b.close(), app.close()]));
  const headers = { 'x-weft-target-port': String(app.port) };
  t.is(await ready(b.adminPort), 503);
  await t.throwsAsync(meshRequest(b.meshPort, { creds: caller, ca: ca.rootCAsPem, headers }));
  identity.set(bCreds);
  t.is(await ready(b.adminPort), 200);
  t.is((await meshRequest(b.meshPort, { creds: caller, ca: ca.rootCAsPem, headers })).status, 200);
  identity.set(undefined);
  t.is(await ready(b.adminPort), 503);
  await t.throwsAsync(meshRequest(b.meshPort, { creds: caller, ca: ca.rootCAsPem, headers }));
  t.is(app.requests.length, 1);
});

test('config.trust.rootCAs, when set, is the bundle callers must chain to (not the identity’s own)', async (t) => {
  const app = await startEchoServer();
  const other = newCa();
  // B's own certificate is from `ca`, but the config says to trust only `other`'s root.
  const b = await startServerSidecar([app.port], {
    identity: new StaticIdentity(bCreds),
    trust: { rootCAs: other.rootCAsPem },
  });
  t.teardown(() => Promise.all([b.close(), app.close()]));
  const headers = { 'x-weft-target-port': String(app.port) };
  await t.throwsAsync(meshRequest(b.meshPort, { creds: caller, ca: ca.rootCAsPem, headers }));
  const fromOther = mint(other, 'a', 'a');
  const r = await meshRequest(b.meshPort, { creds: fromOther, ca: ca.rootCAsPem, headers });
  t.is(r.status, 200);
  t.is(app.requests[0].headers['x-weft-peer-identity'], fromOther.spiffeId);
});

test('the plaintext inbound listener drops a client-supplied x-weft-peer-identity', async (t) => {
  const { app, b } = await setUp(t);
  const r = await send(b.inboundPort, { headers: { 'x-weft-peer-identity': 'spiffe://cluster.local/ns/a/sa/a' } });
  t.is(r.status, 200);
  t.false('x-weft-peer-identity' in app.requests[0].headers);
});

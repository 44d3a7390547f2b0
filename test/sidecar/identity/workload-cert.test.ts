// End to end over real sockets: a proxy's WorkloadIdentity asks the CA server for a certificate, verifies it, and
// two such identities complete an mTLS handshake in which each side checks the other's SPIFFE ID.
import { randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import test from 'ava';
import { generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { startCAServer } from '../../../controlplane/certs/server.ts';
import { BootstrapTokens } from '../../../controlplane/certs/tokens.ts';
import { IdentityError } from '../../../sidecar/identity/errors.ts';
import { mtlsClientOptions, mtlsServerOptions, peerSpiffeId, spiffeIdOf } from '../../../sidecar/identity/peer.ts';
import { type WorkloadCredentials, WorkloadIdentity } from '../../../sidecar/identity/workload-cert.ts';
import { captureLogs } from '../../controlplane/certs/support.ts';

const td = 'cluster.local';
const root = generateRoot(td, Date.now());
const tokens = new BootstrapTokens({ secret: randomBytes(32) });

async function caServer(t: import('ava').ExecutionContext) {
  const { logger, lines } = captureLogs();
  const server = await startCAServer({
    ca: MeshCA.fromPem(root, { trustDomain: td }),
    verifier: tokens,
    port: 0,
    logger,
  });
  t.teardown(() => server.close());
  return { server, lines };
}

function identity(t: import('ava').ExecutionContext, url: string, ns: string, sa: string, extra: object = {}) {
  const id = new WorkloadIdentity({
    ca: { url, rootsPem: root.certPem, serverName: 'weft-ca' },
    trustDomain: td,
    namespace: ns,
    serviceAccount: sa,
    token: () => tokens.mint({ namespace: ns, serviceAccount: sa }),
    ...extra,
  });
  t.teardown(() => id.close());
  return id;
}

test('a proxy obtains and verifies its certificate from the CA over TLS', async (t) => {
  const { server, lines } = await caServer(t);
  const web = identity(t, server.url, 'shop', 'web');
  t.is(web.current(), undefined);
  const changed = once(web, 'change');
  const creds = await web.start();
  t.is((await changed)[0], creds);
  t.is(web.current(), creds);
  t.is(creds.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  const leaf = new X509Certificate(creds.certChain);
  t.is(leaf.subjectAltName, `URI:${creds.spiffeId}`);
  t.true(leaf.verify(new X509Certificate(creds.rootCAs).publicKey));
  t.true(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(creds.key)));
  t.is(creds.notAfter.getTime(), leaf.validToDate.getTime());
  t.is(lines.filter((l) => l.event === 'certificate.issued').length, 1);
});

async function listen(creds: WorkloadCredentials, onPeer: (id: string | undefined, socket: TLSSocket) => void) {
  const server = createServer(mtlsServerOptions(creds), (socket) => {
    onPeer(peerSpiffeId(socket), socket);
    socket.end('hello');
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function dial(port: number, creds: Partial<WorkloadCredentials> & { rootCAs: string }, peer: string) {
  return new Promise<{ socket: TLSSocket; data: string }>((resolve, reject) => {
    const options = mtlsClientOptions(
      { key: creds.key ?? '', certChain: creds.certChain ?? '', rootCAs: creds.rootCAs },
      peer,
    );
    if (!creds.key) {
      delete options.key;
      delete options.cert;
    }
    const socket = connect({ ...options, host: '127.0.0.1', port }, () => {
      let data = '';
      socket.on('data', (d) => {
        data += d;
      });
      socket.on('end', () => resolve({ socket, data }));
    });
    socket.on('error', reject);
  });
}

test('mTLS between two issued leaves: each side checks the peer SPIFFE ID', async (t) => {
  const { server: ca } = await caServer(t);
  const [web, db] = await Promise.all([
    identity(t, ca.url, 'shop', 'web').start(),
    identity(t, ca.url, 'shop', 'db').start(),
  ]);
  const seen: (string | undefined)[] = [];
  const dbServer = await listen(db, (id) => seen.push(id));
  t.teardown(() => dbServer.close());
  const { port } = dbServer.address() as AddressInfo;

  const { socket, data } = await dial(port, web, db.spiffeId);
  t.is(data, 'hello');
  t.true(socket.authorized);
  t.is(spiffeIdOf(socket.getPeerCertificate()), 'spiffe://cluster.local/ns/shop/sa/db');
  t.deepEqual(seen, ['spiffe://cluster.local/ns/shop/sa/web']);

  // The client refuses a server that is not the identity it meant to reach.
  const wrongPeer = await t.throwsAsync(dial(port, web, 'spiffe://cluster.local/ns/shop/sa/cache'), {
    instanceOf: IdentityError,
  });
  t.is(wrongPeer?.code, 'WEFT_ERR_PEER_IDENTITY');
  // The server refuses a client without a certificate, and one from another mesh's root. With TLS 1.3 the client
  // may finish its side of the handshake before the server's refusal arrives: refused = error or no data.
  const refused = (p: Promise<{ data: string }>) =>
    p.then(
      ({ data }) => data === '',
      () => true,
    );
  t.true(await refused(dial(port, { rootCAs: web.rootCAs }, db.spiffeId)));
  const strangerRoot = generateRoot(td, Date.now());
  const strangerCa = MeshCA.fromPem(strangerRoot, { trustDomain: td });
  const stranger = await startCAServer({ ca: strangerCa, verifier: tokens, port: 0, logger: captureLogs().logger });
  t.teardown(() => stranger.close());
  const impostor = await new WorkloadIdentity({
    ca: { url: stranger.url, rootsPem: strangerRoot.certPem },
    trustDomain: td,
    namespace: 'shop',
    serviceAccount: 'web',
    token: tokens.mint({ namespace: 'shop', serviceAccount: 'web' }),
  }).start();
  t.true(await refused(dial(port, { ...impostor, rootCAs: web.rootCAs }, db.spiffeId)));
  // Sanity: the same dial with the real leaf still gets through.
  t.is((await dial(port, web, db.spiffeId)).data, 'hello');
  t.is(seen.length, 2, 'no refused client reached the handler');
});

test('a CA refusal reaches the proxy as WEFT_ERR_CA_REFUSED with the CA code; start() keeps retrying', async (t) => {
  const { server } = await caServer(t);
  const web = identity(t, server.url, 'shop', 'web', {
    // A token for another service account: the CSR names shop/web, the token proves shop/db.
    token: tokens.mint({ namespace: 'shop', serviceAccount: 'db' }),
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  const started = web.start();
  const [err, info] = await once(web, 'renewalFailed');
  t.is(err.code, 'WEFT_ERR_CA_REFUSED');
  t.is(err.caCode, 'WEFT_ERR_CSR_IDENTITY_MISMATCH');
  t.is(err.status, 403);
  t.is(info.attempt, 1);
  t.true(info.retryInMs >= 30_000, 'a permanent refusal retries at the slowest pace');
  t.is(web.current(), undefined);
  web.close();
  await t.throwsAsync(started, { message: /closed/ });
});

test('a CA whose certificate does not chain to the configured root is not trusted', async (t) => {
  const { server } = await caServer(t);
  const web = identity(t, server.url, 'shop', 'web', {
    ca: { url: server.url, rootsPem: generateRoot(td, Date.now()).certPem },
  });
  void web.start().catch(() => {});
  const [err] = await once(web, 'renewalFailed');
  t.is(err.code, 'WEFT_ERR_CA_UNREACHABLE');
  t.regex(err.message, /certificate/);
});

// The http-proxy-3 engine behind the Forwarder interface: the same exchange semantics as the
// other two (mTLS to a peer proxy included), so the benchmark compares engines that do the same work.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import test from 'ava';
import { generateRoot, MeshCA } from '../../controlplane/certs/index.ts';
import { workloadCommonName, workloadSpiffeId } from '../../sidecar/config/ca-api.ts';
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';
import { buildCsr } from '../../sidecar/identity/csr.ts';
import { HttpProxy3Forwarder } from '../../sidecar/upstream/http-proxy3-forwarder.ts';
import { StaticIdentity } from '../../sidecar/upstream/mtls.ts';
import { startEchoServer } from '../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from './harness.ts';
import { closedPort } from '../helpers/run-weft.ts';

test('forwards method, path, headers, streamed and buffered bodies over one kept-alive connection', async (t) => {
  const echo = await startEchoServer({ pod: 'e' });
  // Counts the upstream connections the engine opens.
  const sockets = new Set<Socket>();
  const counter = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  counter.on('connection', (s: Socket) => sockets.add(s));
  await new Promise<void>((r) => counter.listen(0, '127.0.0.1', r));
  const counterPort = (counter.address() as AddressInfo).port;
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/e': cluster('ns/e', echo),
        'ns/c': { service: 'ns/c', port: 80, endpoints: [{ address: '127.0.0.1', port: counterPort }] },
      },
      routes: [
        route({ match: { path: { type: 'PathPrefix', value: '/count' } }, backends: to('ns/c') }),
        // A retry policy makes the proxy buffer small bodies (a Buffer reaches the engine).
        route({
          match: { path: { type: 'PathPrefix', value: '/buffered' } },
          retry: { attempts: 1 },
          backends: to('ns/e'),
        }),
        route({ backends: to('ns/e') }),
      ],
    }),
    { forwarder: new HttpProxy3Forwarder() },
  );
  t.teardown(async () => {
    await Promise.all([p.close(), echo.close()]);
    counter.closeAllConnections();
    await new Promise((r) => counter.close(r));
  });
  const big = 'x'.repeat(200_000); // above the replay limit: streamed
  const streamed = await send(p.port, { method: 'PUT', path: '/u?a=1', body: big, headers: { 'x-h': 'v' } });
  t.is(streamed.status, 200);
  const seen = streamed.json();
  t.is(seen.method, 'PUT');
  t.is(seen.path, '/u?a=1');
  t.is(seen.headers['x-h'], 'v');
  t.is(seen.host, 'example.com');
  t.is(seen.body.length, big.length);
  const buffered = await send(p.port, { method: 'POST', path: '/buffered', body: 'small' });
  t.is(buffered.json().body, 'small');
  const get = await send(p.port, { path: '/g' });
  t.is(get.json().body, '');
  t.false('transfer-encoding' in get.json().headers);
  for (let i = 0; i < 5; i++) t.is((await send(p.port, { path: `/count/${i}` })).body, 'ok');
  t.is(sockets.size, 1);
});

test('refused connection → 503; timeout → 504 with the upstream aborted; client abort aborts upstream', async (t) => {
  const echo = await startEchoServer({ pod: 'e' });
  const dead = await closedPort();
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/dead': { service: 'ns/dead', port: 80, endpoints: [{ address: '127.0.0.1', port: dead }] },
        'ns/e': cluster('ns/e', echo),
      },
      routes: [
        route({ match: { path: { type: 'Exact', value: '/dead' } }, backends: to('ns/dead') }),
        route({ match: { path: { type: 'Exact', value: '/slow' } }, timeouts: { request: 100 }, backends: to('ns/e') }),
        route({ backends: to('ns/e') }),
      ],
    }),
    { forwarder: new HttpProxy3Forwarder() },
  );
  t.teardown(() => Promise.all([p.close(), echo.close()]));
  const refused = await send(p.port, { path: '/dead', method: 'POST', body: 'b' });
  t.is(refused.status, 503);
  t.is(refused.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_CONNECT');
  const slow = await send(p.port, { path: '/slow', headers: { 'x-echo-delay-ms': '5000' } });
  t.is(slow.status, 504);
  await echo.waitForAborts(1);
  // The client leaves while the upstream is still working on its answer.
  const req = httpRequest({
    host: '127.0.0.1',
    port: p.port,
    path: '/gone',
    headers: { host: 'example.com', 'x-echo-delay-ms': '5000' },
    agent: false,
  });
  req.on('error', () => {});
  req.end();
  await echo.waitForRequests(2);
  req.destroy();
  await echo.waitForAborts(2);
  t.is(echo.aborted[1].path, '/gone');
});

const spiffe = (ns: string, sa: string) => workloadSpiffeId('cluster.local', ns, sa);

function mint(ca: MeshCA, namespace: string, serviceAccount: string) {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spiffeId = spiffe(namespace, serviceAccount);
  const csrPem = buildCsr(keys, { spiffeId, commonName: workloadCommonName(namespace, serviceAccount) });
  const issued = ca.issue({ csrPem, identity: { namespace, serviceAccount } });
  return {
    key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certChain: issued.certChainPem,
    rootCAs: issued.rootCAsPem,
    spiffeId,
  };
}

function sidecar(name: string, listeners: ProxyConfigInput['listeners']): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: `sidecar:${name}/${name}-0`, mode: 'sidecar', namespace: name, name: `${name}-0` },
    trust: { trustDomain: 'cluster.local' },
    listeners,
    routeTables: {},
    clusters: {},
  };
}

/** Sidecar A: outbound `echo.b` to B's mesh port, expecting `peer` as B's SPIFFE ID. */
function clientSidecar(appPort: number, meshPort: number, peer: string): ProxyConfigInput {
  return {
    ...sidecar('a', [
      {
        kind: 'outbound',
        name: 'outbound',
        port: 15001,
        services: [
          { service: 'b/echo', hostnames: ['echo.b'], clusterIPs: [], ports: [{ port: 80, routeTable: 'rt' }] },
        ],
      },
    ]),
    routeTables: { rt: { virtualHosts: [{ domains: ['*'], routes: [route({ backends: to('c') })] }] } },
    clusters: {
      c: {
        service: 'b/echo',
        port: 80,
        endpoints: [{ address: '127.0.0.1', port: appPort, meshPort, identity: peer }],
      },
    },
  };
}

test('meshed endpoint: A → B over mTLS with the http-proxy-3 engine; the app sees A’s SPIFFE ID', async (t) => {
  const ca = MeshCA.fromPem(generateRoot('cluster.local', Date.now() - 3600_000), { trustDomain: 'cluster.local' });
  const aCreds = mint(ca, 'a', 'a');
  const app = await startEchoServer({ pod: 'b-0' });
  const b = await startTestProxy(
    sidecar('b', [
      { kind: 'mesh', name: 'mesh', port: 15008, appAddress: '127.0.0.1', appPorts: [{ port: app.port }] },
    ]),
    { mode: 'sidecar', identity: new StaticIdentity(mint(ca, 'b', 'b')) },
  );
  const a = await startTestProxy(clientSidecar(app.port, b.port, spiffe('b', 'b')), {
    mode: 'sidecar',
    identity: new StaticIdentity(aCreds),
    forwarder: new HttpProxy3Forwarder(),
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close()]));
  for (let i = 0; i < 3; i++) {
    const r = await send(a.port, { host: 'echo.b', path: `/m?i=${i}` });
    t.is(r.status, 200, r.body);
    t.is(r.json().headers['x-weft-peer-identity'], aCreds.spiffeId);
    t.is(r.json().path, `/m?i=${i}`);
  }
  // The wrong peer identity is refused before anything reaches the app.
  const wrong = await startTestProxy(clientSidecar(app.port, b.port, spiffe('b', 'other')), {
    mode: 'sidecar',
    identity: new StaticIdentity(aCreds),
    forwarder: new HttpProxy3Forwarder(),
  });
  t.teardown(() => wrong.close());
  const refused = await send(wrong.port, { host: 'echo.b' });
  t.is(refused.status, 503);
  t.is(app.requests.length, 3);
});

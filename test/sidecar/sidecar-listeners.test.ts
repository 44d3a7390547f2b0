// Sidecar mode: the outbound listener finds the destination Service (original destination
// when plugged in, else Host or an absolute-form target), the inbound one hands requests to
// the app.
import test from 'ava';
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { cluster, rawStatus, route, send, sendRaw, startTestProxy, type TestProxy, to } from './harness.ts';

let v80: EchoServer;
let v8080: EchoServer;
let app: EchoServer;

function sidecarConfig(inbound: Partial<Extract<ProxyConfigInput['listeners'][number], { kind: 'inbound' }>> = {}) {
  const config: ProxyConfigInput = {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:ns/client', mode: 'sidecar', namespace: 'ns', name: 'client' },
    trust: { trustDomain: 'cluster.local' },
    listeners: [
      {
        kind: 'outbound',
        name: 'outbound',
        port: 15001,
        services: [
          {
            service: 'ns/echo',
            hostnames: ['echo', 'echo.ns', 'echo.ns.svc', 'echo.ns.svc.cluster.local'],
            clusterIPs: ['10.96.0.10'],
            ports: [
              { port: 80, routeTable: 'ns/echo:80' },
              { port: 8080, routeTable: 'ns/echo:8080' },
            ],
          },
        ],
      },
      {
        kind: 'inbound',
        name: 'inbound',
        port: 15006,
        appAddress: '127.0.0.1',
        appPorts: [{ port: app.port }],
        ...inbound,
      },
    ],
    routeTables: {
      'ns/echo:80': { virtualHosts: [{ domains: ['*'], routes: [route({ backends: to('ns/echo-80') })] }] },
      'ns/echo:8080': {
        virtualHosts: [
          {
            domains: ['*'],
            routes: [
              route({
                match: { path: { type: 'Exact', value: '/redirect' } },
                filters: { redirect: { statusCode: 302, path: { type: 'ReplaceFullPath', value: '/moved' } } },
              }),
              route({ backends: to('ns/echo-8080') }),
            ],
          },
        ],
      },
    },
    clusters: { 'ns/echo-80': cluster('ns/echo', v80), 'ns/echo-8080': cluster('ns/echo', v8080) },
  };
  return config;
}

let p: TestProxy;
let outbound: number;
let inbound: number;

test.before(async () => {
  [v80, v8080, app] = await Promise.all([
    startEchoServer({ pod: 'svc-80' }),
    startEchoServer({ pod: 'svc-8080' }),
    startEchoServer({ pod: 'app' }),
  ]);
  p = await startTestProxy(sidecarConfig());
  outbound = p.proxy.addresses.listeners.outbound.port;
  inbound = p.proxy.addresses.listeners.inbound.port;
});

test.after.always(async () => {
  await p?.close();
  await Promise.all([v80, v8080, app].map((e) => e?.close()));
});

const pod = async (port: number, host: string, path = '/') => {
  const r = await send(port, { host, path });
  return r.status === 200 ? r.json().pod : `${r.status} ${r.headers['x-weft-error']}`;
};

test('outbound: every DNS form of the Service, port from Host or 80', async (t) => {
  for (const host of ['echo', 'echo.ns', 'echo.ns.svc', 'echo.ns.svc.cluster.local', 'ECHO.NS', 'echo:80']) {
    t.is(await pod(outbound, host), 'svc-80', host);
  }
  t.is(await pod(outbound, 'echo.ns.svc.cluster.local:8080'), 'svc-8080');
});

test('outbound: ClusterIP and ClusterIP:port', async (t) => {
  t.is(await pod(outbound, '10.96.0.10'), 'svc-80');
  t.is(await pod(outbound, '10.96.0.10:8080'), 'svc-8080');
});

test('outbound: unknown Service or port → 404', async (t) => {
  t.is(await pod(outbound, 'nope.ns'), '404 WEFT_ERR_UNKNOWN_SERVICE');
  t.is(await pod(outbound, 'echo:9999'), '404 WEFT_ERR_UNKNOWN_SERVICE');
  t.is(await pod(outbound, '10.96.0.11'), '404 WEFT_ERR_UNKNOWN_SERVICE');
});

test('outbound: absolute-form targets, as an HTTP proxy is addressed', async (t) => {
  const answer = await sendRaw(
    outbound,
    'GET http://echo.ns:8080/x?y=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n',
  );
  t.is(rawStatus(answer), 200);
  const seen = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  t.is(seen.pod, 'svc-8080');
  t.is(seen.path, '/x?y=1');
  t.is(seen.host, 'echo.ns:8080');
});

test('outbound: redirects keep the Service port', async (t) => {
  const r = await send(outbound, { host: 'echo:8080', path: '/redirect' });
  t.is(r.status, 302);
  t.is(r.headers.location, 'http://echo:8080/moved');
});

test('outbound: an original-destination lookup, when plugged in, decides before Host', async (t) => {
  const q = await startTestProxy(sidecarConfig(), {
    originalDestination: () => ({ address: '10.96.0.10', port: 8080 }),
  });
  t.teardown(() => q.close());
  t.is(await pod(q.proxy.addresses.listeners.outbound.port, 'echo'), 'svc-8080');
});

test('inbound: requests reach the app, path normalised, hop-by-hop headers stripped', async (t) => {
  const answer = await sendRaw(
    inbound,
    'GET /a/../b//c HTTP/1.1\r\nHost: echo.ns\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n',
  );
  t.is(rawStatus(answer), 200);
  const seen = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
  t.is(seen.pod, 'app');
  t.is(seen.path, '/b/c');
  t.is(seen.host, 'echo.ns');
  t.is(seen.headers['x-hop'], undefined);
  t.is(seen.headers['x-keep'], '2');
  t.is(rawStatus(await sendRaw(inbound, 'GET /../x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')), 400);
});

test('inbound: refused without an app port (503) or when plaintext is not accepted (403)', async (t) => {
  const none = await startTestProxy(sidecarConfig({ appPorts: [] }));
  const strict = await startTestProxy(sidecarConfig({ acceptPlaintext: false }));
  t.teardown(() => Promise.all([none.close(), strict.close()]));
  t.is(await pod(none.proxy.addresses.listeners.inbound.port, 'x'), '503 WEFT_ERR_NO_APP_PORT');
  t.is(await pod(strict.proxy.addresses.listeners.inbound.port, 'x'), '403 WEFT_ERR_PLAINTEXT_REFUSED');
});

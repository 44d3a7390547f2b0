// Filters through a running proxy: header modifiers (rule, then backend), redirects, URL
// rewrites and CORS.
import test from 'ava';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, type TestProxy, to } from './harness.ts';

let echo: EchoServer;
let p: TestProxy;

const prefix = (value: string) => ({ path: { type: 'PathPrefix' as const, value } });
const exact = (value: string) => ({ path: { type: 'Exact' as const, value } });

test.before(async () => {
  echo = await startEchoServer({ pod: 'echo' });
  p = await startTestProxy(
    edgeConfig({
      port: 8080,
      clusters: { 'ns/echo': cluster('ns/echo', echo) },
      routes: [
        route({
          match: exact('/headers'),
          filters: {
            requestHeaders: {
              set: [{ name: 'X-Set', value: 'rule' }],
              add: [{ name: 'X-Add', value: 'rule' }],
              remove: ['X-Remove'],
            },
            responseHeaders: {
              set: [{ name: 'X-Resp-Set', value: 'rule' }],
              add: [{ name: 'X-Resp-Add', value: 'rule' }],
              remove: ['X-Resp-Remove'],
            },
          },
          backends: to('ns/echo', {
            filters: {
              requestHeaders: { set: [{ name: 'x-set', value: 'backend' }], add: [{ name: 'X-Backend', value: 'b' }] },
              responseHeaders: { set: [{ name: 'X-Resp-Backend', value: 'b' }] },
            },
          }),
        }),
        ...[301, 302, 303, 307, 308].map((code) =>
          route({
            match: exact(`/redirect/${code}`),
            filters: { redirect: { statusCode: code as 301, hostname: 'other.example' } },
          }),
        ),
        route({ match: exact('/redirect/port'), filters: { redirect: { statusCode: 302, port: 8443 } } }),
        route({ match: exact('/redirect/keep-port'), filters: { redirect: { statusCode: 302 } } }),
        route({ match: exact('/redirect/https'), filters: { redirect: { statusCode: 301, scheme: 'https' } } }),
        route({
          match: prefix('/redirect/prefix'),
          filters: { redirect: { statusCode: 302, path: { type: 'ReplacePrefixMatch', value: '/moved' } } },
        }),
        route({
          match: prefix('/redirect/full'),
          filters: { redirect: { statusCode: 302, path: { type: 'ReplaceFullPath', value: '/replaced' } } },
        }),
        route({
          match: prefix('/rewrite/host'),
          filters: { rewrite: { hostname: 'rewritten.example' } },
          backends: to('ns/echo'),
        }),
        route({
          match: prefix('/rewrite/full'),
          filters: { rewrite: { path: { type: 'ReplaceFullPath', value: '/one' } } },
          backends: to('ns/echo'),
        }),
        route({
          match: prefix('/strip-prefix'),
          filters: { rewrite: { path: { type: 'ReplacePrefixMatch', value: '/' } } },
          backends: to('ns/echo'),
        }),
        route({
          match: prefix('/prefix/one'),
          filters: { rewrite: { path: { type: 'ReplacePrefixMatch', value: '/two' } } },
          backends: to('ns/echo'),
        }),
        route({
          match: prefix('/backend-rewrite'),
          backends: to('ns/echo', {
            filters: { rewrite: { path: { type: 'ReplacePrefixMatch', value: '/rewritten-by-backend' } } },
          }),
        }),
        route({
          match: prefix('/cors'),
          filters: {
            cors: {
              allowOrigins: ['https://www.foo.com', 'https://*.bar.com'],
              allowMethods: ['GET', 'OPTIONS'],
              allowHeaders: ['x-header-1'],
              exposeHeaders: ['x-header-3'],
              allowCredentials: true,
              maxAge: 3600,
            },
          },
          backends: to('ns/echo'),
        }),
      ],
    }),
  );
});

test.after.always(async () => {
  await p?.close();
  await echo?.close();
});

test('request headers: rule set/add/remove, then the backend level', async (t) => {
  const r = await send(p.port, {
    path: '/headers',
    headers: { 'x-set': 'client', 'x-add': 'client', 'x-remove': 'gone', 'x-keep': 'kept' },
  });
  t.is(r.status, 200);
  const h = r.json().headers;
  t.is(h['x-set'], 'backend');
  t.is(h['x-add'], 'client,rule');
  t.is(h['x-backend'], 'b');
  t.false('x-remove' in h);
  t.is(h['x-keep'], 'kept');
});

test('response headers: rule set/add/remove, then the backend level', async (t) => {
  const r = await send(p.port, {
    path: '/headers',
    headers: { 'x-echo-set-header': 'X-Resp-Set:backend-said,X-Resp-Add:backend-said,X-Resp-Remove:x' },
  });
  t.is(r.headers['x-resp-set'], 'rule');
  t.is(r.headers['x-resp-add'], 'backend-said, rule');
  t.is(r.headers['x-resp-remove'], undefined);
  t.is(r.headers['x-resp-backend'], 'b');
});

for (const code of [301, 302, 303, 307, 308]) {
  test(`redirect with status ${code}, query kept, listener port kept`, async (t) => {
    const r = await send(p.port, { path: `/redirect/${code}?a=1&b=2` });
    t.is(r.status, code);
    t.is(r.headers.location, `http://other.example:8080/redirect/${code}?a=1&b=2`);
    t.is(r.body, ''); // the proxy's own answer, not the echo's JSON
  });
}

test('redirect port and scheme rules', async (t) => {
  t.is(
    (await send(p.port, { path: '/redirect/port', host: 'a.example' })).headers.location,
    'http://a.example:8443/redirect/port',
  );
  t.is(
    (await send(p.port, { path: '/redirect/keep-port', host: 'a.example:9999' })).headers.location,
    'http://a.example:8080/redirect/keep-port',
  );
  t.is(
    (await send(p.port, { path: '/redirect/https', host: 'a.example' })).headers.location,
    'https://a.example/redirect/https',
  );
});

test('redirect path: prefix and full replacement', async (t) => {
  t.is((await send(p.port, { path: '/redirect/prefix/x/y' })).headers.location, 'http://example.com:8080/moved/x/y');
  t.is((await send(p.port, { path: '/redirect/full/x?q=1' })).headers.location, 'http://example.com:8080/replaced?q=1');
});

test('rewrite: hostname replaces Host', async (t) => {
  const r = await send(p.port, { path: '/rewrite/host/x' });
  t.is(r.json().host, 'rewritten.example');
  t.is(r.json().path, '/rewrite/host/x');
});

test('rewrite: full path, query kept', async (t) => {
  t.is((await send(p.port, { path: '/rewrite/full/two?x=1' })).json().path, '/one?x=1');
});

test('rewrite: prefix replacement and its "/" edge cases', async (t) => {
  t.is((await send(p.port, { path: '/strip-prefix/three' })).json().path, '/three');
  t.is((await send(p.port, { path: '/strip-prefix' })).json().path, '/');
  t.is((await send(p.port, { path: '/strip-prefix/' })).json().path, '/');
  t.is((await send(p.port, { path: '/prefix/one/a' })).json().path, '/two/a');
  t.is((await send(p.port, { path: '/prefix/one' })).json().path, '/two');
  t.is((await send(p.port, { path: '/prefix/one/' })).json().path, '/two/');
});

test('rewrite at the backend level', async (t) => {
  t.is((await send(p.port, { path: '/backend-rewrite/x' })).json().path, '/rewritten-by-backend/x');
});

test.serial('CORS preflight is answered by the proxy and never forwarded', async (t) => {
  const before = echo.requests.length;
  const r = await send(p.port, {
    method: 'OPTIONS',
    path: '/cors',
    headers: {
      origin: 'https://x.bar.com',
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'x-header-1',
    },
  });
  t.is(r.status, 204);
  t.is(r.headers['access-control-allow-origin'], 'https://x.bar.com');
  t.is(r.headers['access-control-allow-methods'], 'GET, OPTIONS');
  t.is(r.headers['access-control-allow-headers'], 'x-header-1');
  t.is(r.headers['access-control-max-age'], '3600');
  t.is(r.headers['access-control-allow-credentials'], 'true');
  const denied = await send(p.port, {
    method: 'OPTIONS',
    path: '/cors',
    headers: { origin: 'https://foobar.com', 'access-control-request-method': 'GET' },
  });
  t.is(denied.headers['access-control-allow-origin'], undefined);
  t.is(echo.requests.length, before);
});

test('CORS headers on actual requests', async (t) => {
  const r = await send(p.port, { path: '/cors', headers: { origin: 'https://www.foo.com' } });
  t.is(r.status, 200);
  t.is(r.headers['access-control-allow-origin'], 'https://www.foo.com');
  t.is(r.headers['access-control-allow-credentials'], 'true');
  t.is(r.headers['access-control-expose-headers'], 'x-header-3');
  const other = await send(p.port, { path: '/cors', headers: { origin: 'https://foobar.com' } });
  t.is(other.status, 200);
  t.is(other.headers['access-control-allow-origin'], undefined);
});

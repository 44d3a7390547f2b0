// Routing through a running proxy: every match type over real HTTP, precedence as given,
// 404 for no route, 500 for unresolved backends, weights.
import test from 'ava';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, type TestProxy, to } from './harness.ts';

let v1: EchoServer;
let v2: EchoServer;
let v3: EchoServer;
let p: TestProxy;

test.before(async () => {
  [v1, v2, v3] = await Promise.all([
    startEchoServer({ pod: 'v1' }),
    startEchoServer({ pod: 'v2' }),
    startEchoServer({ pod: 'v3' }),
  ]);
  p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/v1': cluster('ns/v1', v1), 'ns/v2': cluster('ns/v2', v2), 'ns/v3': cluster('ns/v3', v3) },
      virtualHosts: [
        {
          domains: ['match.example'],
          routes: [
            route({ match: { path: { type: 'Exact', value: '/exact' } }, backends: to('ns/v1') }),
            route({
              match: { path: { type: 'RegularExpression', value: '/re/[0-9]+' } },
              backends: to('ns/v2'),
            }),
            route({
              match: {
                path: { type: 'PathPrefix', value: '/h' },
                headers: [{ type: 'Exact', name: 'Env', value: 'canary' }],
              },
              backends: to('ns/v2'),
            }),
            route({
              match: {
                path: { type: 'PathPrefix', value: '/h' },
                queryParams: [{ type: 'Exact', name: 'v', value: '3' }],
              },
              backends: to('ns/v3'),
            }),
            route({ match: { path: { type: 'PathPrefix', value: '/h' }, method: 'POST' }, backends: to('ns/v3') }),
            route({ match: { path: { type: 'PathPrefix', value: '/h' } }, backends: to('ns/v1') }),
          ],
        },
        {
          domains: ['special.example'],
          routes: [
            route({
              match: { path: { type: 'Exact', value: '/unresolved' } },
              backends: [{ cluster: null, weight: 1 }],
            }),
            route({
              match: { path: { type: 'Exact', value: '/unresolved-503' } },
              backends: [{ cluster: null, weight: 1, status: 503, reason: 'BackendNotFound' }],
            }),
            route({
              match: { path: { type: 'Exact', value: '/zero' } },
              backends: [
                { cluster: 'ns/v1', weight: 0 },
                { cluster: 'ns/v2', weight: 0 },
              ],
            }),
            route({
              match: { path: { type: 'Exact', value: '/direct' } },
              directResponse: { status: 418, body: 'teapot' },
            }),
            route({
              match: { path: { type: 'Exact', value: '/split' } },
              backends: [
                { cluster: 'ns/v1', weight: 3 },
                { cluster: 'ns/v2', weight: 1 },
                { cluster: 'ns/v3', weight: 0 },
              ],
            }),
          ],
        },
        { domains: ['*.wild.example'], routes: [route({ backends: to('ns/v2') })] },
        {
          domains: ['*'],
          routes: [route({ match: { path: { type: 'PathPrefix', value: '/any' } }, backends: to('ns/v3') })],
        },
      ],
    }),
  );
});

test.after.always(async () => {
  await p?.close();
  await Promise.all([v1, v2, v3].map((e) => e?.close()));
});

const pod = async (o: Parameters<typeof send>[1]) => {
  const r = await send(p.port, o);
  return r.status === 200 ? r.json().pod : r.status;
};

test('Exact path', async (t) => {
  t.is(await pod({ host: 'match.example', path: '/exact' }), 'v1');
  t.is(await pod({ host: 'match.example', path: '/exact/' }), 404);
});

test('RegularExpression path', async (t) => {
  t.is(await pod({ host: 'match.example', path: '/re/42' }), 'v2');
  t.is(await pod({ host: 'match.example', path: '/re/42x' }), 404);
});

test('header, query and method matches in the order given; prefix as the last resort', async (t) => {
  t.is(await pod({ host: 'match.example', path: '/h/x', headers: { env: 'canary' } }), 'v2');
  t.is(await pod({ host: 'match.example', path: '/h/x?v=3' }), 'v3');
  t.is(await pod({ host: 'match.example', path: '/h/x?v=3', headers: { ENV: 'canary' } }), 'v2');
  t.is(await pod({ host: 'match.example', path: '/h', method: 'POST', body: 'x' }), 'v3');
  t.is(await pod({ host: 'match.example', path: '/h/' }), 'v1');
  t.is(await pod({ host: 'match.example', path: '/hx' }), 404);
});

test('host is compared lowercased and without port', async (t) => {
  t.is(await pod({ host: 'MATCH.Example:8080', path: '/exact' }), 'v1');
  t.is(await pod({ host: 'a.b.wild.example', path: '/' }), 'v2');
  t.is(await pod({ host: 'unknown.example', path: '/any/1' }), 'v3');
});

test('no route → 404 from the proxy', async (t) => {
  const r = await send(p.port, { host: 'unknown.example', path: '/nothing' });
  t.is(r.status, 404);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_NO_ROUTE');
});

test.serial('an unresolved backend is answered with its status, 500 by default, never forwarded', async (t) => {
  const before = v1.requests.length + v2.requests.length + v3.requests.length;
  const r = await send(p.port, { host: 'special.example', path: '/unresolved' });
  t.is(r.status, 500);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_BACKEND_UNRESOLVED');
  const r2 = await send(p.port, { host: 'special.example', path: '/unresolved-503' });
  t.is(r2.status, 503);
  t.regex(r2.body, /BackendNotFound/);
  t.is(v1.requests.length + v2.requests.length + v3.requests.length, before);
});

test('all-zero weights → 500', async (t) => {
  const r = await send(p.port, { host: 'special.example', path: '/zero' });
  t.is(r.status, 500);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_BACKEND_UNRESOLVED');
});

test('directResponse', async (t) => {
  const r = await send(p.port, { host: 'special.example', path: '/direct' });
  t.is(r.status, 418);
  t.is(r.body, 'teapot');
});

test('weights 3:1:0 over 1200 requests; weight 0 is never chosen', async (t) => {
  const counts: Record<string, number> = { v1: 0, v2: 0, v3: 0 };
  const total = 1200;
  for (let i = 0; i < total; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, () => pod({ host: 'special.example', path: '/split' })));
    for (const b of batch) counts[b as string]++;
  }
  t.is(counts.v1 + counts.v2, total);
  t.is(counts.v3, 0);
  // Expected 900 / 300; binomial sd ≈ 15, so ±90 is a 6-sigma bound.
  t.true(Math.abs(counts.v1 - 900) < 90, JSON.stringify(counts));
  t.true(Math.abs(counts.v2 - 300) < 90, JSON.stringify(counts));
});

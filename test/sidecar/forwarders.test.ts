import test from 'ava';
import type { Forwarder } from '../../sidecar/upstream/forwarder.ts';
import { NodeHttpForwarder } from '../../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../../sidecar/upstream/undici-forwarder.ts';
import { startEchoServer } from '../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from './harness.ts';
import { closedPort } from '../helpers/run-weft.ts';

const engines: [string, () => Forwarder][] = [
  ['undici', () => new UndiciForwarder()],
  ['node:http', () => new NodeHttpForwarder()],
];

for (const [name, make] of engines) {
  test(`${name}: forwards method, path, headers and a streamed body; keeps connections alive`, async (t) => {
    const echo = await startEchoServer({ pod: 'e' });
    const p = await startTestProxy(
      edgeConfig({ clusters: { 'ns/e': cluster('ns/e', echo) }, routes: [route({ backends: to('ns/e') })] }),
      { forwarder: make() },
    );
    t.teardown(() => Promise.all([p.close(), echo.close()]));
    const big = 'x'.repeat(200_000); // above the replay limit: streamed
    const r = await send(p.port, { method: 'PUT', path: '/u?a=1', body: big, headers: { 'x-h': 'v' } });
    t.is(r.status, 200);
    const seen = r.json();
    t.is(seen.method, 'PUT');
    t.is(seen.path, '/u?a=1');
    t.is(seen.headers['x-h'], 'v');
    t.is(seen.body.length, big.length);
    for (let i = 0; i < 5; i++) t.is((await send(p.port, { path: `/k${i}` })).status, 200);
  });

  test(`${name}: refused connection → 503 and retried elsewhere; timeout → 504 with upstream aborted`, async (t) => {
    const echo = await startEchoServer({ pod: 'e' });
    const dead = await closedPort();
    const p = await startTestProxy(
      edgeConfig({
        clusters: {
          'ns/dead': { service: 'ns/dead', port: 80, endpoints: [{ address: '127.0.0.1', port: dead }] },
          'ns/e': cluster('ns/e', echo),
          'ns/mixed': {
            service: 'ns/mixed',
            port: 80,
            endpoints: [
              { address: '127.0.0.1', port: dead },
              { address: '127.0.0.1', port: echo.port },
            ],
          },
        },
        routes: [
          route({ match: { path: { type: 'Exact', value: '/dead' } }, backends: to('ns/dead') }),
          route({
            match: { path: { type: 'Exact', value: '/mixed' } },
            retry: { attempts: 1, backoff: 1 },
            backends: to('ns/mixed'),
          }),
          route({
            match: { path: { type: 'Exact', value: '/slow' } },
            timeouts: { request: 100 },
            backends: to('ns/e'),
          }),
        ],
      }),
      { forwarder: make() },
    );
    t.teardown(() => Promise.all([p.close(), echo.close()]));
    const dead503 = await send(p.port, { path: '/dead', method: 'POST', body: 'b' });
    t.is(dead503.status, 503);
    t.is(dead503.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_CONNECT');
    for (let i = 0; i < 10; i++) t.is((await send(p.port, { path: '/mixed' })).status, 200);
    const slow = await send(p.port, { path: '/slow', headers: { 'x-echo-delay-ms': '5000' } });
    t.is(slow.status, 504);
    await echo.waitForAborts(1);
  });
}

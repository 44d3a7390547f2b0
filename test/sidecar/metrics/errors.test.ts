// weft_proxy_request_errors_total against real sockets: each reason moves when its event happens — a refused
// connection, a request and a backendRequest timeout, no route, an unresolved backend, no endpoint, an upstream that
// resets mid-body, a malformed path — once per request, under the labels of the route and backend it took. (A client
// that leaves, client_abort, is in metrics.test.ts with the in-flight counts.)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ERROR_REASONS } from '../../../sidecar/metrics.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { type Sample, sampleValue, scrapeUrl } from '../../helpers/prometheus.ts';
import {
  cluster,
  edgeConfig,
  type RouteInput,
  rawStatus,
  route,
  send,
  sendRaw,
  startTestProxy,
  to,
} from '../harness.ts';

const LISTENER = 'ns/gw/web';

async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const prefix = (name: string, extra: Partial<RouteInput>): RouteInput =>
  route({ route: `ns/${name}`, match: { path: { type: 'PathPrefix', value: `/${name}` } }, ...extra });

test('errors by reason, under the route and backend the request took', async (t) => {
  const echo = await startEchoServer();
  // Sends the headers and part of the body, then resets the connection.
  const resetter = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
  const resetPort = (resetter.address() as AddressInfo).port;
  const endpoint = (port: number) => [{ address: '127.0.0.1', port }];
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/echo': cluster('ns/echo', echo),
        'ns/dead': { service: 'ns/dead', port: 80, endpoints: endpoint(await deadPort()) },
        'ns/reset': { service: 'ns/reset', port: 80, endpoints: endpoint(resetPort) },
        'ns/empty': { service: 'ns/empty', port: 80, endpoints: [] },
      },
      routes: [
        prefix('dead', { backends: to('ns/dead') }),
        prefix('slow', { backends: to('ns/echo'), timeouts: { request: 50 } }),
        prefix('attempt', { backends: to('ns/echo'), timeouts: { backendRequest: 50 } }),
        prefix('gone', { backends: [{ cluster: null, weight: 1 }] }),
        prefix('empty', { backends: to('ns/empty') }),
        prefix('reset', { backends: to('ns/reset') }),
        prefix('ok', { backends: to('ns/echo') }),
      ],
    }),
  );
  t.teardown(async () => {
    await p.close();
    await echo.close();
    resetter.closeAllConnections();
    await new Promise((r) => resetter.close(r));
  });

  t.is((await send(p.port, { path: '/dead' })).status, 503);
  t.is((await send(p.port, { path: '/slow', headers: { 'x-echo-delay-ms': '2000' } })).status, 504);
  t.is((await send(p.port, { path: '/attempt', headers: { 'x-echo-delay-ms': '2000' } })).status, 504);
  t.is((await send(p.port, { path: '/gone' })).status, 500);
  t.is((await send(p.port, { path: '/empty' })).status, 503);
  t.is((await send(p.port, { path: '/nowhere' })).status, 404);
  await t.throwsAsync(send(p.port, { path: '/reset' }));
  t.is((await send(p.port, { path: '/ok' })).status, 200);
  t.is(rawStatus(await sendRaw(p.port, 'GET /ok/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n')), 400);

  const scrape = () => scrapeUrl(`http://127.0.0.1:${p.adminPort}/metrics`);
  const errors = (s: Sample[]) => s.filter((x) => x.name === 'weft_proxy_request_errors_total');
  // The reset is counted when the client side closes, a moment after the client saw it.
  let samples = (await scrape()).samples;
  for (let i = 0; i < 100 && errors(samples).length < 9; i++) {
    await sleep(20);
    samples = (await scrape()).samples;
  }
  const { types } = await scrape();
  t.is(types.get('weft_proxy_request_errors_total'), 'counter');
  const err = (routeName: string, backend: string, reason: string) =>
    sampleValue(samples, 'weft_proxy_request_errors_total', {
      listener: LISTENER,
      route: routeName,
      rule: routeName === 'none' ? 'none' : '0',
      backend,
      reason,
    });
  t.is(err('ns/dead', 'ns/dead', 'connect_refused'), 1);
  t.is(err('ns/slow', 'ns/echo', 'request_timeout'), 1);
  t.is(err('ns/attempt', 'ns/echo', 'backend_timeout'), 1);
  t.is(err('ns/gone', 'none', 'backend_unresolved'), 1);
  t.is(err('ns/empty', 'ns/empty', 'no_healthy_endpoint'), 1);
  t.is(err('none', 'none', 'no_route'), 1);
  t.is(err('ns/reset', 'ns/reset', 'upstream_reset'), 1);
  t.is(err('none', 'none', 'malformed_request'), 1);
  // One series per failure, each counted once; the request that succeeded is in none of them.
  t.is(errors(samples).length, 8);
  t.false(errors(samples).some((s) => s.labels.route === 'ns/ok'));
  for (const s of errors(samples)) t.true(ERROR_REASONS.includes(s.labels.reason as never), s.labels.reason);
  // Requests and errors share their labels: an error rate is a division.
  t.is(
    sampleValue(samples, 'weft_proxy_requests_total', { route: 'ns/slow', backend: 'ns/echo', code_class: '5xx' }),
    1,
  );
});

// The proxy's /metrics: request totals and latency by listener, route, rule, backend and status
// class, in-flight counts, the proxy's own error answers, upstream connect errors and the config
// version — read from the admin port and parsed, as Prometheus would.
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { CODE_CLASSES, DURATION_BUCKETS, ProxyMetrics } from '../../../sidecar/metrics.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { parseExposition, sampleValue } from '../../helpers/prometheus.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from '../harness.ts';

const parse = parseExposition;

async function scrape(adminPort: number) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

const value = sampleValue;

test('routed requests are counted and timed by listener, route, rule, backend and status class', async (t) => {
  const echo = await startEchoServer({ pod: 'a' });
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/a': cluster('ns/a', echo) },
      routes: [
        route({
          route: 'ns/named',
          rule: 1,
          ruleName: 'api',
          match: { path: { type: 'PathPrefix', value: '/api' } },
          backends: to('ns/a'),
        }),
        route({
          route: 'ns/plain',
          rule: 0,
          match: { path: { type: 'PathPrefix', value: '/x' } },
          backends: to('ns/a'),
        }),
        route({
          route: 'ns/gone',
          rule: 0,
          match: { path: { type: 'PathPrefix', value: '/gone' } },
          backends: [{ cluster: null, weight: 1 }],
        }),
      ],
    }),
  );
  t.teardown(() => Promise.all([p.close(), echo.close()]));

  for (let i = 0; i < 3; i++) t.is((await send(p.port, { path: `/api/${i}` })).status, 200);
  t.is((await send(p.port, { path: '/x', headers: { 'x-echo-status': '503' } })).status, 503);
  t.is((await send(p.port, { path: '/gone' })).status, 500);
  t.is((await send(p.port, { path: '/nowhere/secret-path-123' })).status, 404);

  const { status, type, text } = await scrape(p.adminPort);
  t.is(status, 200);
  t.regex(type ?? '', /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parse(text);
  t.is(types.get('weft_proxy_requests_total'), 'counter');
  t.is(types.get('weft_proxy_request_duration_seconds'), 'histogram');
  t.is(types.get('weft_proxy_requests_in_flight'), 'gauge');

  const listener = 'ns/gw/web';
  const api = { listener, route: 'ns/named', rule: 'api', backend: 'ns/a' };
  t.is(value(samples, 'weft_proxy_requests_total', { ...api, code_class: '2xx' }), 3);
  t.is(value(samples, 'weft_proxy_requests_total', { listener, route: 'ns/plain', rule: '0', code_class: '5xx' }), 1);
  // The unresolved backendRef keeps its route's labels; its backend is `none`.
  t.is(
    value(samples, 'weft_proxy_requests_total', { route: 'ns/gone', rule: '0', backend: 'none', code_class: '5xx' }),
    1,
  );
  t.is(
    value(samples, 'weft_proxy_requests_total', { route: 'none', rule: 'none', backend: 'none', code_class: '4xx' }),
    1,
  );

  // The histogram: cumulative buckets ending in +Inf = count, for the same label set.
  const buckets = samples.filter(
    (s) => s.name === 'weft_proxy_request_duration_seconds_bucket' && s.labels.route === 'ns/named',
  );
  t.is(buckets.length, DURATION_BUCKETS.length + 1);
  t.is(buckets.at(-1)?.labels.le, '+Inf');
  t.is(buckets.at(-1)?.value, 3);
  for (let i = 1; i < buckets.length; i++) t.true(buckets[i].value >= buckets[i - 1].value);
  t.is(value(samples, 'weft_proxy_request_duration_seconds_count', { ...api, code_class: '2xx' }), 3);
  const sum = value(samples, 'weft_proxy_request_duration_seconds_sum', { ...api, code_class: '2xx' }) ?? 0;
  t.true(sum > 0 && sum < 30, `sum ${sum}`);

  t.is(value(samples, 'weft_proxy_requests_in_flight', { listener }), 0);
  t.is(value(samples, 'weft_proxy_local_replies_total', { code: '404', reason: 'WEFT_ERR_NO_ROUTE' }), 1);
  t.is(value(samples, 'weft_proxy_local_replies_total', { code: '500', reason: 'WEFT_ERR_BACKEND_UNRESOLVED' }), 1);
  // The backend's own 503 is not the proxy's answer.
  t.is(value(samples, 'weft_proxy_local_replies_total', { code: '503' }), undefined);

  // Label values come from the config, never from the request.
  t.false(text.includes('secret-path-123'));
  t.false(text.includes('/api/'));
  for (const s of samples)
    if (s.labels.code_class !== undefined) t.true(CODE_CLASSES.includes(s.labels.code_class as never));
});

test('in flight while forwarding, per listener and per route; a client gone before the status counts as code_class none and client_abort', async (t) => {
  let release: (() => void) | undefined;
  const backend = createServer((_req, res) => {
    release = () => res.end('late');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/slow': { service: 'ns/slow', port: 80, endpoints: [{ address: '127.0.0.1', port }] } },
      routes: [route({ backends: to('ns/slow') })],
    }),
  );
  t.teardown(async () => {
    await p.close();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
  });

  const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/', headers: { host: 'x' }, agent: false });
  req.on('error', () => {});
  req.end();
  while (release === undefined) await sleep(10);
  let samples = parse((await scrape(p.adminPort)).text).samples;
  const labels = { listener: 'ns/gw/web', route: 'ns/route', rule: '0', backend: 'ns/slow' };
  t.is(value(samples, 'weft_proxy_requests_in_flight', { listener: 'ns/gw/web' }), 1);
  t.is(value(samples, 'weft_proxy_route_requests_in_flight', labels), 1);
  t.is(value(samples, 'weft_proxy_request_errors_total', { reason: 'client_abort' }), undefined);

  req.destroy();
  for (let i = 0; i < 100; i++) {
    samples = parse((await scrape(p.adminPort)).text).samples;
    if (value(samples, 'weft_proxy_requests_in_flight', { listener: 'ns/gw/web' }) === 0) break;
    await sleep(20);
  }
  t.is(value(samples, 'weft_proxy_requests_in_flight', { listener: 'ns/gw/web' }), 0);
  t.is(value(samples, 'weft_proxy_route_requests_in_flight', labels), 0);
  t.is(value(samples, 'weft_proxy_requests_total', { route: 'ns/route', code_class: 'none' }), 1);
  t.is(value(samples, 'weft_proxy_request_errors_total', { ...labels, reason: 'client_abort' }), 1);
});

test('upstream connect errors by cluster; config version and updates', async (t) => {
  // A port nothing listens on.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const echo = await startEchoServer();
  const config = edgeConfig({
    clusters: {
      'ns/dead': { service: 'ns/dead', port: 80, endpoints: [{ address: '127.0.0.1', port: deadPort }] },
      'ns/ok': cluster('ns/ok', echo),
    },
    routes: [
      route({ route: 'ns/dead', match: { path: { type: 'PathPrefix', value: '/dead' } }, backends: to('ns/dead') }),
      route({ backends: to('ns/ok') }),
    ],
  });
  const p = await startTestProxy(config);
  t.teardown(() => Promise.all([p.close(), echo.close()]));

  t.is((await send(p.port, { path: '/dead' })).status, 503);
  let samples = parse((await scrape(p.adminPort)).text).samples;
  t.is(value(samples, 'weft_proxy_upstream_connect_errors_total', { cluster: 'ns/dead' }), 1);
  t.is(value(samples, 'weft_proxy_local_replies_total', { code: '503', reason: 'WEFT_ERR_UPSTREAM_CONNECT' }), 1);
  const first = samples.filter((s) => s.name === 'weft_proxy_config_version_info');
  t.is(first.length, 1);
  t.regex(first[0].labels.version, /^[0-9a-f]{64}$/);
  t.is(value(samples, 'weft_proxy_config_updates_total', { result: 'applied' }), 1);
  t.is(value(samples, 'weft_proxy_config_updates_total', { result: 'rejected' }), 0);

  await t.throwsAsync(p.proxy.update({ apiVersion: 'weft.dev/v1alpha1', proxy: 'bad' }));
  await p.proxy.update(config, 'v-2');
  samples = parse((await scrape(p.adminPort)).text).samples;
  const info = samples.filter((s) => s.name === 'weft_proxy_config_version_info');
  t.deepEqual(
    info.map((s) => [s.labels.version, s.value]),
    [['v-2', 1]],
  );
  t.is(value(samples, 'weft_proxy_config_updates_total', { result: 'applied' }), 2);
  t.is(value(samples, 'weft_proxy_config_updates_total', { result: 'rejected' }), 1);
  // Counts survive the config swap: same label set, same series.
  t.is(value(samples, 'weft_proxy_upstream_connect_errors_total', { cluster: 'ns/dead' }), 1);
  t.is(value(samples, 'weft_proxy_requests_total', { route: 'ns/dead', code_class: '5xx' }), 1);
});

test('two proxies in one process keep separate registries', async (t) => {
  const echo = await startEchoServer();
  const config = edgeConfig({ clusters: { 'ns/a': cluster('ns/a', echo) }, routes: [route({ backends: to('ns/a') })] });
  const a = await startTestProxy(config);
  const b = await startTestProxy(config);
  t.teardown(() => Promise.all([a.close(), b.close(), echo.close()]));
  await send(a.port);
  await send(a.port);
  await send(b.port);
  const sa = parse((await scrape(a.adminPort)).text).samples;
  const sb = parse((await scrape(b.adminPort)).text).samples;
  t.is(value(sa, 'weft_proxy_requests_total', { code_class: '2xx' }), 2);
  t.is(value(sb, 'weft_proxy_requests_total', { code_class: '2xx' }), 1);
});

test('series unit: code classes and bucket edges', async (t) => {
  const m = new ProxyMetrics();
  const s = m.requestSeries('l', 'r', '0', 'b');
  s.record(0, 0.00005);
  s.record(101, 0.0001); // on a bound: counted in that bucket (le is inclusive)
  s.record(204, 0.0002);
  s.record(302, 11);
  s.record(499, 1);
  s.record(599, 1);
  s.record(799, 1);
  const { samples } = parse(await m.text());
  const count = (cls: string) => value(samples, 'weft_proxy_requests_total', { code_class: cls });
  t.deepEqual(['none', '1xx', '2xx', '3xx', '4xx', '5xx', 'other'].map(count), [1, 1, 1, 1, 1, 1, 1]);
  const bucket = (cls: string, le: string) =>
    value(samples, 'weft_proxy_request_duration_seconds_bucket', { code_class: cls, le });
  t.is(bucket('1xx', '0.0001'), 1);
  t.is(bucket('2xx', '0.0001'), 0);
  t.is(bucket('2xx', '0.00025'), 1);
  t.is(bucket('3xx', '10'), 0);
  t.is(bucket('3xx', '+Inf'), 1);
});

test('requests no route leads to (inbound to the app) are counted with the app cluster as backend', async (t) => {
  const app = await startEchoServer({ pod: 'app' });
  const p = await startTestProxy({
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:ns/pod', mode: 'sidecar', namespace: 'ns', name: 'pod' },
    trust: { trustDomain: 'cluster.local' },
    listeners: [
      {
        kind: 'inbound',
        name: 'in',
        port: 15006,
        appAddress: '127.0.0.1',
        appPorts: [{ port: app.port }],
      },
    ],
    routeTables: {},
    clusters: {},
  });
  t.teardown(() => Promise.all([p.close(), app.close()]));
  const port = p.proxy.addresses.listeners.in.port;
  t.is((await send(port)).status, 200);
  t.is((await send(port)).status, 200);
  const { samples } = parse((await scrape(p.adminPort)).text);
  const labels = { listener: 'in', route: 'none', rule: 'none', backend: 'inbound:in', code_class: '2xx' };
  t.is(value(samples, 'weft_proxy_requests_total', labels), 2);
});

// Tracing through real proxies: edge → sidecar A (outbound) → sidecar B (mesh listener, mTLS) → echo app, every
// proxy exporting to one OTLP/HTTP receiver. One trace, the expected spans and parent links, the attributes, and the
// traceparent the app receives; B3 input; unsampled requests; retries and mirrors; a collector that is away.
import test from 'ava';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { OtlpReceiver, type ReceivedSpan, SPAN_KIND_CLIENT, SPAN_KIND_SERVER } from '../../helpers/otlp-receiver.ts';
import type { StartProxyOptions } from '../../../sidecar/proxy.ts';
import { readParent, tracesUrl } from '../../../sidecar/tracing.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from '../harness.ts';
import { mint, newCa, spiffe, startClientSidecar, startServerSidecar } from '../mesh/support.ts';

const ca = newCa();
const aCreds = mint(ca, 'a', 'a');
const bCreds = mint(ca, 'b', 'b');
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$/;

async function chain(t: import('ava').ExecutionContext, tracing: (name: string) => StartProxyOptions['tracing']) {
  const app = await startEchoServer({ pod: 'b-0' });
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds), tracing: tracing('b') });
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity: new StaticIdentity(aCreds),
    tracing: tracing('a'),
  });
  const edge = await startTestProxy(
    edgeConfig({
      routes: [route({ route: 'ns/web', rule: 0, backends: to('sidecar-a') })],
      clusters: {
        'sidecar-a': { service: 'a/a', port: 80, endpoints: [{ address: '127.0.0.1', port: a.port, pod: 'a/a-0' }] },
      },
    }),
    { mode: 'edge', tracing: tracing('edge') },
  );
  t.teardown(() => Promise.all([edge.close(), a.close(), b.close(), app.close()]));
  return { app, a, b, edge };
}

const byId = (spans: ReceivedSpan[]) => new Map(spans.map((s) => [s.spanId, s]));

test('edge → sidecar → sidecar: one trace of six spans, chained, with HTTP and weft attributes; the app gets its traceparent', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  const { app, edge } = await chain(t, (name) => ({
    endpoint: rx.url,
    serviceName: name,
    scheduledDelayMs: 50,
  }));
  const r = await send(edge.port, { host: 'echo.b', path: '/hello?x=1', headers: { 'user-agent': 'tracing-test' } });
  t.is(r.status, 200, r.body);
  const seen = app.requests[0].headers.traceparent;
  const m = TRACEPARENT.exec(seen ?? '');
  t.truthy(m, seen);
  const traceId = m![1];
  t.is(m![3], '1');
  await rx.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= 6);
  const spans = rx.trace(traceId);
  t.is(spans.length, 6);
  const ids = byId(spans);
  const roots = spans.filter((s) => s.parentSpanId === '');
  t.is(roots.length, 1);
  // Walk from the root: server → client → server → client → server → client.
  const order: ReceivedSpan[] = [roots[0]];
  for (;;) {
    const next = spans.filter((s) => s.parentSpanId === order[order.length - 1].spanId);
    if (next.length === 0) break;
    t.is(next.length, 1);
    order.push(next[0]);
  }
  t.deepEqual(
    order.map((s) => [s.resource['service.name'], s.kind]),
    [
      ['edge', SPAN_KIND_SERVER],
      ['edge', SPAN_KIND_CLIENT],
      ['a', SPAN_KIND_SERVER],
      ['a', SPAN_KIND_CLIENT],
      ['b', SPAN_KIND_SERVER],
      ['b', SPAN_KIND_CLIENT],
    ],
  );
  // The app's traceparent names B's client span as its parent.
  t.is(m![2], order[5].spanId);
  for (const s of spans) t.true(ids.has(s.parentSpanId) || s.parentSpanId === '');
  // Wall-clock times in nanoseconds, each span inside its parent.
  for (const s of spans) {
    t.true(Math.abs(Number(BigInt(s.startTimeUnixNano) / 1_000_000n) - Date.now()) < 60_000, s.startTimeUnixNano);
    t.true(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    const parent = ids.get(s.parentSpanId);
    if (parent !== undefined) t.true(BigInt(s.startTimeUnixNano) >= BigInt(parent.startTimeUnixNano));
  }

  const [edgeServer, edgeClient, aServer, aClient, bServer, bClient] = order;
  t.is(edgeServer.name, 'GET ns/web');
  t.like(edgeServer.attributes, {
    'http.request.method': 'GET',
    'url.path': '/hello',
    'url.scheme': 'http',
    'server.address': 'echo.b',
    'http.response.status_code': 200,
    'user_agent.original': 'tracing-test',
    'weft.route': 'ns/web',
    'weft.rule': edgeServer.attributes['weft.rule'],
    'weft.proxy.id': 'edge:ns/gw',
    'weft.listener.kind': 'gateway',
    // Gateway API names: the Gateway and its listener the Host selected.
    'weft.gateway': 'ns/gw',
    'weft.gateway.listener': 'web',
  });
  t.truthy(edgeServer.attributes['weft.backend']);
  t.like(edgeClient.attributes, {
    'http.request.method': 'GET',
    'server.address': '127.0.0.1',
    'http.response.status_code': 200,
    'weft.route': 'ns/web',
    'weft.proxy.id': 'edge:ns/gw',
    'weft.backend': 'sidecar-a',
    'weft.backend.service': 'a/a',
    'weft.endpoint.pod': 'a/a-0',
  });
  t.regex(String(edgeClient.attributes['weft.endpoint']), /^127\.0\.0\.1:\d+$/);
  t.is(aServer.name, 'GET b/echo');
  t.like(aServer.attributes, {
    'weft.listener.kind': 'outbound',
    'weft.service': 'b/echo',
    'weft.route': 'b/echo',
    'weft.proxy.id': 'sidecar:a/a-0',
  });
  // A's attempt goes over mTLS to B, whose identity it expects.
  t.like(aClient.attributes, { 'weft.peer.identity': spiffe('b', 'b'), 'http.response.status_code': 200 });
  t.regex(String(aClient.attributes['url.full']), /^https:\/\/127\.0\.0\.1:\d+\/hello\?x=1$/);
  // B's server span carries the caller's verified identity.
  t.like(bServer.attributes, {
    'weft.listener.kind': 'mesh',
    'weft.peer.identity': spiffe('a', 'a'),
    'weft.proxy.id': 'sidecar:b/b-0',
  });
  t.like(bClient.attributes, { 'weft.endpoint': `127.0.0.1:${app.port}`, 'http.response.status_code': 200 });
  for (const s of spans) t.false('weft.retry' in s.attributes || 'weft.mirror' in s.attributes);
});

test('an incoming W3C traceparent is continued; tracestate reaches the app', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  const { app, edge } = await chain(t, (name) => ({ endpoint: rx.url, serviceName: name, scheduledDelayMs: 50 }));
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const r = await send(edge.port, {
    host: 'echo.b',
    headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=x' },
  });
  t.is(r.status, 200);
  const m = TRACEPARENT.exec(app.requests[0].headers.traceparent ?? '');
  t.is(m?.[1], traceId);
  t.is(app.requests[0].headers.tracestate, 'vendor=x');
  await rx.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= 6);
  const root = rx.trace(traceId).find((s) => s.resource['service.name'] === 'edge' && s.kind === SPAN_KIND_SERVER);
  t.is(root?.parentSpanId, '00f067aa0ba902b7');
});

for (const [name, headers, traceId, parent] of [
  [
    'B3 single',
    { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90' },
    '80f198ee56343ba864fe8b2a57d3eff7',
    'e457b5a2e4d86bd1',
  ],
  [
    'B3 multi (64-bit trace id)',
    { 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-sampled': '1' },
    '0000000000000000a3ce929d0e0e4736',
    '00f067aa0ba902b7',
  ],
] as const) {
  test(`${name} input continues the trace, and the app gets W3C in place of B3`, async (t) => {
    const rx = await OtlpReceiver.start();
    t.teardown(() => rx.close());
    const { app, edge } = await chain(t, (n) => ({ endpoint: rx.url, serviceName: n, scheduledDelayMs: 50 }));
    const r = await send(edge.port, { host: 'echo.b', headers });
    t.is(r.status, 200);
    const got = app.requests[0].headers;
    t.is(TRACEPARENT.exec(got.traceparent ?? '')?.[1], traceId);
    t.false('b3' in got || 'x-b3-traceid' in got);
    await rx.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= 6);
    const root = rx.trace(traceId).find((s) => s.resource['service.name'] === 'edge' && s.kind === SPAN_KIND_SERVER);
    t.is(root?.parentSpanId, parent);
  });
}

test('unsampled requests make no span anywhere but still carry a context to the app', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  // The edge starts traces at ratio 0; the sidecars would sample everything they start, so they must obey the edge.
  const { app, edge, a, b } = await chain(t, (n) => ({
    endpoint: rx.url,
    serviceName: n,
    sampleRatio: n === 'edge' ? 0 : 1,
    scheduledDelayMs: 50,
  }));
  const r1 = await send(edge.port, { host: 'echo.b' });
  t.is(r1.status, 200);
  const m = TRACEPARENT.exec(app.requests[0].headers.traceparent ?? '');
  t.truthy(m);
  t.is(m![3], '0');
  // A caller's unsampled context is passed on as it is.
  const given = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
  await send(edge.port, { host: 'echo.b', headers: { traceparent: given } });
  t.is(app.requests[1].headers.traceparent, given);
  await send(edge.port, { host: 'echo.b', headers: { b3: '0' } });
  t.is(TRACEPARENT.exec(app.requests[2].headers.traceparent ?? '')?.[3], '0');
  await Promise.all([edge.proxy.tracing!.flush(), a.proxy.tracing!.flush(), b.proxy.tracing!.flush()]);
  t.is(rx.spans.length, 0);
  // A sampled one through the same proxies does arrive (the receiver was reachable all along).
  await send(edge.port, {
    host: 'echo.b',
    headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-01' },
  });
  await rx.waitFor((s) => s.length >= 6);
  t.is(rx.spans.length, 6);
});

test('retries and mirrors get their own client spans, marked', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  const backend = await startEchoServer({ pod: 'main' });
  const shadow = await startEchoServer({ pod: 'shadow' });
  const edge = await startTestProxy(
    edgeConfig({
      routes: [
        route({
          route: 'ns/retry',
          backends: to('main'),
          retry: { attempts: 2, codes: [503], backoff: 1 },
          filters: { mirrors: [{ cluster: 'shadow', percent: 100 }] },
        }),
      ],
      clusters: { main: cluster('ns/main', backend), shadow: cluster('ns/shadow', shadow) },
    }),
    { mode: 'edge', tracing: { endpoint: rx.url, scheduledDelayMs: 50 } },
  );
  t.teardown(() => Promise.all([edge.close(), backend.close(), shadow.close()]));
  const r = await send(edge.port, { host: 'x', headers: { 'x-echo-status': '503' } });
  t.is(r.status, 503);
  await shadow.waitForRequests(1);
  await rx.waitFor((s) => s.length >= 5);
  const server = rx.spans.find((s) => s.kind === SPAN_KIND_SERVER)!;
  t.is(server.statusCode, 2); // ERROR: the client got a 503
  const clients = rx.spans.filter((s) => s.kind === SPAN_KIND_CLIENT);
  for (const c of clients) t.is(c.parentSpanId, server.spanId);
  const attempts = clients.filter((c) => c.attributes['weft.mirror'] !== true);
  t.deepEqual(attempts.map((c) => c.attributes['http.request.resend_count'] ?? 0).sort(), [0, 1, 2]);
  t.is(attempts.filter((c) => c.attributes['weft.retry'] === true).length, 2);
  const mirrors = clients.filter((c) => c.attributes['weft.mirror'] === true);
  t.is(mirrors.length, 1);
  // The mirror's span names the mirror's backend, not the route's.
  t.like(mirrors[0].attributes, { 'weft.backend': 'shadow', 'weft.backend.service': 'ns/shadow' });
  for (const a of attempts) t.like(a.attributes, { 'weft.backend': 'main', 'weft.route': 'ns/retry' });
  // Each attempt told its backend its own span id.
  const sent = backend.requests.map((q) => TRACEPARENT.exec(q.headers.traceparent)?.[2]).sort();
  t.deepEqual(sent, attempts.map((c) => c.spanId).sort());
  t.is(TRACEPARENT.exec(shadow.requests[0].headers.traceparent)?.[2], mirrors[0].spanId);
});

test('a collector that is away fails no request; the spans it missed are counted as dropped', async (t) => {
  const gone = await OtlpReceiver.start();
  const url = gone.url;
  await gone.close();
  const { edge, app } = await chain(t, () => ({
    endpoint: url,
    scheduledDelayMs: 20,
    maxQueueSize: 4,
    exportTimeoutMs: 500,
  }));
  for (let i = 0; i < 20; i++) {
    const r = await send(edge.port, { host: 'echo.b' });
    t.is(r.status, 200);
  }
  // Once spans were lost, sampled requests are shed (not recorded) for a while; they still carry a context.
  await edge.proxy.tracing!.flush();
  const before = app.requests.length;
  for (let i = 0; i < 5; i++) t.is((await send(edge.port, { host: 'echo.b' })).status, 200);
  for (const q of app.requests.slice(before)) t.regex(q.headers.traceparent ?? '', TRACEPARENT);
  t.regex(await edge.proxy.metrics.text(), /^weft_proxy_trace_requests_shed_total [1-9]/m);
  await edge.proxy.tracing!.flush();
  const text = await edge.proxy.metrics.text();
  const dropped = [...text.matchAll(/^weft_proxy_trace_spans_dropped_total\{reason="(\w+)"\} (\d+)/gm)];
  const total = dropped.reduce((n, d) => n + Number(d[2]), 0);
  t.true(total > 0, text);
  t.regex(text, /weft_proxy_trace_spans_exported_total 0/);
  const failures = /^weft_proxy_trace_export_failures_total (\d+)/m.exec(text);
  t.true(Number(failures?.[1]) > 0, text);
});

test('trace context parsing: invalid traceparent falls back to B3; all-zero ids are ignored', (t) => {
  const p = { traceId: '', spanId: '', sampled: undefined as boolean | undefined, w3c: false, b3: false };
  readParent({ traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', b3: '1' }, p);
  t.like(p, { traceId: '', sampled: true, w3c: false, b3: true });
  readParent({ traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future' }, p);
  t.like(p, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', sampled: false, w3c: true });
  readParent({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra' }, p);
  t.like(p, { traceId: '', w3c: false });
  readParent({ 'x-b3-flags': '1' }, p);
  t.like(p, { sampled: true, b3: true, traceId: '' });
  readParent({}, p);
  t.like(p, { sampled: undefined, w3c: false, b3: false });
  t.is(tracesUrl('http://jaeger:4318'), 'http://jaeger:4318/v1/traces');
  t.is(tracesUrl('http://c:4318/v1/traces'), 'http://c:4318/v1/traces');
});

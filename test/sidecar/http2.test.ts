// Cleartext HTTP/2 with prior knowledge on a Gateway's plain listener, beside HTTP/1.1 on the
// same port: the same routing, filters, metrics and error answers; pseudo-headers never reach a
// backend; malformed HTTP/2 requests are refused before routing; drains send GOAWAY.
import { createServer } from 'node:http';
import { constants } from 'node:http2';
import { type AddressInfo, connect as netConnect } from 'node:net';
import test from 'ava';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { OtlpReceiver, type ReceivedSpan, SPAN_KIND_SERVER } from '../helpers/otlp-receiver.ts';
import { parseExposition, sampleValue } from '../helpers/prometheus.ts';
import {
  BASE_FIELDS,
  Flag,
  FrameType,
  frame,
  headerBlock,
  once,
  openSession,
  rawHttp2,
  request,
} from './http2-client.ts';
import { cluster, edgeConfig, rawStatus, route, send, sendRaw, startTestProxy, type TestProxy, to } from './harness.ts';

let a: EchoServer;
let b: EchoServer;
let p: TestProxy;
const warnings: string[] = [];
const onWarning = (w: Error) => warnings.push(w.message);

test.before(async () => {
  process.on('warning', onWarning);
  a = await startEchoServer({ pod: 'a' });
  b = await startEchoServer({ pod: 'b' });
  p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/a': cluster('ns/a', a), 'ns/b': cluster('ns/b', b) },
      routes: [
        route({
          route: 'ns/redirect',
          match: { path: { type: 'Exact', value: '/old' } },
          filters: { redirect: { statusCode: 301, path: { type: 'ReplaceFullPath', value: '/new' } } },
        }),
        route({
          route: 'ns/direct',
          match: { path: { type: 'Exact', value: '/direct' } },
          directResponse: { status: 203, body: 'direct' },
        }),
        route({
          route: 'ns/blue',
          match: {
            path: { type: 'PathPrefix', value: '/app' },
            headers: [{ type: 'Exact', name: 'x-team', value: 'blue' }],
          },
          backends: to('ns/b'),
          filters: { requestHeaders: { add: [{ name: 'x-added', value: 'by-route' }] } },
        }),
        route({ route: 'ns/app', match: { path: { type: 'PathPrefix', value: '/app' } }, backends: to('ns/a') }),
      ],
    }),
    { limits: { maxHeadersCount: 20 } },
  );
});

test.after.always(async () => {
  process.off('warning', onWarning);
  await p?.close();
  await Promise.all([a?.close(), b?.close()]);
});

test.after('no answer tried to set an HTTP/1.1 connection header on an HTTP/2 response', (t) => {
  t.deepEqual(
    warnings.filter((w) => /connection header/i.test(w)),
    [],
  );
});

const h2c = () => ({ port: p.port });

test('h2c with prior knowledge is routed like HTTP/1.1: matches, filters, Host from :authority', async (t) => {
  const plain = await once(h2c(), { ':path': '/app/x?q=1', ':authority': 'shop.example:8080' });
  t.is(plain.status, 200, plain.body);
  const seenA = JSON.parse(plain.body);
  t.is(seenA.pod, 'a');
  t.is(seenA.path, '/app/x?q=1');
  t.is(seenA.host, 'shop.example:8080');
  t.is(seenA.headers['x-forwarded-proto'], 'http');

  const blue = await once(h2c(), {
    ':path': '/app/y',
    'x-team': 'blue',
    cookie: ['a=1', 'b=2'],
    'x-multi': ['1', '2'],
  });
  t.is(blue.status, 200, blue.body);
  const seenB = JSON.parse(blue.body);
  t.is(seenB.pod, 'b');
  t.is(seenB.headers['x-added'], 'by-route');
  // Cookie crumbs are one field again for an HTTP/1.1 hop (RFC 9113 §8.2.3); other repeats stay lines.
  t.is(seenB.headers.cookie, 'a=1; b=2');
  t.is(seenB.headers['x-multi'], '1,2');
  for (const name of Object.keys(seenB.headers)) t.false(name.startsWith(':'), name);
});

test('a request body reaches the backend with and without Content-Length', async (t) => {
  const session = await openSession(h2c());
  t.teardown(() => session.close());
  const sized = await request(session, { ':method': 'POST', ':path': '/app/sized', 'content-length': '5' }, 'hello');
  t.is(sized.status, 200);
  t.is(JSON.parse(sized.body).body, 'hello');
  // node:http2 sends no Content-Length of its own: the length is known only at the end.
  const streamed = await request(session, { ':method': 'POST', ':path': '/app/streamed' }, 'streamed body');
  t.is(streamed.status, 200);
  const seen = JSON.parse(streamed.body);
  t.is(seen.body, 'streamed body');
  t.is(seen.headers['transfer-encoding'], 'chunked');
});

test('local answers are the same as over HTTP/1.1: redirect, direct response, 404 with the error code', async (t) => {
  const session = await openSession(h2c());
  t.teardown(() => session.close());
  const moved = await request(session, { ':path': '/old' });
  t.is(moved.status, 301);
  t.is(moved.headers.location, 'http://example.com:8080/new');
  const direct = await request(session, { ':path': '/direct' });
  t.is(direct.status, 203);
  t.is(direct.body, 'direct');
  const none = await request(session, { ':path': '/nothing-here' });
  t.is(none.status, 404);
  t.is(none.headers['x-weft-error'], 'WEFT_ERR_NO_ROUTE');
  t.is(none.headers.connection, undefined);
  const h1 = await send(p.port, { path: '/old' });
  t.is(h1.headers.location, moved.headers.location);
});

test('HTTP/2 requests are counted under their route like HTTP/1.1 ones', async (t) => {
  const session = await openSession(h2c());
  t.teardown(() => session.close());
  for (let i = 0; i < 3; i++) t.is((await request(session, { ':path': '/direct' })).status, 203);
  const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
  const { samples } = parseExposition(text);
  t.true((sampleValue(samples, 'weft_proxy_requests_total', { route: 'ns/direct', code_class: '2xx' }) ?? 0) >= 3);
});

test('HTTP/2 requests are traced like HTTP/1.1 ones: the parent continued, the hop a span', async (t) => {
  const receiver = await OtlpReceiver.start();
  const own = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/a': cluster('ns/a', a) },
      routes: [route({ route: 'ns/traced', backends: to('ns/a') })],
    }),
    { tracing: { endpoint: receiver.url, scheduledDelayMs: 50 } },
  );
  t.teardown(() => Promise.all([own.close(), receiver.close()]));
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const r = await once({ port: own.port }, { ':path': '/traced', traceparent: `00-${traceId}-b7ad6b7169203331-01` });
  t.is(r.status, 200);
  t.regex(JSON.parse(r.body).headers.traceparent, new RegExp(`^00-${traceId}-`));
  let server: ReceivedSpan | undefined;
  await receiver.waitFor((spans) => {
    server = spans.find((s) => s.traceId === traceId && s.kind === SPAN_KIND_SERVER);
    return server !== undefined;
  });
  t.is(server?.attributes['network.protocol.version'], '2.0');
  t.is(server?.attributes['weft.route'], 'ns/traced');
});

test('HTTP/1.1 and HTTP/2 share the port, one connection of each at the same time', async (t) => {
  const session = await openSession(h2c());
  t.teardown(() => session.close());
  const [h2, h1] = await Promise.all([request(session, { ':path': '/app/h2' }), send(p.port, { path: '/app/h1' })]);
  t.is(h2.status, 200);
  t.is(h1.status, 200);
  t.is(JSON.parse(h1.body).path, '/app/h1');
  // Pipelined HTTP/1.1 requests in the first packet, and methods starting like the preface.
  const pipelined = await sendRaw(
    p.port,
    'GET /app/1 HTTP/1.1\r\nHost: x\r\n\r\nPUT /app/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokPOST /app/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  );
  t.is(pipelined.match(/HTTP\/1\.1 200 /g)?.length, 3, pipelined);
});

test('an HTTP/1.1 request whose first byte arrives alone is still HTTP/1.1', async (t) => {
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = netConnect(p.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.write('P', () => {
      // A separate segment: the sniffer must wait for the second byte to tell "PRI" from "POST".
      setTimeout(
        () => socket.write('OST /app/split HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
        50,
      );
    });
  });
  t.is(rawStatus(answer), 200, answer);
});

test('a Host header that differs from :authority is refused before routing', async (t) => {
  const r = await once(h2c(), { ':path': '/app/confused', ':authority': 'confused.example', host: 'evil.example' });
  t.is(r.status, 400);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_BAD_REQUEST');
  t.deepEqual([...reached('confused.example'), ...reached('evil.example')], []);
  // The same name in both is fine.
  t.is(
    (await once(h2c(), { ':path': '/app/agree', ':authority': 'agree.example', host: 'AGREE.example' })).status,
    200,
  );
  t.is(reached('agree.example').length, 1);
});

test('CONNECT, too many headers and too many header bytes get 4xx answers', async (t) => {
  const connect = await once(h2c(), { ':method': 'CONNECT', ':authority': 'backend.internal:22', ':path': undefined });
  t.is(connect.status, 405);
  t.is(connect.headers['x-weft-error'], 'WEFT_ERR_BAD_REQUEST');
  const many: Record<string, string> = {};
  for (let i = 0; i < 21; i++) many[`x-h${i}`] = 'v';
  const tooMany = await once(h2c(), { ':path': '/app/many', ...many });
  t.is(tooMany.status, 431);
  t.is(tooMany.headers['x-weft-error'], 'WEFT_ERR_HEADERS_TOO_LARGE');
  // Header bytes over the limit (16 KiB by default), on a connection's first request too.
  const tooLarge = await once(h2c(), { ':path': '/app/large', 'x-big': 'a'.repeat(17 * 1024) });
  t.is(tooLarge.status, 431);
  t.is(tooLarge.headers['x-weft-error'], 'WEFT_ERR_HEADERS_TOO_LARGE');
});

/** The fields of a GET to /app at `authority`, with `extra` after them. */
function fields(authority: string, extra: [string, string][] = [], without?: string): [string, string][] {
  const base: [string, string][] = BASE_FIELDS.map(([n, v]) =>
    n === ':authority' ? [n, authority] : n === ':path' ? [n, '/app/raw'] : [n, v],
  );
  return [...base.filter(([n]) => n !== without), ...extra];
}

const headers = (block: [string, string][], flags = Flag.END_HEADERS | Flag.END_STREAM) =>
  frame(FrameType.HEADERS, flags, 1, headerBlock(block));

/** Raw requests node:http2 would not send, each under its own authority: reset or refused, never forwarded. */
const malformed: [string, (authority: string) => Buffer[]][] = [
  ['a connection-specific header', (h) => [headers(fields(h, [['connection', 'close']]))]],
  ['transfer-encoding', (h) => [headers(fields(h, [['transfer-encoding', 'chunked']]))]],
  ['te other than trailers', (h) => [headers(fields(h, [['te', 'gzip']]))]],
  ['an upper-case header name', (h) => [headers(fields(h, [['X-Upper', 'v']]))]],
  ['a pseudo-header after a regular one', (h) => [headers([['x-a', '1'], ...fields(h)])]],
  ['an unknown pseudo-header', (h) => [headers(fields(h, [[':internal', '1']]))]],
  ['no :path', (h) => [headers(fields(h, [], ':path'))]],
  ['a :path not starting with /', (h) => [headers(fields(h, [[':path', 'http://evil/app']], ':path'))]],
  ['two :path', (h) => [headers(fields(h, [[':path', '/app/second']]))]],
  [
    'a body longer than its Content-Length',
    (h) => [
      headers(
        fields(h, [['content-length', '2']]).map(([n, v]): [string, string] =>
          n === ':method' ? [n, 'POST'] : [n, v],
        ),
        Flag.END_HEADERS,
      ),
      frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('longer')),
    ],
  ],
];

const reached = (authority: string) => [...a.requests, ...b.requests].filter((r) => r.host === authority);

malformed.forEach(([what, frames], i) => {
  test(`malformed HTTP/2: ${what} → reset, nothing forwarded`, async (t) => {
    const authority = `malformed-${i}.example`;
    const got = await rawHttp2(p.port, frames(authority));
    const answered = got.some((f) => f.stream === 1 && f.type === FrameType.HEADERS);
    const reset = got.some((f) => f.stream === 1 && f.type === FrameType.RST_STREAM);
    const away = got.some((f) => f.type === FrameType.GOAWAY);
    t.true(reset || away, `frames: ${got.map((f) => `${f.type}/${f.stream}`).join(' ')}`);
    t.false(answered);
    t.deepEqual(reached(authority), []);
  });
});

test('a header value with CR, LF or NUL is dropped by nghttp2: nothing smuggled to the backend', async (t) => {
  const values = ['a\r\nx-injected: 1', 'a\nx-injected: 1', 'a\0b'];
  for (const [i, value] of values.entries()) {
    const authority = `smuggle-${i}.example`;
    await rawHttp2(p.port, [headers(fields(authority, [['x-smuggle', value]]))]);
    const seen = reached(authority);
    t.true(seen.length <= 1);
    for (const r of seen) {
      t.false('x-smuggle' in r.headers);
      t.false('x-injected' in r.headers);
    }
  }
});

test('a well-formed raw request gets an answer (the raw client works)', async (t) => {
  const got = await rawHttp2(p.port, [headers(fields('raw-ok.example'))]);
  t.true(got.some((f) => f.stream === 1 && f.type === FrameType.HEADERS));
  t.is(reached('raw-ok.example').length, 1);
});

test('a connection that sends nothing, or half a preface, is closed at the header timeout', async (t) => {
  const quick = await startTestProxy(edgeConfig({ routes: [route({ directResponse: { status: 200 } })] }), {
    limits: { headersTimeoutMs: 200 },
  });
  t.teardown(() => quick.close());
  for (const first of ['', 'PRI * HTTP/2.0\r\n']) {
    const closed = await new Promise<boolean>((resolve) => {
      const socket = netConnect(quick.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('close', () => resolve(true));
      if (first !== '') socket.write(first);
    });
    t.true(closed, JSON.stringify(first));
  }
});

for (const how of ['resets its stream', 'closes its connection'] as const) {
  test(`a client that ${how} mid-request has the backend request cut`, async (t) => {
    const slow = await startEchoServer({ pod: 'slow' });
    const own = await startTestProxy(
      edgeConfig({ clusters: { 'ns/slow': cluster('ns/slow', slow) }, routes: [route({ backends: to('ns/slow') })] }),
    );
    t.teardown(() => Promise.all([own.close(), slow.close()]));
    const session = await openSession({ port: own.port });
    t.teardown(() => session.destroy());
    const stream = session.request({ ':path': '/leaving', ':authority': 'example.com', 'x-echo-delay-ms': '5000' });
    stream.on('error', () => {});
    stream.end();
    await slow.waitForRequests(1);
    if (how === 'resets its stream') stream.close(constants.NGHTTP2_CANCEL);
    else session.destroy();
    await slow.waitForAborts(1);
    t.is(slow.aborted[0]?.path, '/leaving');
  });
}

test('a request body that does not all arrive in time gets 408, and the exchange with the backend is cut', async (t) => {
  let backendSawClose!: () => void;
  const closed = new Promise<void>((resolve) => {
    backendSawClose = resolve;
  });
  // A backend that reads the body and never answers: only the proxy's deadline can end the request.
  const backend = createServer((req) => {
    req.resume();
    req.socket.once('close', () => backendSawClose());
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const own = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/slow': {
          service: 'ns/slow',
          port: 80,
          endpoints: [{ address: '127.0.0.1', port: (backend.address() as AddressInfo).port }],
        },
      },
      routes: [route({ backends: to('ns/slow') })],
    }),
    { limits: { requestTimeoutMs: 300, headersTimeoutMs: 300 } },
  );
  t.teardown(async () => {
    await own.close();
    backend.closeAllConnections();
    backend.close();
  });
  const session = await openSession({ port: own.port });
  t.teardown(() => session.destroy());
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': 'example.com' });
    stream.on('response', (h) => resolve(Number(h[':status'])));
    stream.on('error', reject);
    stream.write('part of a body that never ends');
  });
  t.is(status, 408);
  await closed;
});

test('a drain tells HTTP/2 clients GOAWAY and finishes without cutting them', async (t) => {
  const echo = await startEchoServer({ pod: 'drained' });
  const own = await startTestProxy(
    edgeConfig({ clusters: { 'ns/e': cluster('ns/e', echo) }, routes: [route({ backends: to('ns/e') })] }),
  );
  t.teardown(() => Promise.all([own.close(), echo.close()]));
  const session = await openSession({ port: own.port });
  t.is((await request(session, { ':path': '/before' })).status, 200);
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
  // A long timeout: a drain that did not close the idle HTTP/2 connection would hang the test.
  await own.proxy.drain({ timeoutMs: 60_000 });
  await goaway;
  t.pass();
});

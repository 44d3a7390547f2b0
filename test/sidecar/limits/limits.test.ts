// The config's `limits`: validated, defaulted to what the proxy enforced before, and enforced —
// 413 for bodies over maxRequestBodyBytes (up front on Content-Length, never reaching the backend;
// counted as a chunked body streams), 431 for header count and bytes, changed by a config update.
import { createServer, type IncomingMessage, request as httpRequest } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ProxyConfigInput } from '../../../sidecar/config/proxy-config.ts';
import { DEFAULT_LIMITS, validateProxyConfig } from '../../../sidecar/config/index.ts';
import { DEFAULT_SERVER_LIMITS } from '../../../sidecar/listeners/listener-server.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { cluster, edgeConfig, rawStatus, route, send, sendRaw, startTestProxy, to } from '../harness.ts';

function withLimits(config: ProxyConfigInput, limits: ProxyConfigInput['limits']): ProxyConfigInput {
  return { ...config, limits };
}

test('limits: optional, defaults equal to what the proxy enforced before, validated', (t) => {
  t.deepEqual(DEFAULT_LIMITS, {
    maxRequestBodyBytes: 0,
    maxRequestHeaderBytes: DEFAULT_SERVER_LIMITS.maxHeaderSize,
    maxRequestHeaders: DEFAULT_SERVER_LIMITS.maxHeadersCount,
  });
  const base = edgeConfig({ routes: [] });
  const without = validateProxyConfig(base);
  t.true(without.ok);
  if (without.ok) t.is(without.config.limits, undefined);
  const partial = validateProxyConfig(withLimits(base, { maxRequestBodyBytes: 1000 }));
  t.true(partial.ok);
  if (partial.ok) t.deepEqual(partial.config.limits, { ...DEFAULT_LIMITS, maxRequestBodyBytes: 1000 });

  const bad = validateProxyConfig({
    ...base,
    limits: { maxRequestBodyBytes: -1, maxRequestHeaderBytes: 100, maxRequestHeaders: 1.5, maxBody: 3 },
  });
  t.false(bad.ok);
  if (!bad.ok) {
    t.deepEqual(bad.issues.map((i) => i.path).sort(), [
      'limits.maxBody',
      'limits.maxRequestBodyBytes',
      'limits.maxRequestHeaderBytes',
      'limits.maxRequestHeaders',
    ]);
  }
});

async function echoProxy(limits: ProxyConfigInput['limits']) {
  const echo = await startEchoServer();
  const config = withLimits(
    edgeConfig({ clusters: { 'ns/e': cluster('ns/e', echo) }, routes: [route({ backends: to('ns/e') })] }),
    limits,
  );
  const p = await startTestProxy(config);
  return { echo, p, config, close: () => Promise.all([p.close(), echo.close()]) };
}

test('a Content-Length over maxRequestBodyBytes → 413 before anything reaches the backend', async (t) => {
  const { echo, p, close } = await echoProxy({ maxRequestBodyBytes: 100 });
  t.teardown(close);
  const over = await send(p.port, { method: 'POST', path: '/', body: 'x'.repeat(101) });
  t.is(over.status, 413);
  t.is(over.headers['x-weft-error'], 'WEFT_ERR_BODY_TOO_LARGE');
  t.is(over.headers.connection, 'close');
  const exact = await send(p.port, { method: 'POST', path: '/', body: 'x'.repeat(100) });
  t.is(exact.status, 200);
  t.is(exact.json().body.length, 100);
  t.is(echo.requests.length, 1);
});

test('Expect: 100-continue: no go-ahead for a body over the limit, one for a body within it', async (t) => {
  const { echo, p, close } = await echoProxy({ maxRequestBodyBytes: 100 });
  t.teardown(close);
  const refused = await sendRaw(
    p.port,
    'POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n',
    2_000,
  );
  t.is(rawStatus(refused), 413);
  t.false(refused.includes('100 Continue'));

  // Within the limit: 100 Continue, then the body is sent and forwarded.
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(p.port, '127.0.0.1');
    let text = '';
    let sent = false;
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (!sent && text.includes('100 Continue\r\n\r\n')) {
        sent = true;
        socket.write('hello');
      }
      if (/\r\n\r\n\{.*\}$/s.test(text)) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', reject);
    socket.write('POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  });
  t.regex(answer, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  t.is(echo.requests.length, 1);
  t.is(echo.requests[0].body, 'hello');
});

/** A backend that records how many body bytes each request delivered and whether it ended. */
async function countingBackend(answerAtOnce: boolean) {
  const seen: { bytes: number; ended: boolean; closed: boolean }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const r = { bytes: 0, ended: false, closed: false };
    seen.push(r);
    if (answerAtOnce) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
    }
    req.on('data', (c: Buffer) => {
      r.bytes += c.length;
    });
    req.on('end', () => {
      r.ended = true;
      res.end(`got ${r.bytes}\n`);
    });
    req.on('close', () => {
      r.closed = true;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    seen,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function countingProxy(t: import('ava').ExecutionContext, answerAtOnce: boolean) {
  const backend = await countingBackend(answerAtOnce);
  const p = await startTestProxy(
    withLimits(
      edgeConfig({
        clusters: { 'ns/b': { service: 'ns/b', port: 80, endpoints: [{ address: '127.0.0.1', port: backend.port }] } },
        routes: [route({ backends: to('ns/b') })],
      }),
      { maxRequestBodyBytes: 1000 },
    ),
  );
  t.teardown(() => Promise.all([p.close(), backend.close()]));
  return { backend, p };
}

/** A chunked POST: the first chunk, then (once `ready` resolves) the second, then the end. */
function chunkedPost(port: number, first: number, second: number, ready: () => Promise<void>) {
  return new Promise<{ status: number; body: string; error?: string }>((resolve) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        headers: { host: 'example.com', 'transfer-encoding': 'chunked' },
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (err) => resolve({ status: res.statusCode ?? 0, body, error: err.message }));
      },
    );
    req.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
    req.write('a'.repeat(first));
    ready().then(() => {
      if (req.destroyed) return;
      req.write('b'.repeat(second));
      req.end();
    });
  });
}

test('a chunked body within the limit is forwarded whole', async (t) => {
  const { backend, p } = await countingProxy(t, false);
  const r = await chunkedPost(p.port, 600, 400, async () => {
    while (backend.seen[0]?.bytes !== 600) await sleep(5);
  });
  t.is(r.status, 200);
  t.is(r.body, 'got 1000\n');
});

test('a chunked body over the limit: the upstream request is aborted short of the limit, the client gets 413', async (t) => {
  const { backend, p } = await countingProxy(t, false);
  const r = await chunkedPost(p.port, 600, 600, async () => {
    while (backend.seen[0]?.bytes !== 600) await sleep(5);
  });
  t.is(r.status, 413);
  t.regex(r.body, /WEFT_ERR_BODY_TOO_LARGE/);
  for (let i = 0; i < 100 && !backend.seen[0].closed; i++) await sleep(10);
  t.true(backend.seen[0].closed);
  t.false(backend.seen[0].ended, 'the backend never saw a complete request');
  t.is(backend.seen[0].bytes, 600, 'the chunk crossing the limit was not passed on');
  // The proxy still serves.
  const ok = await chunkedPost(p.port, 10, 10, async () => {});
  t.is(ok.status, 200);
});

test('a chunked body over the limit after the response started: the client stream is reset', async (t) => {
  const { backend, p } = await countingProxy(t, true);
  const r = await chunkedPost(p.port, 600, 600, async () => {
    while (backend.seen[0]?.bytes !== 600) await sleep(5);
    await sleep(50); // the response head reaches the client first
  });
  t.not(r.error, undefined, `the response must not end cleanly (${r.status} ${JSON.stringify(r.body)})`);
  t.false(backend.seen[0].ended);
});

test('header count and bytes from the config → 431; a config update changes them', async (t) => {
  const { p, config, close } = await echoProxy({ maxRequestHeaders: 5, maxRequestHeaderBytes: 2048 });
  t.teardown(close);
  const many: Record<string, string> = {};
  for (let i = 0; i < 10; i++) many[`x-h${i}`] = 'v';
  const r = await send(p.port, { headers: many });
  t.is(r.status, 431);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_HEADERS_TOO_LARGE');
  const big = await sendRaw(p.port, `GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`, 2_000);
  t.is(rawStatus(big), 431);
  t.regex(big, /x-weft-error: WEFT_ERR_HEADERS_TOO_LARGE/i);

  await p.proxy.update(withLimits(config, { maxRequestHeaders: 50, maxRequestHeaderBytes: 8192 }));
  t.is((await send(p.port, { headers: many })).status, 200);
  const bigNow = await sendRaw(
    p.port,
    `GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: ${'a'.repeat(3000)}\r\nConnection: close\r\n\r\n`,
    2_000,
  );
  t.is(rawStatus(bigNow), 200);
});

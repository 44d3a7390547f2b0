// h2c backends that fail: a session closed before or during the answer (503 / a cut response, as a dropped
// HTTP/1.1 connection gives), streams the peer refused or never processed (sent again), refused connections,
// timeouts, retries and mirrors as with HTTP/1.1, and the two protocol mix-ups, which fail at once with a reason.
import { createServer, request as httpRequest } from 'node:http';
import { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { scrapeUrl } from '../helpers/prometheus.ts';
import { edgeConfig, route, send, startTestProxy, to } from './harness.ts';
import { h2Backend, h2Cluster, h2Config } from './h2c-support.ts';
import { closedPort } from '../helpers/run-weft.ts';

async function http1Backend(t: { teardown(f: () => unknown): void }, handler: Parameters<typeof createServer>[1]) {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
}

async function errorReasons(adminPort: number): Promise<Record<string, number>> {
  const { samples } = await scrapeUrl(`http://127.0.0.1:${adminPort}/metrics`);
  const out: Record<string, number> = {};
  for (const s of samples)
    if (s.name === 'weft_proxy_request_errors_total') out[s.labels.reason] = (out[s.labels.reason] ?? 0) + s.value;
  return out;
}

test('a backend closing its session before answering gives 503, as an HTTP/1.1 backend dropping the connection does', async (t) => {
  const b = await h2Backend(t, ({ session }) => {
    session.destroy();
    return true;
  });
  const h1 = await http1Backend(t, (req) => req.socket.destroy());
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/h2': h2Cluster(b.port),
        'ns/h1': { service: 'ns/h1', port: 80, endpoints: [{ address: '127.0.0.1', port: h1 }] },
      },
      routes: [
        route({ match: { path: { type: 'PathPrefix', value: '/h1' } }, backends: to('ns/h1') }),
        route({ backends: to('ns/h2') }),
      ],
    }),
  );
  t.teardown(() => p.close());
  const viaH2 = await send(p.port, { path: '/x', method: 'POST', body: 'b' });
  const viaH1 = await send(p.port, { path: '/h1', method: 'POST', body: 'b' });
  t.is(viaH2.status, 503);
  t.is(viaH2.status, viaH1.status);
  t.is(viaH2.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_CONNECT');
  t.is(viaH2.headers['x-weft-error'], viaH1.headers['x-weft-error']);
  // Both counted as an upstream reset.
  t.is((await errorReasons(p.adminPort)).upstream_reset, 2);
  // The next request gets a new session.
  t.is((await send(p.port, { path: '/y' })).status, 503);
  t.is(b.sessions.length, 2);
});

test('a session closed mid-body cuts the client’s response: it never looks complete', async (t) => {
  for (const declared of [true, false]) {
    const b = await h2Backend(t, ({ stream, session }) => {
      stream.respond({ ':status': 200, ...(declared ? { 'content-length': '100000' } : {}) });
      stream.write(Buffer.alloc(1000, 'a'), () => setImmediate(() => session.destroy()));
      return true;
    });
    const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }));
    t.teardown(() => p.close());
    const outcome = await new Promise<string>((resolve) => {
      httpRequest({ host: '127.0.0.1', port: p.port, path: '/cut', agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
        });
        res.on('end', () => resolve(`complete after ${n} bytes`));
        res.on('error', (err) => resolve(`${(err as { code?: string }).code}`));
      })
        .on('error', (err) => resolve(`${(err as { code?: string }).code}`))
        .end();
    });
    t.is(outcome, 'ECONNRESET', declared ? 'with content-length' : 'chunked');
  }
});

test('a stream the peer refused, or left above its GOAWAY, is sent again on a new session; no retry policy needed', async (t) => {
  const done = new Set<string>();
  const b = await h2Backend(t, ({ headers, stream, session }) => {
    const path = String(headers[':path']);
    if (done.has(path)) return false;
    done.add(path);
    if (path === '/refuse') {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return true;
    }
    if (path === '/goaway') {
      // Tells the client this stream was never processed, and closes the session.
      session.goaway(constants.NGHTTP2_NO_ERROR, stream.id! - 2);
      return true;
    }
    return false;
  });
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }));
  t.teardown(() => p.close());
  // Without a retry policy only a request without a body (or a buffered one) can be sent again.
  const refused = await send(p.port, { path: '/refuse' });
  t.is(refused.status, 200);
  t.is(b.streams.filter((s) => s.headers[':path'] === '/refuse').length, 2);
  // A warm-up stream first, so the GOAWAY's last stream id is a real one.
  t.is((await send(p.port, { path: '/warm' })).status, 200);
  const before = b.sessions.length;
  const away = await send(p.port, { path: '/goaway' });
  t.is(away.status, 200);
  t.is(b.sessions.length, before + 1);
  t.is((await send(p.port, { path: '/after' })).status, 200);
});

test('refused connection → 503 and the endpoint skipped; timeout → 504 with the backend’s stream cancelled', async (t) => {
  const dead = await closedPort();
  const cancelled: number[] = [];
  const b = await h2Backend(t, ({ headers, stream }) => {
    if (headers[':path'] !== '/slow') return false;
    stream.once('close', () => cancelled.push(stream.rstCode ?? -1));
    return true;
  });
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/dead': { ...h2Cluster(dead), service: 'ns/dead' },
        'ns/h2': h2Cluster(dead, b.port),
        'ns/live': { ...h2Cluster(b.port), service: 'ns/live' },
      },
      routes: [
        route({ match: { path: { type: 'Exact', value: '/dead' } }, backends: to('ns/dead') }),
        route({
          match: { path: { type: 'Exact', value: '/slow' } },
          timeouts: { backendRequest: 100 },
          backends: to('ns/live'),
        }),
        route({ retry: { attempts: 1, backoff: 1 }, backends: to('ns/h2') }),
      ],
    }),
  );
  t.teardown(() => p.close());
  const refused = await send(p.port, { path: '/dead' });
  t.is(refused.status, 503);
  t.is(refused.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_CONNECT');
  t.is((await errorReasons(p.adminPort)).connect_refused, 1);
  // The refusing endpoint costs a retry at most, then is skipped.
  for (let i = 0; i < 6; i++) t.is((await send(p.port, { path: `/m${i}` })).status, 200);
  const slow = await send(p.port, { path: '/slow' });
  t.is(slow.status, 504);
  t.is(slow.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_TIMEOUT');
  while (cancelled.length === 0) await new Promise<void>((r) => setTimeout(r, 10));
  t.is(cancelled[0], constants.NGHTTP2_CANCEL);
});

test('retries on a listed status and mirrors reach h2c backends as they reach HTTP/1.1 ones', async (t) => {
  let failures = 1;
  const b = await h2Backend(t, ({ headers, stream }) => {
    if (headers[':path'] !== '/flaky' || failures === 0) return false;
    failures--;
    stream.respond({ ':status': 503 });
    stream.end('try again');
    return true;
  });
  const mirror = await h2Backend(t);
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/h2': h2Cluster(b.port), 'ns/mirror': { ...h2Cluster(mirror.port), service: 'ns/mirror' } },
      routes: [
        route({
          retry: { codes: [503], attempts: 2, backoff: 1 },
          filters: { mirrors: [{ cluster: 'ns/mirror', percent: 100 }] },
          backends: to('ns/h2'),
        }),
      ],
    }),
  );
  t.teardown(() => p.close());
  const r = await send(p.port, { path: '/flaky', method: 'POST', body: 'twice' });
  t.is(r.status, 200);
  t.is(JSON.parse(r.body).length, 5);
  t.is(b.streams.length, 2);
  while (mirror.streams.length === 0) await new Promise<void>((r) => setTimeout(r, 10));
  t.is(mirror.streams[0].headers[':path'], '/flaky');
});

test('an h2c-only backend behind an HTTP/1.1 cluster fails at once with the reason, on every engine', async (t) => {
  const b = await h2Backend(t);
  for (const engine of ['node:http', 'http-proxy-3'] as const) {
    const { HttpProxy3Forwarder } = await import('../../sidecar/upstream/http-proxy3-forwarder.ts');
    const { NodeHttpForwarder } = await import('../../sidecar/upstream/node-http-forwarder.ts');
    const forwarder = engine === 'node:http' ? new NodeHttpForwarder() : new HttpProxy3Forwarder();
    const { protocol: _, ...http1 } = h2Cluster(b.port);
    const p = await startTestProxy(h2Config({ 'ns/h2': http1 }), { forwarder });
    t.teardown(() => p.close());
    const r = await send(p.port, { path: '/x' });
    t.is(r.status, 503, engine);
    t.is(r.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_CONNECT');
    t.regex(r.body, /speaks h2c only.*appProtocol kubernetes\.io\/h2c/, engine);
    t.is((await errorReasons(p.adminPort)).upstream_protocol, 1);
  }
});

test('an HTTP/1.1-only backend behind an h2c cluster fails at once with the reason', async (t) => {
  const port = await http1Backend(t, (_req, res) => res.end('h1'));
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(port) }));
  t.teardown(() => p.close());
  const r = await send(p.port, { path: '/x' });
  t.is(r.status, 503);
  t.regex(r.body, /does not speak h2c/);
});

// HTTP/1.1 client → proxy → h2c backend (a Service port with appProtocol kubernetes.io/h2c): what arrives (pseudo-
// headers, hop-by-hop and connection-specific headers gone, repeated fields kept), what comes back, large and
// streamed bodies both ways, on every forwarding engine; sessions reused, bounded and closed when idle or retired.
import { request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import test from 'ava';
import type { Forwarder } from '../../sidecar/upstream/forwarder.ts';
import { H2cForwarder } from '../../sidecar/upstream/h2c-forwarder.ts';
import { HttpProxy3Forwarder } from '../../sidecar/upstream/http-proxy3-forwarder.ts';
import { NodeHttpForwarder } from '../../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../../sidecar/upstream/undici-forwarder.ts';
import { scrapeUrl, sampleValue } from '../helpers/prometheus.ts';
import { send, startTestProxy } from './harness.ts';
import { digest, h2Backend, h2Cluster, h2Config } from './h2c-support.ts';

/** Requests the proxy is forwarding now. */
async function inFlight(adminPort: number): Promise<number> {
  const { samples } = await scrapeUrl(`http://127.0.0.1:${adminPort}/metrics`);
  return sampleValue(samples, 'weft_proxy_requests_in_flight') ?? 0;
}

const engines: [string, () => Forwarder][] = [
  ['node:http', () => new NodeHttpForwarder()],
  ['undici', () => new UndiciForwarder()],
  ['http-proxy-3', () => new HttpProxy3Forwarder()],
];

for (const [name, make] of engines) {
  test(`${name}: an h2c cluster gets HTTP/2 with prior knowledge; Host becomes :authority, hop-by-hop headers go`, async (t) => {
    const b = await h2Backend(t);
    const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }), { forwarder: make() });
    t.teardown(() => p.close());
    const r = await send(p.port, {
      method: 'POST',
      path: '/echo/a?x=1&y=2',
      host: 'h2.example:8080',
      body: 'hello',
      headers: {
        'x-one': 'v',
        'x-twice': ['a', 'b'],
        connection: 'keep-alive, x-private',
        'x-private': 'secret',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-connection': 'keep-alive',
      },
    });
    t.is(r.status, 200);
    t.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    const seen = JSON.parse(r.body);
    t.is(seen.headers[':method'], 'POST');
    t.is(seen.headers[':scheme'], 'http');
    t.is(seen.headers[':path'], '/echo/a?x=1&y=2');
    t.is(seen.headers[':authority'], 'h2.example:8080');
    t.is(seen.headers.host, undefined);
    t.is(seen.headers['x-one'], 'v');
    t.is(seen.headers.te, 'trailers');
    for (const gone of ['connection', 'x-private', 'keep-alive', 'proxy-connection', 'transfer-encoding'])
      t.is(seen.headers[gone], undefined, gone);
    // A repeated request field reaches the backend as two fields.
    const twice = [];
    for (let i = 0; i < seen.raw.length; i += 2) if (seen.raw[i] === 'x-twice') twice.push(seen.raw[i + 1]);
    t.deepEqual(twice, ['a', 'b']);
    t.is(seen.length, 5);
    // Sequential requests share one session.
    for (let i = 0; i < 5; i++) t.is((await send(p.port, { path: `/echo/${i}` })).status, 200);
    t.is(b.sessions.length, 1);
  });
}

/** Sends `size` bytes in 64 KiB chunks (chunked encoding) and reads the whole answer. */
function sendLarge(port: number, path: string, size: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'PUT', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 'ab');
    let left = size;
    const write = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(chunk.subarray(0, n))) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

test('large bodies both ways: 8 MiB up (streamed), 8 MiB down, byte for byte', async (t) => {
  const size = 8 * 1024 * 1024;
  const down = Buffer.alloc(size);
  for (let i = 0; i < size; i++) down[i] = (i * 7) & 0xff;
  const b = await h2Backend(t, ({ headers, stream }) => {
    if (headers[':path'] !== '/download') return false;
    stream.respond({ ':status': 200, 'content-length': String(size) });
    stream.end(down);
    return true;
  });
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }));
  t.teardown(() => p.close());
  const up = await sendLarge(p.port, '/echo', size);
  t.is(up.status, 200);
  const seen = JSON.parse(up.body.toString());
  t.is(seen.length, size);
  t.is(seen.digest, digest(Buffer.alloc(size, 'ab')));
  const r = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port: p.port, path: '/download', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
  t.is(r.status, 200);
  t.is(r.body.length, size);
  t.is(digest(r.body), digest(down));
});

test('streaming: each side sees the other’s first chunk before the rest is sent', async (t) => {
  let releaseResponse!: () => void;
  const responseReleased = new Promise<void>((r) => {
    releaseResponse = r;
  });
  let firstUp!: (chunk: string) => void;
  const firstUpArrived = new Promise<string>((r) => {
    firstUp = r;
  });
  const b = await h2Backend(t, ({ stream }) => {
    stream.once('data', (c: Buffer) => firstUp(c.toString()));
    stream.respond({ ':status': 200 });
    stream.write('first;');
    void responseReleased.then(() => stream.end('rest'));
    stream.resume();
    return true;
  });
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }));
  t.teardown(() => p.close());
  const text = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/s', method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        // The proxy passed the first response chunk on while the backend still holds the rest.
        if (body === 'first;') releaseResponse();
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.write('up-1;');
    // The backend got the first request chunk before the client sends (and ends) the rest.
    void firstUpArrived.then((c) => {
      t.is(c, 'up-1;');
      req.end('up-2');
    });
  });
  t.is(text, 'first;rest');
});

test('streams per session are bounded: more concurrent requests open more sessions, each within the limit', async (t) => {
  const held: (() => void)[] = [];
  let all!: () => void;
  const allArrived = new Promise<void>((r) => {
    all = r;
  });
  const total = 9;
  const active = new Map<object, number>();
  let maxActive = 0;
  const b = await h2Backend(t, ({ stream, session }) => {
    active.set(session, (active.get(session) ?? 0) + 1);
    maxActive = Math.max(maxActive, active.get(session)!);
    held.push(() => {
      active.set(session, active.get(session)! - 1);
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    if (held.length === total) all();
    return true;
  });
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }), {
    forwarder: new H2cForwarder({ maxStreamsPerSession: 3, maxSessionsPerEndpoint: 3 }),
  });
  t.teardown(() => p.close());
  const replies = Array.from({ length: total }, (_, i) => send(p.port, { path: `/c${i}` }));
  await allArrived;
  t.is(b.sessions.length, 3);
  t.is(maxActive, 3);
  for (const release of held) release();
  for (const r of await Promise.all(replies)) t.is(r.status, 200);
});

test('the peer’s SETTINGS_MAX_CONCURRENT_STREAMS lowers the limit; past the session bound, streams wait their turn', async (t) => {
  const held: (() => void)[] = [];
  let arrived: () => void = () => {};
  let released = false;
  const b = await h2Backend(
    t,
    ({ headers, stream }) => {
      if (!String(headers[':path']).startsWith('/hold') || released) return false;
      held.push(() => {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      });
      arrived();
      return true;
    },
    { maxConcurrentStreams: 1 },
  );
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }), {
    forwarder: new H2cForwarder({ maxSessionsPerEndpoint: 2 }),
  });
  t.teardown(() => p.close());
  // The first session learns the peer's limit.
  t.is((await send(p.port, { path: '/echo' })).status, 200);
  const hold = async (path: string) => {
    const seen = new Promise<void>((r) => {
      arrived = r;
    });
    // Wrapped: an async function returning the promise itself would wait for the reply.
    const reply = { pending: send(p.port, { path }) };
    await seen;
    return reply;
  };
  // One stream per session: the second request opens the second session.
  const replies = [(await hold('/hold1')).pending, (await hold('/hold2')).pending];
  t.is(b.sessions.length, 2);
  // Both sessions full and no third allowed: the third request waits for a free stream instead of being refused.
  replies.push(send(p.port, { path: '/hold3' }));
  while ((await inFlight(p.adminPort)) < 3) await new Promise<void>((r) => setTimeout(r, 10));
  t.is(b.streams.length, 3);
  released = true;
  for (const release of held) release();
  for (const r of await Promise.all(replies)) t.is(r.status, 200);
  t.is(b.streams.length, 4);
  t.is(b.sessions.length, 2);
});

test('an idle session is closed; so are the sessions of an endpoint that leaves the config', async (t) => {
  const idle = await h2Backend(t);
  const leaving = await h2Backend(t);
  const clusters = { 'ns/h2': h2Cluster(idle.port), 'ns/other': { ...h2Cluster(leaving.port), service: 'ns/other' } };
  const config = h2Config(clusters);
  const p = await startTestProxy(config, { forwarder: new H2cForwarder({ idleTimeoutMs: 50 }) });
  t.teardown(() => p.close());
  t.is((await send(p.port, { path: '/echo' })).status, 200);
  await new Promise<void>((r) => idle.sessions[0].once('close', r));
  t.is((await send(p.port, { path: '/echo' })).status, 200);
  t.is(idle.sessions.length, 2);

  const p2 = await startTestProxy(h2Config({ ...clusters, 'ns/h2': clusters['ns/other'] }), {
    forwarder: new H2cForwarder({ idleTimeoutMs: 60_000 }),
  });
  t.teardown(() => p2.close());
  t.is((await send(p2.port, { path: '/echo' })).status, 200);
  const closed = new Promise<void>((r) => leaving.sessions[0].once('close', r));
  await p2.proxy.update(h2Config({ 'ns/h2': h2Cluster(idle.port) }));
  await closed;
  t.is((await send(p2.port, { path: '/echo' })).status, 200);
});

test('HTTP/2 all the way: an h2c client at the Gateway listener, h2c to the backend, the authority carried', async (t) => {
  const b = await h2Backend(t);
  const p = await startTestProxy(h2Config({ 'ns/h2': h2Cluster(b.port) }));
  t.teardown(() => p.close());
  const session = h2connect(`http://127.0.0.1:${p.port}`);
  t.teardown(() => session.close());
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = session.request({ ':path': '/echo?h2=1', ':authority': 'h2.example', 'x-a': 'b' }, { endStream: true });
    let status = 0;
    let body = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
  });
  t.is(reply.status, 200);
  const seen = JSON.parse(reply.body);
  t.is(seen.headers[':authority'], 'h2.example');
  t.is(seen.headers[':path'], '/echo?h2=1');
  t.is(seen.headers['x-a'], 'b');
  // Each pseudo-header once: the client's are not passed on as fields of their own.
  const names: string[] = seen.raw.filter((_: string, i: number) => i % 2 === 0);
  t.deepEqual(
    names.filter((n) => n.startsWith(':')),
    [':method', ':scheme', ':path', ':authority'],
  );
});

// The echo server weft local stands in for workloads with, against real sockets: the echo-basic JSON reply, the
// Istio text format, response headers on request, /status, ?delay, WebSocket and h2c.
import { connect as h2connect } from 'node:http2';
import test from 'ava';
import { canonicalHeaderName, parseGoDuration, startEchoServer } from '../../controlplane/local/echo-server.ts';

async function echo(t: { teardown(fn: () => Promise<void>): void }, format?: 'json' | 'istio') {
  const lines: string[] = [];
  const server = await startEchoServer({
    ports: [0],
    h2cPorts: [0],
    format,
    podName: 'backend-v1-7d9c-xk2p',
    namespace: 'shop',
    serviceVersion: 'v1',
    log: (l) => lines.push(l),
  });
  t.teardown(() => server.close());
  const http = server.addresses.find((a) => a.protocol === 'http')!;
  const h2c = server.addresses.find((a) => a.protocol === 'h2c')!;
  return { base: `http://127.0.0.1:${http.port}`, h2cPort: h2c.port, lines };
}

test('Go header names and durations', (t) => {
  t.is(canonicalHeaderName('x-echo-set-header'), 'X-Echo-Set-Header');
  t.is(canonicalHeaderName('CONTENT-TYPE'), 'Content-Type');
  t.is(canonicalHeaderName('bad header'), 'bad header');
  t.is(parseGoDuration('1s'), 1000);
  t.is(parseGoDuration('1m30s'), 90_000);
  t.is(parseGoDuration('250ms'), 250);
  t.is(parseGoDuration('1.5s'), 1500);
  t.is(parseGoDuration('0'), 0);
  t.is(parseGoDuration('10'), undefined);
  t.is(parseGoDuration('-1s'), undefined);
});

test('echo-basic JSON: path with query, host, method, proto, canonical headers without Host, pod, namespace', async (t) => {
  const { base, lines } = await echo(t);
  const res = await fetch(`${base}/a/b?x=1`, {
    method: 'PUT',
    headers: { 'x-custom': 'one', 'X-Echo-Set-Header': 'X-Foo: bar, X-Foo: baz, X-Other: 1' },
    body: 'ignored',
  });
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), 'application/json');
  t.is(res.headers.get('x-foo'), 'bar,baz');
  t.is(res.headers.get('x-other'), '1');
  const body = (await res.json()) as Record<string, unknown> & { headers: Record<string, string[]> };
  t.like(body, {
    path: '/a/b?x=1',
    host: base.slice('http://'.length),
    method: 'PUT',
    proto: 'HTTP/1.1',
    namespace: 'shop',
    pod: 'backend-v1-7d9c-xk2p',
    ingress: '',
    service: '',
  });
  t.deepEqual(body.headers['X-Custom'], ['one']);
  t.false('Host' in body.headers);
  t.is(body.httpPort, base.split(':').at(-1));
  t.regex(lines.at(-1)!, /^Echoing back request made to \/a\/b\?x=1 to client \(127\.0\.0\.1:\d+\)$/);
});

test('Istio text format by server default and by X-Echo-Format', async (t) => {
  const { base } = await echo(t, 'istio');
  const res = await fetch(`${base}/path?q=1`, { headers: { 'x-b': '2', 'x-a': '1' } });
  t.is(res.headers.get('content-type'), 'application/text');
  const text = await res.text();
  const port = base.split(':').at(-1);
  t.true(
    text.startsWith(`ServiceVersion=v1\nServicePort=${port}\nHost=127.0.0.1:${port}\nURL=/path?q=1\nNamespace=shop\n`),
  );
  t.regex(text, /^Method=GET$/m);
  t.regex(text, /^Proto=HTTP\/1\.1$/m);
  t.regex(text, /^IP=127\.0\.0\.1$/m);
  t.regex(text, /RequestHeader=X-A:1\nRequestHeader=X-B:2/);
  t.true(text.endsWith('Hostname=backend-v1-7d9c-xk2p\n'));
  const json = await fetch(`${base}/`, { headers: { 'x-echo-format': 'json' } });
  t.is(json.headers.get('content-type'), 'application/json');
  const { base: jsonBase } = await echo(t);
  const text2 = await (await fetch(`${jsonBase}/`, { headers: { 'x-echo-format': 'istio' } })).text();
  t.regex(text2, /^Hostname=backend-v1-7d9c-xk2p$/m);
});

test('/status/NNN, /health, ?delay and a bad delay', async (t) => {
  const { base, lines } = await echo(t);
  t.is((await fetch(`${base}/status/503`)).status, 503);
  t.is((await fetch(`${base}/status/99`)).status, 400);
  t.is(await (await fetch(`${base}/health`)).text(), 'OK');
  const began = performance.now();
  const delayed = await fetch(`${base}/?delay=200ms`);
  t.is(delayed.status, 200);
  t.true(performance.now() - began >= 190);
  t.is((await fetch(`${base}/?delay=soon`)).status, 400);
  t.is(lines.length, 1); // only echoed requests are logged
});

test('WebSocket echo on /ws', async (t) => {
  const { base } = await echo(t);
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`);
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => {
      ws.send('hello');
      ws.send('x'.repeat(70_000));
    };
    ws.onmessage = (m) => {
      got.push(String(m.data));
      if (got.length === 2) ws.close(1000);
    };
    ws.onclose = () => resolve();
    ws.onerror = () => reject(new Error('websocket error'));
  });
  t.deepEqual(
    got.map((g) => g.length),
    [5, 70_000],
  );
  t.is(got[0], 'hello');
});

test('h2c with prior knowledge on its own port', async (t) => {
  const { h2cPort } = await echo(t);
  const session = h2connect(`http://127.0.0.1:${h2cPort}`);
  t.teardown(() => session.close());
  const body = await new Promise<string>((resolve, reject) => {
    const req = session.request({ ':path': '/h2', 'x-h': 'v' });
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      data += d;
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
    req.end();
  });
  const reply = JSON.parse(body) as { proto: string; path: string; host: string; headers: Record<string, string[]> };
  t.is(reply.proto, 'HTTP/2.0');
  t.is(reply.path, '/h2');
  t.is(reply.host, `127.0.0.1:${h2cPort}`);
  t.deepEqual(reply.headers['X-H'], ['v']);
  t.false(Object.keys(reply.headers).some((k) => k.startsWith(':')));
});

// The echo server's h2c: prior knowledge is answered on its HTTP/1.1 ports too (the preface picks the protocol), with
// the same reply as over HTTP/1.1 but for `proto`; the retry simulator resets only the stream over HTTP/2.
import { connect as h2connect, constants } from 'node:http2';
import test from 'ava';
import { startEchoServer } from '../../controlplane/local/echo-server.ts';

async function h2Get(port: number, path: string, headers: Record<string, string> = {}) {
  const session = h2connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise<{ status: number; body: string; rstCode?: number }>((resolve) => {
      const req = session.request({ ':path': path, ...headers });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (d: string) => {
        body += d;
      });
      // A reset stream errors; what it got so far is resolved on close all the same.
      req.on('error', () => {});
      req.on('close', () => resolve({ status, body, rstCode: req.rstCode }));
      req.end();
    });
  } finally {
    session.close();
  }
}

test('an HTTP/1.1 port answers h2c prior knowledge with the same echo, and HTTP/1.1 as before', async (t) => {
  const server = await startEchoServer({ ports: [0], podName: 'backend-1', namespace: 'infra', log: () => {} });
  t.teardown(() => server.close());
  const port = server.addresses[0].port;
  const headers = { 'x-a': 'one', 'x-echo-set-header': 'X-Back:yes' };
  const h1 = await fetch(`http://127.0.0.1:${port}/p?q=1`, { headers });
  const h1Body = (await h1.json()) as Record<string, unknown> & { headers: Record<string, string[]> };
  const h2 = await h2Get(port, '/p?q=1', { ...headers, ':authority': `127.0.0.1:${port}` });
  t.is(h2.status, 200);
  const h2Body = JSON.parse(h2.body) as typeof h1Body;
  t.is(h1Body.proto, 'HTTP/1.1');
  t.is(h2Body.proto, 'HTTP/2.0');
  for (const key of ['path', 'host', 'method', 'namespace', 'pod', 'httpPort', 'ingress', 'service'])
    t.is(h2Body[key], h1Body[key], key);
  t.deepEqual(h2Body.headers['X-A'], ['one']);
  t.deepEqual(h2Body.headers['X-Echo-Set-Header'], h1Body.headers['X-Echo-Set-Header']);
  t.is(h1.headers.get('x-back'), 'yes');
  // Still HTTP/1.1 after an HTTP/2 connection.
  t.is((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
});

test('the retry simulator resets the HTTP/2 stream, then echoes', async (t) => {
  const server = await startEchoServer({ ports: [0], h2cPorts: [0], log: () => {} });
  t.teardown(() => server.close());
  const h2cPort = server.addresses.find((a) => a.protocol === 'h2c')!.port;
  const path = '/retry/x?uuid=h2-reset&succeedAfter=1';
  const first = await h2Get(h2cPort, path);
  t.is(first.status, 0);
  t.is(first.rstCode, constants.NGHTTP2_INTERNAL_ERROR);
  t.is((await h2Get(h2cPort, path)).status, 200);
});

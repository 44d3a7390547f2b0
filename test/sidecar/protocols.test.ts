// Upstream protocols: WebSocket upgrades tunnelled to the chosen endpoint, h2c (HTTP/2 with
// prior knowledge) to clusters whose appProtocol says so.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import test from 'ava';
import { edgeConfig, rawStatus, route, send, startTestProxy, to } from './harness.ts';

/** A WebSocket-ish backend: a real 101 handshake, then it echoes bytes upper-cased (no framing). */
async function upgradeBackend() {
  const seen: IncomingMessage[] = [];
  const tunnels = new Set<Duplex>();
  const server = createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    seen.push(req);
    tunnels.add(socket);
    if (req.url === '/decline') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
      return;
    }
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = () =>
    new Promise((r) => {
      server.close(r);
      server.closeAllConnections();
      for (const s of tunnels) s.destroy();
    });
  return { server, port: (server.address() as AddressInfo).port, seen, close };
}

function readUntil(socket: Socket, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (pattern.test(text)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => resolve(text));
  });
}

const handshake = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

test('WebSocket: the upgrade is routed, the handshake passed back, bytes flow both ways', async (t) => {
  const backend = await upgradeBackend();
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/ws': {
          service: 'ns/ws',
          port: 80,
          protocol: 'websocket',
          endpoints: [{ address: '127.0.0.1', port: backend.port }],
        },
      },
      routes: [
        route({
          filters: { requestHeaders: { set: [{ name: 'x-routed', value: 'yes' }] } },
          backends: to('ns/ws'),
        }),
      ],
    }),
  );
  t.teardown(async () => {
    await p.close();
    await backend.close();
  });
  const socket = connect(p.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(handshake('/chat'));
  const head = await readUntil(socket, /\r\n\r\n/);
  t.is(rawStatus(head), 101);
  t.regex(head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
  t.is(backend.seen[0].url, '/chat');
  t.is(backend.seen[0].headers['x-routed'], 'yes');
  socket.write('hello');
  t.is(await readUntil(socket, /HELLO/), 'HELLO');
  // Closing the proxy cuts open tunnels too (Node's closeAllConnections does not see them).
  const closed = new Promise((r) => socket.once('close', r));
  await p.close();
  await closed;
  t.pass();
});

test('WebSocket: a backend that declines the upgrade has its answer passed back', async (t) => {
  const backend = await upgradeBackend();
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/ws': { service: 'ns/ws', port: 80, endpoints: [{ address: '127.0.0.1', port: backend.port }] } },
      routes: [route({ backends: to('ns/ws') })],
    }),
  );
  t.teardown(async () => {
    await p.close();
    await backend.close();
  });
  const socket = connect(p.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(handshake('/decline'));
  const answer = await readUntil(socket, /no$/);
  t.is(rawStatus(answer), 403);
});

test('WebSocket: routing answers (404) come back on the raw socket', async (t) => {
  const p = await startTestProxy(edgeConfig({ routes: [] }));
  t.teardown(() => p.close());
  const socket = connect(p.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.write(handshake('/nothing'));
  const answer = await readUntil(socket, /WEFT_ERR_NO_ROUTE/);
  t.is(rawStatus(answer), 404);
});

test('h2c: an h2c cluster is reached over HTTP/2 with prior knowledge', async (t) => {
  const seen: { version: string; authority: string | undefined; path: string; xTest: unknown }[] = [];
  const h2 = createH2Server((req, res) => {
    seen.push({ version: req.httpVersion, authority: req.authority, path: req.url, xTest: req.headers['x-test'] });
    res.setHeader('x-from', 'h2');
    res.end('over h2');
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const port = (h2.address() as AddressInfo).port;
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/grpc': { service: 'ns/grpc', port: 80, protocol: 'h2c', endpoints: [{ address: '127.0.0.1', port }] },
      },
      routes: [route({ backends: to('ns/grpc') })],
    }),
  );
  t.teardown(async () => {
    await p.close();
    await new Promise((r) => h2.close(r));
  });
  const r = await send(p.port, { path: '/svc/Method?x=1', host: 'grpc.example', headers: { 'x-test': 'v' } });
  t.is(r.status, 200);
  t.is(r.body, 'over h2');
  t.is(r.headers['x-from'], 'h2');
  t.is(seen[0].version, '2.0');
  t.is(seen[0].path, '/svc/Method?x=1');
  t.is(seen[0].authority, 'grpc.example');
  t.is(seen[0].xTest, 'v');
});

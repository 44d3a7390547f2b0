// Draining (POST /shutdown, SIGTERM): not ready at once, no new connections, requests in flight
// finish with `Connection: close`, idle keep-alive connections (client and upstream) are closed,
// what is still running at the drain timeout is cut, and the CLI process exits 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { type EchoServer, startEchoServer } from '../../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from '../harness.ts';
import { closedPort } from '../../helpers/run-weft.ts';

async function admin(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Whether a TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A GET over `agent` (or a fresh connection), with the socket it used and when its response head arrived. */
function get(port: number, path: string, headers: Record<string, string> = {}, agent?: Agent) {
  let socket: Socket | undefined;
  let headed!: (headers: IncomingHttpHeaders) => void;
  const head = new Promise<IncomingHttpHeaders>((resolve) => {
    headed = resolve;
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: 'example.com', ...headers }, agent: agent ?? false },
      (res) => {
        headed(res.headers);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('socket', (s) => {
      socket = s as Socket;
    });
    req.on('error', reject);
    req.end();
  });
  return { answer, head, socket: () => socket };
}

function echoConfig(echo: EchoServer, port?: number) {
  const config = edgeConfig({
    port,
    clusters: { 'ns/e': cluster('ns/e', echo) },
    routes: [route({ backends: to('ns/e') })],
  });
  config.listeners[0] = { ...config.listeners[0], address: '127.0.0.1' } as (typeof config.listeners)[0];
  return config;
}

test('POST /shutdown: not ready at once, new connections refused, the request in flight finishes with Connection: close', async (t) => {
  const echo = await startEchoServer();
  const p = await startTestProxy(echoConfig(echo), { drainTimeoutMs: 30_000 });
  t.teardown(() => Promise.all([p.close(), echo.close()]));

  const get405 = await admin(p.adminPort, '/shutdown');
  t.is(get405.status, 405);
  t.is(get405.headers.get('allow'), 'POST');
  t.is((await admin(p.adminPort, '/ready')).status, 200);

  const slow = get(p.port, '/slow', { 'x-echo-delay-ms': '400' });
  await echo.waitForRequests(1);
  const shutdown = await admin(p.adminPort, '/shutdown', 'POST');
  t.is(shutdown.status, 200);
  t.true(p.proxy.draining);
  const ready = await admin(p.adminPort, '/ready');
  t.is(ready.status, 503);
  t.is(ready.body, 'draining\n');
  t.true(await refused(p.port), 'a new connection is refused while draining');

  const answer = await slow.answer;
  t.is(answer.status, 200);
  t.is(answer.headers.connection, 'close');
  t.is(JSON.parse(answer.body).path, '/slow');
  await p.proxy.closed;
  t.true(await refused(p.adminPort), 'the admin port closes at the end of the drain');
  await t.throwsAsync(p.proxy.update(echoConfig(echo)), { message: /shutting down/ });
});

test('drain closes idle keep-alive connections, to clients and to upstreams, without waiting for the timeout', async (t) => {
  t.timeout(20_000);
  const echo = await startEchoServer();
  // The upstream side: count the proxy's connections to it.
  let streamRes: import('node:http').ServerResponse | undefined;
  const backend = createServer((req, res) => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first\n');
      streamRes = res;
      return;
    }
    res.end('ok');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/b': { service: 'ns/b', port: 80, endpoints: [{ address: '127.0.0.1', port }] } },
      routes: [route({ backends: to('ns/b') })],
    }),
    // Neither the drain timeout nor the keep-alive timeout may be what closes the connections.
    { drainTimeoutMs: 60_000, limits: { keepAliveTimeoutMs: 60_000 } },
  );
  t.teardown(async () => {
    await p.close();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
    await echo.close();
  });
  const connections = () =>
    new Promise<number>((resolve, reject) => backend.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  // Two keep-alive clients, so the second request does not reuse the first one's connection.
  const agent = new Agent({ keepAlive: true });
  const agent2 = new Agent({ keepAlive: true });
  t.teardown(() => {
    agent.destroy();
    agent2.destroy();
  });
  // An idle keep-alive client connection, and one whose response is streaming when the drain starts.
  const idle = get(p.port, '/', {}, agent);
  t.is((await idle.answer).status, 200);
  const idleSocket = idle.socket()!;
  const idleClosed = once(idleSocket, 'close');
  const streaming = get(p.port, '/stream', {}, agent2);
  // Its head must have left the proxy before the drain starts (the backend having written its own is not enough):
  // a head written while draining says `Connection: close`.
  t.is((await streaming.head).connection, 'keep-alive');
  if (streamRes === undefined) throw new Error('the backend has not seen /stream');
  t.not(streaming.socket(), idleSocket);
  t.true((await connections()) >= 1);

  const drained = p.proxy.drain();
  await idleClosed;
  t.pass('the idle client connection was closed');
  // The streaming response already had its headers out: it finishes, then its connection is closed.
  streamRes.end('last\n');
  const answer = await streaming.answer;
  t.is(answer.body, 'first\nlast\n');
  t.is(answer.headers.connection, 'keep-alive');
  const streamSocket = streaming.socket()!;
  if (!streamSocket.destroyed) await once(streamSocket, 'close');
  await drained;
  // Upstream keep-alive connections are closed too.
  for (let i = 0; i < 100 && (await connections()) > 0; i++) await sleep(20);
  t.is(await connections(), 0);
});

test('a request still running at the drain timeout is cut, and the drain completes', async (t) => {
  const backend = createServer(() => {}); // never answers
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  const p = await startTestProxy(
    edgeConfig({
      clusters: { 'ns/b': { service: 'ns/b', port: 80, endpoints: [{ address: '127.0.0.1', port }] } },
      routes: [route({ backends: to('ns/b') })],
    }),
  );
  t.teardown(async () => {
    await p.close();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
  });
  const stuck = get(p.port, '/');
  while ((await new Promise<number>((r) => backend.getConnections((_e, n) => r(n)))) === 0) await sleep(10);
  await p.proxy.drain({ timeoutMs: 200 });
  await t.throwsAsync(stuck.answer);
});

/** Starts `weft proxy` in a child process; resolves once it prints its addresses. */
async function startChild(
  args: string[],
): Promise<{ child: ChildProcess; admin: number; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [new URL('./cli-child.ts', import.meta.url).pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    exit.then((c) => Promise.reject(new Error(`exited ${c}`))),
  ])) as [string];
  return { child, admin: (JSON.parse(line) as { admin: number }).admin, exit };
}

for (const how of ['SIGTERM', 'POST /shutdown'] as const) {
  test.serial(`the CLI process drains on ${how} and exits 0`, async (t) => {
    const echo = await startEchoServer();
    const dir = await mkdtemp(join(tmpdir(), 'weft-drain-'));
    const port = await closedPort();
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify(echoConfig(echo, port)));
    const proc = await startChild(['--mode', 'edge', '--config', file, '--admin-port', '0', '--log-level', 'silent']);
    t.teardown(async () => {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
      await echo.close();
      await rm(dir, { recursive: true, force: true });
    });
    t.is((await send(port)).status, 200);

    const slow = get(port, '/slow', { 'x-echo-delay-ms': '500' });
    await echo.waitForRequests(2);
    if (how === 'SIGTERM') proc.child.kill('SIGTERM');
    else t.is((await admin(proc.admin, '/shutdown', 'POST')).status, 200);
    // The signal is handled asynchronously: wait for the readiness flip, then try a new connection.
    for (let i = 0; i < 100 && (await admin(proc.admin, '/ready')).status === 200; i++) await sleep(10);
    t.is((await admin(proc.admin, '/ready')).status, 503);
    t.true(await refused(port));
    const answer = await slow.answer;
    t.is(answer.status, 200);
    t.is(answer.headers.connection, 'close');
    t.is(await proc.exit, 0);
  });
}

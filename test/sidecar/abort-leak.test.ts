// Client aborts mid-response must abort the upstream exchange and leave nothing behind: no
// socket, no in-flight count, no pending handle.
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { Forwarder } from '../../sidecar/upstream/forwarder.ts';
import { NodeHttpForwarder } from '../../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../../sidecar/upstream/undici-forwarder.ts';
import { edgeConfig, route, send, startTestProxy, to } from './harness.ts';

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

const engines: [string, () => Forwarder][] = [
  ['undici', () => new UndiciForwarder()],
  ['node:http', () => new NodeHttpForwarder()],
];

for (const [engine, make] of engines)
  test.serial(
    `${engine}: aborts mid-response leave handles at baseline, and the backend sees every abort`,
    async (t) => {
      let upstreamAborts = 0;
      // Streams a chunk every 5 ms until the proxy hangs up.
      const backend = createServer((req, res) => {
        if (req.url === '/after') {
          res.end('ok');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('chunk\n'), 5);
        res.once('close', () => {
          clearInterval(timer);
          if (!res.writableFinished) upstreamAborts++;
        });
      });
      await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
      const port = (backend.address() as AddressInfo).port;
      const p = await startTestProxy(
        edgeConfig({
          clusters: { 'ns/s': { service: 'ns/s', port: 80, endpoints: [{ address: '127.0.0.1', port }] } },
          routes: [route({ backends: to('ns/s') })],
        }),
        { forwarder: make() },
      );
      t.teardown(async () => {
        await p.close();
        backend.closeAllConnections();
        await new Promise((r) => backend.close(r));
      });
      const baseline = tcpHandles();

      const abortOne = () =>
        new Promise<void>((resolve) => {
          const req = httpRequest({
            host: '127.0.0.1',
            port: p.port,
            path: '/stream',
            headers: { host: 'x' },
            agent: false,
          });
          req.on('response', (res) => res.once('data', () => req.destroy()));
          req.on('close', () => resolve());
          req.on('error', () => {});
          req.end();
        });
      const total = 500;
      for (let i = 0; i < total; i += 25) await Promise.all(Array.from({ length: 25 }, abortOne));

      // Teardown is asynchronous: wait (bounded) for the last sockets to close, then compare.
      for (let i = 0; i < 200 && (upstreamAborts < total || tcpHandles() > baseline); i++) await sleep(25);
      t.is(upstreamAborts, total);
      t.true(tcpHandles() <= baseline, `${tcpHandles()} TCP handles, baseline ${baseline}`);
      // And the proxy still serves.
      t.is((await send(p.port, { path: '/after' })).body, 'ok');
    },
  );

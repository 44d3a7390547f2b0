// Client aborts mid-response must abort the upstream exchange and leave nothing behind: no
// socket, no in-flight count, no pending handle of any kind, no retained heap. The suite runs
// 1,000 aborts per engine; `npm run test:soak` runs 10,000 (WEFT_ABORTS sets the count): ~40 s
// alone on 2 cores, over a minute beside the rest of the suite. In batches, on loopback.
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import type { Forwarder } from '../../sidecar/upstream/forwarder.ts';
import { NodeHttpForwarder } from '../../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../../sidecar/upstream/undici-forwarder.ts';
import { edgeConfig, route, send, startTestProxy, to } from './harness.ts';

// A full collection on demand without starting the worker with --expose-gc: the flag set at run
// time exposes `gc` in contexts created afterwards.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const TOTAL = Number(process.env.WEFT_ABORTS ?? 1_000);
const BATCH = 50;
/**
 * Retained heap growth allowed (one-off growth seen: ~2 MiB for undici, ~0.1 MiB for node:http,
 * whatever the count). At 10,000 aborts a leak of 200 bytes per abort exceeds it; at 1,000, 2 KiB.
 */
const HEAP_BOUND = 4 * 1024 * 1024;

/** Active resources by type (TCPSocketWrap, Timeout, …), as process.getActiveResourcesInfo() lists them. */
function handles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Types whose count is above the baseline's. */
function above(baseline: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [type, n] of handles())
    if (n > (baseline.get(type) ?? 0)) out.push(`${type} ${n} > ${baseline.get(type) ?? 0}`);
  return out;
}

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(20);
  }
  return process.memoryUsage().heapUsed;
}

const engines: [string, () => Forwarder][] = [
  ['undici', () => new UndiciForwarder()],
  ['node:http', () => new NodeHttpForwarder()],
];

for (const [engine, make] of engines)
  test.serial(
    `${engine}: ${TOTAL} aborts mid-response leave handles and heap at baseline, and the backend sees every abort`,
    async (t) => {
      t.timeout(120_000);
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
      const run = async (count: number) => {
        for (let i = 0; i < count; i += BATCH) await Promise.all(Array.from({ length: BATCH }, abortOne));
      };
      // Teardown is asynchronous: wait (bounded) for the last sockets to close.
      const settle = async (expected: number, baseline: Map<string, number>) => {
        for (let i = 0; i < 400 && (upstreamAborts < expected || above(baseline).length > 0); i++) await sleep(25);
      };

      // Warm-up: lazily created state (pools, compiled code, metric series) exists before the baseline.
      const baseline = handles();
      await run(BATCH * 4);
      await settle(BATCH * 4, baseline);
      const heapBefore = await settledHeap();

      await run(TOTAL);
      await settle(TOTAL + BATCH * 4, baseline);
      t.is(upstreamAborts, TOTAL + BATCH * 4);
      t.deepEqual(above(baseline), [], 'every kind of active handle is back at its baseline count');
      const growth = (await settledHeap()) - heapBefore;
      t.true(growth < HEAP_BOUND, `heap grew ${(growth / 1024 / 1024).toFixed(1)} MiB over ${TOTAL} aborts`);
      t.log(`heap growth ${(growth / 1024).toFixed(0)} KiB`);
      // Nothing counted as in flight, and the proxy still serves.
      t.is(p.proxy.metrics.listener('ns/gw/web').inFlight, 0);
      t.is((await send(p.port, { path: '/after' })).body, 'ok');
    },
  );

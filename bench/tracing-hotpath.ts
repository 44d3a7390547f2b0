// The tracing work of one request, alone, as a child of bench/tracing.ts (pinned to the proxy core): the calls a
// listener and the dispatcher make on sidecar/tracing.ts for a request through an edge proxy — begin, propagate,
// route, one attempt, its end, finish — with the real Tracing exporting to the bench's sink, in a loop. CPU time of
// this process (exports included) per request, for tracing off (the loop with no tracer), and at 0 %, 1 % and
// 100 % sampling. Less sensitive to other work on the machine than saturation: a figure to set against the proxy's
// own CPU a request. Tells `result` with µs a request per variant.
//   node bench/tracing-hotpath.ts <sink URL> [requests]
import type { IncomingMessage } from 'node:http';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { HeaderMap } from '../sidecar/filters/header-modifier.ts';
import { RouteLabels } from '../sidecar/metrics.ts';
import { type RequestTrace, type TraceStart, Tracing } from '../sidecar/tracing.ts';
import type { CompiledCluster, CompiledEndpoint } from '../sidecar/upstream/cluster.ts';
import { EndpointState } from '../sidecar/upstream/endpoint-state.ts';
import { reportFailures, tell } from './lib/child.ts';

reportFailures();
const [sink, count] = process.argv.slice(2);
const N = Number(count ?? 20_000);

const req = {
  method: 'GET',
  url: '/',
  httpVersion: '1.1',
  headers: { host: 'bench', 'user-agent': 'wrk' },
  socket: { remoteAddress: '127.0.0.1' },
} as unknown as IncomingMessage;
const start: TraceStart = { listener: 'bench/gw/http', kind: 'gateway', scheme: 'http' };
const labels = new RouteLabels('bench/backend', '0', 'bench/backend');
const endpoint: CompiledEndpoint = {
  state: new EndpointState('127.0.0.1', 8080, 'http1'),
  pod: undefined,
  identity: undefined,
};
const cluster: CompiledCluster = {
  key: 'bench/backend',
  service: 'bench/backend',
  protocol: 'http1',
  endpoints: [endpoint],
};

function one(tracing: Tracing | undefined): void {
  // What exchange.ts sends upstream: a fresh header map per request.
  const headers: HeaderMap = { host: 'bench', 'x-forwarded-proto': 'http' };
  if (tracing === undefined) return;
  const trace: RequestTrace | undefined = tracing.begin(req, start);
  tracing.propagate(headers, trace);
  if (trace === undefined) return;
  trace.route(labels, 'GET', 'bench/gw/http');
  const span = trace.attempt(endpoint, cluster, 'GET', '/', headers, 1, false);
  trace.attemptEnded(span, 200, undefined, true);
  trace.finish(200);
}

async function measure(tracing: Tracing | undefined): Promise<number> {
  // Warm-up: the JIT, and the exporter's first connection.
  for (let i = 0; i < 2_000; i++) one(tracing);
  await tracing?.flush();
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    one(tracing);
    // Let the batch processor's timers and exports run, as they would between requests.
    if (i % 25 === 24) await yieldNow();
  }
  await tracing?.flush();
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / N;
}

const results: Record<string, number> = { off: await measure(undefined) };
/** Spans dropped and requests shed: the loop must not outrun the exporter, or it measures shedding. */
const lost: Record<string, number> = {};
for (const [name, ratio] of [
  ['0 %', 0],
  ['1 %', 0.01],
  ['100 %', 1],
] as const) {
  const registry = new Registry();
  // A queue that holds everything: a tight loop outruns a single export in flight, which would measure shedding.
  const options = { endpoint: sink, sampleRatio: ratio, scheduledDelayMs: 200, maxQueueSize: 4 * N };
  const tracing = new Tracing(options, registry);
  tracing.proxyId = 'edge:bench/gw';
  results[name] = await measure(tracing);
  await tracing.shutdown();
  const text = await registry.metrics();
  lost[name] = [...text.matchAll(/^weft_proxy_trace_(?:spans_dropped|requests_shed)_total\S* (\d+)/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}
tell({ type: 'result', results, lost }, () => process.exit(0));

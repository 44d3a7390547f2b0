// `npm run bench:tracing`: what tracing costs the proxy, as throughput ratios within one run. An edge proxy with the
// bench's one route (bench/tracing-proxy.ts, pinned to the proxy core) is run in several variants side by side —
// tracing off; on at 0 %, 1 % and 100 % sampling exporting to a local OTLP/HTTP sink; at 100 % with a collector
// that refuses connections and with one that accepts and never answers — and each is saturated in turn (wrk, else
// autocannon, on the load core) for several interleaved rounds. Requests carry no trace context, so the edge's
// ratio decides. Reported: median requests/s per variant and the median over rounds of its ratio to "off" measured
// in the same round; spans the sink received and the proxies' own export counters. With --write-doc the
// "## Tracing" section of docs/performance.md is replaced (other sections are kept).
//   node bench/tracing.ts [--rounds N] [--seconds S] [--connections C] [--quick] [--write-doc]
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { detectPinning, type NodeChild, type Pinning, spawnNode } from './lib/child.ts';
import { edgeOneRoute } from './lib/configs.ts';
import { writeDocSection } from './lib/doc.ts';
import { loadavg } from 'node:os';
import { machine, otherWork } from './lib/machine.ts';
import { type SaturationOptions, type SaturationResult, saturateAutocannon, saturateWrk } from './lib/saturation.ts';
import { ensureTools, type Tools } from './lib/tools.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
    'write-doc': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds ?? (values.quick ? 2 : 5));
const SECONDS = Number(values.seconds ?? (values.quick ? 2 : 6));
const CONNECTIONS = Number(values.connections);
const log = (s: string) => process.stderr.write(`${s}\n`);

// ---- the OTLP sink: reads each export, counts its spans, answers 200 ----

interface Sink {
  server: Server;
  url: string;
  requests: number;
  spans: number;
  bytes: number;
}

const SPAN_ID = Buffer.from('"spanId"');

function countSpans(body: Buffer): number {
  let n = 0;
  for (let i = body.indexOf(SPAN_ID); i >= 0; i = body.indexOf(SPAN_ID, i + SPAN_ID.length)) n++;
  return n;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startSink(): Promise<Sink> {
  const sink: Sink = { server: createServer(), url: '', requests: 0, spans: 0, bytes: 0 };
  sink.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      sink.requests++;
      sink.bytes += body.length;
      sink.spans += countSpans(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  sink.url = await listen(sink.server);
  return sink;
}

/** A collector that accepts connections and never answers (exports end by their timeout). */
async function startBlackhole(): Promise<{ server: Server; url: string }> {
  const server = createServer(() => {});
  return { server, url: await listen(server) };
}

/** A URL nothing listens on (connections refused). */
async function refusedUrl(): Promise<string> {
  const s = createServer();
  const url = await listen(s);
  await new Promise((r) => s.close(r));
  return url;
}

// ---- children ----

const stops: (() => Promise<unknown>)[] = [];

async function startChild(pinning: Pinning, core: number, script: string, args: string[]) {
  const child = spawnNode(pinning, core, join(here, script), args);
  stops.push(() => child.stop());
  const ready = await child.next<{ type: string; port: number }>('ready', 30_000);
  return { child, port: ready.port };
}

interface Variant {
  name: string;
  /** Collector URL and ratio; absent: tracing off. */
  tracing?: { url: string; ratio: number };
  child?: NodeChild;
  port?: number;
  rps: number[];
  ratios: number[];
  /** Proxy CPU µs per request, per round, and its ratio to off's in the same round. */
  cpuPerRequest: number[];
  cpuRatios: number[];
  other: number[];
  errors: number;
  non2xx: number;
  counters?: Record<string, number>;
}

function probe(port: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'bench' } }, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolvePromise() : reject(new Error(`probe: status ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The proxy's CPU time so far, µs. */
async function cpuOf(v: Variant): Promise<number> {
  v.child!.send({ type: 'cpu' });
  return (await v.child!.next<{ type: string; us: number }>('cpu', 10_000)).us;
}

async function saturate(tools: Tools, pinning: Pinning, port: number, durationS: number): Promise<SaturationResult> {
  const o: SaturationOptions = { port, authority: 'bench', connections: CONNECTIONS, durationS };
  return tools.wrk ? saturateWrk(tools.wrk.path, pinning, o) : saturateAutocannon(pinning, o);
}

function parseCounters(lines: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    const m = /^(weft_proxy_trace_\w+)(?:\{reason="(\w+)"\})? (\S+)$/.exec(l);
    if (m) out[m[2] ? `${m[1]}{${m[2]}}` : m[1]] = Number(m[3]);
  }
  return out;
}

// ---- report ----

function pct(ratio: number): string {
  const cost = (1 - ratio) * 100;
  return `${cost >= 0 ? '' : '−'}${Math.abs(cost).toFixed(1)} %`;
}

function section(o: {
  variants: Variant[];
  hot: Record<string, number[]>;
  sink: Sink;
  tools: Tools;
  pinning: Pinning;
  load: number[];
  seconds: number;
}): string {
  const m = machine();
  const date = new Date().toISOString().slice(0, 10);
  const lines = [
    '## Tracing',
    '',
    '`npm run bench:tracing` (bench/tracing.ts) measures what tracing costs the edge proxy (one route, node:http',
    'engine), as requests/s at saturation relative to the same proxy with tracing off, in one run. Written by the',
    `script; last run ${date}, ${Math.round(o.seconds)} s in all.`,
    '',
    `- ${m.cpu}, ${m.cores} cores; Node ${process.version}; load generator ${o.tools.wrk ? `wrk ${o.tools.wrk.version} -t1` : 'autocannon'}, ${CONNECTIONS} connections, no trace context on requests`,
    `- ${o.pinning.note}; the OTLP sink (reads, counts, answers 200) runs in the orchestrator on the load core`,
    `- ${ROUNDS} rounds of ${SECONDS} s per variant, the variants' order rotated each round; the ratio of a round is`,
    '  against "off" measured in the same round, and the table gives medians over rounds. Two measures: requests/s at',
    "  saturation, and the proxy process's own CPU time per request (user + system, its exporter included), which",
    "  holds when other work shares the proxy's core; cost per core = 1 − off's CPU a request ÷ the variant's",
    `- load average at start: ${o.load.map((x) => x.toFixed(2)).join(' / ')}; other work: CPU of processes outside the bench, in cores`,
    '',
    "| variant | requests/s | ratio to off | proxy CPU a request | requests per CPU-second, ratio to off | cost per core | rounds' ratios (rps; CPU) | other work | errors / non-2xx |",
    '|---|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  for (const v of o.variants) {
    const r = median(v.ratios);
    const c = median(v.cpuRatios);
    const rounds = `${v.ratios.map((x) => x.toFixed(2)).join(' ')}; ${v.cpuRatios.map((x) => x.toFixed(2)).join(' ')}`;
    lines.push(
      `| ${v.name} | ${Math.round(median(v.rps)).toLocaleString('en-US')} | ${r.toFixed(3)} | ${median(v.cpuPerRequest).toFixed(1)} µs | ${c.toFixed(3)} | ${v.tracing ? pct(c) : '—'} | ${rounds} | ${median(v.other).toFixed(2)} | ${v.errors} / ${v.non2xx} |`,
    );
  }
  // The tracing work alone, set against the proxy's own CPU a request with tracing off (same run).
  const base = median(o.variants[0].cpuPerRequest);
  const off = median(o.hot.off ?? []);
  lines.push(
    '',
    `The tracing work of one request alone (bench/tracing-hotpath.ts, pinned to the proxy core: begin, propagate,`,
    'route, one attempt, finish, and the batched OTLP export to the sink, in a loop; medians of 3 runs of 20,000',
    `requests, less the same loop with no tracer, ${off.toFixed(2)} µs), set against the proxy's ${base.toFixed(1)} µs of CPU`,
    'a request with tracing off in this run:',
    '',
    '| sampling | tracing CPU a request | estimated cost per core |',
    '|---|---:|---:|',
  );
  for (const k of ['0 %', '1 %', '100 %']) {
    // Below the loop's own run-to-run spread, a difference says "too small to see", not a gain.
    const added = median(o.hot[k] ?? []) - off;
    const cost = added <= 0 ? 'not measurable' : `${((added / (base + added)) * 100).toFixed(1)} %`;
    lines.push(`| ${k} | ${added.toFixed(2)} µs | ${cost} |`);
  }
  lines.push(
    '',
    'Export counters of each traced proxy at the end (`weft_proxy_trace_*`), and what the sink received:',
    '',
  );
  lines.push(
    '| variant | spans exported | dropped: queue full | dropped: export failed | failed exports | requests shed |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const v of o.variants) {
    if (!v.tracing) continue;
    const c = v.counters ?? {};
    const n = (k: string) => (c[k] ?? 0).toLocaleString('en-US');
    lines.push(
      `| ${v.name} | ${n('weft_proxy_trace_spans_exported_total')} | ${n('weft_proxy_trace_spans_dropped_total{queue_full}')} | ${n('weft_proxy_trace_spans_dropped_total{export_failed}')} | ${n('weft_proxy_trace_export_failures_total')} | ${n('weft_proxy_trace_requests_shed_total')} |`,
    );
  }
  lines.push(
    '',
    'How to read it: with other work on the machine (the "other work" column, in cores of the 2), the',
    "saturation rate of a 5 s window swings with what else runs on the proxy's core, round to round; the proxy's",
    'CPU a request holds better, and the tracing work measured alone (the second table) holds best: it is the',
    'figure to judge the cost by on a shared machine.',
    '',
    `The sink received ${o.sink.spans.toLocaleString('en-US')} spans in ${o.sink.requests.toLocaleString('en-US')} export requests (${(o.sink.bytes / 1e6).toFixed(1)} MB of OTLP JSON).`,
  );
  return `${lines.join('\n')}\n`;
}

// ---- run ----

async function main(): Promise<void> {
  const began = performance.now();
  const load = loadavg();
  const pinning = detectPinning();
  const tools = ensureTools();
  log(`pinning: ${pinning.note}; load: ${tools.wrk ? 'wrk' : 'autocannon'}`);
  const sink = await startSink();
  const hole = await startBlackhole();
  const refused = await refusedUrl();
  const backend = await startChild(pinning, pinning.loadCore, 'proxy-backend.ts', []);
  const config = JSON.stringify(edgeOneRoute(1, backend.port));
  const variant = (name: string, tracing?: Variant['tracing']): Variant => ({
    name,
    tracing,
    rps: [],
    ratios: [],
    cpuPerRequest: [],
    cpuRatios: [],
    other: [],
    errors: 0,
    non2xx: 0,
  });
  const variants: Variant[] = [
    variant('off'),
    variant('on, 0 % sampled', { url: sink.url, ratio: 0 }),
    variant('1 % sampled', { url: sink.url, ratio: 0.01 }),
    variant('100 % sampled', { url: sink.url, ratio: 1 }),
    variant('100 %, collector refuses connections', { url: refused, ratio: 1 }),
    variant('100 %, collector never answers', { url: hole.url, ratio: 1 }),
  ];
  const hot: Record<string, number[]> = {};
  try {
    for (const v of variants) {
      const args = v.tracing ? [config, v.tracing.url, String(v.tracing.ratio)] : [config];
      const p = await startChild(pinning, pinning.proxyCore, 'tracing-proxy.ts', args);
      v.child = p.child;
      v.port = p.port;
      await probe(p.port);
    }
    log('warming up each variant');
    for (const v of variants) await saturate(tools, pinning, v.port!, Math.min(2, SECONDS));
    for (let round = 0; round < ROUNDS; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      const rps = new Map<Variant, number>();
      const cpu = new Map<Variant, number>();
      for (const v of order) {
        const end = otherWork();
        const cpu0 = await cpuOf(v);
        const r = await saturate(tools, pinning, v.port!, SECONDS);
        const perRequest = (await cpuOf(v)) - cpu0;
        const other = end();
        rps.set(v, r.rps);
        cpu.set(v, perRequest / (r.rps * SECONDS));
        v.cpuPerRequest.push(perRequest / (r.rps * SECONDS));
        v.rps.push(r.rps);
        v.other.push(other);
        v.errors += r.errors;
        v.non2xx += r.non2xx;
        log(
          `round ${round + 1}/${ROUNDS} ${v.name}: ${Math.round(r.rps)} rps, ${cpu.get(v)!.toFixed(1)} µs CPU a request (other work ${other.toFixed(2)} cores)`,
        );
      }
      const off = rps.get(variants[0])!;
      const offCpu = cpu.get(variants[0])!;
      for (const v of variants) {
        v.ratios.push(rps.get(v)! / off);
        v.cpuRatios.push(offCpu / cpu.get(v)!);
      }
    }
    log('hot path: the tracing work of a request alone, 3 runs');
    for (let i = 0; i < 3; i++) {
      const child = spawnNode(pinning, pinning.proxyCore, join(here, 'tracing-hotpath.ts'), [sink.url, '20000']);
      stops.push(() => child.stop());
      const m = await child.next<{ type: string; results: Record<string, number> }>('result', 120_000);
      for (const [k, us] of Object.entries(m.results)) hot[k] = [...(hot[k] ?? []), us];
    }
    for (const v of variants) {
      if (!v.tracing) continue;
      v.child!.send({ type: 'metrics' });
      v.counters = parseCounters((await v.child!.next<{ type: string; lines: string[] }>('metrics', 10_000)).lines);
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    sink.server.close();
    hole.server.closeAllConnections();
    hole.server.close();
  }
  const text = section({ variants, hot, sink, tools, pinning, load, seconds: (performance.now() - began) / 1000 });
  process.stdout.write(`\n${text}`);
  if (values['write-doc']) {
    writeDocSection('Tracing', text);
    log('docs/performance.md: "## Tracing" written');
  }
}

await main();

// Route lookup micro-benchmark, as a child of bench/run.ts (pinned to the proxy core): the
// compiled router (sidecar/router/route-table.ts) on generated tables of 10,000 routes, probed
// with a shuffled mix of hits at every depth, header/query/regex matches and misses. Every probe
// is first checked to reach the route it should. Tells the figures over IPC (or prints them
// when run alone: node bench/proxy-lookup.ts [routes]).
import { EndpointRegistry } from '../sidecar/upstream/endpoint-state.ts';
import { compileConfig } from '../sidecar/compiled-config.ts';
import { parseProxyConfig } from '../sidecar/config/validate.ts';
import type { RequestFacts } from '../sidecar/router/request-facts.ts';
import type { CompiledRouteTable } from '../sidecar/router/route-table.ts';
import { reportFailures, tell } from './lib/child.ts';
import { edgeManyRoutes } from './lib/configs.ts';
import { type Probe, probesFor, ROUTES_PER_FAMILY, type Shape } from './lib/routes.ts';

const RUNS = 7;
const LOOKUPS_PER_RUN = 300_000;
const KIND_RUNS = 3;
const KIND_LOOKUPS = 50_000;

export interface LookupShapeResult {
  shape: Shape;
  routes: number;
  virtualHosts: number;
  probes: number;
  compileMs: number;
  /** ns per lookup over the whole mix: median, min and max of the runs. */
  medianNs: number;
  minNs: number;
  maxNs: number;
  /** Median ns per lookup of each probe kind alone. */
  byKind: { kind: string; medianNs: number }[];
}

interface Lookup {
  host: string;
  facts: RequestFacts;
}

function compileTable(shape: Shape, routes: number): { table: CompiledRouteTable; ms: number; hosts: number } {
  const input = edgeManyRoutes(8080, routes, shape);
  const config = parseProxyConfig(input);
  const started = performance.now();
  const compiled = compileConfig(config, new EndpointRegistry()).routeTables.get('bench/gw/http')!;
  return {
    table: compiled,
    ms: performance.now() - started,
    hosts: input.routeTables['bench/gw/http'].virtualHosts.length,
  };
}

/** Deterministic shuffle (xorshift), so every run probes in the same order. */
function shuffle<T>(items: T[]): T[] {
  let x = 0x9e3779b9;
  for (let i = items.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function toLookup(p: Probe): Lookup {
  return { host: p.host, facts: { method: p.method, path: p.path, query: p.query, rawHeaders: p.rawHeaders } };
}

let sink = 0;

/** ns per lookup over `count` lookups cycling through `lookups`. */
function timeRun(table: CompiledRouteTable, lookups: Lookup[], count: number): number {
  const n = lookups.length;
  let hits = 0;
  const start = process.hrtime.bigint();
  for (let i = 0, k = 0; i < count; i++) {
    const l = lookups[k];
    if (table.match(l.host, l.facts) !== undefined) hits++;
    k = k + 1 === n ? 0 : k + 1;
  }
  const ns = Number(process.hrtime.bigint() - start);
  sink += hits;
  return ns / count;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function benchShape(shape: Shape, routes: number): LookupShapeResult {
  const { table, ms, hosts } = compileTable(shape, routes);
  const probes: Probe[] = [];
  for (let i = 0; i < Math.ceil(routes / ROUTES_PER_FAMILY); i++) probes.push(...probesFor(shape, i));
  for (const p of probes) {
    const got = table.match(p.host, toLookup(p).facts)?.id ?? null;
    if (got !== p.expect) throw new Error(`${shape}: ${p.kind} ${p.host}${p.path} reached ${got}, not ${p.expect}`);
  }
  const mix = shuffle(probes.map(toLookup));
  timeRun(table, mix, LOOKUPS_PER_RUN); // warm-up: JIT and caches
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(timeRun(table, mix, LOOKUPS_PER_RUN));
  const kinds = [...new Set(probes.map((p) => p.kind))];
  const byKind = kinds.map((kind) => {
    const own = shuffle(probes.filter((p) => p.kind === kind).map(toLookup));
    timeRun(table, own, KIND_LOOKUPS);
    const t: number[] = [];
    for (let r = 0; r < KIND_RUNS; r++) t.push(timeRun(table, own, KIND_LOOKUPS));
    return { kind, medianNs: median(t) };
  });
  return {
    shape,
    routes,
    virtualHosts: hosts,
    probes: probes.length,
    compileMs: ms,
    medianNs: median(runs),
    minNs: Math.min(...runs),
    maxNs: Math.max(...runs),
    byKind,
  };
}

if (import.meta.main) {
  reportFailures();
  const routes = Number(process.argv[2] ?? 10_000);
  const results = (['one-host', 'many-hosts'] as Shape[]).map((shape) => benchShape(shape, routes));
  if (process.send) tell({ type: 'result', results, sink }, () => process.exit(0));
  else console.log(JSON.stringify(results, null, 2));
}

// The benchmark's figures as terminal tables and as the proxy section of docs/performance.md.
import type { LookupShapeResult } from '../proxy-lookup.ts';
import type { LatencySummary } from './constant-rate.ts';
import type { Machine } from './machine.ts';
import type { ProfileSummary } from './profile.ts';
import type { SaturationResult } from './saturation.ts';

export interface TargetResult {
  name: string;
  /** Proxy hops between client and backend: 0 direct, 1 nginx or edge, 2 the sidecar pair. */
  hops: number;
  engine?: string;
  fixed?: LatencySummary;
  saturation?: SaturationResult;
  /** Cores' worth of CPU used by other work (not this benchmark) during the constant-rate and saturation windows. */
  otherFixed?: number;
  otherSaturation?: number;
  error?: string;
}

export interface MemoryResult {
  label: string;
  routes: number;
  rss: number;
  heapUsed: number;
  /** V8 heap reserved (used or not): pages kept after the config's parse and compile garbage is collected. */
  heapTotal: number;
  gc: boolean;
}

export interface BenchReport {
  machine: Machine;
  nginxVersion: string | undefined;
  loadGenerators: string;
  pinning: string;
  notes: string[];
  durations: { rate: number; warmupS: number; fixedS: number; satWarmupS: number; satS: number; connections: number };
  targets: TargetResult[];
  memory: MemoryResult[];
  /** RSS of bare processes and of each package the proxy loads, imported alone. */
  modules: { what: string; rss: number }[];
  lookups: LookupShapeResult[];
  profile: { engine: string; summary: ProfileSummary; rps: number } | undefined;
  defaultEngine: string;
  pairGap: string | undefined;
  elapsedS: number;
}

const ms = (x: number | undefined, digits = 3) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));
const int = (x: number) => Math.round(x).toLocaleString('en-US');
const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(1);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

function direct(r: BenchReport): TargetResult | undefined {
  return r.targets.find((t) => t.hops === 0 && t.fixed);
}

function nginx(r: BenchReport): TargetResult | undefined {
  return r.targets.find((t) => t.name === 'nginx' && t.saturation);
}

/** Added latency per hop over direct, ms. */
export function added(r: BenchReport, t: TargetResult): { p50: number; p99: number } | undefined {
  const d = direct(r);
  if (!d?.fixed || !t.fixed || t.hops === 0) return undefined;
  return { p50: (t.fixed.p50 - d.fixed.p50) / t.hops, p99: (t.fixed.p99 - d.fixed.p99) / t.hops };
}

export function ratioToNginx(r: BenchReport, t: TargetResult): number | undefined {
  const n = nginx(r);
  if (!n?.saturation || !t.saturation) return undefined;
  return t.saturation.rps / n.saturation.rps;
}

/** The engine with the most requests/s at saturation; the default unless another beats it by > 3 %. */
export function engineDecision(r: BenchReport): { best: string; keepDefault: boolean; text: string } {
  const engines = r.targets.filter((t) => t.engine && t.hops === 1 && t.saturation);
  const def = engines.find((t) => t.engine === r.defaultEngine);
  if (!def || engines.length < 2)
    return { best: r.defaultEngine, keepDefault: true, text: 'not enough engines measured' };
  const fastest = engines.reduce((a, b) => (b.saturation!.rps > a.saturation!.rps ? b : a));
  const lead = fastest.saturation!.rps / def.saturation!.rps - 1;
  if (fastest.engine === def.engine || lead <= 0.03) {
    const second = engines.filter((t) => t !== def).reduce((a, b) => (b.saturation!.rps > a.saturation!.rps ? b : a));
    const margin = def.saturation!.rps / second.saturation!.rps - 1;
    return {
      best: def.engine!,
      keepDefault: true,
      text:
        fastest.engine === def.engine
          ? `${def.engine} (the default) is the fastest, ${(margin * 100).toFixed(1)} % ahead of ${second.engine}: it stays the default.`
          : `${fastest.engine} leads ${def.engine} by only ${(lead * 100).toFixed(1)} % (within run-to-run noise, 3 %): ${def.engine} stays the default.`,
    };
  }
  return {
    best: fastest.engine!,
    keepDefault: false,
    text: `${fastest.engine} is ${(lead * 100).toFixed(1)} % faster than the default ${def.engine} at saturation: the measurement says it should become the default (not changed by the benchmark).`,
  };
}

interface Verdict {
  target: string;
  goal: string;
  measured: string;
  result: string;
  margin: string;
}

function verdict(target: string, goal: number, unit: string, value: number | undefined, atMost: boolean): Verdict {
  const g = `${atMost ? '≤' : '≥'} ${goal} ${unit}`;
  if (value === undefined || Number.isNaN(value))
    return { target, goal: g, measured: '–', result: 'not measured', margin: '' };
  const digits = unit === 'ms' ? 3 : unit === '×' ? 2 : 1;
  const pass = atMost ? value <= goal : value >= goal;
  const diff = Math.abs(value - goal);
  const factor = atMost ? value / goal : goal / value;
  return {
    target,
    goal: g,
    measured: `${value.toFixed(digits)} ${unit}`,
    result: pass ? 'pass' : 'MISS',
    margin: pass
      ? `${diff.toFixed(digits)} ${unit} to spare`
      : `missed by ${diff.toFixed(digits)} ${unit} (${factor.toFixed(1)}× the goal)`,
  };
}

export function verdicts(r: BenchReport): Verdict[] {
  const edge = r.targets.find((t) => t.engine === r.defaultEngine && t.hops === 1);
  const pair = r.targets.find((t) => t.hops === 2);
  const a = edge ? added(r, edge) : undefined;
  const p = pair ? added(r, pair) : undefined;
  const rss = r.memory.find((m) => m.routes === 1000);
  const worstLookup = r.lookups.length > 0 ? Math.max(...r.lookups.map((l) => l.medianNs)) / 1000 : undefined;
  const out = [
    verdict(`added p50 per hop, edge (${r.defaultEngine}), 1,000 rps`, 0.3, 'ms', a?.p50, true),
    verdict(`added p99 per hop, edge (${r.defaultEngine}), 1,000 rps`, 1, 'ms', a?.p99, true),
    verdict('added p50 per hop, sidecar→sidecar mTLS', 0.3, 'ms', p?.p50, true),
    verdict('added p99 per hop, sidecar→sidecar mTLS', 1, 'ms', p?.p99, true),
    verdict(
      `throughput on one core vs nginx (${r.defaultEngine})`,
      0.5,
      '×',
      edge ? ratioToNginx(r, edge) : undefined,
      false,
    ),
    verdict('RSS, idle proxy with 1,000 routes', 50, 'MiB', rss ? rss.rss / 1024 ** 2 : undefined, true),
    verdict('route lookup, 10,000 routes (worse table shape)', 5, 'µs', worstLookup, true),
  ];
  if (!pair && r.pairGap) {
    for (const v of out.slice(2, 4)) v.result = `gap: ${r.pairGap}`;
  }
  return out;
}

function mdTable(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function resultRows(r: BenchReport): string[][] {
  return r.targets.map((t) => {
    const a = added(r, t);
    const ratio = ratioToNginx(r, t);
    if (t.error) return [t.name, String(t.hops), `failed: ${t.error}`, '', '', '', '', '', ''];
    return [
      t.name,
      String(t.hops),
      t.fixed ? `${ms(t.fixed.p50)} / ${ms(t.fixed.p99)} / ${ms(t.fixed.max, 2)}` : '–',
      a ? `${ms(a.p50)} / ${ms(a.p99)}` : '–',
      t.fixed
        ? `${int(t.fixed.achievedRate)}${t.fixed.errors + t.fixed.non2xx > 0 ? ` (${int(t.fixed.errors + t.fixed.non2xx)} failed or unfinished)` : ''}`
        : '–',
      t.saturation ? int(t.saturation.rps) : '–',
      t.saturation ? `${ms(t.saturation.p50, 2)} / ${ms(t.saturation.p99, 2)}` : '–',
      ratio !== undefined ? `${ratio.toFixed(2)}×` : '–',
      t.otherFixed !== undefined && t.otherSaturation !== undefined
        ? `${t.otherFixed.toFixed(2)} / ${t.otherSaturation.toFixed(2)}`
        : '–',
    ];
  });
}

const RESULT_HEAD = [
  'target',
  'hops',
  'latency at 1,000 rps p50 / p99 / max (ms)',
  'added per hop p50 / p99 (ms)',
  'achieved rps',
  'saturation rps',
  'saturation p50 / p99 (ms)',
  'vs nginx',
  'other work, cores (rate / sat.)',
];

export function terminalReport(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(mdTable(RESULT_HEAD, resultRows(r)));
  lines.push('');
  lines.push(
    mdTable(
      ['idle proxy', 'RSS (MiB)', 'heap used (MiB)'],
      r.memory.map((m) => [m.label, mib(m.rss), mib(m.heapUsed)]),
    ),
  );
  lines.push('');
  lines.push(
    mdTable(
      ['route table (10,000 routes)', 'median ns/lookup (min–max)'],
      r.lookups.map((l) => [
        `${l.shape}, ${l.virtualHosts} host(s)`,
        `${int(l.medianNs)} (${int(l.minNs)}–${int(l.maxNs)})`,
      ]),
    ),
  );
  lines.push('');
  lines.push(
    mdTable(
      ['target', 'goal', 'measured', 'result', 'margin'],
      verdicts(r).map((v) => Object.values(v)),
    ),
  );
  lines.push('');
  lines.push(`engine: ${engineDecision(r).text}`);
  return lines.join('\n');
}

/** What the RSS figures say, from the bare-process and per-module measurements. */
function rssReading(r: BenchReport): string {
  const bare = r.modules.find((x) => x.what.startsWith('bare node'));
  const ts = r.modules.find((x) => x.what.startsWith('bare .ts'));
  const proxy = r.modules.find((x) => x.what.includes('sidecar/proxy.ts'));
  const one = r.memory.find((x) => x.routes === 1);
  const many = r.memory.find((x) => x.routes === 1000);
  if (!bare || !ts || !proxy || !one || !many) return '';
  const heavy = r.modules
    .filter((x) => x.what.startsWith('+ ') && !x.what.includes('sidecar/'))
    .sort((a, b) => b.rss - a.rss)
    .slice(0, 3)
    .map((x) => `${x.what.slice(2)} ${mib(x.rss - ts.rss)}`)
    .join(', ');
  const resident = many.rss - one.rss - (many.heapTotal - one.heapTotal);
  return `RSS: a bare Node process is ${mib(bare.rss)} MiB; running TypeScript by type stripping adds ${mib(ts.rss - bare.rss)} MiB;
loading the proxy's modules adds ${mib(proxy.rss - ts.rss)} MiB more (heaviest alone: ${heavy} MiB), so the proxy
idles at ${mib(one.rss)} MiB with one route before any route counts. With 1,000 routes it is ${mib(many.rss)} MiB, yet
the V8 heap in use after GC is only ${mib(many.heapUsed)} MiB (${mib(many.heapTotal)} MiB reserved): about ${mib(resident)} MiB are
pages the process touched at its peak while reading the config (the file goes through the YAML parser even
when it is JSON), validating and compiling it — freed by V8 but still resident.`;
}

export function docSection(r: BenchReport): string {
  const m = r.machine;
  const d = r.durations;
  const decision = engineDecision(r);
  const engines = r.targets.filter((t) => t.engine && t.hops === 1);
  const lookupKinds = r.lookups[0]?.byKind.map((k) => k.kind) ?? [];
  const kindsAll = [...new Set(r.lookups.flatMap((l) => l.byKind.map((k) => k.kind)))];
  const prof = r.profile;
  return `## Proxy

\`npm run bench\` (bench/run.ts) measures the weft proxy against a direct call and against nginx, all in
one run so every ratio is against baselines of the same run. Written by the script; last run ${m.date},
${Math.round(r.elapsedS)} s in all.

### Machine

- CPU: ${m.cpu}, ${m.cores} cores; memory ${m.memoryGiB} GiB; ${m.kernel}; Node ${m.node}
- nginx: ${r.nginxVersion ?? 'not available (baseline skipped)'}; load generators: ${r.loadGenerators}
- pinning: ${r.pinning}
- load average at start (1 / 5 / 15 min): ${m.load}. The machine is shared with other work: the last
  column of the results is the CPU that processes outside the benchmark used during each measured window
  (from /proc: all process CPU time minus the benchmark's own process tree), in cores of the ${m.cores}. A
  window with more than 0.25 cores of other work is measured again while a retry budget of 150 s lasts,
  and the less disturbed measurement is kept; a row still above that is disturbed (slower, longer
  tails) and its figures are upper bounds on latency and lower bounds on throughput.
${r.notes.map((n) => `- ${n}`).join('\n')}

### Method

- Backend: node:http on 127.0.0.1 answering every request with the same 34-byte body, keep-alive
  (bench/proxy-backend.ts). "direct" is the client talking to it with no proxy.
- nginx: generated nginx.conf, \`worker_processes 1\`, upstream \`keepalive 128\`, HTTP/1.1 to the
  backend, \`access_log off\` (bench/lib/nginx.ts).
- weft edge: a ProxyConfig with one Gateway HTTP listener and one PathPrefix \`/\` route to the backend,
  run by bench/proxy-server.ts (what \`weft proxy --config\` runs: file read, startProxy, file watch) with
  each forwarding engine in turn: ${engines.map((t) => t.engine).join(', ')}.
- Latency: ${int(d.rate)} requests/s at a constant rate, ${d.warmupS} s warm-up discarded, then ${d.fixedS} s
  measured (bench/lib/constant-rate.ts: open loop, request *i* due at start + *i*/rate, sent on any idle
  connection of a pool of 32, timed from write to the last byte with \`performance.now()\`). Added latency per
  hop = (target's percentile − direct's percentile) / hops. autocannon's \`--overallRate\` was not used: its
  histogram has 1 ms resolution and its rate limit sends each second's budget in a burst; Debian's wrk
  (${r.loadGenerators.includes('wrk') ? 'wg/wrk 4.1' : 'absent here'}) has no \`-R\` constant-rate option.
- Saturation: ${d.connections} keep-alive connections for ${d.satS} s after a ${d.satWarmupS} s warm-up,
  \`wrk -t1\` on the load core (autocannon when wrk is missing). The backend shares the load core, so the
  direct figure is the ceiling of client plus backend; a proxy figure near it means the proxy was not
  the limit.
- RSS: \`VmRSS\` of an idle proxy process (no traffic) after four forced full GCs 250 ms apart, with the
  1-route config and with 1,000 generated routes (100 virtual hosts × 10 routes, 200 clusters of 3
  endpoints; the route mix of bench/lib/routes.ts).
- Route lookup: \`CompiledRouteTable.match\` (sidecar/router/route-table.ts) on tables of 10,000 generated
  routes, in a child pinned to the proxy core; families of 10 routes per service (Exact, Exact + method,
  PathPrefix at depths 1–5, Exact and RegularExpression header matches, a query match, splits, filters, one
  RegularExpression path per 50 families), sorted by Gateway API precedence. Two shapes: one virtual host
  with all 10,000 routes (the path index), and 1,000 hosts × 10 routes. Probes: ${kindsAll.join(', ')}; each
  probe is checked to reach its route before timing. Median ns/lookup of 7 runs over the shuffled mix.
- CPU profile: the ${prof?.engine ?? r.defaultEngine} edge proxy at saturation, V8's sampling CPU profiler (the one
  \`node --cpu-prof\` starts) run through \`node:inspector\` over the measured window only (startup and
  module compilation would otherwise crowd it), 250 µs sampling.
- RSS by module: a process importing one package (or sidecar/proxy.ts) and nothing else, after forced GCs,
  against a bare \`node -e\` process and a bare .ts process (Node's type stripping loads its own compiler).

### Results

${mdTable(RESULT_HEAD, resultRows(r))}

${mdTable(
  ['idle proxy', 'routes', 'RSS (MiB)', 'V8 heap used / reserved (MiB)'],
  r.memory.map((x) => [x.label, int(x.routes), mib(x.rss), `${mib(x.heapUsed)} / ${mib(x.heapTotal)}`]),
)}

${mdTable(
  ['route table', 'routes', 'virtual hosts', 'compile (ms)', 'median ns/lookup', 'min–max'],
  r.lookups.map((l) => [
    l.shape,
    int(l.routes),
    int(l.virtualHosts),
    int(l.compileMs),
    int(l.medianNs),
    `${int(l.minNs)}–${int(l.maxNs)}`,
  ]),
)}

Where an idle proxy's RSS goes (each package imported alone; the parts overlap, so they do not add up exactly):

${mdTable(
  ['process', 'RSS (MiB)', 'over the bare .ts process (MiB)'],
  r.modules.map((x) => {
    const base = r.modules.find((y) => y.what.startsWith('bare .ts'));
    return [x.what, mib(x.rss), base && x.what.startsWith('+') ? mib(x.rss - base.rss) : ''];
  }),
)}

Lookup by probe kind (median ns):

${mdTable(
  ['probe', ...r.lookups.map((l) => l.shape)],
  kindsAll.map((k) => [
    k,
    ...r.lookups.map((l) => {
      const e = l.byKind.find((x) => x.kind === k);
      return e ? int(e.medianNs) : '–';
    }),
  ]),
)}

### Targets (issue 3)

${mdTable(
  ['target', 'goal', 'measured', 'result', 'margin'],
  verdicts(r).map((v) => Object.values(v)),
)}

### Forwarding engine

${mdTable(
  ['engine', 'saturation rps', 'vs nginx', 'added p50 / p99 per hop (ms)'],
  engines.map((t) => {
    const a = added(r, t);
    const ratio = ratioToNginx(r, t);
    return [
      t.engine!,
      t.saturation ? int(t.saturation.rps) : '–',
      ratio !== undefined ? `${ratio.toFixed(2)}×` : '–',
      a ? `${ms(a.p50)} / ${ms(a.p99)}` : '–',
    ];
  }),
)}

Decision: ${decision.text}

### What limits the proxy
${
  prof
    ? `
CPU profile of the ${prof.engine} edge proxy at saturation (${int(prof.rps)} requests/s while profiled,
${int(prof.summary.busyMs)} ms of busy CPU sampled). Self time by where the code lives:

${mdTable(
  ['where', 'share of busy CPU'],
  prof.summary.groups.filter((g) => g.share >= 0.005).map((g) => [g.group, pct(g.share)]),
)}

Functions with the most self time:

${mdTable(
  ['function', 'where', 'self'],
  prof.summary.top.map((e) => [`\`${e.name}\``, e.where, pct(e.share)]),
)}

weft's own functions by inclusive time (themselves and what they call):

${mdTable(
  ['function', 'where', 'inclusive'],
  prof.summary.weftInclusive.map((e) => [`\`${e.name}\``, e.where, pct(e.share)]),
)}
`
    : '\nNo profile was taken in this run.\n'
}
${rssReading(r)}

Route lookup: ${lookupKinds.length > 0 ? 'see the probe table above; the cost per lookup grows with the RegularExpression path routes of a virtual host (every lookup that the index cannot settle tests them in order) and with the number of path ancestors looked up in the prefix map.' : 'not measured.'}
`;
}

// `npm run bench:translate`: the translator's cost on synthetic snapshots of 1,000 and 10,000
// HTTPRoutes (bench/synthetic.ts). For each: wall time of translate() (median of 5 runs after one
// warm-up), heap in use afterwards with the result alive (after a forced GC), and the output's size.
// Prints a table and writes it, with the machine, to docs/performance.md under "## Translator"
// (other sections of that file are kept). Usage: node --expose-gc bench/translate.ts [routes...]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { statusProblems } from '../bin/commands/translate.ts';
import { ResourceSnapshot } from '../controlplane/resources/snapshot.ts';
import { translate } from '../controlplane/translate/index.ts';
import type { ProxyConfig, RouteTable } from '../sidecar/config/proxy-config.ts';
import { validateProxyConfig } from '../sidecar/config/validate.ts';
import { writeDocSection } from './lib/doc.ts';
import { syntheticSnapshot } from './synthetic.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 5;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  // Heap figures mean nothing without a forced GC: run again with the flag.
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
const collect = gc as () => void;

interface Row {
  routes: number;
  services: number;
  namespaces: number;
  hostnames: number;
  pods: number;
  objects: number;
  snapshotMs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  heapBeforeMB: number;
  heapAfterMB: number;
  proxies: number;
  edgeEntries: number;
  meshTables: number;
  meshEntries: number;
  entriesAllProxies: number;
  edgeJsonMB: number;
  sidecarJsonMB: number;
}

function seedCertificate(): { certChain: string; privateKey: string } {
  const text = readFileSync(join(root, 'examples/seed/infra.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const js = doc.toJSON() as { kind?: string; data?: Record<string, string> } | null;
    if (js?.kind === 'Secret' && js.data) {
      const d = (k: string) => Buffer.from(js.data![k], 'base64').toString('utf8');
      return { certChain: d('tls.crt'), privateKey: d('tls.key') };
    }
  }
  throw new Error('examples/seed/infra.yaml has no Secret with data');
}

function entries(table: RouteTable): number {
  let n = 0;
  for (const vh of table.virtualHosts) n += vh.routes.length;
  return n;
}

const mb = (bytes: number) => bytes / 1024 / 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function measure(routes: number): Row {
  const syn = syntheticSnapshot({ routes, certificate: seedCertificate() });
  const t0 = performance.now();
  const snapshot = ResourceSnapshot.from(syn.resources);
  const snapshotMs = performance.now() - t0;

  // Warm-up, and a check that the snapshot is what it claims: every route accepted, every config valid.
  let result = translate(snapshot);
  const problems = statusProblems(result.statuses);
  if (problems.length > 0)
    throw new Error(`synthetic snapshot has status problems:\n${problems.slice(0, 5).join('\n')}`);
  const edge = result.proxies.get('edge:bench-infra/edge') as ProxyConfig;
  const oneSidecar = [...result.proxies.values()].find((c) => c.proxy.mode === 'sidecar') as ProxyConfig;
  for (const c of [edge, oneSidecar]) {
    const v = validateProxyConfig(c);
    if (!v.ok) throw new Error(`${c.proxy.id} is invalid: ${JSON.stringify(v.issues.slice(0, 3))}`);
  }
  const edgeJsonMB = mb(Buffer.byteLength(JSON.stringify(edge)));
  const sidecarJsonMB = mb(Buffer.byteLength(JSON.stringify(oneSidecar)));

  const times: number[] = [];
  let heapBefore = 0;
  for (let i = 0; i < RUNS; i++) {
    result = undefined as unknown as typeof result; // the previous result must not count in the heap
    collect();
    heapBefore = process.memoryUsage().heapUsed;
    const start = performance.now();
    result = translate(snapshot);
    times.push(performance.now() - start);
  }
  collect();
  const heapAfter = process.memoryUsage().heapUsed;

  // Output size. Sidecars of one namespace share their tables by reference: count distinct tables once.
  let edgeEntries = 0;
  let entriesAllProxies = 0;
  const meshTables = new Set<RouteTable>();
  for (const c of result.proxies.values()) {
    for (const t of Object.values(c.routeTables)) {
      const n = entries(t);
      entriesAllProxies += n;
      if (c.proxy.mode === 'edge') edgeEntries += n;
      else meshTables.add(t);
    }
  }
  let meshEntries = 0;
  for (const t of meshTables) meshEntries += entries(t);

  return {
    routes,
    services: syn.counts.services,
    namespaces: syn.counts.namespaces,
    hostnames: syn.counts.hostnames,
    pods: syn.counts.pods,
    objects: snapshot.size,
    snapshotMs,
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    heapBeforeMB: mb(heapBefore),
    heapAfterMB: mb(heapAfter),
    proxies: result.proxies.size,
    edgeEntries,
    meshTables: meshTables.size,
    meshEntries,
    entriesAllProxies,
    edgeJsonMB,
    sidecarJsonMB,
  };
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const n1 = (x: number) => x.toFixed(1);

function table(rows: Row[]): string {
  const head = [
    'routes',
    'Services / namespaces / hostnames',
    'objects',
    'translate() median (min–max)',
    'heap before → after',
    'proxies',
    'route entries: edge / mesh (distinct) / all proxies',
    'JSON: edge / one sidecar',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows)
    lines.push(
      `| ${[
        n0(r.routes),
        `${n0(r.services)} / ${r.namespaces} / ${n0(r.hostnames)}`,
        n0(r.objects),
        `${n0(r.medianMs)} ms (${n0(r.minMs)}–${n0(r.maxMs)})`,
        `${n1(r.heapBeforeMB)} → ${n1(r.heapAfterMB)} MB`,
        n0(r.proxies),
        `${n0(r.edgeEntries)} / ${n0(r.meshEntries)} (${n0(r.meshTables)} tables) / ${n0(r.entriesAllProxies)}`,
        `${n1(r.edgeJsonMB)} / ${n1(r.sidecarJsonMB)} MB`,
      ].join(' | ')} |`,
    );
  return lines.join('\n');
}

// Load before the runs: other work on the machine (2 cores here) widens the min–max spread.
const loadAtStart = loadavg()[0];

function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${n0(totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${process.platform}/${process.arch}; 1-minute load average at start ${loadAtStart.toFixed(2)}`;
}

function section(rows: Row[]): string {
  return `## Translator

\`npm run bench:translate\` (bench/translate.ts) runs \`translate()\` on synthetic snapshots made by
bench/synthetic.ts: N HTTPRoutes over N/10 Services in N/200 namespaces, half attached to one Gateway
(HTTP and HTTPS listeners, N/10 hostnames), half to their Service (mesh); rules mix PathPrefix, Exact and
RegularExpression paths, header, query and method matches, 80/20 splits, header modifiers, rewrites,
redirects, mirrors and timeouts. One pod (so one sidecar) per Service. Every route is accepted and the
configs pass \`validateProxyConfig\`.

- translate(): wall time of one call, median of ${RUNS} runs after one warm-up (min–max in brackets);
  building the snapshot (\`ResourceSnapshot.from\`) is not included.
- heap: \`heapUsed\` after a forced GC with the snapshot alive, before the call → after it with the result alive.
- route entries: in the edge proxy's tables / in the distinct mesh tables (sidecars of a namespace share
  tables by reference) / summed over every proxy's config, as each proxy receives it.
- JSON: size of the edge config and of one sidecar config serialised (what a push would carry).

Machine: ${machine()}. Measured ${new Date().toISOString().slice(0, 10)}.

${table(rows)}
`;
}

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const rows: Row[] = [];
for (const routes of sizes.length > 0 ? sizes : [1000, 10000]) {
  const row = measure(routes);
  rows.push(row);
  process.stderr.write(
    `${n0(routes)} routes: median ${n0(row.medianMs)} ms (snapshot built in ${n0(row.snapshotMs)} ms)\n`,
  );
}
process.stdout.write(`${machine()}\n\n${table(rows)}\n`);
if (sizes.length === 0) process.stdout.write(`\nwritten to ${writeDocSection('Translator', section(rows))}\n`);

// `node bench/push.ts [--proxies N] [--routes R] [--changes C] [--validate]`: config push fan-out.
//
// This process is the control plane: the pipeline over a synthetic snapshot (bench/synthetic.ts, R HTTPRoutes,
// R/10 Services, N/(R/10) pods each: N sidecars) and the push server on a loopback port. A child process runs
// N simulated proxies: each connects over mTLS with a real workload certificate (one per service account,
// minted by a MeshCA), says hello, and acks every config frame. By default a simulated proxy reads only the
// version from the frame (so the child, which does the work of N machines on one core, does not dominate the
// figures); --validate makes each one a real PushClient that parses and validates every config.
//
// Measured: the time until N proxies that already run the current config are connected (TLS + hello); the
// control plane's RSS and heap per connected idle proxy (after a forced GC, compared with before the server
// started — the configs themselves are in memory in both); then C times, the time from a route edit (a new
// snapshot) until all N proxies acked their new configs, with the translation's share; and the RSS after those
// fan-outs (it keeps the allocator's high-water mark of TLS write buffers).
import { fork } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { generateRoot, MeshCA } from '../controlplane/certs/ca.ts';
import { snapshotAuthorizer } from '../controlplane/push/identity.ts';
import { startPushServer } from '../controlplane/push/server.ts';
import { ResourceSnapshot } from '../controlplane/resources/snapshot.ts';
import type { HTTPRoute, Resource } from '../controlplane/resources/types.ts';
import { Pipeline, type ProviderUpdate, type TranslationEvent } from '../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../controlplane/runtime/runner.ts';
import {
  encodeFrame,
  LineDecoder,
  PUSH_ALPN,
  PUSH_MAX_FRAME_BYTES,
  PUSH_SERVER_NAME,
} from '../sidecar/config/push-api.ts';
import { buildCsr } from '../sidecar/identity/csr.ts';
import { PushClient } from '../sidecar/push/client.ts';
import { syntheticSnapshot } from './synthetic.ts';

const TD = 'cluster.local';

interface SimProxy {
  id: string;
  key: string;
  certChain: string;
  /** The version the simulated proxy says it runs (the current one: nothing is sent until a change). */
  version: string;
}

interface ChildStart {
  port: number;
  rootCAs: string;
  proxies: SimProxy[];
  validate: boolean;
  concurrency: number;
}

// ---- child: N simulated proxies ----------------------------------------------------------------------------------

const CONFIG_PREFIX = '{"type":"config","version":"';

function simulate(port: number, rootCAs: string, p: SimProxy): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: PUSH_SERVER_NAME,
      key: p.key,
      cert: p.certChain,
      ca: rootCAs,
      ALPNProtocols: [PUSH_ALPN],
      minVersion: 'TLSv1.3',
    });
    const decoder = new LineDecoder(PUSH_MAX_FRAME_BYTES);
    socket.once('secureConnect', () => {
      socket.write(encodeFrame({ type: 'hello', proxyId: p.id, nodeVersion: 'bench-sim', configVersion: p.version }));
      resolve();
    });
    socket.on('data', (chunk: Buffer) => {
      for (const line of decoder.push(chunk).lines) {
        // The server writes `type` then `version` first: the version is read without parsing the config.
        if (line.startsWith(CONFIG_PREFIX)) {
          const version = line.slice(CONFIG_PREFIX.length, line.indexOf('"', CONFIG_PREFIX.length));
          socket.write(encodeFrame({ type: 'ack', version }));
        } else if (line.includes('"error"')) process.send?.({ error: `${p.id}: ${line}` });
      }
    });
    socket.on('error', (err) => {
      process.send?.({ error: `${p.id}: ${err.message}` });
      reject(err);
    });
  });
}

function realClient(port: number, rootCAs: string, p: SimProxy): Promise<void> {
  const c = new PushClient({
    host: '127.0.0.1',
    port,
    proxyId: p.id,
    nodeVersion: 'bench-client',
    credentials: () => ({ key: p.key, certChain: p.certChain, rootCAs }),
    runningVersion: p.version,
    apply: () => {},
    logger: pino({ level: 'error' }),
  });
  c.on('rejected', (v, issues) => process.send?.({ error: `${p.id} rejected ${v}: ${JSON.stringify(issues[0])}` }));
  return new Promise((resolve) => {
    c.once('connected', () => resolve());
    c.start();
  });
}

async function child(): Promise<void> {
  const start = await new Promise<ChildStart>((resolve) => process.once('message', (m) => resolve(m as ChildStart)));
  const queue = [...start.proxies];
  const run = start.validate ? realClient : simulate;
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) await run(start.port, start.rootCAs, p);
  };
  await Promise.all(Array.from({ length: start.concurrency }, worker));
  process.send?.({ connected: start.proxies.length });
  process.on('disconnect', () => process.exit(0));
}

// ---- parent: the control plane ----------------------------------------------------------------------------------

const gc = (globalThis as { gc?: () => void }).gc;

function fail(message: string): never {
  process.stderr.write(`bench/push: ${message}\n`);
  process.exit(1);
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const kb = (bytes: number) => Math.round((bytes / 1024) * 10) / 10;
const ms = (x: number) => Math.round(x);

/** A copy of the resources with one mesh HTTPRoute's first path match changed: every sidecar's config changes. */
function edited(resources: readonly Resource[], n: number): Resource[] {
  let done = false;
  return resources.map((r) => {
    if (done || r.kind !== 'HTTPRoute' || r.spec.parentRefs?.[0]?.kind !== 'Service') return r;
    const copy = structuredClone(r) as HTTPRoute;
    const match = copy.spec.rules?.[0]?.matches?.[0];
    if (!match) return r;
    match.headers = [{ name: 'x-bench-edit', value: String(n) }];
    done = true;
    return copy;
  });
}

async function parent(): Promise<void> {
  const { values } = parseArgs({
    options: {
      proxies: { type: 'string', default: '1000' },
      routes: { type: 'string', default: '1000' },
      changes: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '50' },
      validate: { type: 'boolean', default: false },
    },
  });
  const N = Number(values.proxies);
  const R = Number(values.routes);
  const C = Number(values.changes);
  const services = Math.max(2, Math.round(R / 10));
  const podsPerService = Math.max(1, Math.ceil(N / services));

  const syn = syntheticSnapshot({ routes: R, podsPerService });
  let resources: Resource[] = syn.resources;
  const listeners = new Set<(u: ProviderUpdate) => void>();
  const publish = (rs: Resource[]) => {
    const snapshot = ResourceSnapshot.from(rs);
    for (const l of listeners) l({ snapshot });
  };
  const ca = MeshCA.fromPem(generateRoot(TD, Date.now()), { trustDomain: TD });
  const log = pino({ level: 'warn' });
  const pipeline = new Pipeline({
    provider: () => ({
      start: async () => publish(resources),
      close: async () => {},
      onUpdate: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    }),
    translateOptions: { trustDomain: TD, rootCAs: ca.rootCAsPem },
    logger: log,
  });
  const nextTranslation = () =>
    new Promise<TranslationEvent>((resolve) => {
      const off = pipeline.onTranslation((e) => {
        off();
        resolve(e);
      });
    });
  const supervisor = new Supervisor({ logger: log });
  for (const r of pipeline.runners) supervisor.add(r);
  const firstTranslation = nextTranslation();
  await supervisor.start();
  const first = await firstTranslation;
  if (!first.ok) fail(`translation failed: ${first.error?.message}`);

  // The N sidecars to simulate, and one certificate per service account.
  const sidecars = pipeline.proxies
    .entries()
    .filter(([, vc]) => vc.config.proxy.mode === 'sidecar')
    .slice(0, N);
  if (sidecars.length < N) fail(`the snapshot has only ${sidecars.length} sidecars`);
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const certs = new Map<string, string>();
  const sims: SimProxy[] = sidecars.map(([id, vc]) => {
    const ns = vc.config.proxy.namespace;
    const sa = vc.config.proxy.serviceAccount ?? 'default';
    let chain = certs.get(`${ns}/${sa}`);
    if (!chain) {
      const csrPem = buildCsr(keys, { spiffeId: `spiffe://${TD}/ns/${ns}/sa/${sa}`, commonName: `${sa}.${ns}` });
      chain = ca.issue({ csrPem, identity: { namespace: ns, serviceAccount: sa } }).certChainPem;
      certs.set(`${ns}/${sa}`, chain);
    }
    return { id, key: keyPem, certChain: chain, version: vc.version };
  });
  const sampleBytes = Buffer.byteLength(JSON.stringify(sidecars[0][1].config));

  gc?.();
  const before = process.memoryUsage();
  const push = await startPushServer({
    configs: pipeline.proxies,
    authorize: snapshotAuthorizer({ snapshot: () => pipeline.snapshot, trustDomain: TD }),
    ca,
    port: 0,
    logger: log,
  });

  // Tracks which simulated proxies acked the version the control plane has for them now.
  const simIds = new Set(sims.map((s) => s.id));
  const acked = new Map<string, string>();
  let waiter: { resolve: () => void } | undefined;
  const upToDate = () => {
    for (const id of simIds) if (acked.get(id) !== pipeline.proxies.load(id)?.version) return false;
    return true;
  };
  push.on('ack', (id, version) => {
    acked.set(id, version);
    if (waiter && upToDate()) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  });
  const allAcked = () =>
    new Promise<void>((resolve) => {
      if (upToDate()) resolve();
      else waiter = { resolve };
    });
  push.on('nack', (id, v, reason) => fail(`${id} nacked ${v}: ${reason}`));

  const sim = fork(new URL(import.meta.url).pathname, ['--child'], { execArgv: process.execArgv });
  const errors: string[] = [];
  sim.on('message', (m: { error?: string }) => {
    if (m.error && errors.push(m.error) <= 5) process.stderr.write(`sim: ${m.error}\n`);
  });
  sim.on('exit', (code) => {
    if (code) fail(`the simulated proxies exited with ${code}`);
  });

  // Phase 1: N connections that already run the current config (nothing is sent): the cost of a connection.
  let hellos = 0;
  const connectedAll = new Promise<void>((resolve) =>
    push.on('hello', () => {
      if (++hellos === N) resolve();
    }),
  );
  const t0 = performance.now();
  sim.send({
    port: push.port,
    rootCAs: ca.rootCAsPem,
    proxies: sims,
    validate: values.validate,
    concurrency: Number(values.concurrency),
  } satisfies ChildStart);
  await connectedAll;
  const connectMs = performance.now() - t0;
  for (const r of push.records()) if (r.lastAckedVersion) acked.set(r.proxyId, r.lastAckedVersion);
  if (!upToDate()) fail('a simulated proxy was not taken as running its version');
  if (push.stats.configsSent !== 0) fail(`${push.stats.configsSent} configs were sent to up-to-date proxies`);
  gc?.();
  const after = process.memoryUsage();

  const changes: { translateMs: number; allAckedMs: number; changed: number }[] = [];
  for (let i = 1; i <= C; i++) {
    resources = edited(syn.resources, i);
    const translated = nextTranslation();
    const start = performance.now();
    publish(resources);
    const e = await translated;
    if (!e.ok) fail(`translation failed: ${e.error?.message}`);
    // The new versions are stored by now (pushes go out in a later macrotask): wait for every ack of them.
    await allAcked();
    changes.push({ translateMs: e.durationMs, allAckedMs: performance.now() - start, changed: e.proxiesChanged });
  }

  gc?.();
  const afterFanOut = process.memoryUsage();
  const stats = push.stats;
  const out = {
    machine: `${cpus().length} × ${cpus()[0]?.model.trim()}, ${mb(totalmem())} MiB, Node ${process.version}`,
    proxies: N,
    routes: R,
    services,
    podsPerService,
    serviceAccounts: certs.size,
    sidecarConfigKiB: kb(sampleBytes),
    validate: values.validate,
    firstTranslateMs: ms(first.durationMs),
    connectAllMs: ms(connectMs),
    idleRssPerProxyKiB: kb((after.rss - before.rss) / N),
    idleHeapPerProxyKiB: kb((after.heapUsed + after.external - before.heapUsed - before.external) / N),
    rssMiB: { before: mb(before.rss), connected: mb(after.rss), afterFanOuts: mb(afterFanOut.rss) },
    heapAndExternalMiB: {
      before: mb(before.heapUsed + before.external),
      connected: mb(after.heapUsed + after.external),
      afterFanOuts: mb(afterFanOut.heapUsed + afterFanOut.external),
    },
    changes: changes.map((c) => ({
      translateMs: ms(c.translateMs),
      allAckedMs: ms(c.allAckedMs),
      configsChanged: c.changed,
    })),
    configsSent: stats.configsSent,
    acks: stats.acks,
    simErrors: errors.length,
    gc: gc !== undefined,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  sim.kill();
  await push.close();
  await supervisor.close();
}

if (process.argv.includes('--child')) {
  await child();
} else if (!gc) {
  // Memory figures mean little without a forced GC: run again with the flag.
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
} else {
  await parent();
}

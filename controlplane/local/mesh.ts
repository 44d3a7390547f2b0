// `weft local up DIR`: a whole mesh on one machine. In this process: the control plane on the file provider
// (FileProvider → Pipeline → per-proxy configs), the mesh CA and its bootstrap tokens, the push server and the
// admin endpoint. As child processes, each in its own process group: for every Pod of the snapshot its containers
// (the echo server stands in for every image) bound to the pod's loopback IP with POD_NAME/NAMESPACE, a sidecar
// proxy beside it when the translator gave the pod a config, and an edge proxy per Gateway of weft's class bound to
// the Gateway's address. Configs are localized (localize.ts) inside the pipeline, as a transform of the
// translator's output before versioning, and reach the proxies through the push server (feed 'push', the default:
// `weft proxy --push` with a bootstrap token file per pod, its certificate from the mesh CA) or as files rewritten
// on change with certificates from identity-agent.ts (feed 'file').
//
// The plan (plan.ts) is recomputed whenever the snapshot or a config changes and diffed against what runs: new pods
// start, gone pods stop, changed pods restart. A child that dies is logged and restarted with backoff. `close()`
// stops the proxies, then the workloads (SIGTERM to each group, SIGKILL after a grace period), then the control
// plane, and removes mesh.json.
import { chmod, chown, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';
import { ControlPlaneMetrics } from '../admin/metrics.ts';
import { type AdminServer, startAdminServer } from '../admin/server.ts';
import { BootstrapTokens, type CAServer, MeshCA, startCAServer } from '../certs/index.ts';
import { snapshotAuthorizer } from '../push/identity.ts';
import { type ProxyRecord, type PushServer, startPushServer } from '../push/server.ts';
import { FileProvider, type FileProviderUpdate } from '../resources/files.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import { Pipeline, type VersionedConfig } from '../runtime/pipeline.ts';
import { Supervisor } from '../runtime/runner.ts';
import { WatchableMap } from '../runtime/watchable.ts';
import { translate } from '../translate/translate.ts';
import type { TranslateOptions, TranslateResult } from '../translate/types.ts';
import { LocalError } from './errors.ts';
import { containerLogName, localFileName } from './file-name.ts';
import { localizeConfig, localPort } from './localize.ts';
import {
  type LocalPlan,
  type PlanOptions,
  type PlannedGateway,
  type PlannedPod,
  type PlannedWorkload,
  planLocalMesh,
} from './plan.ts';
import { type ChildEvent, ManagedChild } from './processes.ts';
import { LOCAL_RUN_ENV, type MeshState, processAlive, readMeshState, writeMeshState } from './state.ts';
import { curlExamples } from './examples.ts';
import { IdentityAgent } from './identity-agent.ts';
import type { ControlPlaneTracing } from '../telemetry/tracing.ts';
import { namespaceCommand } from './netns.ts';
import {
  assertNetnsRoot,
  assertSearchable,
  DEFAULT_PROXY_UID,
  initIptablesArgs,
  type LocalNetnsOptions,
  PodNetwork,
} from './pod-network.ts';

export interface LocalMeshOptions {
  /** The manifests directory. */
  dir: string;
  /** Where the CA, tokens, configs, logs and mesh.json live. */
  stateDir: string;
  /** Shift for ports below 1024; 0 binds them as they are (root). */
  portOffset: number;
  /** `node` and `bin/weft.ts`: how children are started. Defaults: this process's Node, this checkout's weft. */
  node?: string;
  weftBin?: string;
  /** Control plane address and ports (0 = any free port). Defaults 127.0.0.1, 15010, 15012, 15014. */
  controlPlaneHost?: string;
  pushPort?: number;
  caPort?: number;
  adminPort?: number;
  trustDomain?: string;
  /**
   * Static Gateway addresses (`spec.addresses`) that may be used: IPs or IPv4 CIDRs (`weft local up
   * --usable-address`). Others get `Programmed=False` with reason AddressNotUsable. Default 127.0.0.0/8, what an edge
   * proxy here can listen on; a Gateway's proxy listens on its first loopback status address.
   */
  usableAddresses?: string[];
  /** How proxies get their configs. Default 'push' (see the header comment). */
  feed?: 'file' | 'push';
  /** Lifetime of the workload certificates the CA issues. Default 24 h (tests: seconds, to see rotations). */
  leafLifetimeMs?: number;
  /**
   * Applied to every localized config before it is versioned and served (tests: a config a proxy refuses).
   * Runs in each translation; returning undefined withholds the config.
   */
  configTransform?: (config: ProxyConfig) => ProxyConfig | undefined;
  /** Human-readable progress lines (stdout in `weft local up`). */
  out?: (line: string) => void;
  /** Also write the control plane's JSON log to stderr. */
  verbose?: boolean;
  /** Grace before SIGKILL when stopping a child. Default 5 s. */
  stopGraceMs?: number;
  /** Every proxy and the control plane export traces to this OTLP/HTTP collector (`weft local up --jaeger`). */
  tracing?: { endpoint: string; sampleRatio?: number };
  /**
   * Root only: each pod in its own network namespace on a bridge this mesh creates and removes (pod-network.ts),
   * its traffic captured by iptables; the config push and CA listen on the bridge's address. Needs feed 'push'.
   */
  netns?: boolean | LocalNetnsOptions;
}

interface ProxyProc {
  id: string;
  mode: 'sidecar' | 'edge';
  configFile: string;
  child: ManagedChild;
  configured: boolean;
  adminPort?: number;
}

interface WorkloadProc {
  plan: PlannedWorkload;
  child: ManagedChild;
  ready: boolean;
}

interface PodProc {
  plan: PlannedPod;
  signature: string;
  workloads: WorkloadProc[];
  sidecar?: ProxyProc;
  /** Its sidecar's credentials are being issued. */
  sidecarPending?: boolean;
  /** `--netns`: the pod's network namespace, once made. */
  netns?: string;
  /** Why the pod could not be set up (`--netns`). */
  failed?: string;
}

interface GatewayProc {
  plan: PlannedGateway;
  signature: string;
  /** Undefined while its credentials are being issued. */
  proxy: ProxyProc | undefined;
}

/** Bootstrap tokens live 24 h; the files are rewritten well before. */
/** What `weft local` can serve a Gateway on: the edge proxies listen on the host's loopback. */
export const LOCAL_USABLE_ADDRESSES = '127.0.0.0/8';
const TOKEN_REFRESH_MS = 60 * 60 * 1000;

async function writeAtomic(file: string, text: string, mode = 0o644, owner?: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  if (owner !== undefined) await chown(tmp, owner, owner);
  await rename(tmp, file);
}

export class LocalMesh {
  readonly o: Required<
    Omit<LocalMeshOptions, 'out' | 'verbose' | 'leafLifetimeMs' | 'configTransform' | 'tracing' | 'netns'>
  > &
    Pick<LocalMeshOptions, 'out' | 'verbose' | 'leafLifetimeMs' | 'configTransform' | 'tracing' | 'netns'>;
  readonly log: Logger;
  readonly #out: (line: string) => void;
  #ca!: MeshCA;
  #tokens!: BootstrapTokens;
  #caServer: CAServer | undefined;
  #agent: IdentityAgent | undefined;
  #pipeline!: Pipeline;
  #supervisor: Supervisor | undefined;
  #push: PushServer | undefined;
  #admin: AdminServer | undefined;
  /** The control plane's metrics (admin /metrics): push, CA, translation. */
  readonly metrics = new ControlPlaneMetrics();
  /** Control-plane spans (translate cycles, pushes) when `tracing` is set. */
  #tracing: ControlPlaneTracing | undefined;
  /** The trust bundle file every proxy gets with `--roots`. */
  #rootsFile = '';
  /** Bootstrap token files of the running proxies, re-minted before they expire (owned by `owner` when set). */
  readonly #tokenFiles = new Map<string, { file: string; mint: () => string; owner?: number }>();
  /** `--netns`: the bridge and the pods' namespaces. */
  #network: PodNetwork | undefined;
  #tokenTimer: NodeJS.Timeout | undefined;
  /** Configs as this machine runs them (localized), what files and the push server serve. */
  readonly configs = new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  readonly #pods = new Map<string, PodProc>();
  readonly #gateways = new Map<string, GatewayProc>();
  #plan: LocalPlan = { pods: [], gateways: [], unplaced: [] };
  /** Each Gateway's `status.addresses` values in the last translation: where its proxy listens. */
  #gatewayAddresses = new Map<string, string[]>();
  #reconciling: Promise<void> = Promise.resolve();
  #reconcileQueued = false;
  /** A reconcile is starting processes: not ready before they are all known. */
  #applying = false;
  #closed = false;
  #readySince: number | undefined;
  #startedAt = Date.now();
  #readyWaiters: (() => void)[] = [];
  #unsubscribes: (() => void)[] = [];
  #lastInputProblems = '';
  #reportedUnplaced = '';
  #stateWrite: Promise<void> = Promise.resolve();
  #stateDirty = false;
  /** Set once no other weft local owns the state dir: only then is mesh.json ours to write and remove. */
  #ownsState = false;
  /** Listeners told of each translation and each applied config (tests, the edit-latency report). */
  readonly #events = new Set<(e: MeshEvent) => void>();

  constructor(options: LocalMeshOptions) {
    this.o = {
      controlPlaneHost: '127.0.0.1',
      pushPort: 15010,
      caPort: 15012,
      adminPort: 15014,
      trustDomain: 'cluster.local',
      usableAddresses: [LOCAL_USABLE_ADDRESSES],
      feed: 'push',
      stopGraceMs: 5000,
      node: process.execPath,
      weftBin: fileURLToPath(new URL('../../bin/weft.ts', import.meta.url)),
      ...options,
    };
    this.#out = options.out ?? (() => {});
    const logDir = path.join(this.o.stateDir, 'logs');
    const file = pino.destination({ dest: path.join(logDir, 'controlplane.log'), mkdir: true, sync: false });
    this.log = options.verbose
      ? pino({ name: 'weft-local', level: 'info' }, pino.multistream([{ stream: file }, { stream: process.stderr }]))
      : pino({ name: 'weft-local', level: 'info' }, file);
  }

  onEvent(fn: (e: MeshEvent) => void): () => void {
    this.#events.add(fn);
    return () => this.#events.delete(fn);
  }

  get ready(): boolean {
    return this.#readySince !== undefined;
  }

  /** Resolves when every process of the current plan is up and every proxy has its first config. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((r) => this.#readyWaiters.push(r));
  }

  async start(): Promise<void> {
    const st = await stat(this.o.dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new LocalError('WEFT_ERR_LOCAL_INPUT', `${this.o.dir} is not a directory`);
    const previous = await readMeshState(this.o.stateDir).catch(() => undefined);
    if (previous && previous.pid !== process.pid && processAlive(previous.pid)) {
      throw new LocalError(
        'WEFT_ERR_LOCAL_RUNNING',
        `weft local (pid ${previous.pid}) is already running from ${this.o.stateDir}; stop it, or pass another --state-dir`,
      );
    }
    if (this.o.netns && this.o.feed !== 'push') {
      throw new LocalError('WEFT_ERR_LOCAL_INPUT', '--netns runs proxies on the push feed only (feed: push)');
    }
    // Before the state dir is taken over: a refusal (not root, leftovers) keeps the mesh.json that names them.
    if (this.o.netns) {
      const options = this.o.netns === true ? {} : this.o.netns;
      assertNetnsRoot();
      // Sidecars run as the proxy uid: it must reach node, weft and its token file in the state dir.
      const uid = options.proxyUid ?? DEFAULT_PROXY_UID;
      for (const p of [this.o.node, this.o.weftBin, this.o.stateDir]) await assertSearchable(p, uid);
      this.#network = await PodNetwork.create(options);
    }
    this.#ownsState = true;
    await rm(path.join(this.o.stateDir, 'proxies'), { recursive: true, force: true });
    await mkdir(path.join(this.o.stateDir, 'proxies'), { recursive: true });
    await mkdir(path.join(this.o.stateDir, 'tokens'), { recursive: true, mode: 0o700 });
    if (this.#network) {
      // Written now: a crash from here on leaves a mesh.json that tells `weft local down` the prefix.
      await this.#saveState();
      // Sidecars run as the proxy uid: they read their token file (theirs) through the state dir.
      await chmod(this.o.stateDir, 0o711);
      await chmod(path.join(this.o.stateDir, 'tokens'), 0o711);
    }

    const caDir = path.join(this.o.stateDir, 'ca');
    this.#ca = await MeshCA.loadOrCreate(caDir, { trustDomain: this.o.trustDomain });
    this.metrics.watchCa(this.#ca);
    this.#tokens = await BootstrapTokens.loadOrCreate(caDir);
    this.#rootsFile = path.join(this.o.stateDir, 'roots.pem');
    await writeAtomic(this.#rootsFile, this.#ca.rootCAsPem);
    await this.#startCA();

    this.#agent = new IdentityAgent({
      caUrl: this.#caServer!.url,
      caRootsPem: this.#ca.rootCAsPem,
      trustDomain: this.o.trustDomain,
      dir: path.join(this.o.stateDir, 'identity'),
      log: this.log,
    });

    this.#pipeline = new Pipeline({
      provider: () => {
        const n = this.#network;
        const materialize = n ? { podCidr: n.podCidr, serviceCidr: n.serviceCidr } : {};
        const p = new FileProvider({ paths: [this.o.dir], debounceMs: 20, materialize });
        p.onUpdate((u) => this.#reportInput(u));
        return p;
      },
      translateOptions: {
        trustDomain: this.o.trustDomain,
        rootCAs: this.#ca.rootCAsPem,
        usableAddresses: this.o.usableAddresses,
        // In its own namespace a sidecar hands requests to the app on localhost, as in a pod.
        inboundAppAddress: this.#network ? 'loopback' : 'podIP',
      },
      // Localized before versioning: the version a proxy acks is that of the config it runs.
      translate: (snapshot, options) => this.#translateLocal(snapshot, options),
      logger: this.log,
    });
    this.#unsubscribes.push(this.metrics.watchPipeline(this.#pipeline));
    if (this.o.tracing) {
      const { startControlPlaneTracing } = await import('../telemetry/tracing.ts');
      const options = { ...this.o.tracing, serviceName: 'weft-controlplane' };
      this.#tracing = startControlPlaneTracing(options, { pipeline: this.#pipeline });
    }
    this.#supervisor = new Supervisor({ logger: this.log });
    for (const r of this.#pipeline.runners) this.#supervisor.add(r);
    const firstTranslation = new Promise<void>((resolve) => {
      const off = this.#pipeline.onTranslation((e) => {
        if (!e.ok) return;
        off();
        resolve();
      });
    });
    this.#unsubscribes.push(
      this.#pipeline.onTranslation((e) => {
        this.#emit({
          type: 'translated',
          at: Date.now(),
          durationMs: e.durationMs,
          proxiesChanged: e.proxiesChanged,
          ok: e.ok,
        });
        if (!e.ok) this.#out(`weft local: translation failed (${e.error?.message}); proxies keep their configs`);
        else if (this.ready && e.proxiesChanged > 0)
          this.#out(
            `weft local: routing updated: ${e.proxiesChanged} proxy config(s) changed (translated in ${e.durationMs.toFixed(1)} ms)`,
          );
      }),
    );
    await this.#supervisor.start();
    await firstTranslation;

    // The pipeline's configs are already localized; write them out for the file feed; then reconcile processes.
    this.#unsubscribes.push(
      this.#pipeline.proxies.subscribe((batch) => {
        for (const u of batch.updates) {
          if (u.value) this.configs.store(u.key, u.value);
          else this.configs.delete(u.key);
        }
      }),
      this.configs.subscribe(async (batch) => {
        if (this.o.feed === 'file') {
          for (const u of batch.updates) {
            const file = this.#configFile(u.key);
            if (u.value) await writeAtomic(file, `${JSON.stringify(u.value.config)}\n`);
            else await rm(file, { force: true });
          }
        }
        this.#scheduleReconcile();
      }),
      this.#pipeline.snapshots.subscribe(() => this.#scheduleReconcile()),
    );

    await this.#startPush();
    this.#tokenTimer = setInterval(() => void this.#refreshTokens(), TOKEN_REFRESH_MS);
    this.#tokenTimer.unref();
    this.#admin = await this.#bind('admin', () =>
      startAdminServer({
        port: this.o.adminPort,
        host: this.o.controlPlaneHost,
        logger: this.log,
        ready: () => {
          const reasons = this.#notReady();
          return { ready: reasons.length === 0, reasons };
        },
        proxies: () => this.#push?.records() ?? [],
        statuses: () => this.#pipeline.statuses.entries().map(([, s]) => s),
        runners: () => this.#supervisor?.status() ?? [],
        metrics: this.metrics.registry,
      }),
    );
    this.#out(
      `weft local: control plane up: config push ${this.#cpHost}:${this.#push!.port}, CA ${this.#caServer!.url}, admin ${this.#admin.url}`,
    );
    if (this.#network) {
      const n = this.#network;
      this.#out(
        `weft local: pods in network namespaces ${n.prefix}*, on bridge ${n.bridge.name} ${n.bridge.address}/${n.bridge.prefixLength} (Services ${n.serviceCidr})`,
      );
    }
    this.#scheduleReconcile();
    await this.#reconciling;
  }

  /** Where proxies reach the push server and the CA: the bridge's address with `--netns` (pods are not on lo). */
  get #cpHost(): string {
    return this.#network?.gateway ?? this.o.controlPlaneHost;
  }

  async #startCA(): Promise<void> {
    const host = this.#cpHost;
    this.#caServer = await this.#bind('CA', () =>
      startCAServer({
        ca: this.#ca,
        verifier: this.#tokens,
        port: this.o.caPort,
        host,
        serverNames: { ips: [host] },
        leafLifetimeMs: this.o.leafLifetimeMs,
        logger: this.log,
        metrics: this.metrics,
      }),
    );
    // A restart binds the same port: the proxies were told this URL.
    this.o.caPort = Number(new URL(this.#caServer.url).port);
  }

  async #startPush(): Promise<void> {
    const host = this.#cpHost;
    this.#push = await this.#bind('config push', () =>
      startPushServer({
        configs: this.configs,
        authorize: snapshotAuthorizer({ snapshot: () => this.#pipeline.snapshot, trustDomain: this.o.trustDomain }),
        ca: this.#ca,
        port: this.o.pushPort,
        host,
        serverNames: { ips: [host] },
        logger: this.log,
        metrics: this.metrics,
      }),
    );
    this.o.pushPort = this.#push.port;
    this.#tracing?.tracePush(this.#push);
    this.#push.on('ack', (id) => this.#proxyConfigured(id, 'push'));
  }

  /**
   * Stops the push and CA servers (an outage of the control plane as proxies see it: the pipeline and the admin
   * endpoint keep running). Proxies keep serving their last config and certificate, and reconnect once
   * `startControlPlaneServers` binds the same ports again.
   */
  async stopControlPlaneServers(): Promise<void> {
    const push = this.#push;
    const caServer = this.#caServer;
    this.#push = undefined;
    this.#caServer = undefined;
    await push?.close();
    await caServer?.close();
  }

  async startControlPlaneServers(): Promise<void> {
    if (this.#closed) return;
    if (!this.#caServer) await this.#startCA();
    if (!this.#push) await this.#startPush();
  }

  /** The push server's records (what `/proxies` serves), empty while it is stopped. */
  proxyRecords(): ProxyRecord[] {
    return this.#push?.records() ?? [];
  }

  /** Addresses of the control plane's servers (after start). */
  get controlPlane(): { push: string; ca: string; admin: string } {
    return {
      push: `${this.#cpHost}:${this.#push?.port ?? this.o.pushPort}`,
      ca: this.#caServer?.url ?? '',
      admin: this.#admin?.url ?? '',
    };
  }

  async #bind<T>(what: string, start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new LocalError(
          'WEFT_ERR_LOCAL_BIND',
          `the ${what} port is taken (${(err as Error).message}); is another weft local running? Pick other ports or stop it`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  #emit(e: MeshEvent): void {
    for (const fn of this.#events) fn(e);
  }

  #reportInput(u: FileProviderUpdate): void {
    const problems = u.errors.map(String);
    const joined = problems.join('\n');
    if (joined === this.#lastInputProblems) return;
    this.#lastInputProblems = joined;
    if (problems.length === 0) this.#out('weft local: the manifests load cleanly again');
    else {
      this.#out(`weft local: ${problems.length} problem(s) in the manifests; the last good objects are kept:`);
      for (const p of problems.slice(0, 20)) this.#out(`  ${p}`);
    }
  }

  #configFile(id: string): string {
    return path.join(this.o.stateDir, 'proxies', `${localFileName(id)}.json`);
  }

  /** The translator's output with every config localized (and transformed); configs with no address are held back. */
  #translateLocal(snapshot: ResourceSnapshot, options: TranslateOptions): TranslateResult {
    const result = translate(snapshot, options);
    this.#gatewayAddresses = new Map(
      result.statuses.flatMap((s) =>
        s.kind === 'Gateway' ? [[`${s.namespace}/${s.name}`, s.status.addresses.map((a) => a.value)]] : [],
      ),
    );
    const proxies = new Map<string, ProxyConfig>();
    for (const [id, config] of result.proxies) {
      let local = this.#localize(config, snapshot);
      if (local && this.o.configTransform) local = this.o.configTransform(local);
      if (local) proxies.set(id, local);
    }
    return { ...result, proxies };
  }

  async #refreshTokens(): Promise<void> {
    for (const [id, t] of this.#tokenFiles) {
      await writeAtomic(t.file, `${t.mint()}\n`, 0o600, t.owner).catch((err) =>
        this.log.warn({ event: 'local.token-write-failed', proxyId: id, err }, 'could not renew a bootstrap token'),
      );
    }
  }

  /** The config as this machine runs it, or undefined when its pod or Gateway has no usable address yet. */
  #localize(config: ProxyConfig, snapshot: ResourceSnapshot): ProxyConfig | undefined {
    const { namespace, name, mode } = config.proxy;
    let bindAddress: string | undefined;
    if (mode === 'sidecar') {
      bindAddress = snapshot.get('Pod', `${namespace}/${name}`)?.status?.podIP;
      // In its own network namespace a sidecar runs its config as in a cluster: wildcard addresses, ports as they are.
      if (this.#network) return bindAddress && this.#network.contains(bindAddress) ? config : undefined;
    } else {
      const plan = planLocalMesh(snapshot, [config.proxy.id], this.#planOptions());
      bindAddress = plan.gateways[0]?.address;
    }
    if (!bindAddress || !/^127\./.test(bindAddress)) return undefined;
    // Gateways stay on the host's loopback; with --netns they dial pods on their own (unshifted) ports.
    return localizeConfig(config, { bindAddress, portOffset: this.o.portOffset, shiftEndpoints: !this.#network });
  }

  #planOptions(): PlanOptions {
    const n = this.#network;
    const addresses = this.#gatewayAddresses;
    const gatewayAddresses = (key: string) => addresses.get(key);
    if (!n) return { portOffset: this.o.portOffset, gatewayAddresses };
    // Pods have a network namespace each: their ports are never moved.
    return {
      portOffset: 0,
      podRange: { contains: (ip) => n.contains(ip), text: `in the pods' range ${n.podCidr}` },
      gatewayAddresses,
    };
  }

  // ---- processes ----

  #scheduleReconcile(): void {
    if (this.#closed) return;
    if (this.#reconcileQueued) return;
    this.#reconcileQueued = true;
    this.#reconciling = this.#reconciling.then(async () => {
      this.#reconcileQueued = false;
      if (this.#closed) return;
      try {
        await this.#reconcile();
      } catch (err) {
        this.log.error({ event: 'local.reconcile-failed', err }, 'reconcile failed');
        this.#out(`weft local: could not apply the new plan: ${(err as Error).message}`);
      }
    });
  }

  async #reconcile(): Promise<void> {
    const snapshot = this.#pipeline.snapshot;
    if (!snapshot) return;
    // The pipeline's ids, not this.configs': those arrive a turn later, and a pod planned without its sidecar would
    // be restarted with one right after.
    const plan = planLocalMesh(snapshot, this.#pipeline.proxies.keys(), this.#planOptions());
    this.#plan = plan;
    const unplaced = plan.unplaced.map((u) => `${u.key}: ${u.reason}`).join('\n');
    if (unplaced !== this.#reportedUnplaced) {
      this.#reportedUnplaced = unplaced;
      for (const u of plan.unplaced) this.#out(`weft local: pod ${u.key} is not run: ${u.reason}`);
    }
    const wantedPods = new Map(plan.pods.map((p) => [p.key, p]));
    const wantedGateways = new Map(plan.gateways.filter((g) => g.address).map((g) => [g.key, g]));
    // Not ready while pods are replaced: from stopping the old processes to starting the new ones.
    this.#applying = true;
    try {
      // Hosts files and Service rules of the running pods first: the pods started below get the same.
      for (const problem of (await this.#network?.sync(snapshot)) ?? []) {
        this.log.warn({ event: 'local.pod-network-sync-failed', problem }, 'pod network not updated');
        this.#out(`weft local: could not update Service names and rules: ${problem}`);
      }
      await this.#apply(wantedPods, wantedGateways);
    } finally {
      this.#applying = false;
    }
    this.#checkReady();
    void this.#saveState();
  }

  async #apply(wantedPods: Map<string, PlannedPod>, wantedGateways: Map<string, PlannedGateway>): Promise<void> {
    const stops: Promise<void>[] = [];
    for (const [key, proc] of this.#pods) {
      const want = wantedPods.get(key);
      if (!want || this.#podSignature(want) !== proc.signature) {
        this.#pods.delete(key);
        if (this.ready) this.#out(`weft local: pod ${key} ${want ? 'changed; restarting it' : 'is gone; stopping it'}`);
        stops.push(this.#stopPod(proc));
      }
    }
    for (const [key, proc] of this.#gateways) {
      const want = wantedGateways.get(key);
      if (!want || JSON.stringify(want) !== proc.signature) {
        this.#gateways.delete(key);
        if (proc.proxy) stops.push(this.#stopProxy(proc.proxy));
      }
    }
    // A restarted pod keeps its IP and ports: the old processes must be gone before the new ones bind.
    await Promise.all(stops);
    // Everything new starts at once: most of the wait is Node starting up and keys being made, on every core.
    const starts: Promise<void>[] = [];
    for (const [key, want] of wantedPods) {
      if (this.#pods.has(key)) continue;
      if (this.ready)
        this.#out(`weft local: pod ${key} at ${want.ip}: starting${want.proxyId ? ' with a sidecar' : ''}`);
      starts.push(this.#startPod(want));
    }
    for (const [key, want] of wantedGateways) {
      if (this.#gateways.has(key)) continue;
      const proc: GatewayProc = { plan: want, signature: JSON.stringify(want), proxy: undefined };
      this.#gateways.set(key, proc);
      starts.push(
        this.#startProxy(want.proxyId, 'edge', want.namespace, want.serviceAccount, want.name).then((proxy) => {
          proc.proxy = proxy;
        }),
      );
    }
    const results = await Promise.allSettled(starts);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  #podSignature(p: PlannedPod): string {
    return JSON.stringify({ ip: p.ip, workloads: p.workloads, proxyId: p.proxyId });
  }

  /** Starts a pod's processes; the pod is in `#pods` from the start (its sidecar once its credentials exist). */
  async #startPod(plan: PlannedPod): Promise<void> {
    const proc: PodProc = { plan, signature: this.#podSignature(plan), workloads: [] };
    this.#pods.set(plan.key, proc);
    if (this.#network && !(await this.#startPodNetwork(proc))) return;
    const logs = path.join(this.o.stateDir, 'logs');
    for (const w of plan.workloads) {
      // In its own namespace the container listens on every address, as in a pod.
      const args = [this.o.weftBin, 'echo', '--host', proc.netns ? '0.0.0.0' : plan.ip, '--format', w.format];
      for (const p of w.ports) args.push('--port', String(p));
      for (const p of w.h2cPorts) args.push('--h2c-port', String(p));
      const wp: WorkloadProc = { plan: w, ready: false, child: undefined as unknown as ManagedChild };
      wp.child = new ManagedChild(
        {
          name: `pod ${plan.key} container ${w.container}`,
          ...this.#command(proc.netns, [this.o.node, ...args]),
          env: { ...w.env, [LOCAL_RUN_ENV]: this.o.stateDir },
          compileCache: this.#compileCache(),
          logFile: path.join(logs, containerLogName(plan.namespace, plan.name, w.container)),
        },
        (e) => this.#workloadEvent(wp, e),
      );
      proc.workloads.push(wp);
      wp.child.start();
    }
    if (plan.proxyId) {
      proc.sidecarPending = true;
      try {
        proc.sidecar = await this.#startProxy(
          plan.proxyId,
          'sidecar',
          plan.namespace,
          plan.serviceAccount,
          plan.name,
          proc.netns,
        );
      } finally {
        proc.sidecarPending = false;
      }
    }
  }

  /**
   * `--netns`: the pod's namespace, with the capture init step when it gets a sidecar. False (the pod marked
   * failed, the namespace removed again) when that fails: the pod's containers do not start.
   */
  async #startPodNetwork(proc: PodProc): Promise<boolean> {
    const { plan } = proc;
    const network = this.#network!;
    let init: string[] | undefined;
    if (plan.proxyId) {
      const config = this.#pipeline.proxies.load(plan.proxyId)?.config;
      const pod = this.#pipeline.snapshot?.get('Pod', plan.key);
      if (config) init = [this.o.node, this.o.weftBin, ...initIptablesArgs(config, pod, network.proxyUid)];
    }
    try {
      const env = { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? this.#compileCache() };
      proc.netns = await network.addPod(plan.key, plan.ip, init, env);
      return true;
    } catch (err) {
      proc.failed = (err as Error).message;
      this.log.error({ event: 'local.pod-network-failed', pod: plan.key, err }, 'pod network setup failed');
      this.#out(`weft local: pod ${plan.key} cannot start: ${proc.failed}`);
      await network.removePod(plan.key).catch(() => {});
      proc.netns = undefined;
      return false;
    }
  }

  /** How a child is started: in the pod's network namespace (as `user`) with --netns, else as it is. */
  #command(netns: string | undefined, argv: string[], user?: number): { command: string; args: string[] } {
    if (netns) return namespaceCommand(netns, argv, user === undefined ? {} : { uid: user, gid: user });
    return { command: argv[0], args: argv.slice(1) };
  }

  async #startProxy(
    id: string,
    mode: 'sidecar' | 'edge',
    namespace: string,
    serviceAccount: string,
    name: string,
    netns?: string,
  ): Promise<ProxyProc> {
    const configFile = this.#configFile(id);
    // The workload's bootstrap token (what a projected ServiceAccount token is in a cluster): the CA derives the
    // proxy's identity from it. Kept in a file, as a proxy that asks the CA itself would read it.
    const tokenFile = path.join(this.o.stateDir, 'tokens', `${localFileName(id)}.token`);
    const mint = () =>
      this.#tokens.mint(mode === 'sidecar' ? { namespace, serviceAccount, pod: name } : { namespace, serviceAccount });
    // In a pod namespace the sidecar runs as the proxy uid, which capture leaves alone; the token is its own.
    const owner = netns ? this.#network!.proxyUid : undefined;
    await writeAtomic(tokenFile, `${mint()}\n`, 0o600, owner);
    this.#tokenFiles.set(id, { file: tokenFile, mint, owner });
    // In its namespace the admin port is the config's (init-iptables leaves it alone), as in a pod.
    const adminPort = netns ? String(this.#pipeline.proxies.load(id)?.config.admin.port ?? 15020) : '0';
    const args = [this.o.weftBin, 'proxy', '--mode', mode, '--admin-port', adminPort];
    if (this.o.tracing) {
      // Each proxy is its own service in the trace view: edge:<ns>/<gateway>, sidecar:<ns>/<pod>.
      args.push('--otlp-endpoint', this.o.tracing.endpoint, '--trace-service-name', id);
      const ratio = this.o.tracing.sampleRatio;
      if (ratio !== undefined) args.push('--trace-sample-ratio', String(ratio));
    }
    if (this.o.feed === 'push') {
      // The proxy asks the CA itself (with the token file) and receives its configs over the push stream.
      args.push('--push', `${this.#cpHost}:${this.o.pushPort}`, '--proxy-id', id);
      args.push('--ca-url', this.#caServer!.url, '--token-file', tokenFile, '--roots', this.#rootsFile);
      args.push('--trust-domain', this.o.trustDomain, '--service-account', serviceAccount);
    } else {
      const identity = await this.#agent!.ensure(id, { namespace, serviceAccount }, mint);
      args.push('--config', configFile, '--cert', identity.cert, '--key', identity.key, '--roots', identity.roots);
    }
    const proxy: ProxyProc = { id, mode, configFile, configured: false, child: undefined as unknown as ManagedChild };
    proxy.child = new ManagedChild(
      {
        name: `${mode} ${id.slice(id.indexOf(':') + 1)}`,
        ...this.#command(netns, [this.o.node, ...args], owner),
        env: { [LOCAL_RUN_ENV]: this.o.stateDir },
        compileCache: this.#compileCache(),
        logFile: path.join(this.o.stateDir, 'logs', `${localFileName(id)}.log`),
      },
      (e) => this.#proxyEvent(proxy, e),
    );
    proxy.child.start();
    return proxy;
  }

  /** Node's compile cache for the children, shared by every state dir (entries are keyed by file content). */
  #compileCache(): string {
    return path.join(path.dirname(this.o.weftBin), '..', 'node_modules', '.cache', 'weft', 'node-compile-cache');
  }

  async #stopPod(proc: PodProc): Promise<void> {
    if (proc.sidecar) await this.#stopProxy(proc.sidecar);
    await Promise.all(proc.workloads.map((w) => w.child.stop(this.o.stopGraceMs)));
    if (proc.netns) await this.#network?.removePod(proc.plan.key);
  }

  async #stopProxy(p: ProxyProc): Promise<void> {
    this.#agent?.release(p.id);
    this.#tokenFiles.delete(p.id);
    await p.child.stop(this.o.stopGraceMs);
  }

  #workloadEvent(w: WorkloadProc, e: ChildEvent): void {
    if (e.type === 'line') {
      if (!w.ready && e.stream === 'stdout' && e.line.startsWith('weft echo: serving')) {
        w.ready = true;
        this.#checkReady();
        void this.#saveState();
      }
      return;
    }
    this.#childLifecycle(w.child, e);
    if (e.type === 'exited') w.ready = false;
    void this.#saveState();
  }

  #proxyEvent(p: ProxyProc, e: ChildEvent): void {
    if (e.type === 'line') {
      if (!e.line.startsWith('{')) return;
      let rec: { msg?: string; addresses?: { admin?: { port?: number } }; err?: { message?: string }; level?: number };
      try {
        rec = JSON.parse(e.line);
      } catch {
        return;
      }
      if (rec.msg === 'weft proxy serving') {
        p.adminPort = rec.addresses?.admin?.port;
        if (this.o.feed === 'file') this.#proxyConfigured(p.id, 'file');
      } else if (rec.msg === 'config file reloaded') {
        this.#emit({ type: 'applied', at: Date.now(), proxyId: p.id });
      } else if (rec.msg?.startsWith('config file refused') || rec.msg?.startsWith('config refused')) {
        this.#out(`weft local: ${p.child.spec.name} refused a config: ${rec.err?.message ?? 'see its log'}`);
      }
      return;
    }
    this.#childLifecycle(p.child, e);
    if (e.type === 'exited') p.configured = false;
    void this.#saveState();
  }

  #childLifecycle(child: ManagedChild, e: ChildEvent): void {
    if (e.type === 'started') {
      this.log.info({ event: 'local.child-started', child: child.spec.name, pid: e.pid, run: e.run }, 'started');
      if (e.run > 1) this.#out(`weft local: ${child.spec.name} restarted (pid ${e.pid})`);
    } else if (e.type === 'exited' && e.restartInMs !== undefined) {
      const how = e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
      this.log.warn({ event: 'local.child-exited', child: child.spec.name, code: e.code, signal: e.signal }, 'exited');
      this.#out(
        `weft local: ${child.spec.name} died (${how})${e.lastError ? `: ${e.lastError}` : ''}; restarting in ${(e.restartInMs / 1000).toFixed(1)} s`,
      );
    }
  }

  #proxyConfigured(id: string, via: 'file' | 'push'): void {
    const proxy = this.#findProxy(id);
    if (!proxy) return;
    if (via === 'push') this.#emit({ type: 'applied', at: Date.now(), proxyId: id });
    proxy.configured = true;
    this.#checkReady();
    void this.#saveState();
  }

  #findProxy(id: string): ProxyProc | undefined {
    for (const p of this.#pods.values()) if (p.sidecar?.id === id) return p.sidecar;
    for (const g of this.#gateways.values()) if (g.proxy?.id === id) return g.proxy;
    return undefined;
  }

  #notReady(): string[] {
    const reasons: string[] = [];
    if (!this.#pipeline?.ready) reasons.push('no translation yet');
    for (const p of this.#pods.values()) {
      for (const w of p.workloads)
        if (!w.ready) reasons.push(`pod ${p.plan.key}: container ${w.plan.container} is not serving`);
      if (p.failed) reasons.push(`pod ${p.plan.key}: ${p.failed}`);
      if (p.sidecarPending) reasons.push(`pod ${p.plan.key}: sidecar is getting its certificate`);
      if (p.sidecar && !p.sidecar.configured) reasons.push(`pod ${p.plan.key}: sidecar has no config yet`);
    }
    for (const g of this.#gateways.values())
      if (!g.proxy?.configured) reasons.push(`gateway ${g.plan.key}: proxy has no config (or certificate) yet`);
    if (this.#applying) reasons.push('processes are starting');
    return reasons;
  }

  #checkReady(): void {
    if (this.#readySince !== undefined || this.#closed) return;
    if (this.#notReady().length > 0) return;
    this.#readySince = Date.now();
    // mesh.json says ready before the ready line is printed: whoever reacts to the line finds the mesh in it.
    void this.#saveState().then(() => {
      this.#announce();
      for (const w of this.#readyWaiters.splice(0)) w();
    });
  }

  // ---- output ----

  #announce(): void {
    const out = this.#out;
    const images = new Map<string, number>();
    let sidecars = 0;
    for (const p of this.#pods.values()) {
      for (const w of p.workloads) images.set(w.plan.image, (images.get(w.plan.image) ?? 0) + 1);
      if (p.sidecar) sidecars++;
    }
    out(
      `weft local: ${this.#pods.size} pod(s), ${sidecars} sidecar(s), ${this.#gateways.size} gateway proxy(ies) from ${this.o.dir}`,
    );
    if (images.size > 0) {
      const list = [...images].map(([image, n]) => `${image} (${n} container${n === 1 ? '' : 's'})`).join(', ');
      out(`weft local: the built-in echo server stands in for ${list}`);
    }
    if (this.o.portOffset > 0) {
      out(
        `weft local: not root, so ports below 1024 are moved up by ${this.o.portOffset} (80 → ${localPort(80, this.o.portOffset)}, 443 → ${localPort(443, this.o.portOffset)})`,
      );
    }
    out('');
    const rows = [['POD', 'IP', 'SERVES', this.#network ? 'SIDECAR  NETWORK NAMESPACE' : 'SIDECAR OUTBOUND']];
    const pods = [...this.#pods.values()].sort((a, b) => (a.plan.key < b.plan.key ? -1 : 1));
    for (const p of pods) {
      const ports = p.workloads.flatMap((w) => [...w.plan.ports, ...w.plan.h2cPorts.map((x) => `${x}/h2c`)]).join(',');
      const outbound = p.sidecar ? this.#outbound(p.sidecar.id) : undefined;
      const last = this.#network
        ? `${(p.sidecar ? 'yes' : 'no').padEnd(9)}${p.netns ?? '-'}`
        : outbound
          ? `${outbound.address}:${outbound.port}`
          : '-';
      rows.push([p.plan.key, p.plan.ip, ports || '-', last]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) out(`  ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}`.trimEnd());
    out('');
    for (const g of this.#gateways.values()) {
      const cfg = this.configs.load(g.plan.proxyId)?.config;
      out(`Gateway ${g.plan.key} at ${g.plan.address}:`);
      for (const l of cfg?.listeners ?? []) {
        if (l.kind !== 'gateway') continue;
        const scheme = l.protocol === 'HTTPS' ? 'https' : 'http';
        const names = [...new Set(l.hosts.map((h) => h.hostname ?? '*'))].join(', ');
        out(`  ${scheme}://${l.address}:${l.port}  (${names})`);
      }
    }
    const elapsed = ((this.#readySince! - this.#startedAt) / 1000).toFixed(1);
    const proxies = sidecars + this.#gateways.size;
    out('');
    out(
      `ready: ${proxies} proxies configured, ${[...this.#pods.values()].reduce((n, p) => n + p.workloads.length, 0)} workloads serving (${elapsed} s)`,
    );
    const lines = curlExamples({
      configs: this.configs.entries().map(([, v]) => v.config),
      weft: this.#weftCommand(),
      stateDirFlag: this.#stateDirFlag(),
      podNetns: (key) => this.#pods.get(key)?.netns,
    });
    if (lines.length > 0) {
      out('');
      out('Try:');
      for (const l of lines) out(`  ${l}`);
    }
    out('');
    out(
      `Edit a file in ${this.o.dir} and routing follows within a second. Logs: ${this.#shown(path.join(this.o.stateDir, 'logs'))}. Ctrl-C stops everything.`,
    );
  }

  #weftCommand(): string {
    const cwd = process.cwd();
    const rel = (p: string) => {
      const r = path.relative(cwd, p);
      return r.startsWith('..') ? p : r;
    };
    // The node that runs this (Node 24 from node_modules, not the system's) also runs the printed commands.
    const localNode = path.join(cwd, 'node_modules', '.bin', 'node');
    const node = this.o.node.startsWith(path.join(cwd, 'node_modules')) ? rel(localNode) : 'node';
    return `${node} ${rel(this.o.weftBin)}`;
  }

  /** A path as the user would type it: relative to the working directory when under it. */
  #shown(p: string): string {
    const rel = path.relative(process.cwd(), p);
    return rel === '' || rel.startsWith('..') ? p : rel;
  }

  #stateDirFlag(): string {
    const rel = path.relative(process.cwd(), this.o.stateDir);
    return rel === path.normalize('.weft/local') ? '' : ` --state-dir ${rel.startsWith('..') ? this.o.stateDir : rel}`;
  }

  #outbound(id: string): { address: string; port: number } | undefined {
    const l = this.configs.load(id)?.config.listeners.find((x) => x.kind === 'outbound');
    return l ? { address: l.address, port: l.port } : undefined;
  }

  // ---- mesh.json ----

  /** Queues a rewrite of mesh.json; resolves once a write that reflects the state at this call is done. */
  #saveState(): Promise<void> {
    if (this.#closed || !this.#ownsState) return Promise.resolve();
    if (this.#stateDirty) return this.#stateWrite;
    this.#stateDirty = true;
    this.#stateWrite = this.#stateWrite.then(async () => {
      this.#stateDirty = false;
      if (this.#closed) return;
      await writeMeshState(this.o.stateDir, this.state()).catch((err) =>
        this.log.warn({ event: 'local.state-write-failed', err }, 'could not write mesh.json'),
      );
    });
    return this.#stateWrite;
  }

  /** What mesh.json says. */
  state(): MeshState {
    const pods = [...this.#pods.values()].map((p) => {
      const pod: MeshState['pods'][number] = {
        namespace: p.plan.namespace,
        name: p.plan.name,
        ip: p.plan.ip,
        serviceAccount: p.plan.serviceAccount,
        workloads: p.workloads.map((w) => ({
          container: w.plan.container,
          image: w.plan.image,
          ports: w.plan.ports,
          h2cPorts: w.plan.h2cPorts,
          format: w.plan.format,
          pid: w.child.pid,
        })),
      };
      if (p.netns) pod.netns = p.netns;
      if (p.sidecar) {
        pod.sidecar = {
          proxyId: p.sidecar.id,
          // Reached through capture with --netns, not as an explicit proxy from the host.
          outbound: this.#network ? undefined : this.#outbound(p.sidecar.id),
          adminPort: p.sidecar.adminPort,
          pid: p.sidecar.child.pid,
          configured: p.sidecar.configured,
        };
      }
      return pod;
    });
    const gateways = [...this.#gateways.values()].map((g) => {
      const cfg = this.configs.load(g.plan.proxyId)?.config;
      const listeners = (cfg?.listeners ?? []).flatMap((l) =>
        l.kind === 'gateway'
          ? [
              {
                name: l.name,
                protocol: l.protocol,
                port: this.#portOf(l.port),
                localPort: l.port,
                hostnames: [...new Set(l.hosts.map((h) => h.hostname ?? '*'))],
              },
            ]
          : [],
      );
      return {
        namespace: g.plan.namespace,
        name: g.plan.name,
        proxyId: g.plan.proxyId,
        address: g.plan.address,
        listeners,
        adminPort: g.proxy?.adminPort,
        pid: g.proxy?.child.pid,
        configured: g.proxy?.configured ?? false,
      };
    });
    const n = this.#network;
    return {
      pid: process.pid,
      ...(n
        ? {
            netns: {
              prefix: n.prefix,
              bridge: n.bridge.name,
              gateway: n.gateway,
              cidr: n.cidr,
              podCidr: n.podCidr,
              serviceCidr: n.serviceCidr,
            },
          }
        : {}),
      startedAt: new Date(this.#startedAt).toISOString(),
      updatedAt: new Date().toISOString(),
      dir: path.resolve(this.o.dir),
      ready: this.ready,
      portOffset: this.o.portOffset,
      feed: this.o.feed,
      controlPlane: this.controlPlane,
      pods,
      gateways,
    };
  }

  /** The Gateway's own port for a local one (undoes the privileged-port shift). */
  #portOf(local: number): number {
    const o = this.o.portOffset;
    return o > 0 && local >= o && local - o < 1024 ? local - o : local;
  }

  /** Every process group of every child (tests check none is left). */
  processGroups(): number[] {
    const out: number[] = [];
    for (const p of this.#pods.values()) {
      for (const w of p.workloads) out.push(...w.child.pgids);
      if (p.sidecar) out.push(...p.sidecar.child.pgids);
    }
    for (const g of this.#gateways.values()) if (g.proxy) out.push(...g.proxy.child.pgids);
    return out;
  }

  /** No more waiting (a second Ctrl-C): SIGKILL to every child's group, then the pods' network is removed. */
  async abort(): Promise<void> {
    for (const pgid of this.processGroups()) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {}
    }
    await this.#network?.close();
  }

  /** Stops the proxies (they drain what they can), then the workloads, then the control plane. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#unsubscribes.splice(0)) off();
    await this.#reconciling.catch(() => {});
    const grace = this.o.stopGraceMs;
    const proxies = [
      ...[...this.#gateways.values()].flatMap((g) => (g.proxy ? [g.proxy] : [])),
      ...[...this.#pods.values()].flatMap((p) => (p.sidecar ? [p.sidecar] : [])),
    ];
    const t0 = performance.now();
    await Promise.all(proxies.map((p) => p.child.stop(grace)));
    const t1 = performance.now();
    await Promise.all([...this.#pods.values()].flatMap((p) => p.workloads.map((w) => w.child.stop(grace))));
    const t2 = performance.now();
    this.#pods.clear();
    this.#gateways.clear();
    this.#agent?.close();
    clearInterval(this.#tokenTimer);
    await this.#push?.close();
    await this.#admin?.close();
    await this.#caServer?.close();
    await this.#supervisor?.close();
    await this.#tracing?.shutdown();
    // Last: the namespaces (whatever still runs in them), the bridge, its chains, the hosts files.
    await this.#network?.close();
    await this.#stateWrite.catch(() => {});
    const ms = (a: number, b: number) => Math.round(b - a);
    this.log.info(
      {
        event: 'local.stopped',
        proxiesMs: ms(t0, t1),
        workloadsMs: ms(t1, t2),
        controlPlaneMs: ms(t2, performance.now()),
      },
      'stopped',
    );
    if (this.#ownsState) await rm(path.join(this.o.stateDir, 'mesh.json'), { force: true });
    await new Promise<void>((resolve) => this.log.flush(() => resolve()));
  }
}

export type MeshEvent =
  | { type: 'translated'; at: number; durationMs: number; proxiesChanged: number; ok: boolean }
  | { type: 'applied'; at: number; proxyId: string };

/** Starts a local mesh (see LocalMesh); resolves once the control plane runs and the first processes are started. */
export async function startLocalMesh(options: LocalMeshOptions): Promise<LocalMesh> {
  const mesh = new LocalMesh(options);
  try {
    await mesh.start();
  } catch (err) {
    await mesh.close().catch(() => {});
    throw err;
  }
  return mesh;
}

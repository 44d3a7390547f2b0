// The Kubernetes provider: one client-node informer (ListWatch) per kind of the ResourceSnapshot, feeding the same
// pipeline as the FileProvider (`start`, `close`, `onUpdate`). What it adds to the informers:
//
// - discovery first: each kind is watched in the first of its versions the server serves; a kind the server does
//   not serve (a Gateway API CRD not installed) is reported once, in one log line, and skipped; discovery runs
//   again periodically (and at once when an informer hits a 404), so CRDs installed later are picked up and
//   removed ones dropped;
// - a readiness gate: no update before every watched kind's first list is done; `start()` resolves with the first
//   update emitted, as FileProvider's does;
// - restarts: client-node's ListWatch recovers from 410 Gone by itself but stops on any other error (a 500, a
//   dropped connection): the provider restarts it after a capped, jittered exponential backoff, resuming the watch
//   from the last resourceVersion it saw (a relist when that is too old);
// - coalescing: changes within a short trailing window (bounded) give one new snapshot; changes the translator
//   cannot see (the status of Gateway API objects, resourceVersion, managedFields) give none;
// - raw objects for the status writer (`getObject`, `onObjectChange`), status included.
import { ListWatch, Watch } from '@kubernetes/client-node';
import { type Logger, pino } from 'pino';
import { ResourceError } from '../resources/errors.ts';
import { parseResource } from '../resources/parse.ts';
import { ResourceSnapshot } from '../resources/snapshot.ts';
import { CLUSTER_SCOPED, type Resource, type ResourceKind } from '../resources/types.ts';
import type { ProviderUpdate } from '../runtime/pipeline.ts';
import type { KubeClient, KubeList, KubeObject } from './client.ts';
import { KubeApiError, KubeError } from './errors.ts';
import { apiVersionOf, groupVersionPath, type KindInfo, resourcePath, WATCHED_KINDS } from './kinds.ts';

export interface Backoff {
  /** First retry after about this long. Default 500 ms. */
  initialMs: number;
  /** Never longer than this. Default 30 s. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<Backoff> = { initialMs: 500, maxMs: 30_000 };

/** Delay before retry `attempt` (1-based): doubling from initialMs, capped, with equal jitter. */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

export interface KubernetesProviderOptions {
  /** The API client (lists, discovery); its KubeConfig also serves client-node's watches. */
  client: KubeClient;
  logger?: Logger;
  /** Changes closer together than this give one snapshot. Default 50 ms. */
  debounceMs?: number;
  /** A steady stream of changes still gives a snapshot at least this often. Default 20 × debounceMs. */
  maxDelayMs?: number;
  /** Restart backoff of failed informers and discovery. */
  backoff?: Partial<Backoff>;
  /** Discovery runs again this often (kinds installed or removed since). Default 30 s. */
  discoveryIntervalMs?: number;
  /** List page size. Default 500. */
  pageSize?: number;
  /** Kinds to watch. Default: every kind of the snapshot. */
  kinds?: readonly ResourceKind[];
  /** Stable runs this long reset an informer's backoff. Default 30 s. */
  stableAfterMs?: number;
  random?: () => number;
}

export interface KubernetesProviderUpdate extends ProviderUpdate {
  snapshot: ResourceSnapshot;
  snapshotChanged: true;
  /** Objects the API server holds that weft cannot read (its last good version of each stays in the snapshot). */
  errors: ResourceError[];
  /** Kinds the API server does not serve (CRDs not installed). */
  missingKinds: ResourceKind[];
}

export type KindState = 'missing' | 'syncing' | 'synced' | 'backoff';

export interface KindStatus {
  kind: ResourceKind;
  /** The served version watched (undefined while missing). */
  version?: string;
  state: KindState;
  objects: number;
  /** Informer failures (never reset). */
  failures: number;
  restarts: number;
  lastError?: string;
}

export type ObjectChangeListener = (kind: ResourceKind, namespace: string | undefined, name: string) => void;

/** client-node's Watch with bookmarks and a server-side timeout, that starts nothing once its informer is stopped. */
class InformerWatch extends Watch {
  closed = false;
  readonly #timeoutSeconds: () => number;

  constructor(client: KubeClient, timeoutSeconds: () => number) {
    super(client.kubeConfig);
    this.#timeoutSeconds = timeoutSeconds;
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // ListWatch may reconnect after a delay it does not cancel on stop(): refuse to start then.
    if (this.closed) return new AbortController();
    return super.watch(
      path,
      { ...query, allowWatchBookmarks: true, timeoutSeconds: this.#timeoutSeconds() },
      callback,
      done,
    );
  }
}

interface Entry {
  resource: Resource;
  fingerprint: string;
}

interface KindWatch {
  info: KindInfo;
  version: string;
  informer: ListWatch<KubeObject>;
  watch: InformerWatch;
  abort: AbortController;
  entries: Map<string, Entry>;
  errors: Map<string, ResourceError>;
  state: KindState;
  /** First list done (the kind is part of snapshots from then on). */
  synced: boolean;
  stopping: boolean;
  run: number;
  failedRun: number;
  startedAt: number | undefined;
  failures: number;
  consecutive: number;
  restarts: number;
  lastError: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

const keyOf = (kind: ResourceKind, ns: string | undefined, name: string) =>
  CLUSTER_SCOPED.has(kind) ? name : `${ns ?? 'default'}/${name}`;

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class KubernetesProvider {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #backoff: Backoff;
  readonly #discoveryIntervalMs: number;
  readonly #pageSize: number;
  readonly #kinds: readonly KindInfo[];
  readonly #stableAfterMs: number;
  readonly #random: () => number;
  readonly #listeners = new Set<(u: KubernetesProviderUpdate) => void>();
  readonly #objectListeners = new Set<ObjectChangeListener>();
  readonly #watches = new Map<ResourceKind, KindWatch>();
  readonly #missing = new Set<ResourceKind>();
  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  #current: KubernetesProviderUpdate | undefined;
  #timer: NodeJS.Timeout | undefined;
  #firstPendingAt = 0;
  #discoveryTimer: NodeJS.Timeout | undefined;
  #discovering: Promise<void> | undefined;
  #rediscoverAgain = false;
  #discoveredOnce = false;
  #readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #closed = new AbortController();

  constructor(options: KubernetesProviderOptions) {
    this.#client = options.client;
    this.#log = (options.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'k8s-provider' });
    this.#debounceMs = options.debounceMs ?? 50;
    this.#maxDelayMs = options.maxDelayMs ?? 20 * this.#debounceMs;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#discoveryIntervalMs = options.discoveryIntervalMs ?? 30_000;
    this.#pageSize = options.pageSize ?? 500;
    const wanted = options.kinds ? new Set(options.kinds) : undefined;
    this.#kinds = WATCHED_KINDS.filter((k) => !wanted || wanted.has(k.kind));
    this.#stableAfterMs = options.stableAfterMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** Called with the first full snapshot (during `start()`) and then with every change. Returns unsubscribe. */
  onUpdate(listener: (u: KubernetesProviderUpdate) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called for every object event of the informers, status-only changes included (the status writer's cue). */
  onObjectChange(listener: ObjectChangeListener): () => void {
    this.#objectListeners.add(listener);
    return () => this.#objectListeners.delete(listener);
  }

  /** The informer's copy of an object, as the API server sent it (status included); undefined if unknown. */
  getObject(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject | undefined {
    const w = this.#watches.get(kind);
    if (!w?.synced) return undefined;
    return w.informer.get(name, w.info.namespaced ? namespace : undefined);
  }

  /** The version the provider watches a kind in (undefined when the server does not serve it). */
  servedVersion(kind: ResourceKind): string | undefined {
    return this.#watches.get(kind)?.version;
  }

  get current(): KubernetesProviderUpdate | undefined {
    return this.#current;
  }

  get snapshot(): ResourceSnapshot {
    return this.#current?.snapshot ?? ResourceSnapshot.empty();
  }

  /** True once every watched kind had its first list (and the first update was emitted). */
  get ready(): boolean {
    return this.#current !== undefined;
  }

  get missingKinds(): ResourceKind[] {
    return this.#kinds.filter((k) => this.#missing.has(k.kind)).map((k) => k.kind);
  }

  status(): KindStatus[] {
    return this.#kinds.map((k) => {
      const w = this.#watches.get(k.kind);
      if (!w) return { kind: k.kind, state: 'missing', objects: 0, failures: 0, restarts: 0 };
      const s: KindStatus = {
        kind: k.kind,
        version: w.version,
        state: w.state,
        objects: w.entries.size,
        failures: w.failures,
        restarts: w.restarts,
      };
      if (w.lastError !== undefined) s.lastError = w.lastError;
      return s;
    });
  }

  /**
   * Discovers, starts every informer and resolves once each had its first list and the first update was emitted.
   * Waits (retrying with backoff) while the API server is unreachable; rejects if closed meanwhile.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`KubernetesProvider: start() called when ${this.#state}`);
    this.#state = 'starting';
    const ready = new Promise<void>((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
    ready.catch(() => {}); // observed below; a close before the first await must not be an unhandled rejection
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#discover();
        break;
      } catch (err) {
        if (this.#isClosed()) throw new KubeError('WEFT_ERR_K8S_CLOSED', 'provider closed while starting');
        const delay = backoffDelay(attempt, this.#backoff, this.#random);
        this.#log.warn(
          { event: 'k8s.discovery-failed', err: describe(err), retryInMs: delay },
          `API discovery failed; retrying in ${delay} ms`,
        );
        await this.#sleep(delay);
      }
    }
    this.#discoveryTimer = setInterval(() => void this.#rediscover(), this.#discoveryIntervalMs);
    this.#discoveryTimer.unref();
    this.#checkReady();
    await ready;
  }

  /** Stops every informer and timer. No update is emitted after this resolves. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closed.abort();
    clearTimeout(this.#timer);
    clearInterval(this.#discoveryTimer);
    const err = new KubeError('WEFT_ERR_K8S_CLOSED', 'provider closed before its first sync');
    for (const w of this.#readyWaiters.splice(0)) w.reject(err);
    await Promise.all([...this.#watches.values()].map((w) => this.#stopKind(w)));
    this.#watches.clear();
    await this.#discovering?.catch(() => {});
  }

  // The state changes under awaits: a method call keeps TypeScript from narrowing it away.
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  // ---- discovery ----

  /** Which version of each kind the server serves (undefined: not served), from the group-version resource lists. */
  async #serving(): Promise<Map<ResourceKind, string | undefined>> {
    const gvs = new Map<string, { group: string; version: string }>();
    for (const k of this.#kinds)
      for (const v of k.versions) gvs.set(apiVersionOf(k.group, v), { group: k.group, version: v });
    const served = new Map<string, Set<string>>();
    await Promise.all(
      [...gvs].map(async ([gv, { group, version }]) => {
        try {
          const list = await this.#client.request<{ resources?: { name: string }[] }>(
            'GET',
            groupVersionPath(group, version),
            { signal: this.#closed.signal },
          );
          served.set(gv, new Set((list?.resources ?? []).map((r) => r.name)));
        } catch (e) {
          if (e instanceof KubeApiError && e.statusCode === 404) served.set(gv, new Set());
          else throw e;
        }
      }),
    );
    const out = new Map<ResourceKind, string | undefined>();
    for (const k of this.#kinds)
      out.set(
        k.kind,
        k.versions.find((v) => served.get(apiVersionOf(k.group, v))?.has(k.plural)),
      );
    return out;
  }

  async #discover(): Promise<void> {
    const serving = await this.#serving();
    if (this.#state === 'closed') return;
    let changed = false;
    for (const k of this.#kinds) {
      const version = serving.get(k.kind);
      const w = this.#watches.get(k.kind);
      if (version === undefined) {
        if (!this.#missing.has(k.kind)) {
          this.#missing.add(k.kind);
          const where = `${k.versions.map((v) => apiVersionOf(k.group, v)).join(' or ')} ${k.plural}`;
          this.#log.warn(
            { event: 'k8s.kind-missing', kind: k.kind, group: k.group, versions: k.versions, resource: k.plural },
            k.optional
              ? `${k.kind} is not served by the API server (${where}): its CRD is not installed; ${k.kind} objects are ignored until it is (checked every ${Math.round(this.#discoveryIntervalMs / 1000)} s)`
              : `${k.kind} is not served by the API server (${where}); ${k.kind} objects are ignored`,
          );
        }
        if (w) {
          this.#watches.delete(k.kind);
          await this.#stopKind(w);
          changed = changed || w.synced;
        }
        continue;
      }
      if (this.#missing.delete(k.kind) && this.#discoveredOnce)
        this.#log.info(
          { event: 'k8s.kind-installed', kind: k.kind, version },
          `${k.kind} is now served (${apiVersionOf(k.group, version)}); watching it`,
        );
      if (w && w.version === version) continue;
      if (w) {
        this.#log.info(
          { event: 'k8s.kind-version-changed', kind: k.kind, from: w.version, to: version },
          `${k.kind}: watching ${apiVersionOf(k.group, version)} instead of ${apiVersionOf(k.group, w.version)}`,
        );
        this.#watches.delete(k.kind);
        await this.#stopKind(w);
        changed = changed || w.synced;
      }
      const nw = this.#newKind(k, version);
      this.#watches.set(k.kind, nw);
      void this.#startKind(nw);
    }
    this.#discoveredOnce = true;
    if (changed) this.#changed();
    this.#checkReady();
  }

  /** Runs discovery again (one run at a time; a request during a run queues one more). */
  #rediscover(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    if (this.#discovering) {
      this.#rediscoverAgain = true;
      return this.#discovering;
    }
    this.#discovering = this.#discover()
      .catch((err) => {
        if (this.#state !== 'closed')
          this.#log.warn({ event: 'k8s.discovery-failed', err: describe(err) }, 'API discovery failed');
      })
      .finally(() => {
        this.#discovering = undefined;
        if (this.#rediscoverAgain) {
          this.#rediscoverAgain = false;
          void this.#rediscover();
        }
      });
    return this.#discovering;
  }

  // ---- informers ----

  #newKind(info: KindInfo, version: string): KindWatch {
    const abort = new AbortController();
    // Like client-go's reflector: a server-side watch timeout spread over 5–10 minutes.
    const watch = new InformerWatch(this.#client, () => Math.round(300 + this.#random() * 300));
    const list = async (): Promise<KubeList<KubeObject>> => {
      if (abort.signal.aborted) throw new KubeError('WEFT_ERR_K8S_CLOSED', 'informer stopped');
      const out = await this.#client.listAll<KubeObject>(info, version, {
        fieldSelector: info.fieldSelector,
        limit: this.#pageSize,
        signal: abort.signal,
      });
      return out;
    };
    const informer = new ListWatch<KubeObject>(
      resourcePath(info, version),
      watch,
      // biome-ignore lint/suspicious/noExplicitAny: client-node's list type wants its own V1ListMeta shape
      list as any,
      false,
      undefined,
      info.fieldSelector,
      { delayFn: (ms) => this.#sleep(ms, abort.signal) },
    );
    const w: KindWatch = {
      info,
      version,
      informer,
      watch,
      abort,
      entries: new Map(),
      errors: new Map(),
      state: 'syncing',
      synced: false,
      stopping: false,
      run: 0,
      failedRun: 0,
      startedAt: undefined,
      failures: 0,
      consecutive: 0,
      restarts: 0,
      lastError: undefined,
      timer: undefined,
    };
    informer.on('add', (o) => this.#apply(w, o));
    informer.on('update', (o) => this.#apply(w, o));
    informer.on('delete', (o) => this.#drop(w, o));
    informer.on('error', (err) => this.#failed(w, err));
    return w;
  }

  async #startKind(w: KindWatch): Promise<void> {
    if (w.stopping || this.#state === 'closed') return;
    const run = ++w.run;
    w.state = 'syncing';
    w.startedAt = Date.now();
    try {
      await w.informer.start();
    } catch (err) {
      this.#failed(w, err);
      return;
    }
    // ListWatch reports a failed list or watch through its error callback and resolves start() anyway.
    if (w.stopping || run !== w.run || w.failedRun === run) return;
    w.state = 'synced';
    if (!w.synced) {
      w.synced = true;
      this.#log.info(
        { event: 'k8s.informer-synced', kind: w.info.kind, version: w.version, objects: w.entries.size },
        `${w.info.kind} synced (${w.entries.size} objects)`,
      );
      if (this.#current) this.#changed();
      this.#checkReady();
    } else if (w.restarts > 0) {
      this.#log.info({ event: 'k8s.informer-resumed', kind: w.info.kind }, `${w.info.kind} watch resumed`);
    }
  }

  #failed(w: KindWatch, err: unknown): void {
    if (w.stopping || this.#state === 'closed') return; // stop() aborts the watch: an AbortError, not a failure
    if (w.failedRun === w.run) return;
    w.failedRun = w.run;
    w.failures++;
    if (w.startedAt !== undefined && Date.now() - w.startedAt >= this.#stableAfterMs) w.consecutive = 0;
    w.consecutive++;
    w.lastError = describe(err);
    w.state = 'backoff';
    const delay = backoffDelay(w.consecutive, this.#backoff, this.#random);
    const statusCode = (err as { statusCode?: number })?.statusCode;
    this.#log.warn(
      {
        event: 'k8s.informer-failed',
        kind: w.info.kind,
        err: w.lastError,
        statusCode,
        failures: w.failures,
        retryInMs: delay,
      },
      `${w.info.kind} informer failed (${w.lastError}); restarting in ${delay} ms`,
    );
    // A 404 usually means the CRD went away: check now rather than at the next discovery round.
    if (statusCode === 404) void this.#rediscover();
    w.timer = setTimeout(() => {
      w.timer = undefined;
      w.restarts++;
      void this.#startKind(w);
    }, delay);
  }

  async #stopKind(w: KindWatch): Promise<void> {
    w.stopping = true;
    clearTimeout(w.timer);
    w.watch.closed = true;
    w.abort.abort();
    await w.informer.stop();
  }

  /** The object as the snapshot holds it: typed, without what changes on every write and the translator ignores. */
  #clean(w: KindWatch, raw: KubeObject): Record<string, unknown> {
    const { metadata, ...rest } = raw;
    const { resourceVersion: _rv, managedFields: _mf, ...meta } = metadata ?? {};
    const out: Record<string, unknown> = {
      ...rest,
      apiVersion: apiVersionOf(w.info.group, w.version),
      kind: w.info.kind,
      metadata: meta,
    };
    if (w.info.statusIgnored) delete out.status;
    return out;
  }

  #apply(w: KindWatch, raw: KubeObject): void {
    if (w.stopping) return;
    const name = raw.metadata?.name ?? '';
    const ns = raw.metadata?.namespace;
    this.#notifyObject(w.info.kind, ns, name);
    const key = keyOf(w.info.kind, ns, name);
    const cleaned = this.#clean(w, raw);
    const fingerprint = JSON.stringify(cleaned);
    const prev = w.entries.get(key);
    if (prev?.fingerprint === fingerprint && !w.errors.has(key)) return;
    try {
      const r = parseResource(cleaned, { file: '', line: 0, column: 0 });
      if (!r) return;
      w.entries.set(key, { resource: r, fingerprint });
      w.errors.delete(key);
    } catch (e) {
      if (!(e instanceof ResourceError)) throw e;
      // What the API server accepted but weft cannot read: reported, and the last good version kept.
      if (w.errors.get(key)?.message === e.message) return;
      w.errors.set(key, e);
    }
    this.#changed();
  }

  #drop(w: KindWatch, raw: KubeObject): void {
    if (w.stopping) return;
    const name = raw.metadata?.name ?? '';
    const ns = raw.metadata?.namespace;
    this.#notifyObject(w.info.kind, ns, name);
    const key = keyOf(w.info.kind, ns, name);
    const had = w.entries.delete(key);
    if (w.errors.delete(key) || had) this.#changed();
  }

  #notifyObject(kind: ResourceKind, ns: string | undefined, name: string): void {
    for (const l of this.#objectListeners) {
      try {
        l(kind, ns, name);
      } catch (err) {
        this.#log.warn({ event: 'listener.failed', err: describe(err) }, 'an object listener threw');
      }
    }
  }

  // ---- snapshots ----

  #checkReady(): void {
    if (this.#current || this.#state !== 'starting' || !this.#discoveredOnce) return;
    for (const w of this.#watches.values()) if (!w.synced) return;
    this.#state = 'running';
    this.#emit();
    for (const w of this.#readyWaiters.splice(0)) w.resolve();
  }

  #changed(): void {
    if (this.#state !== 'running') return;
    const now = Date.now();
    if (this.#timer === undefined) this.#firstPendingAt = now;
    clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#debounceMs, this.#firstPendingAt + this.#maxDelayMs - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#state === 'running') this.#emit();
    }, wait);
  }

  #emit(): void {
    const resources: Resource[] = [];
    const errors: ResourceError[] = [];
    for (const k of this.#kinds) {
      const w = this.#watches.get(k.kind);
      if (!w?.synced) continue;
      for (const e of w.entries.values()) resources.push(e.resource);
      errors.push(...w.errors.values());
    }
    const update: KubernetesProviderUpdate = {
      snapshot: ResourceSnapshot.from(resources),
      snapshotChanged: true,
      errors,
      missingKinds: this.missingKinds,
    };
    this.#current = update;
    for (const l of this.#listeners) {
      try {
        l(update);
      } catch (err) {
        setImmediate(() => {
          throw err;
        });
      }
    }
  }

  #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const signals = [this.#closed.signal, ...(signal ? [signal] : [])];
    const any = AbortSignal.any(signals);
    return new Promise((resolve) => {
      if (any.aborted) return resolve();
      const t = setTimeout(() => {
        any.removeEventListener('abort', done);
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      any.addEventListener('abort', done, { once: true });
    });
  }
}

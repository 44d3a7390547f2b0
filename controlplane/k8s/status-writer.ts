// Writes the translator's statuses back to GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes through their
// `status` subresource. A reconcile queue keyed by object: the desired status of a key comes from the pipeline
// (`attach(pipeline.statuses)`), and a key is reconciled again when its desired status changes, when the object
// itself changes in the informer cache (someone else rewrote its status), on becoming leader, and on a periodic
// resync. Many changes to one key before its turn give one reconcile (coalescing); one key is never written by two
// workers at once. A reconcile reads the object (the informer's copy when there is one; a fresh GET after a
// conflict), computes the merged status (status.ts) and writes it only when it differs, with the object's
// resourceVersion: a 409 Conflict is retried with a fresh read, other errors after a backoff. Only the leader
// writes; followers keep the desired state so a new leader has everything pending.
import { type Logger, pino } from 'pino';
import type { ResourceKind } from '../resources/types.ts';
import { statusKey } from '../runtime/pipeline.ts';
import type { WatchableMap, WatchBatch } from '../runtime/watchable.ts';
import { DEFAULT_CONTROLLER_NAME, type StatusOut } from '../translate/types.ts';
import type { KubeClient, KubeObject } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';
import { apiVersionOf, KIND_INFO } from './kinds.ts';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF, type ObjectChangeListener } from './provider.ts';
import { nextStatus, rfc3339 } from './status.ts';

/** Where the writer reads objects without a request (KubernetesProvider has it). */
export interface ObjectCache {
  getObject(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject | undefined;
  onObjectChange(listener: ObjectChangeListener): () => void;
  servedVersion?(kind: ResourceKind): string | undefined;
}

/** Who may write (LeaderElector has it). */
export interface Leadership {
  readonly isLeader: boolean;
  onChange(listener: (leading: boolean) => void): () => void;
}

export interface StatusWriterOptions {
  client: KubeClient;
  controllerName?: string;
  cache?: ObjectCache;
  /** Only writes while this says so. Default: always writes. */
  leader?: Leadership;
  /** Objects reconciled at once. Default 8. */
  concurrency?: number;
  /** Conflicts retried at once (each with a fresh read) before backing off. Default 5. */
  conflictRetries?: number;
  backoff?: Partial<Backoff>;
  /** Every key is reconciled again this often (0: never). Default 5 min. */
  resyncMs?: number;
  logger?: Logger;
  /** Clock of lastTransitionTime. */
  now?: () => Date;
}

export interface StatusWriterStats {
  /** Successful status writes. */
  writes: number;
  /** Reconciles that found the status already right. */
  unchanged: number;
  conflicts: number;
  /** Reconciles that failed with another error (retried after a backoff). */
  failures: number;
  /** Keys waiting, being written, or waiting for a retry. */
  pending: number;
}

const WRITTEN_KINDS = new Set<string>(['GatewayClass', 'Gateway', 'HTTPRoute', 'GRPCRoute']);

interface Target {
  kind: ResourceKind;
  namespace: string | undefined;
  name: string;
  /** null: weft has no status for it any more (its own route parents are removed). */
  desired: StatusOut | null;
}

/** `GatewayClass/<name>` or `<kind>/<namespace>/<name>`, parsed. */
function parseKey(key: string): { kind: ResourceKind; namespace: string | undefined; name: string } | undefined {
  const parts = key.split('/');
  if (parts[0] === 'GatewayClass' && parts.length === 2)
    return { kind: 'GatewayClass', namespace: undefined, name: parts[1] };
  if (parts.length === 3 && WRITTEN_KINDS.has(parts[0]))
    return { kind: parts[0] as ResourceKind, namespace: parts[1], name: parts[2] };
  return undefined;
}

export class StatusWriter {
  readonly name = 'status-writer';
  readonly #client: KubeClient;
  readonly #controllerName: string;
  #cache: ObjectCache | undefined;
  readonly #leader: Leadership | undefined;
  readonly #concurrency: number;
  readonly #conflictRetries: number;
  readonly #backoff: Backoff;
  readonly #resyncMs: number;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #targets = new Map<string, Target>();
  readonly #dirty = new Set<string>();
  readonly #inflight = new Set<string>();
  readonly #retries = new Map<string, { attempt: number; timer: NodeJS.Timeout | undefined }>();
  /** Per key: the resourceVersion our last write was based on and the object it returned. */
  readonly #written = new Map<string, { basedOn: string | undefined; result: KubeObject }>();
  readonly #stats = { writes: 0, unchanged: 0, conflicts: 0, failures: 0 };
  readonly #idleWaiters = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #unsubscribeCache: (() => void) | undefined;
  #resync: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: StatusWriterOptions) {
    this.#client = options.client;
    this.#controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
    this.#leader = options.leader;
    this.#concurrency = options.concurrency ?? 8;
    this.#conflictRetries = options.conflictRetries ?? 5;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#resyncMs = options.resyncMs ?? 300_000;
    this.#log = (options.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'status-writer' });
    this.#now = options.now ?? (() => new Date());
    this.setCache(options.cache);
  }

  get stats(): StatusWriterStats {
    return { ...this.#stats, pending: this.#pending() };
  }

  /** True when this writer may write now. */
  get active(): boolean {
    return this.#running && (this.#leader?.isLeader ?? true);
  }

  /** Reads objects from `cache` from now on (the provider of the current run); undefined: GET every time. */
  setCache(cache: ObjectCache | undefined): void {
    this.#unsubscribeCache?.();
    this.#unsubscribeCache = undefined;
    this.#cache = cache;
    this.#written.clear();
    if (!cache) return;
    this.#unsubscribeCache = cache.onObjectChange((kind, namespace, name) => {
      if (!WRITTEN_KINDS.has(kind)) return;
      const key = kind === 'GatewayClass' ? `GatewayClass/${name}` : `${kind}/${namespace}/${name}`;
      if (this.#targets.has(key)) this.#mark(key);
    });
  }

  /** Follows a map of desired statuses (the pipeline's `statuses`). Returns the unsubscribe function. */
  attach(statuses: WatchableMap<string, StatusOut>): () => void {
    const off = statuses.subscribe((batch: WatchBatch<string, StatusOut>) => {
      if (batch.initial) {
        // The map's whole state: keys we knew that are gone from it are deletions.
        const present = new Set(batch.updates.map((u) => u.key));
        for (const key of [...this.#targets.keys()]) if (!present.has(key)) this.remove(key);
      }
      for (const u of batch.updates) {
        if (u.value === undefined) this.remove(u.key);
        else this.set(u.value);
      }
    });
    // Not undone by close(): the desired state stays current, so a restarted writer has it.
    return off;
  }

  /** Sets the desired status of one object. */
  set(status: StatusOut): void {
    const key = statusKey(status);
    const ns = status.kind === 'GatewayClass' ? undefined : status.namespace;
    this.#targets.set(key, { kind: status.kind, namespace: ns, name: status.name, desired: status });
    this.#mark(key);
  }

  /** weft has no status for this object any more: its own route parents are removed; nothing else is touched. */
  remove(key: string): void {
    const ref = parseKey(key);
    if (!ref) return;
    if (ref.kind === 'HTTPRoute' || ref.kind === 'GRPCRoute') {
      this.#targets.set(key, { ...ref, desired: null });
      this.#mark(key);
    } else {
      this.#targets.delete(key);
      this.#dirty.delete(key);
      this.#written.delete(key);
      this.#cancelRetry(key);
    }
  }

  /** Starts writing (when leader). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    if (this.#leader)
      this.#unsubscribe.push(
        this.#leader.onChange((leading) => {
          if (leading) {
            this.#log.info({ event: 'status.leading', keys: this.#targets.size }, 'leader: reconciling every status');
            this.#markAll();
          }
        }),
      );
    if (this.#resyncMs > 0) {
      this.#resync = setInterval(() => this.#markAll(), this.#resyncMs);
      this.#resync.unref();
    }
    this.#markAll();
  }

  /** Stops: no write starts after this; writes in flight finish first. Can be started again. */
  async close(): Promise<void> {
    this.#running = false;
    clearInterval(this.#resync);
    for (const off of this.#unsubscribe.splice(0)) off();
    // Retries become plain pending keys: reconciled again on the next start.
    for (const key of [...this.#retries.keys()]) {
      this.#cancelRetry(key);
      this.#dirty.add(key);
    }
    while (this.#inflight.size > 0)
      await new Promise<void>((resolve) => {
        const once = () => {
          this.#idleWaiters.delete(once);
          resolve();
        };
        this.#idleWaiters.add(once);
      });
  }

  /** Resolves when nothing is waiting, in flight or scheduled for a retry. */
  idle(): Promise<void> {
    if (this.#pending() === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.#pending() === 0) {
          this.#idleWaiters.delete(check);
          resolve();
        }
      };
      this.#idleWaiters.add(check);
    });
  }

  #pending(): number {
    const keys = new Set([...this.#dirty, ...this.#inflight, ...this.#retries.keys()]);
    return keys.size;
  }

  #notifyIdle(): void {
    for (const w of [...this.#idleWaiters]) w();
  }

  #markAll(): void {
    for (const key of this.#targets.keys()) this.#mark(key);
  }

  #mark(key: string): void {
    this.#cancelRetry(key, false);
    this.#dirty.add(key);
    this.#pump();
  }

  #cancelRetry(key: string, resetAttempts = true): void {
    const r = this.#retries.get(key);
    if (!r) return;
    clearTimeout(r.timer);
    if (resetAttempts) this.#retries.delete(key);
    else r.timer = undefined;
  }

  #pump(): void {
    if (!this.active) return;
    for (const key of this.#dirty) {
      if (this.#inflight.size >= this.#concurrency) break;
      if (this.#inflight.has(key)) continue;
      this.#dirty.delete(key);
      this.#inflight.add(key);
      void this.#reconcile(key).finally(() => {
        this.#inflight.delete(key);
        this.#pump();
        this.#notifyIdle();
      });
    }
    this.#notifyIdle();
  }

  #version(kind: ResourceKind): string {
    return this.#cache?.servedVersion?.(kind) ?? 'v1';
  }

  /** The freshest copy we have without a request; undefined: read from the API. */
  #cached(key: string, t: Target): KubeObject | undefined {
    const obj = this.#cache?.getObject(t.kind, t.namespace, t.name);
    if (!obj) return undefined;
    const w = this.#written.get(key);
    // The cache has not seen our last write yet: what the write returned is newer.
    if (w && w.basedOn === obj.metadata?.resourceVersion) return w.result;
    return obj;
  }

  async #reconcile(key: string): Promise<void> {
    const t = this.#targets.get(key);
    if (!t) return;
    const info = KIND_INFO.get(t.kind)!;
    const version = this.#version(t.kind);
    try {
      for (let attempt = 0; attempt <= this.#conflictRetries; attempt++) {
        let obj = attempt === 0 ? this.#cached(key, t) : undefined;
        if (!obj) {
          try {
            obj = await this.#client.get<KubeObject>(info, version, t.namespace, t.name);
          } catch (e) {
            if (isNotFound(e)) {
              this.#written.delete(key);
              return this.#done(key); // gone: nothing to write
            }
            throw e;
          }
        }
        // The latest desired status: changes made while reading are folded into this write.
        const latest = this.#targets.get(key);
        if (!latest) return this.#done(key);
        const status = nextStatus({ ...obj, kind: t.kind }, latest.desired, this.#controllerName, rfc3339(this.#now()));
        if (!status) {
          this.#stats.unchanged++;
          return this.#done(key);
        }
        if (!this.active) {
          // Lost the lease (or closing) meanwhile: leave it for the next leader, or for us when we lead again.
          this.#dirty.add(key);
          return;
        }
        const basedOn = obj.metadata?.resourceVersion;
        try {
          const result = await this.#client.replaceStatus<KubeObject>(info, version, t.namespace, t.name, {
            ...obj,
            apiVersion: apiVersionOf(info.group, version),
            kind: t.kind,
            status,
          });
          this.#stats.writes++;
          this.#written.set(key, { basedOn, result });
          this.#log.debug(
            { event: 'status.written', key, resourceVersion: result.metadata?.resourceVersion },
            'status written',
          );
          return this.#done(key);
        } catch (e) {
          if (isNotFound(e)) return this.#done(key);
          if (!isConflict(e)) throw e;
          this.#stats.conflicts++;
          this.#log.debug({ event: 'status.conflict', key, attempt }, 'status write conflicted; reading again');
        }
      }
      throw new Error(`still conflicting after ${this.#conflictRetries + 1} attempts`);
    } catch (err) {
      this.#stats.failures++;
      this.#retry(key, err);
    }
  }

  #done(key: string): void {
    this.#retries.delete(key);
  }

  #retry(key: string, err: unknown): void {
    const prev = this.#retries.get(key);
    const attempt = (prev?.attempt ?? 0) + 1;
    const delay = backoffDelay(attempt, this.#backoff);
    this.#log.warn(
      { event: 'status.write-failed', key, err: (err as Error)?.message ?? String(err), attempt, retryInMs: delay },
      `status of ${key} not written (${(err as Error)?.message ?? String(err)}); retrying in ${delay} ms`,
    );
    const entry = { attempt, timer: undefined as NodeJS.Timeout | undefined };
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.#retries.get(key) !== entry) return;
      this.#dirty.add(key);
      this.#pump();
    }, delay);
    this.#retries.set(key, entry);
  }
}

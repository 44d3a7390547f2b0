// provider → snapshot → translate → per-proxy configs and statuses, as two runners joined by watchable maps:
//
//   provider runner ──store──► snapshots ('current') ──subscribe──► translator runner
//                                                                      ├─store─► proxies  (ProxyId → VersionedConfig)
//                                                                      └─store─► statuses (statusKey → StatusOut)
//
// The translator only ever translates the latest snapshot: the watchable map coalesces the snapshots that arrive
// while a translation runs into one delivery. A translation that throws is logged and counted and changes
// nothing, so the proxies keep the last good configs. A config's version is the sha256 of its canonical JSON;
// an unchanged config keeps its version and is not re-sent.
import { type Logger, pino } from 'pino';
import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import { translate as defaultTranslate } from '../translate/translate.ts';
import type { ProxyId, StatusOut, TranslateOptions, TranslateResult } from '../translate/types.ts';
import { type CanonicalJson, type ChunkCache, canonicalChunks, hashChunks } from './canonical.ts';
import type { Runner, RunnerContext } from './runner.ts';
import { WatchableMap } from './watchable.ts';

/** A config and its version: the lowercase hex sha256 of the config's canonical JSON. */
export interface VersionedConfig {
  readonly version: string;
  readonly config: ProxyConfig;
  /**
   * The canonical JSON the version hashes, as chunks shared with the other configs of the translation (see
   * canonicalChunks): the push server writes these instead of serializing each config again.
   */
  readonly json?: CanonicalJson;
}

/** What the pipeline needs of a provider (FileProvider has it; the Kubernetes provider will). */
export interface SnapshotProvider {
  start(): Promise<void>;
  close(): Promise<void>;
  /** Called with every new state; `snapshotChanged: false` marks diagnostics-only updates. */
  onUpdate(listener: (update: ProviderUpdate) => void): () => void;
}

export interface ProviderUpdate {
  snapshot: ResourceSnapshot;
  snapshotChanged?: boolean;
  /** Problems of the input (files that do not parse…), logged by the pipeline. */
  errors?: readonly unknown[];
}

export interface PipelineOptions {
  /** Makes a provider; called again for every (re)start of the provider runner. */
  provider: () => SnapshotProvider;
  translateOptions?: TranslateOptions;
  /** Injectable for tests (e.g. a translator that throws). */
  translate?: (snapshot: ResourceSnapshot, options: TranslateOptions) => TranslateResult;
  logger?: Logger;
}

/** What one translation did (for logs, `/ready`, tests and benchmarks). */
export interface TranslationEvent {
  ok: boolean;
  durationMs: number;
  /** Configs stored with a new version, added or deleted. */
  proxiesChanged: number;
  proxies: number;
  statusesChanged: number;
  error?: Error;
}

export interface PipelineStats {
  translations: number;
  translateFailures: number;
  lastError?: string;
  lastDurationMs?: number;
}

/** `GatewayClass/<name>` or `<kind>/<namespace>/<name>`: the key of a status in `Pipeline.statuses`. */
export function statusKey(s: StatusOut): string {
  return s.kind === 'GatewayClass' ? `GatewayClass/${s.name}` : `${s.kind}/${s.namespace}/${s.name}`;
}

/** Versions every config of a translation (the cache serializes shared route tables and clusters once). */
export function versionConfigs(proxies: ReadonlyMap<ProxyId, ProxyConfig>): Map<ProxyId, VersionedConfig> {
  const cache: ChunkCache = new WeakMap();
  const out = new Map<ProxyId, VersionedConfig>();
  for (const [id, config] of proxies) {
    const json = canonicalChunks(config, cache);
    out.set(id, { version: hashChunks(json), config, json });
  }
  return out;
}

const SNAPSHOT = 'current';
const MAX_LOGGED_ERRORS = 20;

export class Pipeline {
  /** The latest snapshot from the provider, under the key `current`. */
  readonly snapshots = new WatchableMap<typeof SNAPSHOT, ResourceSnapshot>({ equals: (a, b) => a === b });
  readonly proxies = new WatchableMap<ProxyId, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  /** Translator statuses by `statusKey`, for the status writer and `/statuses`. */
  readonly statuses = new WatchableMap<string, StatusOut>();
  readonly runners: readonly Runner[];
  readonly #o: PipelineOptions;
  readonly #log: Logger;
  readonly #stats: PipelineStats = { translations: 0, translateFailures: 0 };
  readonly #listeners = new Set<(e: TranslationEvent) => void>();
  #translated: ResourceSnapshot | undefined;
  #firstTranslation = false;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#log = options.logger ?? pino({ name: 'weft-controlplane' });
    this.runners = [this.#providerRunner(), this.#translatorRunner()];
  }

  /** The latest snapshot the provider gave (undefined before its first load). */
  get snapshot(): ResourceSnapshot | undefined {
    return this.snapshots.load(SNAPSHOT);
  }

  /** True once a translation succeeded: proxies can be served. */
  get ready(): boolean {
    return this.#firstTranslation;
  }

  get stats(): Readonly<PipelineStats> {
    return { ...this.#stats };
  }

  /** Called after every translation attempt. Returns the unsubscribe function. */
  onTranslation(listener: (e: TranslationEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #providerRunner(): Runner {
    let provider: SnapshotProvider | undefined;
    let unsubscribe: (() => void) | undefined;
    let lastErrors = '';
    return {
      name: 'provider',
      start: async (ctx: RunnerContext) => {
        provider = this.#o.provider();
        unsubscribe = provider.onUpdate((u) => {
          const errors = (u.errors ?? []).map(String);
          const joined = errors.join('\n');
          if (joined !== lastErrors) {
            lastErrors = joined;
            if (errors.length > 0) {
              ctx.logger.warn(
                { event: 'input.errors', count: errors.length, errors: errors.slice(0, MAX_LOGGED_ERRORS) },
                `${errors.length} input problem(s); the last good objects are kept`,
              );
            } else ctx.logger.info({ event: 'input.errors-cleared' }, 'input problems cleared');
          }
          if (this.snapshots.store(SNAPSHOT, u.snapshot)) {
            ctx.logger.debug({ event: 'snapshot.updated', objects: u.snapshot.size }, 'snapshot updated');
          }
        });
        await provider.start();
      },
      close: async () => {
        unsubscribe?.();
        unsubscribe = undefined;
        const p = provider;
        provider = undefined;
        await p?.close();
      },
    };
  }

  #translatorRunner(): Runner {
    let unsubscribe: (() => void) | undefined;
    return {
      name: 'translator',
      start: (ctx: RunnerContext) => {
        // Deliveries carry the key only as a wake-up: the handler reads the latest snapshot itself.
        unsubscribe = this.snapshots.subscribe(() => this.#translateLatest(ctx.logger));
      },
      close: () => {
        unsubscribe?.();
        unsubscribe = undefined;
        // A restarted translator translates the current snapshot again (its first delivery is the full state).
        this.#translated = undefined;
      },
    };
  }

  #translateLatest(log: Logger): void {
    const snapshot = this.snapshots.load(SNAPSHOT);
    if (!snapshot || snapshot === this.#translated) return;
    const began = performance.now();
    let result: TranslateResult;
    try {
      result = (this.#o.translate ?? defaultTranslate)(snapshot, this.#o.translateOptions ?? {});
    } catch (cause) {
      const error = cause instanceof Error ? cause : new Error(String(cause));
      this.#stats.translateFailures++;
      this.#stats.lastError = error.message;
      const durationMs = performance.now() - began;
      log.error(
        { event: 'translate.failed', err: error, failures: this.#stats.translateFailures },
        'translation failed; proxies keep their last good configs',
      );
      this.#emit({ ok: false, durationMs, proxiesChanged: 0, proxies: this.proxies.size, statusesChanged: 0, error });
      return;
    }
    this.#translated = snapshot;
    const versioned = versionConfigs(result.proxies);
    let proxiesChanged = 0;
    for (const [id, vc] of versioned) if (this.proxies.store(id, vc)) proxiesChanged++;
    for (const id of this.proxies.keys()) if (!versioned.has(id) && this.proxies.delete(id)) proxiesChanged++;
    let statusesChanged = 0;
    const keys = new Set<string>();
    for (const s of result.statuses) {
      const key = statusKey(s);
      keys.add(key);
      if (this.statuses.store(key, s)) statusesChanged++;
    }
    for (const key of this.statuses.keys()) if (!keys.has(key) && this.statuses.delete(key)) statusesChanged++;
    const durationMs = performance.now() - began;
    this.#stats.translations++;
    this.#stats.lastDurationMs = durationMs;
    this.#firstTranslation = true;
    log.info(
      {
        event: 'translate.done',
        durationMs: Math.round(durationMs * 10) / 10,
        proxies: versioned.size,
        proxiesChanged,
        statusesChanged,
      },
      'translated',
    );
    this.#emit({ ok: true, durationMs, proxiesChanged, proxies: versioned.size, statusesChanged });
  }

  #emit(e: TranslationEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch (err) {
        this.#log.warn({ event: 'listener.failed', err }, 'a translation listener threw');
      }
    }
  }
}

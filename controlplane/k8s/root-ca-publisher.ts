// Publishes the mesh root CA as a ConfigMap (default `weft-root-ca`, key `ca.crt`) into every namespace labelled
// `weft.dev/inject=enabled`: the injector mounts it into each proxy, which trusts the CA, the config push server and
// its peers by it. The desired state is read from the pipeline's snapshot (the informers already watch Namespaces
// and ConfigMaps), so a namespace labelled later gets the ConfigMap within a snapshot, and an edited or deleted one
// is put back. Other keys of the ConfigMap are left alone; a namespace that loses the label keeps its ConfigMap
// (pods created before may still mount it). Only the leader writes; writes are create, or a merge patch of the key.
import { type Logger, pino } from 'pino';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { Runner, RunnerContext } from '../runtime/runner.ts';
import type { WatchableMap } from '../runtime/watchable.ts';
import { MANAGED_BY_LABELS } from './ca-secret.ts';
import type { KubeClient, ResourceRef } from './client.ts';
import { isConflict, isNotFound, KubeApiError } from './errors.ts';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF } from './provider.ts';
import type { Leadership } from './status-writer.ts';

export const CONFIG_MAPS: ResourceRef = { group: '', plural: 'configmaps', namespaced: true };
/** The ConfigMap key holding the PEM bundle (the injector mounts this key). */
export const ROOT_CA_CONFIGMAP_KEY = 'ca.crt';
export const INJECT_LABEL = 'weft.dev/inject';
export const INJECT_LABEL_ENABLED = 'enabled';

export interface RootCaPublisherOptions {
  client: KubeClient;
  /** The pipeline's `snapshots` map. */
  snapshots: WatchableMap<'current', ResourceSnapshot>;
  /** The trust bundle to publish. */
  rootCAsPem: string;
  /** ConfigMap name. Default `weft-root-ca`. */
  name?: string;
  /** Where to publish. Default: every namespace labelled weft.dev/inject=enabled and not being deleted. */
  namespaces?: (snapshot: ResourceSnapshot) => Iterable<string>;
  leader?: Leadership;
  backoff?: Partial<Backoff>;
  logger?: Logger;
}

export interface RootCaPublisherStats {
  creates: number;
  patches: number;
  failures: number;
}

/** Namespaces labelled weft.dev/inject=enabled (their pods are injected and mount the ConfigMap). */
export function injectedNamespaces(snapshot: ResourceSnapshot): string[] {
  return snapshot
    .list('Namespace')
    .filter(
      (ns) =>
        ns.metadata.labels?.[INJECT_LABEL] === INJECT_LABEL_ENABLED &&
        !(ns.metadata as { deletionTimestamp?: string }).deletionTimestamp,
    )
    .map((ns) => ns.metadata.name);
}

export class RootCaPublisher implements Runner {
  readonly name = 'root-ca-publisher';
  readonly #o: RootCaPublisherOptions;
  readonly #configMap: string;
  readonly #backoff: Backoff;
  #log: Logger;
  #unsubscribe: (() => void)[] = [];
  #running = false;
  #busy: Promise<void> | undefined;
  #again = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  /** Last failure logged per namespace (one line per distinct failure, not per retry). */
  readonly #lastFailure = new Map<string, string>();
  readonly #stats: RootCaPublisherStats = { creates: 0, patches: 0, failures: 0 };
  readonly #idleWaiters: (() => void)[] = [];

  constructor(options: RootCaPublisherOptions) {
    this.#o = options;
    this.#configMap = options.name ?? 'weft-root-ca';
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#log = (options.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'root-ca-publisher' });
  }

  get stats(): RootCaPublisherStats {
    return { ...this.#stats };
  }

  start(ctx?: RunnerContext): void {
    if (ctx) this.#log = ctx.logger;
    this.#running = true;
    this.#unsubscribe.push(this.#o.snapshots.subscribe(() => this.#kick()));
    if (this.#o.leader) this.#unsubscribe.push(this.#o.leader.onChange((leading) => leading && this.#kick()));
  }

  async close(): Promise<void> {
    this.#running = false;
    for (const off of this.#unsubscribe.splice(0)) off();
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#busy;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Resolves once no pass is running or queued (tests). */
  idle(): Promise<void> {
    if (!this.#busy && !this.#retry) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  #kick(): void {
    if (!this.#running) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#busy = this.#pass()
      .catch((err) => this.#log.error({ event: 'root-ca.pass-failed', err }, 'publishing the root CA failed'))
      .finally(() => {
        this.#busy = undefined;
        if (this.#again) {
          this.#again = false;
          this.#kick();
        } else if (!this.#retry) for (const w of this.#idleWaiters.splice(0)) w();
      });
  }

  async #pass(): Promise<void> {
    const snapshot = this.#o.snapshots.load('current');
    if (!snapshot || !(this.#o.leader?.isLeader ?? true)) return;
    const pem = this.#o.rootCAsPem;
    let failed = 0;
    for (const ns of new Set(this.#o.namespaces?.(snapshot) ?? injectedNamespaces(snapshot))) {
      const current = snapshot.get('ConfigMap', `${ns}/${this.#configMap}`);
      if (current?.data?.[ROOT_CA_CONFIGMAP_KEY] === pem) continue;
      if (!this.#running) return;
      try {
        await this.#write(ns, current !== undefined);
        this.#lastFailure.delete(ns);
      } catch (err) {
        if (isNotFound(err)) continue; // the namespace went away meanwhile
        failed++;
        this.#stats.failures++;
        const reason = err instanceof KubeApiError ? `${err.statusCode} ${err.reason}: ${err.message}` : String(err);
        if (this.#lastFailure.get(ns) !== reason) {
          this.#lastFailure.set(ns, reason);
          this.#log.warn(
            { event: 'root-ca.publish-failed', namespace: ns, configMap: this.#configMap, err: reason },
            `could not publish ConfigMap ${ns}/${this.#configMap}; retrying`,
          );
        }
      }
    }
    if (failed === 0) {
      this.#attempt = 0;
      return;
    }
    const delay = backoffDelay(++this.#attempt, this.#backoff);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#kick();
    }, delay);
    this.#retry.unref();
  }

  async #write(ns: string, exists: boolean): Promise<void> {
    const data = { [ROOT_CA_CONFIGMAP_KEY]: this.#o.rootCAsPem };
    if (!exists) {
      try {
        await this.#o.client.create(CONFIG_MAPS, 'v1', ns, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: this.#configMap, namespace: ns, labels: { ...MANAGED_BY_LABELS } },
          data,
        });
        this.#stats.creates++;
        this.#log.info(
          { event: 'root-ca.published', namespace: ns, configMap: this.#configMap },
          `published the mesh root CA as ConfigMap ${ns}/${this.#configMap}`,
        );
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    await this.#o.client.patch(CONFIG_MAPS, 'v1', ns, this.#configMap, { data });
    this.#stats.patches++;
    this.#log.info(
      { event: 'root-ca.updated', namespace: ns, configMap: this.#configMap },
      `set the mesh root CA in ConfigMap ${ns}/${this.#configMap}`,
    );
  }
}

// Keeps `clientConfig.caBundle` of every webhook in weft's MutatingWebhookConfiguration (default `weft-injector`,
// installed by the chart, possibly with an empty bundle) equal to the mesh root CA, which issued the injector's
// serving certificate: without it the API server cannot call the webhook. The one object is listed and then watched
// (field selector metadata.name), so an edit that changes the bundle (a `helm upgrade` re-applying an empty one) is
// undone at once; a configuration that does not exist yet is waited for. Only the leader writes, with the object's
// resourceVersion (a conflict is retried on a fresh read).
import { setTimeout as sleep } from 'node:timers/promises';
import { Watch } from '@kubernetes/client-node';
import { type Logger, pino } from 'pino';
import type { Runner, RunnerContext } from '../runtime/runner.ts';
import type { KubeClient, KubeObject, ResourceRef } from './client.ts';
import { isConflict, isNotFound, KubeApiError } from './errors.ts';
import { resourcePath } from './kinds.ts';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF } from './provider.ts';
import type { Leadership } from './status-writer.ts';

export const MUTATING_WEBHOOK_CONFIGURATIONS: ResourceRef = {
  group: 'admissionregistration.k8s.io',
  plural: 'mutatingwebhookconfigurations',
  namespaced: false,
};

export interface WebhookCaBundleOptions {
  client: KubeClient;
  /** The MutatingWebhookConfiguration. Default `weft-injector`. */
  name?: string;
  /** PEM the bundle must hold (the mesh root CA). */
  caBundlePem: string;
  leader?: Leadership;
  backoff?: Partial<Backoff>;
  /** Conflicts retried with a fresh read before backing off. Default 5. */
  conflictRetries?: number;
  logger?: Logger;
}

/** A watch that ends sooner than this (cleanly) counts as a failed attempt for the backoff. */
const QUICK_END_MS = 1000;

type Configuration = KubeObject & { webhooks?: { name?: string; clientConfig?: { caBundle?: string } }[] };

const describe = (e: unknown) =>
  e instanceof KubeApiError ? `${e.statusCode} ${e.reason}` : e instanceof Error ? e.message : String(e);

export class WebhookCaBundle implements Runner {
  readonly name = 'webhook-ca-bundle';
  readonly #o: WebhookCaBundleOptions;
  readonly #config: string;
  readonly #bundle: string;
  readonly #backoff: Backoff;
  #log: Logger;
  #running = false;
  #loop: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #watch: AbortController | undefined;
  #offLeader: (() => void) | undefined;
  /** The object as last seen (list or watch). */
  #last: Configuration | undefined;
  /** Counts what the list and watch showed: a read or write answered after a newer event must not replace it. */
  #seenCount = 0;
  #writing: Promise<void> = Promise.resolve();
  #writes = 0;
  #failedWrites = 0;
  #retry: NodeJS.Timeout | undefined;
  #missingLogged = false;

  constructor(options: WebhookCaBundleOptions) {
    this.#o = options;
    this.#config = options.name ?? 'weft-injector';
    this.#bundle = Buffer.from(options.caBundlePem).toString('base64');
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#log = (options.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'webhook-ca-bundle' });
  }

  /** Successful writes of the configuration. */
  get writes(): number {
    return this.#writes;
  }

  /** True when the configuration was last seen with the right bundle on every webhook. */
  get inSync(): boolean {
    return this.#last !== undefined && this.#stale(this.#last) === 0;
  }

  start(ctx?: RunnerContext): void {
    if (ctx) this.#log = ctx.logger;
    this.#running = true;
    this.#abort = new AbortController();
    this.#offLeader = this.#o.leader?.onChange((leading) => {
      if (leading && this.#last) this.#reconcile(this.#last);
    });
    this.#loop = this.#run(this.#abort.signal);
  }

  async close(): Promise<void> {
    this.#running = false;
    this.#offLeader?.();
    clearTimeout(this.#retry);
    this.#abort?.abort();
    this.#watch?.abort();
    await this.#loop;
    await this.#writing;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (this.#running) {
      try {
        const list = await this.#o.client.list<Configuration>(MUTATING_WEBHOOK_CONFIGURATIONS, 'v1', {
          fieldSelector: `metadata.name=${this.#config}`,
          signal,
        });
        this.#seen(list.items[0]);
        const began = Date.now();
        await this.#watchFrom(list.metadata?.resourceVersion);
        // A watch that ends at once, again and again, must not turn into a tight list loop.
        if (Date.now() - began >= QUICK_END_MS) attempt = 0;
        else await sleep(backoffDelay(++attempt, this.#backoff), undefined, { signal }).catch(() => {});
      } catch (err) {
        if (!this.#running) return;
        const delay = backoffDelay(++attempt, this.#backoff);
        this.#log.warn(
          {
            event: 'webhook-ca-bundle.watch-failed',
            configuration: this.#config,
            err: describe(err),
            retryInMs: delay,
          },
          `watching MutatingWebhookConfiguration ${this.#config} failed; retrying in ${delay} ms`,
        );
        await sleep(delay, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** Resolves when the watch ends cleanly (server timeout, or quiet for the client's 30 s): then it is listed anew. */
  #watchFrom(resourceVersion: string | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const path = resourcePath(MUTATING_WEBHOOK_CONFIGURATIONS, 'v1');
      const query = {
        fieldSelector: `metadata.name=${this.#config}`,
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: 300 + Math.round(Math.random() * 300),
      };
      let expired = false;
      new Watch(this.#o.client.kubeConfig)
        .watch(
          path,
          query,
          (phase, obj: Configuration) => {
            if (phase === 'ADDED' || phase === 'MODIFIED') this.#seen(obj);
            else if (phase === 'DELETED') this.#seen(undefined);
            else if (phase === 'ERROR') expired = true; // 410 Expired: relist
          },
          (err: unknown) => {
            this.#watch = undefined;
            const quiet = (err as { name?: string } | null)?.name === 'TimeoutError';
            if (!err || quiet || expired || !this.#running) resolve();
            else reject(err);
          },
        )
        .then((controller) => {
          this.#watch = controller;
          if (!this.#running) controller.abort();
        }, reject);
    });
  }

  #seen(obj: Configuration | undefined): void {
    this.#seenCount++;
    this.#last = obj;
    if (!obj) {
      if (!this.#missingLogged) {
        this.#missingLogged = true;
        this.#log.warn(
          { event: 'webhook-ca-bundle.missing', configuration: this.#config },
          `MutatingWebhookConfiguration ${this.#config} does not exist (yet); its caBundle is set once it does`,
        );
      }
      return;
    }
    this.#missingLogged = false;
    this.#reconcile(obj);
  }

  #stale(obj: Configuration): number {
    return (obj.webhooks ?? []).filter((w) => w.clientConfig?.caBundle !== this.#bundle).length;
  }

  #reconcile(obj: Configuration): void {
    if (!this.#running || this.#stale(obj) === 0 || !(this.#o.leader?.isLeader ?? true)) return;
    // One write at a time; a later event is reconciled after it against the newest object seen.
    this.#writing = this.#writing.then(() => this.#write());
  }

  async #write(): Promise<void> {
    const retries = this.#o.conflictRetries ?? 5;
    let obj = this.#last;
    for (let i = 0; obj && this.#running && this.#stale(obj) > 0 && (this.#o.leader?.isLeader ?? true); i++) {
      const stale = this.#stale(obj);
      const next: Configuration = {
        ...obj,
        webhooks: (obj.webhooks ?? []).map((w) => ({
          ...w,
          clientConfig: { ...w.clientConfig, caBundle: this.#bundle },
        })),
      };
      const before = this.#seenCount;
      try {
        const written = await this.#o.client.replace<Configuration>(
          MUTATING_WEBHOOK_CONFIGURATIONS,
          'v1',
          undefined,
          this.#config,
          next,
        );
        // The watch may have shown a newer object (an edit that emptied the bundle again) while this write was
        // answered: that one stays, so the write it queued still sees it stale.
        if (this.#seenCount === before) this.#last = written;
        this.#writes++;
        this.#failedWrites = 0;
        this.#log.info(
          { event: 'webhook-ca-bundle.updated', configuration: this.#config, webhooks: stale },
          `set the caBundle of ${stale} webhook(s) of MutatingWebhookConfiguration ${this.#config} to the mesh root CA`,
        );
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err) || i >= retries) {
          const delay = backoffDelay(++this.#failedWrites, this.#backoff);
          this.#log.warn(
            {
              event: 'webhook-ca-bundle.update-failed',
              configuration: this.#config,
              err: describe(err),
              retryInMs: delay,
            },
            `could not set the caBundle of MutatingWebhookConfiguration ${this.#config}; retrying in ${delay} ms`,
          );
          // Retried on a fresh read whatever the watch does (it may see no further event).
          clearTimeout(this.#retry);
          this.#retry = setTimeout(() => {
            this.#retry = undefined;
            const before = this.#seenCount;
            void this.#o.client.get<Configuration>(MUTATING_WEBHOOK_CONFIGURATIONS, 'v1', undefined, this.#config).then(
              // An event seen meanwhile is newer than this read and was reconciled itself.
              (fresh) => (this.#seenCount === before ? this.#seen(fresh) : undefined),
              (e: unknown) =>
                isNotFound(e) && this.#seenCount === before ? this.#seen(undefined) : this.#reconcile(this.#last ?? {}),
            );
          }, delay);
          return;
        }
        obj = await this.#o.client
          .get<Configuration>(MUTATING_WEBHOOK_CONFIGURATIONS, 'v1', undefined, this.#config)
          .catch(() => undefined);
        if (this.#seenCount === before) this.#last = obj;
      }
    }
  }
}

// Lease-based leader election (coordination.k8s.io/v1), the algorithm of client-go's leaderelection package:
// a candidate takes the Lease when it is free (no holder, or released) or expired — its holder has not renewed it
// for leaseDurationSeconds as measured on the candidate's own clock since it last saw the record change, so
// clocks need not agree — and the holder renews it every retryPeriod. A leader that cannot renew within
// renewDeadline steps down. close() releases the Lease (holder cleared, duration 1 s) so a successor takes over
// at once; a leader that dies without releasing is replaced once its Lease expires. Every write is a PUT with the
// resourceVersion read, so two candidates racing for the Lease cannot both win.
import { hostname } from 'node:os';
import { type Logger, pino } from 'pino';
import { type KubeClient, type KubeObject, LEASES } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  /** Lease name. Default `weft-controlplane`. */
  name?: string;
  /** This candidate's identity in the Lease. Default `<hostname>_<random>`. */
  identity?: string;
  /** How long a Lease holds without renewal. Default 15 s (written as whole seconds, at least 1). */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down. Default 10 s; less than leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Between two attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  logger?: Logger;
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits (the API server refuses other precisions). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const monotonic = () => performance.now();

export class LeaderElector {
  readonly name = 'leader-elector';
  readonly identity: string;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #lease: string;
  readonly #leaseMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryMs: number;
  readonly #log: Logger;
  readonly #listeners = new Set<(leading: boolean) => void>();
  #leading = false;
  #lastRenew = 0;
  #observed: string | undefined;
  #observedAt = 0;
  #holder: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #tick: Promise<void> | undefined;
  #lastLease: Lease | undefined;
  #transitions = 0;

  constructor(options: LeaderElectorOptions) {
    this.#client = options.client;
    this.#namespace = options.namespace;
    this.#lease = options.name ?? 'weft-controlplane';
    this.identity = options.identity ?? `${hostname()}_${Math.random().toString(36).slice(2, 10)}`;
    this.#leaseMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryMs = options.retryPeriodMs ?? 2_000;
    if (this.#renewDeadlineMs >= this.#leaseMs)
      throw new RangeError('renewDeadlineMs must be less than leaseDurationMs');
    if (this.#retryMs >= this.#renewDeadlineMs) throw new RangeError('retryPeriodMs must be less than renewDeadlineMs');
    this.#log = (options.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'leader-election' });
  }

  /** True while this candidate holds the Lease and renewed it within renewDeadline. */
  get isLeader(): boolean {
    return this.#leading && monotonic() - this.#lastRenew < this.#renewDeadlineMs;
  }

  /** The holder last seen in the Lease (this candidate or another). */
  get leader(): string | undefined {
    return this.#holder;
  }

  /** Times this candidate became leader. */
  get transitions(): number {
    return this.#transitions;
  }

  /** Called with true when this candidate becomes leader and false when it stops. Returns unsubscribe. */
  onChange(listener: (leading: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts campaigning (resolves after the first attempt; leadership may come later). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#run();
  }

  /**
   * Stops campaigning. A leader releases the Lease (unless `release: false`, which behaves like a crash: the others
   * wait for the Lease to expire).
   */
  async close(options: { release?: boolean } = {}): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#tick;
    const wasLeader = this.#leading;
    this.#setLeading(false);
    if (wasLeader && options.release !== false) await this.#release();
  }

  #run(): Promise<void> {
    this.#tick = (async () => {
      if (!this.#running) return;
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew();
      } catch (err) {
        this.#log.warn(
          { event: 'leader.lease-error', err: (err as Error).message, lease: `${this.#namespace}/${this.#lease}` },
          `leader election: ${(err as Error).message}`,
        );
      }
      if (!this.#running) return;
      if (ok) {
        this.#lastRenew = monotonic();
        if (!this.#leading) {
          this.#transitions++;
          this.#log.info(
            { event: 'leader.started', identity: this.identity, lease: `${this.#namespace}/${this.#lease}` },
            `became leader (${this.identity})`,
          );
          this.#setLeading(true);
        }
      } else if (this.#leading && monotonic() - this.#lastRenew >= this.#renewDeadlineMs) {
        this.#log.warn(
          { event: 'leader.lost', identity: this.identity, holder: this.#holder },
          'could not renew the lease in time; no longer leader',
        );
        this.#setLeading(false);
      }
      // Candidates spread their attempts (client-go's jitter factor 1.2); the leader renews on time.
      const delay = this.#leading ? this.#retryMs : this.#retryMs * (1 + Math.random() * 0.2);
      this.#timer = setTimeout(() => void this.#run(), delay);
    })();
    return this.#tick;
  }

  #setLeading(leading: boolean): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    for (const l of this.#listeners) {
      try {
        l(leading);
      } catch (err) {
        this.#log.warn({ event: 'listener.failed', err: (err as Error).message }, 'a leadership listener threw');
      }
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const seconds = Math.max(1, Math.ceil(this.#leaseMs / 1000));
    let lease: Lease;
    try {
      lease = await this.#client.get<Lease>(LEASES, 'v1', this.#namespace, this.#lease);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      const spec: LeaseSpec = {
        holderIdentity: this.identity,
        leaseDurationSeconds: seconds,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      };
      try {
        this.#lastLease = await this.#client.create<Lease>(LEASES, 'v1', this.#namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.#lease, namespace: this.#namespace },
          spec,
        });
      } catch (err) {
        if (isConflict(err)) return false; // another candidate created it first
        throw err;
      }
      this.#observe(spec);
      return true;
    }
    const spec = lease.spec ?? {};
    this.#observe(spec);
    const holder = spec.holderIdentity;
    const held = holder !== undefined && holder !== '' && holder !== this.identity;
    if (held && this.#observedAt + (spec.leaseDurationSeconds ?? seconds) * 1000 > monotonic()) return false;
    const next: LeaseSpec =
      holder === this.identity
        ? { ...spec, leaseDurationSeconds: seconds, renewTime: microTime(now) }
        : {
            holderIdentity: this.identity,
            leaseDurationSeconds: seconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          };
    try {
      this.#lastLease = await this.#client.replace<Lease>(LEASES, 'v1', this.#namespace, this.#lease, {
        ...lease,
        spec: next,
      });
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
    this.#observe(next);
    return true;
  }

  #observe(spec: LeaseSpec): void {
    const key = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (key !== this.#observed) {
      this.#observed = key;
      this.#observedAt = monotonic();
    }
    const holder = spec.holderIdentity || undefined;
    if (holder !== this.#holder) {
      this.#holder = holder;
      this.#log.info({ event: 'leader.observed', holder: holder ?? null }, `lease holder: ${holder ?? 'none'}`);
    }
  }

  async #release(): Promise<void> {
    const lease = this.#lastLease;
    if (!lease || lease.spec?.holderIdentity !== this.identity) return;
    const now = microTime(new Date());
    const spec: LeaseSpec = {
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: lease.spec?.leaseTransitions ?? 0,
    };
    try {
      await this.#client.replace<Lease>(LEASES, 'v1', this.#namespace, this.#lease, { ...lease, spec });
      this.#log.info({ event: 'leader.released', identity: this.identity }, 'released the lease');
    } catch (err) {
      this.#log.warn(
        { event: 'leader.release-failed', err: (err as Error).message },
        'could not release the lease; the next leader waits for it to expire',
      );
    }
  }
}

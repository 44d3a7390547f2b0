// Stages of the control plane are runners (start/close); a Supervisor starts them, logs each event as one JSON
// line, counts failures and restarts a failed runner after a capped, jittered exponential backoff. Nothing a
// runner does — throwing from start or close, rejecting, reporting a failure later — ends the process.
import { EventEmitter } from 'node:events';
import { type Logger, pino } from 'pino';

export interface RunnerContext {
  /** The supervisor's logger, bound to `{ runner: name }`. */
  readonly logger: Logger;
  /** Aborted when this run ends (a failure, a restart or close). */
  readonly signal: AbortSignal;
  /** Reports a failure after start (a watch that died, a server error): the runner is closed and restarted. */
  fail(err: unknown): void;
}

export interface Runner {
  readonly name: string;
  /** Resolves once running; a throw or rejection is a failure (the runner is closed, then retried). */
  start(ctx: RunnerContext): void | Promise<void>;
  /** Releases everything start acquired; called after a failure too, so it must cope with a half-started run. */
  close(): void | Promise<void>;
}

/** Time and timers, injectable so tests drive restarts without sleeping. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface RestartBackoff {
  /** First restart after about this long. Default 500 ms. */
  initialMs: number;
  /** Restarts never wait longer than this. Default 30 s. */
  maxMs: number;
}

export const DEFAULT_RESTART_BACKOFF: Readonly<RestartBackoff> = { initialMs: 500, maxMs: 30_000 };

/**
 * Delay before restart number `attempt` (1 = after the first failure): doubling from `initialMs`, capped at
 * `maxMs`, with equal jitter (between half and all of the step) so runners that failed together spread out.
 */
export function restartDelay(attempt: number, random: () => number, backoff: RestartBackoff): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

export type RunnerState = 'idle' | 'starting' | 'running' | 'backoff' | 'closed';

export interface RunnerStatus {
  name: string;
  state: RunnerState;
  /** Failures since the supervisor started (never reset). */
  failures: number;
  /** Failures since the runner last ran for `stableAfterMs`: what the backoff grows with. */
  consecutiveFailures: number;
  restarts: number;
  lastError?: string;
  /** Clock time of the next start while in backoff. */
  nextStartAt?: number;
}

export interface SupervisorOptions {
  logger?: Logger;
  backoff?: Partial<RestartBackoff>;
  /** A run that lasted this long before failing starts the backoff over. Default 60 s. */
  stableAfterMs?: number;
  clock?: Clock;
  /** [0, 1); injectable for tests. */
  random?: () => number;
}

type Events = {
  started: [name: string];
  failed: [name: string, err: Error, retryInMs: number];
};

interface Slot {
  runner: Runner;
  state: RunnerState;
  /** Incremented per run: reports from an earlier run are ignored. */
  run: number;
  abort: AbortController | undefined;
  failures: number;
  consecutive: number;
  restarts: number;
  startedAt: number | undefined;
  lastError: string | undefined;
  timer: unknown;
  nextStartAt: number | undefined;
  closing: Promise<void> | undefined;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export class Supervisor extends EventEmitter<Events> {
  readonly #log: Logger;
  readonly #backoff: RestartBackoff;
  readonly #stableAfterMs: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #slots: Slot[] = [];
  #started = false;
  #closed = false;

  constructor(options: SupervisorOptions = {}) {
    super();
    this.#log = options.logger ?? pino({ name: 'weft-controlplane' });
    this.#backoff = { ...DEFAULT_RESTART_BACKOFF, ...options.backoff };
    this.#stableAfterMs = options.stableAfterMs ?? 60_000;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  /** Adds a runner; when the supervisor is already started, starts it too (the promise settles like start()). */
  add(runner: Runner): Promise<void> {
    if (this.#closed) throw new Error('Supervisor: add() after close()');
    if (this.#slots.some((s) => s.runner.name === runner.name)) {
      throw new Error(`Supervisor: a runner named ${JSON.stringify(runner.name)} is already added`);
    }
    const slot: Slot = {
      runner,
      state: 'idle',
      run: 0,
      abort: undefined,
      failures: 0,
      consecutive: 0,
      restarts: 0,
      startedAt: undefined,
      lastError: undefined,
      timer: undefined,
      nextStartAt: undefined,
      closing: undefined,
    };
    this.#slots.push(slot);
    return this.#started ? this.#attempt(slot) : Promise.resolve();
  }

  /**
   * Starts every runner in the order added, each after the previous one's first attempt settled. Resolves then,
   * whether or not they all came up (a failed one is already scheduled for a restart): see `status()`.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const slot of [...this.#slots]) await this.#attempt(slot);
  }

  /** Stops restarts and closes every runner, last added first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of [...this.#slots].reverse()) {
      this.#clock.clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.nextStartAt = undefined;
      slot.run++;
      slot.abort?.abort();
      const wasUp = slot.state !== 'idle';
      slot.state = 'closed';
      await slot.closing;
      if (wasUp) await this.#safeClose(slot);
    }
    this.#log.info({ event: 'supervisor.closed' }, 'control plane runners closed');
  }

  status(): RunnerStatus[] {
    return this.#slots.map((s) => {
      const st: RunnerStatus = {
        name: s.runner.name,
        state: s.state,
        failures: s.failures,
        consecutiveFailures: s.consecutive,
        restarts: s.restarts,
      };
      if (s.lastError !== undefined) st.lastError = s.lastError;
      if (s.nextStartAt !== undefined) st.nextStartAt = s.nextStartAt;
      return st;
    });
  }

  /** Failures of all runners since start. */
  get failures(): number {
    return this.#slots.reduce((n, s) => n + s.failures, 0);
  }

  /** True when every runner is running. */
  get ready(): boolean {
    return this.#started && !this.#closed && this.#slots.every((s) => s.state === 'running');
  }

  async #attempt(slot: Slot): Promise<void> {
    if (this.#closed) return;
    const run = ++slot.run;
    const abort = new AbortController();
    slot.abort = abort;
    slot.state = 'starting';
    slot.nextStartAt = undefined;
    const logger = this.#log.child({ runner: slot.runner.name });
    const ctx: RunnerContext = {
      logger,
      signal: abort.signal,
      fail: (err) => {
        void this.#failed(slot, run, err);
      },
    };
    try {
      await slot.runner.start(ctx);
    } catch (err) {
      await this.#failed(slot, run, err);
      return;
    }
    if (slot.run !== run || this.#closed) return;
    slot.state = 'running';
    slot.startedAt = this.#clock.now();
    logger.info({ event: 'runner.started', restarts: slot.restarts }, `${slot.runner.name} started`);
    this.emit('started', slot.runner.name);
  }

  async #failed(slot: Slot, run: number, cause: unknown): Promise<void> {
    if (slot.run !== run || this.#closed) return;
    slot.run++; // later reports from this run are stale
    slot.abort?.abort();
    const err = asError(cause);
    const now = this.#clock.now();
    if (slot.startedAt !== undefined && now - slot.startedAt >= this.#stableAfterMs) slot.consecutive = 0;
    slot.startedAt = undefined;
    slot.failures++;
    slot.consecutive++;
    slot.lastError = err.message;
    slot.state = 'backoff';
    const delay = restartDelay(slot.consecutive, this.#random, this.#backoff);
    this.#log.error(
      {
        event: 'runner.failed',
        runner: slot.runner.name,
        err,
        failures: slot.failures,
        consecutiveFailures: slot.consecutive,
        retryInMs: delay,
      },
      `${slot.runner.name} failed; restarting in ${delay} ms`,
    );
    this.emit('failed', slot.runner.name, err, delay);
    slot.closing = this.#safeClose(slot);
    await slot.closing;
    slot.closing = undefined;
    if (this.#closed || slot.state !== 'backoff') return;
    slot.nextStartAt = now + delay;
    slot.timer = this.#clock.setTimeout(() => {
      slot.timer = undefined;
      slot.restarts++;
      void this.#attempt(slot);
    }, delay);
  }

  async #safeClose(slot: Slot): Promise<void> {
    try {
      await slot.runner.close();
    } catch (err) {
      this.#log.warn(
        { event: 'runner.close-failed', runner: slot.runner.name, err: asError(err) },
        `${slot.runner.name}: close failed`,
      );
    }
  }
}

/** A runner from two functions (handy for small stages and tests). */
export function runner(
  name: string,
  start: (ctx: RunnerContext) => void | Promise<void>,
  close: () => void | Promise<void> = () => {},
): Runner {
  return { name, start, close };
}

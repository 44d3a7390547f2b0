// Child processes of `weft local`: each in its own process group (so a signal reaches everything it started),
// its output appended to a log file and handed over line by line, restarted after an unexpected exit with a
// doubling backoff, and stopped with SIGTERM to the group, then SIGKILL to whatever is left after a grace period.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { PARENT_WATCH_ENV } from './parent-watch.ts';

export interface ChildSpec {
  /** Shown in messages: `sidecar foo/foo-login-…`. */
  name: string;
  command: string;
  args: string[];
  /** Added to this process's env. */
  env?: Record<string, string>;
  /** NODE_COMPILE_CACHE for the child (unless already set): a warm cache halves a Node child's start-up. */
  compileCache?: string;
  /** Output of every run is appended here. */
  logFile: string;
}

export type ChildEvent =
  | { type: 'line'; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'started'; pid: number; run: number }
  | {
      type: 'exited';
      code: number | null;
      signal: NodeJS.Signals | null;
      restartInMs: number | undefined;
      lastError: string | undefined;
    };

export interface RestartPolicy {
  initialMs: number;
  maxMs: number;
  /** A run this long resets the backoff. */
  stableMs: number;
}

export const DEFAULT_RESTART: Readonly<RestartPolicy> = { initialMs: 500, maxMs: 10_000, stableMs: 10_000 };

/** Sends `signal` to process group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Whether any process of group `pgid` is still alive. */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ManagedChild {
  readonly spec: ChildSpec;
  readonly #listener: (e: ChildEvent) => void;
  readonly #policy: RestartPolicy;
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #stopping = false;
  #runs = 0;
  #failures = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #exited: Promise<void> = Promise.resolve();
  #lastStderr: string | undefined;
  /** Every process group this child has had (a restarted child gets a new one). */
  readonly pgids = new Set<number>();

  constructor(spec: ChildSpec, listener: (e: ChildEvent) => void, policy: Partial<RestartPolicy> = {}) {
    this.spec = spec;
    this.#listener = listener;
    this.#policy = { ...DEFAULT_RESTART, ...policy };
  }

  /** The current run's pid (also its process group id), undefined between runs. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  /** Times it was (re)started. */
  get runs(): number {
    return this.#runs;
  }

  start(): void {
    if (this.#stopping || this.#child) return;
    if (!this.#log) {
      this.#log = createWriteStream(this.spec.logFile, { flags: 'a' });
      // A log that cannot be written (a full disk, a name too long) costs the log, not the mesh: told once.
      this.#log.once('error', (err) => {
        this.#log?.on('error', () => {});
        this.#listener({
          type: 'line',
          stream: 'stderr',
          line: `weft local: cannot write ${this.spec.logFile}: ${err}`,
        });
      });
    }
    this.#runs++;
    this.#startedAt = Date.now();
    this.#lastStderr = undefined;
    const child = spawn(this.spec.command, this.spec.args, {
      detached: true, // its own process group: signals to -pgid reach all it starts
      stdio: ['pipe', 'pipe', 'pipe'], // stdin's end tells it this process is gone (parent-watch.ts)
      env: {
        ...(this.spec.compileCache && !process.env.NODE_COMPILE_CACHE
          ? { NODE_COMPILE_CACHE: this.spec.compileCache }
          : {}),
        ...process.env,
        ...this.spec.env,
        [PARENT_WATCH_ENV]: '1',
      },
    });
    this.#child = child;
    let resolveExit!: () => void;
    this.#exited = new Promise<void>((r) => {
      resolveExit = r;
    });
    const log = this.#log;
    const pipeLines = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') => {
      const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on('line', (line) => {
        log.write(`${line}\n`);
        if (name === 'stderr' && line.trim() !== '') this.#lastStderr = line;
        this.#listener({ type: 'line', stream: name, line });
      });
    };
    pipeLines(child.stdout!, 'stdout');
    pipeLines(child.stderr!, 'stderr');
    child.stdin!.on('error', () => {}); // EPIPE when it exits first
    child.on('error', (err) => {
      // spawn failed (no such binary): reported as an exit below.
      this.#lastStderr = err.message;
    });
    if (child.pid !== undefined) {
      this.pgids.add(child.pid);
      this.#listener({ type: 'started', pid: child.pid, run: this.#runs });
    }
    child.once('close', (code, signal) => {
      this.#child = undefined;
      resolveExit();
      if (child.pid !== undefined && !groupAlive(child.pid)) this.pgids.delete(child.pid);
      let restartInMs: number | undefined;
      if (!this.#stopping) {
        if (Date.now() - this.#startedAt >= this.#policy.stableMs) this.#failures = 0;
        this.#failures++;
        restartInMs = Math.min(this.#policy.maxMs, this.#policy.initialMs * 2 ** (this.#failures - 1));
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.start();
        }, restartInMs);
      }
      this.#listener({ type: 'exited', code, signal, restartInMs, lastError: this.#lastStderr });
    });
  }

  /** SIGTERM to its group, SIGKILL to the group after `graceMs`; resolves when no process of it is left. */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    const child = this.#child;
    if (child?.pid !== undefined) {
      signalGroup(child.pid, 'SIGTERM');
      child.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), graceMs);
      });
      const timedOut = await Promise.race([this.#exited.then(() => false), grace]);
      clearTimeout(timer);
      if (timedOut) signalGroup(child.pid, 'SIGKILL');
      await this.#exited;
    }
    // Anything a run left behind in its group (the leader gone, a grandchild still there).
    for (const pgid of this.pgids) {
      if (groupAlive(pgid)) {
        signalGroup(pgid, 'SIGKILL');
        for (let i = 0; i < 50 && groupAlive(pgid); i++) await sleep(20);
      }
      this.pgids.delete(pgid);
    }
    await new Promise<void>((resolve) => {
      if (!this.#log) resolve();
      else this.#log.end(() => resolve());
    });
    this.#log = undefined;
  }
}

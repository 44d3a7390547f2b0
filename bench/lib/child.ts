// Child processes of the benchmark, each pinned to one core with taskset when it can be, and
// Node children spoken to over IPC. Every child is stopped by the run that started it: by an
// IPC `stop`, then SIGTERM, then SIGKILL, each after a bounded wait.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';

export interface Pinning {
  enabled: boolean;
  /** Core of the system under test (proxy or nginx). */
  proxyCore: number;
  /** Core of the load generator, the backend and this orchestrator. */
  loadCore: number;
  note: string;
}

export function detectPinning(): Pinning {
  const cores = cpus().length;
  const probe = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
  if (cores >= 2 && probe.status === 0) {
    // This process's own later work (spawning, collecting) stays off the measured core.
    spawnSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    return {
      enabled: true,
      proxyCore: 1,
      loadCore: 0,
      note: 'proxy / nginx pinned to core 1 (taskset -c 1); load generator, backend and orchestrator on core 0',
    };
  }
  const why = cores < 2 ? `only ${cores} core` : 'taskset unavailable';
  return {
    enabled: false,
    proxyCore: -1,
    loadCore: -1,
    note: `not pinned (${why}): "per core" figures are indicative`,
  };
}

/** argv for running `command args` on `core` (no prefix when pinning is off). */
export function pinned(pinning: Pinning, core: number, command: string, args: string[]): [string, string[]] {
  return pinning.enabled ? ['taskset', ['-c', String(core), command, ...args]] : [command, args];
}

export interface Message {
  type: string;
  [key: string]: unknown;
}

interface Waiter {
  type: string;
  deliver(m: Message): void;
}

export class NodeChild {
  readonly proc: ChildProcess;
  readonly #inbox: Message[] = [];
  readonly #waiters: Waiter[] = [];
  readonly exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  constructor(proc: ChildProcess) {
    this.proc = proc;
    // A send racing the child's own exit fails with EPIPE: the exit is what counts.
    proc.on('error', () => {});
    proc.on('message', (m: Message) => {
      const w = this.#waiters.findIndex((x) => x.type === m.type || m.type === 'error');
      if (w >= 0) this.#waiters.splice(w, 1)[0].deliver(m);
      else this.#inbox.push(m);
    });
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.#exitCode = code;
        resolve(code);
        const left = this.#waiters.splice(0);
        for (const w of left)
          w.deliver({ type: 'error', message: `child exited (${code ?? signal}) before "${w.type}"` });
      }),
    );
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  send(m: Message): void {
    if (this.proc.connected) this.proc.send(m, undefined, {}, () => {});
  }

  /** The next message of this type (an `error` message rejects), within `timeoutMs`. */
  next<T extends Message>(type: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const settle = (m: Message) => {
        clearTimeout(timer);
        if (m.type === 'error') reject(new Error(`child ${this.pid}: ${String(m.message)}`));
        else resolve(m as T);
      };
      const waiter: Waiter = { type, deliver: settle };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no "${type}" from child ${this.pid} within ${timeoutMs} ms`));
      }, timeoutMs);
      const queued = this.#inbox.findIndex((x) => x.type === type || x.type === 'error');
      if (queued >= 0) {
        const m = this.#inbox.splice(queued, 1)[0];
        setImmediate(() => settle(m));
      } else if (this.#exitCode !== undefined) {
        setImmediate(() => settle({ type: 'error', message: `child already exited before "${type}"` }));
      } else this.#waiters.push(waiter);
    });
  }

  /** Asks the child to stop, then escalates; resolves with its exit code. */
  async stop(timeoutMs = 10_000): Promise<number | null> {
    if (this.#exitCode !== undefined) return this.#exitCode;
    this.send({ type: 'stop' });
    return stopProcess(this.proc, this.exited, timeoutMs);
  }
}

/** SIGTERM after `graceMs` of waiting for exit, SIGKILL after as long again. */
export async function stopProcess(
  proc: ChildProcess,
  exited: Promise<number | null>,
  graceMs: number,
): Promise<number | null> {
  const wait = (ms: number) =>
    Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);
  let r = await wait(graceMs);
  if (r !== 'timeout') return r;
  proc.kill('SIGTERM');
  r = await wait(graceMs);
  if (r !== 'timeout') return r;
  proc.kill('SIGKILL');
  return exited;
}

export function spawnNode(
  pinning: Pinning,
  core: number,
  script: string,
  args: string[],
  nodeArgs: string[] = [],
): NodeChild {
  const [cmd, argv] = pinned(pinning, core, process.execPath, [...nodeArgs, ...(script ? [script] : []), ...args]);
  // taskset execs node in place, so the IPC descriptor passes through to it.
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new NodeChild(proc);
}

/** In a child: sends a message to the orchestrator; `sent` runs once it is on its way. */
export function tell(m: Message, sent?: () => void): void {
  if (process.send) process.send(m, undefined, {}, () => sent?.());
  else sent?.();
}

/** In a child: reports an uncaught failure to the orchestrator, then exits. */
export function reportFailures(): void {
  const fail = (err: unknown) => {
    tell({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    setTimeout(() => process.exit(1), 100);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  // The orchestrator gone: nothing is left to report to.
  process.on('disconnect', () => process.exit(0));
}

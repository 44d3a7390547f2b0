// Requests/s at saturation: a fixed number of keep-alive connections sending back to back for
// a fixed time, with wrk (one thread, pinned to the load core) or, without wrk, autocannon.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Pinning } from './child.ts';
import { pinned, stopProcess } from './child.ts';

export interface SaturationResult {
  tool: string;
  rps: number;
  /** Milliseconds, as the tool reports them. */
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export interface SaturationOptions {
  port: number;
  authority: string;
  connections: number;
  durationS: number;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => {
      out += c;
    });
    proc.stderr.on('data', (c: Buffer) => {
      err += c;
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    // Bounded even if the tool hangs.
    const timer = setTimeout(() => void stopProcess(proc, exited, 1_000), timeoutMs);
    exited.then((code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err.trim()}`));
    });
  });
}

/** wrk's "1.23ms" / "456.00us" / "1.20s" in milliseconds. */
function wrkTime(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export async function saturateWrk(wrkPath: string, pinning: Pinning, o: SaturationOptions): Promise<SaturationResult> {
  const [cmd, args] = pinned(pinning, pinning.loadCore, wrkPath, [
    '-t1',
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    '--latency',
    '-H',
    `Host: ${o.authority}`,
    `http://127.0.0.1:${o.port}/`,
  ]);
  const out = await run(cmd, args, (o.durationS + 20) * 1000);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const pct = (p: string) => wrkTime(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { tool: 'wrk', rps, p50: pct('50'), p99: pct('99'), errors, non2xx };
}

export async function saturateAutocannon(pinning: Pinning, o: SaturationOptions): Promise<SaturationResult> {
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const [cmd, args] = pinned(pinning, pinning.loadCore, process.execPath, [
    bin,
    '-j',
    '-c',
    String(o.connections),
    '-d',
    String(o.durationS),
    '-H',
    `host=${o.authority}`,
    `http://127.0.0.1:${o.port}/`,
  ]);
  const out = await run(cmd, args, (o.durationS + 20) * 1000);
  const r = JSON.parse(out) as {
    requests: { average: number };
    latency: { p50: number; p99: number };
    errors: number;
    non2xx: number;
  };
  return {
    tool: 'autocannon',
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

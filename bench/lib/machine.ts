// What the benchmark ran on, for the figures to be read against.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  load: string;
  date: string;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {}
  return cpus()[0]?.model.trim() ?? 'unknown CPU';
}

export function machine(): Machine {
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    kernel: `Linux ${release()}`,
    node: process.version,
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(' / '),
    date: new Date().toISOString().slice(0, 10),
  };
}

/** 1-minute load average now: other work on the machine skews every figure. */
export function loadNow(): number {
  return loadavg()[0];
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal. Busy counts process time only: interrupt and
  // softirq time is mostly the loopback traffic of the benchmark itself, charged to no process.
  const busy = f[0] + f[1] + f[2];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy, total };
}

/** Share of all cores busy over the next `ms` (0–1). */
export async function busyShare(ms: number): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/**
 * Waits (up to `maxMs`) for the machine to be quiet — under `threshold` of all cores busy over
 * 2 s — since other work on it skews every figure. Returns the last busy share seen.
 */
export async function waitForQuiet(threshold: number, maxMs: number, log: (s: string) => void): Promise<number> {
  const deadline = Date.now() + maxMs;
  let share = await busyShare(2_000);
  while (share > threshold && Date.now() < deadline) {
    log(`machine busy (${(share * 100).toFixed(0)} % of all cores): waiting for it to quieten`);
    share = await busyShare(2_000);
  }
  return share;
}

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime, clock ticks: its own CPU and that of children it reaped. */
  ticks: number;
}

function procStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may hold spaces.
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), {
        ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** CPU ticks of this process and all its descendants (reaped ones included through their parents). */
function ownTicks(): number {
  const stats = procStats();
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  let total = 0;
  const stack = [process.pid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    total += stats.get(pid)?.ticks ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/**
 * Measures how much CPU work outside this benchmark's own processes did over a window: call
 * it at the start, and the function it returns at the end; the result is in cores (1 = one
 * core busy with other work for the whole window).
 */
export function otherWork(): () => number {
  const a = cpuTimes();
  const ownA = ownTicks();
  return () => {
    const b = cpuTimes();
    const ownB = ownTicks();
    const cores = cpus().length;
    const totalTicks = (b.total - a.total) / cores;
    if (totalTicks <= 0) return 0;
    return Math.max(0, (b.busy - a.busy - (ownB - ownA)) / totalTicks);
  };
}

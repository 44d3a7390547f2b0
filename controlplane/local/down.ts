// `weft local down`: stops the `weft local up` of a state dir if it still runs, then removes whatever a run left on
// this machine — after a crash (SIGKILL, a power cut) that is its children, found by the state dir they carry in
// their environment (LOCAL_RUN_ENV), and with --netns the network namespaces, bridge, host chains and /etc/netns
// dirs under its name prefix (netns.ts cleanupAll) — and finally its mesh.json.
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { LocalError } from './errors.ts';
import { cleanupAll, DEFAULT_PREFIX, isEmpty, isRoot, type Leftovers } from './netns.ts';
import { checkNetnsPrefix } from './pod-network.ts';
import { LOCAL_RUN_ENV, MESH_STATE_FILE, processAlive, readMeshState } from './state.ts';

export interface LocalDownOptions {
  stateDir: string;
  /** The name prefix of the network namespaces etc. to remove; default the one in mesh.json, else `weft-`. */
  prefix?: string;
  /** How long a running `weft local up` may take to stop after SIGTERM before it is killed. Default 20 s. */
  graceMs?: number;
}

export interface LocalDownResult {
  /** The `weft local up` that was still running and was stopped. */
  stopped?: number;
  /** Processes of the run that were left (and killed). */
  killed: number[];
  /** The prefix looked under, and what was found there (and removed); undefined when not looked (not root). */
  prefix?: string;
  removed?: Leftovers;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Processes whose environment says they belong to the mesh of `stateDir` (only what this user may read). */
export function runProcesses(stateDir: string): number[] {
  const marker = Buffer.from(`${LOCAL_RUN_ENV}=${path.resolve(stateDir)}\0`);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      // A zombie's environ reads empty: it is gone already, its parent just has not reaped it.
      if (env.includes(marker)) pids.push(pid);
    } catch {}
  }
  return pids;
}

async function waitGone(pids: readonly number[], ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (!pids.some(processAlive)) return true;
    await sleep(50);
  }
  return !pids.some(processAlive);
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

export async function localDown(o: LocalDownOptions): Promise<LocalDownResult> {
  const stateDir = path.resolve(o.stateDir);
  if (o.prefix !== undefined) checkNetnsPrefix(o.prefix);
  const state = await readMeshState(stateDir).catch(() => undefined);
  const result: LocalDownResult = { killed: [] };
  if (state && state.pid !== process.pid && processAlive(state.pid)) {
    // Still running: let it stop the way Ctrl-C stops it (which removes its namespaces too).
    kill(state.pid, 'SIGTERM');
    if (!(await waitGone([state.pid], o.graceMs ?? 20_000))) kill(state.pid, 'SIGKILL');
    await waitGone([state.pid], 5000);
    result.stopped = state.pid;
  }
  const left = runProcesses(stateDir);
  for (const pid of left) kill(pid, 'SIGKILL');
  await waitGone(left, 5000);
  result.killed = left;
  const prefix = o.prefix ?? state?.netns?.prefix;
  if (isRoot()) {
    result.prefix = prefix ?? DEFAULT_PREFIX;
    result.removed = await cleanupAll(result.prefix);
  } else if (prefix !== undefined) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_NOT_ROOT',
      `removing the network namespaces of prefix ${prefix} needs root (ip netns, iptables): run weft local down as root`,
    );
  }
  if (state && !processAlive(state.pid)) await rm(path.join(stateDir, MESH_STATE_FILE), { force: true });
  return result;
}

export function describeDown(r: LocalDownResult): string[] {
  const lines: string[] = [];
  if (r.stopped !== undefined) lines.push(`stopped weft local up (pid ${r.stopped})`);
  if (r.killed.length > 0) lines.push(`killed ${r.killed.length} process(es) it had left: ${r.killed.join(', ')}`);
  if (r.removed && !isEmpty(r.removed)) {
    const l = r.removed;
    const what = [
      ...l.namespaces.map((n) => `netns ${n}`),
      ...l.links.map((n) => `link ${n}`),
      ...l.chains.map((c) => `chain ${c}`),
      ...l.etcDirs,
      ...(l.pids.length > 0 ? [`${l.pids.length} process(es) in the namespaces`] : []),
    ];
    lines.push(`removed under prefix ${r.prefix}: ${what.join(', ')}`);
  } else if (r.prefix !== undefined) lines.push(`nothing left under prefix ${r.prefix}`);
  if (lines.length === 0) lines.push('nothing to stop or remove');
  return lines;
}

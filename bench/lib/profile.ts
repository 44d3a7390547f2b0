// A V8 CPU profile (.cpuprofile from node --cpu-prof) reduced to what limits the proxy: the
// functions with the most self time, and self time grouped by where the code lives.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  /** Share of the busy (non-idle) samples, 0–1. */
  share: number;
}

export interface ProfileSummary {
  busyMs: number;
  top: ProfileEntry[];
  groups: { group: string; share: number }[];
  /** Inclusive share of weft's own functions (self plus what they call). */
  weftInclusive: ProfileEntry[];
}

function where(f: CallFrame, root: string): string {
  if (!f.url) return '';
  let u = f.url.replace(/^file:\/\//, '');
  if (u.startsWith(root)) u = u.slice(root.length + 1);
  u = u.replace(/^.*node_modules\//, '');
  return `${u}:${f.lineNumber + 1}`;
}

function group(f: CallFrame, root: string): string {
  const name = f.functionName;
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)') return 'V8/native (program)';
  if (name === '(idle)') return 'idle';
  // libuv/stream_wrap natives: the write syscalls of sockets (headers as a string, bodies as buffers).
  if (
    !f.url &&
    /^(writev|writeLatin1String|writeUtf8String|writeAsciiString|writeBuffer|shutdown|readStart|onStreamRead)$/.test(
      name,
    )
  )
    return 'socket writes and reads (native, syscalls)';
  const u = f.url.replace(/^file:\/\//, '');
  if (u.includes('node_modules/undici/')) return 'undici';
  if (u.includes('node_modules/http-proxy-3/')) return 'http-proxy-3';
  if (u.includes('node_modules/pino')) return 'pino';
  if (u.includes('node_modules/')) return 'other npm packages';
  if (u.startsWith(`${root}/sidecar/`))
    return `weft ${u
      .slice(root.length + 1)
      .split('/')
      .slice(0, 2)
      .join('/')}`;
  if (u.startsWith('node:internal/http') || u.startsWith('node:_http') || u === 'node:http')
    return 'node:http (parser, server, client)';
  if (u.startsWith('node:internal/streams') || u === 'node:stream') return 'node streams';
  if (u.startsWith('node:net') || u.startsWith('node:internal/net') || u.includes('stream_base'))
    return 'node:net sockets';
  if (u.startsWith('node:')) return 'other node internals';
  if (!u) return name.startsWith('RegExp') ? 'regular expressions' : 'V8 builtins / native';
  return 'other';
}

export function summariseProfile(file: string, root: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, { f: CallFrame; us: number }>();
  const groups = new Map<string, number>();
  const inclusive = new Map<string, { f: CallFrame; us: number }>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const us = p.timeDeltas[i] ?? 0;
    // Idle time, and the profiler's own inspector session, are not the proxy's work.
    if (!n || n.callFrame.functionName === '(idle)' || n.callFrame.url === 'node:inspector') continue;
    busy += us;
    const key = `${n.callFrame.functionName}|${n.callFrame.url}|${n.callFrame.lineNumber}`;
    const s = self.get(key) ?? { f: n.callFrame, us: 0 };
    s.us += us;
    self.set(key, s);
    const g = group(n.callFrame, root);
    groups.set(g, (groups.get(g) ?? 0) + us);
    // Each weft function on the stack once (recursion counted once).
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!f.url.includes(`${root}/sidecar/`)) continue;
      const k = `${f.functionName}|${f.url}|${f.lineNumber}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const e = inclusive.get(k) ?? { f, us: 0 };
      e.us += us;
      inclusive.set(k, e);
    }
  }
  const entry = (e: { f: CallFrame; us: number }): ProfileEntry => ({
    name: e.f.functionName || '(anonymous)',
    where: where(e.f, root),
    share: busy > 0 ? e.us / busy : 0,
  });
  return {
    busyMs: busy / 1000,
    top: [...self.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map(entry),
    groups: [...groups]
      .map(([g, us]) => ({ group: g, share: busy > 0 ? us / busy : 0 }))
      .sort((a, b) => b.share - a.share),
    weftInclusive: [...inclusive.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 10)
      .map(entry),
  };
}

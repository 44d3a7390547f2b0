// Shared by the capture tests that need root: whether they can run, names and ranges that cannot collide with
// another test run (or `weft local`) on the same machine, and removal of what a killed earlier run left.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Bridge, cleanupAll, createBridge, type NetnsError } from '../../controlplane/local/netns.ts';

export const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the namespace tests cannot run here, or undefined when they can. */
export function whyNotRunnable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth, iptables); run the suite as root, as CI does';
  const missing = ['ip', 'iptables', 'ip6tables', 'setpriv'].filter((c) => !has(c));
  if (missing.length > 0) return `needs ${missing.join(', ')} (apt-get install iptables iproute2 util-linux)`;
  return undefined;
}

const TEST_PREFIX = /^wc([0-9a-z]+)[a-z]-/;

/** A name prefix unique to this process (`wc<pid base 36><tag>-`), so parallel runs do not touch each other. */
export function testPrefix(tag: string): string {
  return `wc${process.pid.toString(36)}${tag}-`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Removes what test runs whose process is gone left behind (a run killed before its cleanup). */
export async function reapStale(): Promise<void> {
  const names = [
    ...execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]),
    ...(JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map(
      (l) => l.ifname,
    ),
  ];
  const stale = new Set<string>();
  for (const name of names) {
    const m = TEST_PREFIX.exec(name);
    if (m && !alive(Number.parseInt(m[1], 36))) stale.add(m[0]);
  }
  for (const prefix of stale) await cleanupAll(prefix);
}

/**
 * Creates bridge `name` on a /24 of 10.253.0.0/16 (and fd77:253:N::/64) that no host route covers — createBridge
 * refuses overlapping ranges, so another run's range is skipped. `v4`/`v6` are the address stems (`10.253.N.`).
 */
export async function createTestBridge(name: string): Promise<{ bridge: Bridge; v4: string; v6: string }> {
  const start = Math.floor(Math.random() * 256);
  for (let i = 0; i < 256; i++) {
    const n = (start + i) % 256;
    const v4 = `10.253.${n}.`;
    const v6 = `fd77:253:${n.toString(16)}::`;
    try {
      return { bridge: await createBridge(name, `${v4}1/24`, { cidr6: `${v6}1/64` }), v4, v6 };
    } catch (err) {
      if ((err as NetnsError).code !== 'WEFT_ERR_NETNS_ADDRESS') throw err;
    }
  }
  throw new Error('no free /24 in 10.253.0.0/16');
}

/** `iptables -t <table> -S` (or ip6tables) inside namespace `ns` (or the host when ns is undefined). */
export function listRules(binary: 'iptables' | 'ip6tables', table: string, ns?: string): string {
  const argv = ns ? ['ip', 'netns', 'exec', ns, binary, '-t', table, '-S'] : [binary, '-t', table, '-S'];
  return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

// Network-namespace plumbing for `weft local --netns` and the end-to-end tests: one Linux bridge on a private
// range that exists only on this machine, one network namespace per pod joined to it by a veth pair, commands run
// inside a namespace (`ip netns exec`, which also bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: that is how
// Service names resolve in pods), and a cleanup that finds everything by name prefix, so it also works after a
// crash left things behind. Root only.
//
// Naming: a namespace keeps the name it is given; a bridge too; the host end of a pod's veth is named after its
// bridge (first 9 characters, `v`, 5 hex digits of the namespace name), the pod end is `eth0`; the host firewall
// chain of a bridge is its name in capitals with `_FWD` (`weft-br0` → `WEFT_BR0_FWD`). So when bridge and namespace
// names start with a prefix such as `weft-`, `cleanupAll('weft-')` finds every one of them, and every chain
// starting with `WEFT_`.
//
// Containment: no forwarding or NAT is set up, and the bridge's chain in the host's FORWARD drops whatever would
// leave the bridge (or enter it from elsewhere), in case IP forwarding is on; the range must be private and must
// not overlap a route the host already has.
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';

export const DEFAULT_PREFIX = 'weft-';
/** `ip netns exec <ns>` bind-mounts each file of /etc/netns/<ns>/ over the same name in /etc. */
export const NETNS_ETC = '/etc/netns';

export type NetnsErrorCode =
  /** Namespaces, links and iptables need root. */
  | 'WEFT_ERR_NETNS_NOT_ROOT'
  /** A name, address or prefix that cannot be used. */
  | 'WEFT_ERR_NETNS_INPUT'
  /** The namespace or link already exists (a leftover: `weft local down` or cleanupAll removes it). */
  | 'WEFT_ERR_NETNS_EXISTS'
  /** The range is not private, or overlaps a route the host already has. */
  | 'WEFT_ERR_NETNS_ADDRESS'
  /** An `ip`/`iptables` command failed; the message names it and carries its stderr. */
  | 'WEFT_ERR_NETNS_COMMAND';

// Kept here rather than in errors.ts (LocalError), which `weft local` owns; it may fold these codes in.
export class NetnsError extends Error {
  readonly code: NetnsErrorCode;
  constructor(code: NetnsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NetnsError';
    this.code = code;
  }
}

// --- commands -------------------------------------------------------------------------------------------------

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function assertRoot(): void {
  if (!isRoot()) {
    throw new NetnsError(
      'WEFT_ERR_NETNS_NOT_ROOT',
      'network namespaces need root (ip netns, veth links, iptables): run as root, or without --netns',
    );
  }
}

function run(argv: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = String(stderr).trim() || err.message;
      reject(new NetnsError('WEFT_ERR_NETNS_COMMAND', `${argv.join(' ')}: ${why}`, { cause: err }));
    });
  });
}

/** Runs a command whose failure only means "already gone". */
async function runQuiet(argv: readonly string[]): Promise<boolean> {
  try {
    await run(argv);
    return true;
  } catch {
    return false;
  }
}

// --- addresses ------------------------------------------------------------------------------------------------

interface Cidr {
  family: 4 | 6;
  address: string;
  prefixLength: number;
  /** Address as an integer, and the network's first address. */
  value: bigint;
  network: bigint;
}

function toBigInt(address: string): bigint {
  if (isIPv4(address)) return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  // IPv6: expand `::`, and an embedded IPv4 tail.
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = toBigInt(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function parseCidr(text: string, what: string, defaultLength?: number): Cidr {
  const [address = '', len, ...rest] = text.trim().split('/');
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  const bits = family === 4 ? 32 : 128;
  const prefixLength = len === undefined ? (defaultLength ?? bits) : /^\d{1,3}$/.test(len) ? Number(len) : Number.NaN;
  if (family === undefined || rest.length > 0 || !(prefixLength >= 0 && prefixLength <= bits)) {
    throw new NetnsError('WEFT_ERR_NETNS_INPUT', `${what}: ${JSON.stringify(text)} is not an address/prefix`);
  }
  const value = toBigInt(address);
  const hostBits = BigInt(bits - prefixLength);
  return { family, address, prefixLength, value, network: (value >> hostBits) << hostBits };
}

function contains(net: Cidr, value: bigint): boolean {
  const hostBits = BigInt((net.family === 4 ? 32 : 128) - net.prefixLength);
  return value >> hostBits === net.network >> hostBits;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && (contains(a, b.network) || contains(b, a.network));
}

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'].map((c) => parseCidr(c, 'private'));

function assertPrivate(c: Cidr, what: string): void {
  const inside = PRIVATE.some(
    (p) => p.family === c.family && contains(p, c.network) && c.prefixLength >= p.prefixLength,
  );
  if (!inside) {
    throw new NetnsError(
      'WEFT_ERR_NETNS_ADDRESS',
      `${what} ${c.address}/${c.prefixLength} is not inside a private range (10/8, 172.16/12, 192.168/16, fc00::/7)`,
    );
  }
}

/** Refuses a range that overlaps a route of the host (other than the default): it would shadow or leak. */
async function assertNoRouteOverlap(c: Cidr, what: string): Promise<void> {
  const routes = JSON.parse((await run(['ip', '-j', `-${c.family}`, 'route', 'show'])) || '[]') as {
    dst: string;
    dev?: string;
  }[];
  for (const r of routes) {
    if (r.dst === 'default') continue;
    if (overlaps(c, parseCidr(r.dst, 'route'))) {
      throw new NetnsError(
        'WEFT_ERR_NETNS_ADDRESS',
        `${what} ${c.address}/${c.prefixLength} overlaps the host route ${r.dst}${r.dev ? ` (dev ${r.dev})` : ''}`,
      );
    }
  }
}

// --- names ----------------------------------------------------------------------------------------------------

const LINK_NAME = /^[a-z0-9][a-z0-9-]{0,14}$/;
const NETNS_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const PREFIX = /^[a-z][a-z0-9-]{2,}$/;

function checkName(name: string, pattern: RegExp, what: string): void {
  if (!pattern.test(name))
    throw new NetnsError('WEFT_ERR_NETNS_INPUT', `${what} name ${JSON.stringify(name)} is invalid`);
}

/** The host end of a pod's veth: named after its bridge, so a bridge's prefix finds its veths too. */
export function hostVethName(bridge: string, namespace: string): string {
  return `${bridge.slice(0, 9)}v${createHash('sha1').update(namespace).digest('hex').slice(0, 5)}`;
}

/** iptables chain name for a link name or prefix: capitals, `_` for anything else (`weft-br0` → `WEFT_BR0`). */
export function chainName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** The host FORWARD chain that keeps a bridge's traffic on the bridge. */
export function bridgeChain(bridge: string): string {
  return `${chainName(bridge)}_FWD`;
}

// --- bridge ---------------------------------------------------------------------------------------------------

export interface Bridge {
  name: string;
  /** The bridge's own address (the pods' gateway) and prefix length, e.g. 10.244.0.1 and 16. */
  address: string;
  prefixLength: number;
  address6?: string;
  prefixLength6?: number;
}

export interface BridgeOptions {
  /** An IPv6 address/prefix for the bridge too (fc00::/7), e.g. `fd00:10:244::1/64`. */
  cidr6?: string;
}

async function linkExists(name: string): Promise<boolean> {
  return runQuiet(['ip', 'link', 'show', 'dev', name]);
}

/** The bridge chain's rules for one family: bridge-to-bridge passes, anything crossing its edge is dropped. */
function bridgeChainRules(binary: string, bridge: string): string[][] {
  const chain = bridgeChain(bridge);
  return [
    [binary, '-N', chain],
    [binary, '-A', chain, '-i', bridge, '-o', bridge, '-j', 'ACCEPT'],
    [binary, '-A', chain, '-i', bridge, '-j', 'DROP'],
    [binary, '-A', chain, '-o', bridge, '-j', 'DROP'],
    [binary, '-I', 'FORWARD', '1', '-j', chain],
  ];
}

/**
 * Creates bridge `name` with address `cidr` (the pods' gateway, e.g. `10.244.0.1/16`; a network address such as
 * `10.244.0.0/16` gets its first host), up, with its FORWARD containment chain. Fails (and leaves nothing) when the
 * link exists, the range is not private, or it overlaps a host route.
 */
export async function createBridge(name: string, cidr: string, options: BridgeOptions = {}): Promise<Bridge> {
  assertRoot();
  checkName(name, LINK_NAME, 'bridge');
  const c4 = gatewayOf(parseCidr(cidr, `bridge ${name} address`));
  const c6 = options.cidr6 === undefined ? undefined : gatewayOf(parseCidr(options.cidr6, `bridge ${name} address`));
  for (const c of [c4, c6]) {
    if (!c) continue;
    assertPrivate(c, `bridge ${name} range`);
    await assertNoRouteOverlap(c, `bridge ${name} range`);
  }
  if (await linkExists(name)) {
    throw new NetnsError('WEFT_ERR_NETNS_EXISTS', `link ${name} already exists (a leftover? cleanupAll removes it)`);
  }
  try {
    await run(['ip', 'link', 'add', name, 'type', 'bridge']);
    await run(['ip', 'addr', 'add', `${c4.address}/${c4.prefixLength}`, 'dev', name]);
    if (c6) await run(['ip', '-6', 'addr', 'add', `${c6.address}/${c6.prefixLength}`, 'dev', name, 'nodad']);
    await run(['ip', 'link', 'set', name, 'up']);
    for (const cmd of bridgeChainRules('iptables', name)) await run(cmd);
    if (c6) for (const cmd of bridgeChainRules('ip6tables', name)) await run(cmd);
  } catch (err) {
    await deleteBridge(name);
    throw err;
  }
  const bridge: Bridge = { name, address: c4.address, prefixLength: c4.prefixLength };
  if (c6) Object.assign(bridge, { address6: c6.address, prefixLength6: c6.prefixLength });
  return bridge;
}

function fromBigInt(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  // Uncompressed: `ip` reads it, and nothing compares it as text.
  return Array.from({ length: 8 }, (_, i) => ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
}

/** A network address (host part zero) stands for its first host. */
function gatewayOf(c: Cidr): Cidr {
  const bits = c.family === 4 ? 32 : 128;
  if (c.value !== c.network || c.prefixLength >= bits - 1) return c;
  const value = c.network + 1n;
  return { ...c, value, address: fromBigInt(value, c.family) };
}

async function removeChain(binary: string, chain: string): Promise<boolean> {
  let removed = false;
  const listing = await run([binary, '-S']).catch(() => '');
  for (const cmd of chainCleanupCommands(listing, binary, undefined, (c) => c === chain)) {
    removed = (await runQuiet(cmd)) || removed;
  }
  return removed;
}

/** Removes a bridge, its FORWARD chains and the veths named after it. */
export async function deleteBridge(name: string): Promise<void> {
  assertRoot();
  await removeChain('iptables', bridgeChain(name));
  await removeChain('ip6tables', bridgeChain(name));
  for (const link of await listLinks()) {
    if (link.startsWith(`${name.slice(0, 9)}v`) && link !== name) await runQuiet(['ip', 'link', 'del', link]);
  }
  await runQuiet(['ip', 'link', 'del', name]);
}

// --- pod namespaces -------------------------------------------------------------------------------------------

export interface HostsEntry {
  address: string;
  names: readonly string[];
}

export interface PodNamespaceOptions {
  /** The namespace's name (start it with the cleanup prefix, e.g. `weft-`). */
  name: string;
  /** The pod's address, with or without a prefix length (default: the bridge's). */
  ip: string;
  /** The bridge to join, by name or as createBridge returned it. */
  bridge: string | Bridge;
  /** The default route's next hop; default the bridge's address. */
  gateway?: string;
  /** An IPv6 address for the pod too (the bridge needs one: createBridge's cidr6). */
  ip6?: string;
  gateway6?: string;
  /** Initial /etc/hosts entries (besides localhost); writeHosts replaces them. */
  hosts?: readonly HostsEntry[];
}

export interface PodNamespace {
  name: string;
  ip: string;
  prefixLength: number;
  ip6?: string;
  bridge: string;
  /** The host end of the veth pair (the pod end is `eth0`). */
  hostVeth: string;
}

async function bridgeAddresses(name: string): Promise<Bridge> {
  const [link] = JSON.parse(await run(['ip', '-j', 'addr', 'show', 'dev', name])) as {
    addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
  }[];
  const v4 = link?.addr_info.find((a) => a.family === 'inet');
  const v6 = link?.addr_info.find((a) => a.family === 'inet6' && a.scope === 'global');
  if (!v4) throw new NetnsError('WEFT_ERR_NETNS_INPUT', `bridge ${name} has no IPv4 address`);
  const bridge: Bridge = { name, address: v4.local, prefixLength: v4.prefixlen };
  if (v6) Object.assign(bridge, { address6: v6.local, prefixLength6: v6.prefixlen });
  return bridge;
}

export async function listNamespaces(): Promise<string[]> {
  // Lines are `name` or `name (id: N)`.
  const out = await run(['ip', 'netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n);
}

async function listLinks(): Promise<string[]> {
  const links = JSON.parse((await run(['ip', '-j', 'link', 'show'])) || '[]') as { ifname: string }[];
  return links.map((l) => l.ifname);
}

const HOSTS_HEADER = (ns: string) =>
  `# /etc/hosts of network namespace ${ns}, written by weft (controlplane/local/netns.ts)\n` +
  '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';

/**
 * Writes the namespace's /etc/hosts (what processes started with `ip netns exec` see as /etc/hosts): localhost
 * plus `entries`. The file is rewritten in place, so processes already running see the new names.
 */
export async function writeHosts(ns: string, entries: readonly HostsEntry[]): Promise<void> {
  assertRoot();
  checkName(ns, NETNS_NAME, 'namespace');
  for (const e of entries) {
    if (!isIPv4(e.address) && !isIPv6(e.address)) {
      throw new NetnsError('WEFT_ERR_NETNS_INPUT', `hosts entry: ${JSON.stringify(e.address)} is not an address`);
    }
    for (const n of e.names) {
      if (!/^[A-Za-z0-9_.-]+$/.test(n))
        throw new NetnsError('WEFT_ERR_NETNS_INPUT', `hosts entry: bad name ${JSON.stringify(n)}`);
    }
  }
  const dir = join(NETNS_ETC, ns);
  await mkdir(dir, { recursive: true });
  const lines = entries.filter((e) => e.names.length > 0).map((e) => `${e.address}\t${e.names.join(' ')}\n`);
  await writeFile(join(dir, 'hosts'), HOSTS_HEADER(ns) + lines.join(''));
}

/**
 * Creates network namespace `name` joined to the bridge: a veth pair (host end on the bridge, `eth0` inside),
 * the address, `lo` up, a default route via the gateway, and /etc/netns/<name>/{hosts,resolv.conf} (names come
 * from hosts only; no DNS server is reachable from a pod). On failure whatever was made is removed again.
 */
export async function createPodNamespace(options: PodNamespaceOptions): Promise<PodNamespace> {
  assertRoot();
  const { name } = options;
  checkName(name, NETNS_NAME, 'namespace');
  const bridge = typeof options.bridge === 'string' ? await bridgeAddresses(options.bridge) : options.bridge;
  const ip = parseCidr(options.ip, `pod ${name} address`, bridge.prefixLength);
  const bridgeNet = parseCidr(`${bridge.address}/${bridge.prefixLength}`, 'bridge');
  if (ip.family !== 4 || !contains(bridgeNet, ip.value) || ip.value === bridgeNet.value) {
    throw new NetnsError(
      'WEFT_ERR_NETNS_ADDRESS',
      `pod ${name}: ${options.ip} is not a free address of bridge ${bridge.name}`,
    );
  }
  const gateway = options.gateway ?? bridge.address;
  let ip6: Cidr | undefined;
  if (options.ip6 !== undefined) {
    if (bridge.address6 === undefined) {
      throw new NetnsError('WEFT_ERR_NETNS_INPUT', `pod ${name}: bridge ${bridge.name} has no IPv6 address`);
    }
    ip6 = parseCidr(options.ip6, `pod ${name} IPv6 address`, bridge.prefixLength6);
  }
  if ((await listNamespaces()).includes(name)) {
    throw new NetnsError(
      'WEFT_ERR_NETNS_EXISTS',
      `network namespace ${name} already exists (a leftover? cleanupAll removes it)`,
    );
  }
  const hostVeth = hostVethName(bridge.name, name);
  const inNs = (...args: string[]) => ['ip', '-n', name, ...args];
  try {
    await run(['ip', 'netns', 'add', name]);
    const dir = join(NETNS_ETC, name);
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'resolv.conf'),
      '# weft: names come from /etc/hosts only\noptions timeout:1 attempts:1\n',
    );
    await writeHosts(name, options.hosts ?? []);
    await run(['ip', 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    await run(['ip', 'link', 'set', hostVeth, 'master', bridge.name]);
    await run(['ip', 'link', 'set', hostVeth, 'up']);
    await run(inNs('link', 'set', 'lo', 'up'));
    await run(inNs('addr', 'add', `${ip.address}/${ip.prefixLength}`, 'dev', 'eth0'));
    if (ip6) await run(inNs('-6', 'addr', 'add', `${ip6.address}/${ip6.prefixLength}`, 'dev', 'eth0', 'nodad'));
    await run(inNs('link', 'set', 'eth0', 'up'));
    await run(inNs('route', 'add', 'default', 'via', gateway));
    if (ip6) await run(inNs('-6', 'route', 'add', 'default', 'via', options.gateway6 ?? bridge.address6!));
  } catch (err) {
    await deleteNamespace(name);
    await runQuiet(['ip', 'link', 'del', hostVeth]);
    throw err;
  }
  const pod: PodNamespace = { name, ip: ip.address, prefixLength: ip.prefixLength, bridge: bridge.name, hostVeth };
  if (ip6) pod.ip6 = ip6.address;
  return pod;
}

// --- processes in namespaces ----------------------------------------------------------------------------------

export interface NamespaceUser {
  /** Run as this uid (and gid, default the uid) instead of root, e.g. the proxy's 1337. */
  uid?: number;
  gid?: number;
}

/** The command line that runs `argv` in namespace `ns` (as `uid`/`gid` when given), for any process runner. */
export function namespaceCommand(
  ns: string,
  argv: readonly string[],
  user: NamespaceUser = {},
): { command: string; args: string[] } {
  checkName(ns, NETNS_NAME, 'namespace');
  if (argv.length === 0) throw new NetnsError('WEFT_ERR_NETNS_INPUT', 'no command to run');
  const args = ['netns', 'exec', ns];
  if (user.uid !== undefined || user.gid !== undefined) {
    // setpriv, after `ip netns exec` (which needs root to enter the namespace and mount /etc/netns files).
    const uid = user.uid ?? 0;
    args.push('setpriv', '--reuid', String(uid), '--regid', String(user.gid ?? uid), '--clear-groups', '--');
  }
  return { command: 'ip', args: [...args, ...argv] };
}

/** Processes this process started in namespaces, until they exit. */
const tracked = new Map<ChildProcess, string>();

export interface SpawnInNamespaceOptions extends NamespaceUser, Omit<SpawnOptions, 'uid' | 'gid' | 'argv0'> {}

/**
 * Starts `argv` in namespace `ns`; the process is tracked until it exits, and cleanupAll kills it (and after a
 * crash of this process, cleanupAll finds it through `ip netns pids`).
 */
export function spawnInNamespace(
  ns: string,
  argv: readonly string[],
  options: SpawnInNamespaceOptions = {},
): ChildProcess {
  assertRoot();
  const { uid, gid, ...spawnOptions } = options;
  const { command, args } = namespaceCommand(ns, argv, { uid, gid });
  const child = spawn(command, args, spawnOptions);
  tracked.set(child, ns);
  child.once('exit', () => tracked.delete(child));
  child.once('error', () => tracked.delete(child));
  return child;
}

/** Tracked processes still running, with their namespace. */
export function trackedProcesses(): { pid: number | undefined; namespace: string }[] {
  return [...tracked].map(([child, namespace]) => ({ pid: child.pid, namespace }));
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecInNamespaceOptions extends NamespaceUser {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Killed (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
}

/** Runs `argv` in namespace `ns` to completion; never rejects for a non-zero exit (look at `code`). */
export function execInNamespace(
  ns: string,
  argv: readonly string[],
  options: ExecInNamespaceOptions = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawnInNamespace(ns, argv, {
      uid: options.uid,
      gid: options.gid,
      env: options.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.on('error', () => {}); // a command that exits without reading its input
    child.stdin!.end(options.input ?? '');
  });
}

async function namespacePids(ns: string): Promise<number[]> {
  const out = await run(['ip', 'netns', 'pids', ns]).catch(() => '');
  return out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

function alive(pid: number): boolean {
  try {
    // A zombie has released its namespaces already; only its parent can reap it.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function killAll(pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
}

/** Kills every process in the namespace, then removes it and its /etc/netns directory (its veth goes with it). */
export async function deleteNamespace(ns: string): Promise<void> {
  assertRoot();
  checkName(ns, NETNS_NAME, 'namespace');
  for (const [child, name] of tracked) if (name === ns) child.kill('SIGKILL');
  await killAll(await namespacePids(ns));
  await runQuiet(['ip', 'netns', 'del', ns]);
  await rm(join(NETNS_ETC, ns), { recursive: true, force: true });
}

// --- cleanup --------------------------------------------------------------------------------------------------

/** Splits one line of `iptables -S` into arguments (values with spaces come in double quotes). */
function splitRuleLine(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2],
  );
}

/**
 * From one table's `-S` listing: delete every rule elsewhere jumping into a chain `ours` accepts, then flush and
 * delete those chains.
 */
function chainCleanupCommands(
  listing: string,
  binary: string,
  table: string | undefined,
  ours: (chain: string) => boolean,
): string[][] {
  const base = table ? [binary, '-t', table] : [binary];
  const present: string[] = [];
  const jumps: string[][] = [];
  for (const line of listing.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] === '-N' && ours(args[1])) present.push(args[1]);
    if (args[0] !== '-A' || ours(args[1])) continue;
    const j = args.indexOf('-j');
    if (j > 0 && ours(args[j + 1])) jumps.push([...base, '-D', ...args.slice(1)]);
  }
  return [...jumps, ...present.map((c) => [...base, '-F', c]), ...present.map((c) => [...base, '-X', c])];
}

const TABLES = ['filter', 'nat', 'mangle', 'raw'] as const;
const BINARIES = ['iptables', 'ip6tables'] as const;

export interface Leftovers {
  namespaces: string[];
  /** Links of the host (bridges, veth host ends). */
  links: string[];
  /** `iptables <table> <chain>` / `ip6tables …` of the host. */
  chains: string[];
  /** /etc/netns/<name> directories. */
  etcDirs: string[];
  /** Processes inside the namespaces. */
  pids: number[];
}

function checkPrefix(prefix: string): void {
  // Never a short or empty prefix: cleanupAll('') would take everything with it.
  if (!PREFIX.test(prefix)) {
    throw new NetnsError(
      'WEFT_ERR_NETNS_INPUT',
      `prefix ${JSON.stringify(prefix)}: at least 3 of [a-z0-9-], from a letter`,
    );
  }
}

async function hostChains(prefix: string): Promise<{ binary: string; table: string; chain: string }[]> {
  const chainPrefix = chainName(prefix);
  const found: { binary: string; table: string; chain: string }[] = [];
  for (const binary of BINARIES) {
    for (const table of TABLES) {
      const listing = await run([binary, '-t', table, '-S']).catch(() => '');
      for (const line of listing.split('\n')) {
        const [op, chain] = splitRuleLine(line.trim());
        if (op === '-N' && chain.startsWith(chainPrefix)) found.push({ binary, table, chain });
      }
    }
  }
  return found;
}

/** What weft left on this machine under `prefix` (namespaces, links, host chains, /etc/netns dirs, processes). */
export async function listLeftovers(prefix: string = DEFAULT_PREFIX): Promise<Leftovers> {
  assertRoot();
  checkPrefix(prefix);
  const namespaces = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  const links = (await listLinks()).filter((l) => l.startsWith(prefix));
  const chains = (await hostChains(prefix)).map((c) => `${c.binary} ${c.table} ${c.chain}`);
  const etcDirs = (await readdir(NETNS_ETC).catch(() => [] as string[]))
    .filter((d) => d.startsWith(prefix))
    .map((d) => join(NETNS_ETC, d));
  const pids: number[] = [];
  for (const ns of namespaces) pids.push(...(await namespacePids(ns)));
  return { namespaces, links, chains, etcDirs, pids };
}

export function isEmpty(l: Leftovers): boolean {
  return l.namespaces.length + l.links.length + l.chains.length + l.etcDirs.length + l.pids.length === 0;
}

/**
 * Removes everything under `prefix`: processes in its namespaces (tracked or found by `ip netns pids`), the
 * namespaces, their /etc/netns directories, links (veths, bridges) and host iptables chains starting with the
 * prefix in capitals (`weft-` → `WEFT_`), with the rules jumping to them. Works after a crash; idempotent.
 * Resolves to what it found (and removed).
 */
export async function cleanupAll(prefix: string = DEFAULT_PREFIX): Promise<Leftovers> {
  const found = await listLeftovers(prefix);
  for (const [child, ns] of tracked) if (ns.startsWith(prefix)) child.kill('SIGKILL');
  await killAll(found.pids);
  for (const ns of found.namespaces) await runQuiet(['ip', 'netns', 'del', ns]);
  for (const dir of found.etcDirs) await rm(dir, { recursive: true, force: true });
  // Chains first: they name the links. Veths may already be gone with their namespace.
  const chainPrefix = chainName(prefix);
  for (const binary of BINARIES) {
    for (const table of TABLES) {
      const listing = await run([binary, '-t', table, '-S']).catch(() => '');
      for (const cmd of chainCleanupCommands(listing, binary, table, (c) => c.startsWith(chainPrefix)))
        await runQuiet(cmd);
    }
  }
  const links = (await listLinks()).filter((l) => l.startsWith(prefix));
  for (const link of links.sort((a, b) => b.length - a.length)) await runQuiet(['ip', 'link', 'del', link]);
  return found;
}

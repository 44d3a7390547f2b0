// The pod's traffic capture: iptables nat rules (Istio's layout) that send the workload's outbound TCP to the
// proxy's outbound port and inbound TCP to its inbound port, leaving alone the proxy's own traffic (by uid/gid),
// loopback, and the ports and CIDRs excluded. The rule set is a pure function of the options (`buildCaptureRules`);
// applying it first removes any earlier set (re-running replaces it), then adds the chains, then hooks them in,
// so nothing is redirected into a half-built chain — all of it in one `iptables-restore --noflush` transaction
// per family. IPv4 with iptables, IPv6 the same with ip6tables.
import { execFile } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { CaptureError, CaptureErrorCode } from './errors.ts';

export const CHAINS = Object.freeze({
  /** Jumped to from nat OUTPUT: decides which locally generated TCP is captured. */
  output: 'WEFT_OUTPUT',
  /** REDIRECT to the outbound port. */
  redirect: 'WEFT_REDIRECT',
  /** Jumped to from nat PREROUTING: decides which arriving TCP is captured. */
  inbound: 'WEFT_INBOUND',
  /** REDIRECT to the inbound port. */
  inRedirect: 'WEFT_IN_REDIRECT',
});

const OUR_CHAINS: ReadonlySet<string> = new Set(Object.values(CHAINS));

export interface CaptureOptions {
  /** Traffic from these uids (the proxy's) is never captured. */
  proxyUids: readonly number[];
  /** Traffic from these gids is never captured either. */
  proxyGids: readonly number[];
  outboundPort: number;
  inboundPort: number;
  /** The proxy's other ports, never redirected inbound (mesh 15008, admin 15020); the two above are added. */
  proxyPorts: readonly number[];
  /** Inbound destination ports left alone: a port number or a range `first:last`. */
  excludeInboundPorts: readonly string[];
  /** Outbound destination ports left alone: a port number or a range `first:last`. */
  excludeOutboundPorts: readonly string[];
  /** Outbound destinations left alone, IPv4 and IPv6 CIDRs (a bare address is a /32 or /128). */
  excludeOutboundCidrs: readonly string[];
  /** Capture inbound TCP at all. */
  captureInbound: boolean;
  /** Install the IPv6 set with ip6tables too. */
  ipv6: boolean;
}

export const DEFAULT_PROXY_UID = 1337;

export const DEFAULT_CAPTURE_OPTIONS: CaptureOptions = Object.freeze({
  proxyUids: [DEFAULT_PROXY_UID],
  proxyGids: [DEFAULT_PROXY_UID],
  outboundPort: 15001,
  inboundPort: 15006,
  proxyPorts: [15008, 15020],
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  excludeOutboundCidrs: [],
  captureInbound: true,
  ipv6: true,
});

/** One command: argv with the binary (`iptables` or `ip6tables`) first. */
export type IptablesCommand = readonly string[];

export type IpFamily = 'ipv4' | 'ipv6';

export const BINARY: Readonly<Record<IpFamily, string>> = Object.freeze({ ipv4: 'iptables', ipv6: 'ip6tables' });

function bad(message: string): CaptureError {
  return new CaptureError(CaptureErrorCode.BadOption, message);
}

function checkPort(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw bad(`${what}: ${n} is not a port (1-65535)`);
  return n;
}

function checkId(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) throw bad(`${what}: ${n} is not a uid/gid`);
  return n;
}

/** `8080` or `8000:8100`, as iptables' `--dport` takes it. */
export function normalizePortSpec(spec: string | number, what: string): string {
  const text = String(spec).trim();
  const m = /^(\d{1,5})(?:[:-](\d{1,5}))?$/.exec(text);
  if (!m) throw bad(`${what}: ${JSON.stringify(text)} is not a port or a range first:last`);
  const first = checkPort(Number(m[1]), what);
  if (m[2] === undefined) return String(first);
  const last = checkPort(Number(m[2]), what);
  if (last < first) throw bad(`${what}: range ${text} ends before it starts`);
  return first === last ? String(first) : `${first}:${last}`;
}

/** A CIDR with its family; a bare address gets the full prefix length. */
export function parseCidr(text: string, what = 'CIDR'): { cidr: string; family: IpFamily } {
  const [address = '', prefix, ...rest] = text.trim().split('/');
  const family: IpFamily | undefined = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined || rest.length > 0)
    throw bad(`${what}: ${JSON.stringify(text)} is not an IP address or CIDR`);
  const max = family === 'ipv4' ? 32 : 128;
  const length = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
  if (!(length >= 0 && length <= max)) throw bad(`${what}: ${JSON.stringify(text)} has a bad prefix length`);
  return { cidr: `${address}/${length}`, family };
}

const unique = <T>(xs: readonly T[]): T[] => [...new Set(xs)];

/** Fills defaults and checks every value; throws CaptureError (WEFT_ERR_CAPTURE_OPTION) naming the bad one. */
export function captureOptions(partial: Partial<CaptureOptions> = {}): CaptureOptions {
  const o = { ...DEFAULT_CAPTURE_OPTIONS, ...partial };
  const outboundPort = checkPort(o.outboundPort, 'outbound port');
  const inboundPort = checkPort(o.inboundPort, 'inbound port');
  if (outboundPort === inboundPort) throw bad(`outbound and inbound port are both ${outboundPort}`);
  if (o.proxyUids.length === 0 && o.proxyGids.length === 0) {
    // Without it the proxy's own upstream connections would be redirected back to itself, forever.
    throw bad('at least one proxy uid or gid is needed');
  }
  for (const c of o.excludeOutboundCidrs) parseCidr(c, 'excluded outbound CIDR');
  return {
    proxyUids: unique(o.proxyUids.map((u) => checkId(u, 'proxy uid'))),
    proxyGids: unique(o.proxyGids.map((g) => checkId(g, 'proxy gid'))),
    outboundPort,
    inboundPort,
    proxyPorts: unique(o.proxyPorts.map((p) => checkPort(p, 'proxy port'))),
    excludeInboundPorts: unique(o.excludeInboundPorts.map((p) => normalizePortSpec(p, 'excluded inbound port'))),
    excludeOutboundPorts: unique(o.excludeOutboundPorts.map((p) => normalizePortSpec(p, 'excluded outbound port'))),
    excludeOutboundCidrs: unique(o.excludeOutboundCidrs.map((c) => parseCidr(c).cidr)),
    captureInbound: o.captureInbound,
    ipv6: o.ipv6,
  };
}

export function families(o: Pick<CaptureOptions, 'ipv6'>): IpFamily[] {
  return o.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
}

/** The rules of one family, in the order they are added. */
export function buildFamilyRules(o: CaptureOptions, family: IpFamily): IptablesCommand[] {
  const nat = (...args: string[]): IptablesCommand => [BINARY[family], '-t', 'nat', ...args];
  const out: IptablesCommand[] = [];
  out.push(
    nat('-N', CHAINS.redirect),
    nat('-A', CHAINS.redirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.outboundPort)),
  );
  if (o.captureInbound) {
    out.push(
      nat('-N', CHAINS.inRedirect),
      nat('-A', CHAINS.inRedirect, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(o.inboundPort)),
      nat('-N', CHAINS.inbound),
    );
    const keep = unique([
      ...o.proxyPorts.map(String),
      String(o.outboundPort),
      String(o.inboundPort),
      ...o.excludeInboundPorts,
    ]);
    for (const port of keep) out.push(nat('-A', CHAINS.inbound, '-p', 'tcp', '--dport', port, '-j', 'RETURN'));
    out.push(nat('-A', CHAINS.inbound, '-p', 'tcp', '-j', CHAINS.inRedirect));
  }
  out.push(nat('-N', CHAINS.output));
  for (const uid of o.proxyUids)
    out.push(nat('-A', CHAINS.output, '-m', 'owner', '--uid-owner', String(uid), '-j', 'RETURN'));
  for (const gid of o.proxyGids)
    out.push(nat('-A', CHAINS.output, '-m', 'owner', '--gid-owner', String(gid), '-j', 'RETURN'));
  // Everything routed through lo: loopback destinations and the pod's own addresses.
  out.push(nat('-A', CHAINS.output, '-o', 'lo', '-j', 'RETURN'));
  for (const c of o.excludeOutboundCidrs) {
    if (parseCidr(c).family === family) out.push(nat('-A', CHAINS.output, '-d', c, '-j', 'RETURN'));
  }
  for (const port of o.excludeOutboundPorts)
    out.push(nat('-A', CHAINS.output, '-p', 'tcp', '--dport', port, '-j', 'RETURN'));
  out.push(nat('-A', CHAINS.output, '-p', 'tcp', '-j', CHAINS.redirect));
  // Hooks last: no packet meets a chain before it is complete.
  out.push(nat('-A', 'OUTPUT', '-p', 'tcp', '-j', CHAINS.output));
  if (o.captureInbound) out.push(nat('-A', 'PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound));
  return out;
}

/** The whole rule set: IPv4, then IPv6 when enabled. */
export function buildCaptureRules(options: CaptureOptions): IptablesCommand[] {
  return families(options).flatMap((f) => buildFamilyRules(options, f));
}

/** Splits one line of `iptables -S` into arguments (iptables quotes values with spaces in double quotes). */
export function splitRuleLine(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    let arg = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        arg += line[i++];
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') arg += line[i++];
    }
    args.push(arg);
  }
  return args;
}

/**
 * What removes weft's capture from one family's nat table, given its listing (`iptables -t nat -S`): every rule
 * elsewhere that jumps into a WEFT_ chain (whatever else it matches), then the chains' rules, then the chains.
 * Empty when nothing of weft's is there.
 */
export function buildCleanupRules(listing: string, family: IpFamily): IptablesCommand[] {
  const nat = (...args: string[]): IptablesCommand => [BINARY[family], '-t', 'nat', ...args];
  const present: string[] = [];
  const jumps: IptablesCommand[] = [];
  for (const line of listing.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] === '-N' && OUR_CHAINS.has(args[1])) present.push(args[1]);
    if (args[0] !== '-A' || OUR_CHAINS.has(args[1])) continue;
    const target = args[args.indexOf('-j') + 1];
    if (args.includes('-j') && OUR_CHAINS.has(target)) jumps.push(nat('-D', ...args.slice(1)));
  }
  return [...jumps, ...present.map((c) => nat('-F', c)), ...present.map((c) => nat('-X', c))];
}

/** The removal `--dry-run` shows: the hooks and chains weft adds, whether or not they are there. */
export function staticCleanupRules(o: Pick<CaptureOptions, 'ipv6' | 'captureInbound'>): IptablesCommand[] {
  const chains = o.captureInbound ? Object.values(CHAINS) : [CHAINS.output, CHAINS.redirect];
  return families(o).flatMap((family) => {
    const nat = (...args: string[]): IptablesCommand => [BINARY[family], '-t', 'nat', ...args];
    const hooks = [nat('-D', 'OUTPUT', '-p', 'tcp', '-j', CHAINS.output)];
    if (o.captureInbound) hooks.push(nat('-D', 'PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound));
    return [...hooks, ...chains.map((c) => nat('-F', c)), ...chains.map((c) => nat('-X', c))];
  });
}

/** A command as a shell line (quoted where needed), for --dry-run and logs. */
export function formatCommand(cmd: IptablesCommand): string {
  return cmd.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/** A command as a line of `iptables-restore` input for its table: without binary and `-t nat`. */
export function restoreLine(cmd: IptablesCommand): string {
  const args = cmd.slice(1);
  if (args[0] === '-t') args.splice(0, 2);
  return args.map((a) => (/^[^\s"\\]+$/.test(a) ? a : `"${a.replace(/["\\]/g, '\\$&')}"`)).join(' ');
}

/** `iptables-restore --noflush` input applying the nat-table commands in one transaction. */
export function restoreInput(cmds: readonly IptablesCommand[]): string {
  return `*nat\n${cmds.map((c) => `${restoreLine(c)}\n`).join('')}COMMIT\n`;
}

export const RESTORE_BINARY: Readonly<Record<IpFamily, string>> = Object.freeze({
  ipv4: 'iptables-restore',
  ipv6: 'ip6tables-restore',
});

/** Runs argv (with `input` on stdin), resolving to its stdout. */
export type CommandRunner = (argv: readonly string[], input?: string) => Promise<string>;

export const runCommand: CommandRunner = (argv, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: 30_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        return reject(
          new CaptureError(CaptureErrorCode.NoIptables, `${argv[0]} not found (install iptables)`, { cause: err }),
        );
      }
      const why = String(stderr).trim() || err.message;
      reject(
        new CaptureError(CaptureErrorCode.IptablesFailed, `${formatCommand(argv)} failed: ${why}`, { cause: err }),
      );
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });

export interface ApplyOptions {
  /** Print the commands instead of running them; needs neither root nor iptables. */
  dryRun?: boolean;
  /** Each command, before it is applied (or instead, with dryRun). */
  print?: (line: string) => void;
  run?: CommandRunner;
}

function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new CaptureError(
      CaptureErrorCode.NotRoot,
      'changing iptables needs root (CAP_NET_ADMIN); --dry-run does not',
    );
  }
}

/**
 * One family's change as one `iptables-restore --noflush` transaction: the removal of what is there now (read
 * from `iptables -t nat -S`) followed by `then`. All of it applies, or none (a failure changes nothing).
 */
async function replaceFamily(
  family: IpFamily,
  then: readonly IptablesCommand[],
  run: CommandRunner,
  print: (line: string) => void,
): Promise<IptablesCommand[]> {
  const listing = await run([BINARY[family], '-t', 'nat', '-S']);
  const cmds = [...buildCleanupRules(listing, family), ...then];
  if (cmds.length === 0) return cmds;
  for (const cmd of cmds) print(formatCommand(cmd));
  await run([RESTORE_BINARY[family], '--noflush'], restoreInput(cmds));
  return cmds;
}

/**
 * Removes weft's capture (every hook into a WEFT_ chain, and the chains) from the nat table of each family;
 * idempotent. Resolves to the commands applied (or printed, with dryRun).
 */
export async function removeCapture(
  o: Pick<CaptureOptions, 'ipv6' | 'captureInbound'> = DEFAULT_CAPTURE_OPTIONS,
  apply: ApplyOptions = {},
): Promise<IptablesCommand[]> {
  const print = apply.print ?? (() => {});
  if (apply.dryRun) {
    const cmds = staticCleanupRules(o);
    for (const cmd of cmds) print(formatCommand(cmd));
    return cmds;
  }
  assertRoot();
  const run = apply.run ?? runCommand;
  const done: IptablesCommand[] = [];
  for (const family of families(o)) done.push(...(await replaceFamily(family, [], run, print)));
  return done;
}

/**
 * Installs the capture rules, replacing any earlier set, in one transaction per family (no moment without
 * capture, never half a rule set). When IPv6 fails after IPv4 succeeded, IPv4's is removed again, and the
 * CaptureError is rethrown. Resolves to the commands applied (or printed, with dryRun).
 */
export async function installCapture(o: CaptureOptions, apply: ApplyOptions = {}): Promise<IptablesCommand[]> {
  const print = apply.print ?? (() => {});
  if (apply.dryRun) {
    print('# remove an earlier weft rule set (each of these fails harmlessly when it is not there)');
    const cleanup = staticCleanupRules(o);
    for (const cmd of cleanup) print(formatCommand(cmd));
    print('# install');
    const rules = buildCaptureRules(o);
    for (const cmd of rules) print(formatCommand(cmd));
    return [...cleanup, ...rules];
  }
  assertRoot();
  const run = apply.run ?? runCommand;
  const done: IptablesCommand[] = [];
  try {
    for (const family of families(o))
      done.push(...(await replaceFamily(family, buildFamilyRules(o, family), run, print)));
  } catch (err) {
    if (done.length > 0) await removeCapture(o, { run }).catch(() => {});
    throw err;
  }
  return done;
}

// The pods' network of `weft local up --netns` (root only): one bridge on a private range that the command creates
// and removes, one network namespace per pod on it (netns.ts), and in each namespace what a cluster node would give
// the pod — /etc/hosts naming every Service by its ClusterIP (`svc` in the pod's own namespace, `svc.ns`,
// `svc.ns.svc.cluster.local`), and a kube-proxy stand-in: nat OUTPUT DNAT rules from ClusterIP:port to the ready
// endpoints, picked at random. Injected pods first run the same init step as the Kubernetes init container
// (`weft proxy init-iptables`), whose REDIRECT rules come before the Service rules, so the workload's traffic reaches
// its sidecar and only what capture leaves alone (the proxy's own, excluded ports) is DNATed.
//
// Addresses: the bridge takes the range's first host (the pods' gateway, where the control plane listens); pods get
// addresses from the upper half of the range (the materializer's pod pool), so no pod ever gets the gateway's.
// Everything is named with the prefix (default `weft-`): the bridge `<prefix>br`, a pod's namespace
// `<prefix><ns>.<pod>`; `cleanupAll(prefix)` (what `weft local down` runs) finds all of it, also after a crash.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { Pod } from '../resources/types.ts';
import { buildCluster, clusterIPs, serviceHostnames } from '../translate/mesh.ts';
import { LocalError } from './errors.ts';
import {
  type Bridge,
  cleanupAll,
  createBridge,
  createPodNamespace,
  DEFAULT_PREFIX,
  deleteNamespace,
  execInNamespace,
  type HostsEntry,
  isEmpty,
  isRoot,
  type Leftovers,
  listLeftovers,
  NetnsError,
  writeHosts,
} from './netns.ts';

export interface LocalNetnsOptions {
  /**
   * Start of the name of everything made on this machine (namespaces, bridge, host chains, /etc/netns dirs), so
   * `weft local down --prefix` finds it: 3–12 of [a-z0-9-], from a letter. Default `weft-`.
   */
  prefix?: string;
  /** The bridge's private IPv4 range, /8 to /24. Default 10.244.0.0/16. */
  cidr?: string;
  /** Where Service ClusterIPs come from. Default 10.96.0.0/16. */
  serviceCidr?: string;
  /** uid and gid of the sidecars, which capture leaves alone. Default 1337. */
  proxyUid?: number;
}

export const DEFAULT_NETNS_CIDR = '10.244.0.0/16';
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';
export const DEFAULT_PROXY_UID = 1337;
/** The nat chain of the kube-proxy stand-in in every pod namespace. */
export const SERVICES_CHAIN = 'WEFT_LOCAL_SERVICES';
const CLUSTER_DOMAIN = 'cluster.local';
const PREFIX = /^[a-z][a-z0-9-]{2,11}$/;
const NETNS_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** The pod annotations of the capture exclusions (docs/injection.md), handed to init-iptables as they are. */
const EXCLUDE_INBOUND_PORTS = 'weft.dev/exclude-inbound-ports';
const EXCLUDE_OUTBOUND_PORTS = 'weft.dev/exclude-outbound-ports';
const EXCLUDE_OUTBOUND_IPS = 'weft.dev/exclude-outbound-ips';

function ipv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return undefined;
  return m.slice(1).reduce((n, o) => n * 256 + Number(o), 0);
}

const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** The bridge's address, the pods' pool and the Services' pool of a range. */
export function netnsAddressing(cidr: string): { gateway: string; prefixLength: number; podCidr: string } {
  const [address = '', len] = cidr.trim().split('/');
  const base = ipv4(address);
  const prefixLength = len !== undefined && /^\d{1,2}$/.test(len) ? Number(len) : Number.NaN;
  if (base === undefined || !(prefixLength >= 8 && prefixLength <= 24)) {
    throw new LocalError('WEFT_ERR_LOCAL_INPUT', `--netns-cidr ${cidr}: expected an IPv4 range from /8 to /24`);
  }
  const size = 2 ** (32 - prefixLength);
  const network = base - (base % size);
  return {
    gateway: dotted(network + 1),
    prefixLength,
    podCidr: `${dotted(network + size / 2)}/${prefixLength + 1}`,
  };
}

/** An IPv4 range as [first, size]; throws LocalError naming `flag` when it is not one. */
function range(cidr: string, flag: string): [number, number] {
  const [address = '', len] = cidr.trim().split('/');
  const base = ipv4(address);
  const bits = len !== undefined && /^\d{1,2}$/.test(len) ? Number(len) : Number.NaN;
  const size = 2 ** (32 - bits);
  if (base === undefined || !(bits >= 8 && bits <= 30) || base % size !== 0) {
    throw new LocalError('WEFT_ERR_LOCAL_INPUT', `${flag} ${cidr}: expected an IPv4 network address/prefix, /8 to /30`);
  }
  return [base, size];
}

export function assertNetnsRoot(): void {
  if (!isRoot()) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_NOT_ROOT',
      'weft local up --netns needs root (network namespaces, veth links, iptables); run it as root, or without --netns',
    );
  }
}

export function checkNetnsPrefix(prefix: string): void {
  if (!PREFIX.test(prefix)) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_INPUT',
      `--netns-prefix ${JSON.stringify(prefix)}: 3 to 12 of [a-z0-9-], starting with a letter (names are short on Linux)`,
    );
  }
}

/** The network namespace of pod `namespace/name`. */
export function podNamespaceName(prefix: string, key: string): string {
  const name = `${prefix}${key.replace('/', '.')}`;
  if (NETNS_NAME.test(name)) return name;
  return `${prefix}${createHash('sha1').update(key).digest('hex').slice(0, 12)}`;
}

/** `weft proxy init-iptables …` for a pod: the ports of its sidecar's config, its exclusion annotations. */
export function initIptablesArgs(config: ProxyConfig, pod: Pod | undefined, proxyUid: number): string[] {
  const port = (kind: string, fallback: number) => config.listeners.find((l) => l.kind === kind)?.port ?? fallback;
  const a = pod?.metadata.annotations ?? {};
  const inbound = [String(config.admin.port), String(port('mesh', 15008))];
  if (a[EXCLUDE_INBOUND_PORTS]) inbound.push(a[EXCLUDE_INBOUND_PORTS]);
  const args = ['proxy', 'init-iptables', '--proxy-uid', String(proxyUid), '--proxy-gid', String(proxyUid)];
  args.push('--outbound-port', String(port('outbound', 15001)), '--inbound-port', String(port('inbound', 15006)));
  args.push('--exclude-inbound-ports', inbound.join(','));
  if (a[EXCLUDE_OUTBOUND_PORTS]) args.push('--exclude-outbound-ports', a[EXCLUDE_OUTBOUND_PORTS]);
  if (a[EXCLUDE_OUTBOUND_IPS]) args.push('--exclude-outbound-cidrs', a[EXCLUDE_OUTBOUND_IPS]);
  return args;
}

/** Hosts entries of a pod in namespace `ns`: every Service with a ClusterIP, short names for its own namespace. */
export function serviceHosts(snapshot: ResourceSnapshot, ns: string): HostsEntry[] {
  const byAddress = new Map<string, string[]>();
  for (const svc of snapshot.list('Service')) {
    const [ip] = clusterIPs(svc).filter((x) => ipv4(x) !== undefined);
    if (!ip) continue;
    const names = byAddress.get(ip) ?? [];
    names.push(...serviceHostnames(svc, ns, CLUSTER_DOMAIN));
    byAddress.set(ip, names);
  }
  return [...byAddress]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([address, names]) => ({ address, names }));
}

/**
 * The kube-proxy stand-in's chains as `iptables-restore --noflush` input (declaring a chain empties it). nat: one
 * DNAT rule per ready endpoint of each Service port, each taken with probability 1/(endpoints left), so the choice
 * is uniform. filter: what is still addressed to the Service range after nat (no endpoint, a port the Service does
 * not have) is refused at once, as kube-proxy refuses it, instead of timing out. `hook` adds the jumps from OUTPUT
 * (once; in nat after the capture's own hook, so captured traffic never gets here).
 */
export function serviceRules(snapshot: ResourceSnapshot, serviceCidr: string, hook: boolean): string {
  const lines = ['*nat', `:${SERVICES_CHAIN} - [0:0]`];
  for (const svc of snapshot.list('Service')) {
    const [ip] = clusterIPs(svc).filter((x) => ipv4(x) !== undefined);
    if (!ip) continue;
    for (const port of svc.spec.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const cluster = buildCluster(
        { snapshot, trustDomain: CLUSTER_DOMAIN, meshPort: 0, meshedPods: new Map() },
        { key: '', service: svc, port },
      );
      const ready = cluster.endpoints.filter((e) => e.ready !== false && ipv4(e.address) !== undefined);
      const match = `-A ${SERVICES_CHAIN} -d ${ip}/32 -p tcp -m tcp --dport ${port.port}`;
      ready.forEach((e, i) => {
        const left = ready.length - i;
        const random = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
        lines.push(`${match}${random} -j DNAT --to-destination ${e.address}:${e.port}`);
      });
    }
  }
  if (hook) lines.push(`-A OUTPUT -p tcp -j ${SERVICES_CHAIN}`);
  lines.push('COMMIT', '*filter', `:${SERVICES_CHAIN} - [0:0]`);
  lines.push(`-A ${SERVICES_CHAIN} -d ${serviceCidr} -p tcp -j REJECT --reject-with tcp-reset`);
  if (hook) lines.push(`-A OUTPUT -p tcp -j ${SERVICES_CHAIN}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

interface PodNet {
  /** The pod's Kubernetes namespace (short Service names) and name. */
  namespace: string;
  name: string;
  ip: string;
  hosts?: string;
  rules?: string;
  /** Changes to this namespace, one at a time. */
  queue: Promise<void>;
}

const hostsKey = (entries: readonly HostsEntry[]) => JSON.stringify(entries);

export class PodNetwork {
  readonly prefix: string;
  readonly bridge: Bridge;
  /** The pods' pool, what the materializer hands pod IPs out from. */
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly cidr: string;
  readonly proxyUid: number;
  readonly #pods = new Map<string, PodNet>();
  #snapshot: ResourceSnapshot | undefined;

  private constructor(o: Required<LocalNetnsOptions>, bridge: Bridge, podCidr: string) {
    this.prefix = o.prefix;
    this.cidr = o.cidr;
    this.serviceCidr = o.serviceCidr;
    this.proxyUid = o.proxyUid;
    this.bridge = bridge;
    this.podCidr = podCidr;
  }

  /** Checks root and the prefix, refuses leftovers of an earlier run, and creates the bridge. */
  static async create(options: LocalNetnsOptions = {}): Promise<PodNetwork> {
    const o: Required<LocalNetnsOptions> = {
      prefix: DEFAULT_PREFIX,
      cidr: DEFAULT_NETNS_CIDR,
      serviceCidr: DEFAULT_SERVICE_CIDR,
      proxyUid: DEFAULT_PROXY_UID,
      ...options,
    };
    assertNetnsRoot();
    checkNetnsPrefix(o.prefix);
    const { gateway, prefixLength, podCidr } = netnsAddressing(o.cidr);
    const network = ipv4(gateway)! - 1;
    const size = 2 ** (32 - prefixLength);
    const [services, serviceSize] = range(o.serviceCidr, '--netns-service-cidr');
    if (network < services + serviceSize && services < network + size) {
      throw new LocalError(
        'WEFT_ERR_LOCAL_INPUT',
        `--netns-service-cidr ${o.serviceCidr} overlaps the pods' range ${o.cidr}: Service addresses must be apart`,
      );
    }
    const left = await listLeftovers(o.prefix);
    if (!isEmpty(left)) {
      throw new LocalError(
        'WEFT_ERR_LOCAL_LEFTOVERS',
        `${describeLeftovers(left)} under prefix ${o.prefix} are left from an earlier run (or another one is running ` +
          `with this prefix): stop it, or remove them with "weft local down --prefix ${o.prefix}"`,
      );
    }
    try {
      const bridge = await createBridge(`${o.prefix}br`, `${gateway}/${prefixLength}`);
      return new PodNetwork(o, bridge, podCidr);
    } catch (err) {
      if (err instanceof NetnsError && err.code === 'WEFT_ERR_NETNS_ADDRESS') {
        throw new LocalError('WEFT_ERR_LOCAL_INPUT', `${err.message}; pick another with --netns-cidr`, { cause: err });
      }
      throw err;
    }
  }

  /** The control plane's address as pods reach it: the bridge's own. */
  get gateway(): string {
    return this.bridge.address;
  }

  contains(ip: string): boolean {
    const [base, len] = this.podCidr.split('/');
    const n = ipv4(ip);
    const size = 2 ** (32 - Number(len));
    return n !== undefined && n >= ipv4(base)! && n < ipv4(base)! + size;
  }

  namespaceOf(key: string): string {
    return podNamespaceName(this.prefix, key);
  }

  /**
   * Creates the namespace of pod `key` with its hosts file and Service rules; `init` (the capture init step, a
   * command line run inside it) runs first when given, as an init container runs before the pod's others.
   */
  async addPod(key: string, ip: string, init?: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
    const ns = this.namespaceOf(key);
    const [namespace, name] = key.split('/');
    const pod: PodNet = { namespace, name, ip, queue: Promise.resolve() };
    this.#pods.set(ns, pod);
    pod.queue = (async () => {
      const entries = this.#hostsFor(pod);
      const cidr = `${ip}/${this.bridge.prefixLength}`;
      await createPodNamespace({ name: ns, ip: cidr, bridge: this.bridge, hosts: entries });
      pod.hosts = hostsKey(entries);
      if (init) {
        const r = await execInNamespace(ns, init, { timeoutMs: 30_000, env });
        if (r.code !== 0) {
          const why = r.stderr.trim().split('\n').slice(-3).join(' ');
          throw new LocalError(
            'WEFT_ERR_LOCAL_NETNS',
            `pod ${key}: the capture init step failed (${r.code ?? r.signal}): ${why}`,
          );
        }
      }
      await this.#applyRules(ns, pod);
    })();
    await pod.queue;
    return ns;
  }

  /** Kills what runs in the pod's namespace and removes it. */
  async removePod(key: string): Promise<void> {
    const ns = this.namespaceOf(key);
    const pod = this.#pods.get(ns);
    this.#pods.delete(ns);
    await pod?.queue.catch(() => {});
    await deleteNamespace(ns);
  }

  /**
   * Brings every pod's hosts file and Service rules up to `snapshot`. Resolves to what failed, one line per pod (the
   * others are updated all the same; a failed pod is tried again on the next sync).
   */
  async sync(snapshot: ResourceSnapshot): Promise<string[]> {
    this.#snapshot = snapshot;
    const failed: string[] = [];
    await Promise.all(
      [...this.#pods].map(([ns, pod]) => {
        pod.queue = pod.queue
          .catch(() => {})
          .then(async () => {
            const entries = this.#hostsFor(pod);
            const key = hostsKey(entries);
            if (key !== pod.hosts) {
              await writeHosts(ns, entries);
              pod.hosts = key;
            }
            await this.#applyRules(ns, pod);
          });
        return pod.queue.catch((err: Error) => {
          failed.push(`pod ${pod.namespace}/${pod.name}: ${err.message}`);
        });
      }),
    );
    return failed;
  }

  #hostsFor(pod: PodNet): HostsEntry[] {
    const own = { address: pod.ip, names: [pod.name] };
    return [own, ...(this.#snapshot ? serviceHosts(this.#snapshot, pod.namespace) : [])];
  }

  async #applyRules(ns: string, pod: PodNet): Promise<void> {
    if (!this.#snapshot) return;
    const rules = serviceRules(this.#snapshot, this.serviceCidr, false);
    if (rules === pod.rules) return;
    const r = await execInNamespace(ns, ['iptables-restore', '--noflush'], {
      input: pod.rules === undefined ? serviceRules(this.#snapshot, this.serviceCidr, true) : rules,
    });
    if (r.code !== 0) {
      throw new LocalError(
        'WEFT_ERR_LOCAL_NETNS',
        `pod ${pod.namespace}/${pod.name}: Service rules: ${r.stderr.trim()}`,
      );
    }
    pod.rules = rules;
  }

  /** Removes everything under the prefix (namespaces and what runs in them, the bridge, chains, hosts files). */
  async close(): Promise<Leftovers> {
    this.#pods.clear();
    return cleanupAll(this.prefix);
  }
}

/**
 * Throws unless user `uid` (a sidecar) may pass through every directory above `file` (the state dir itself is made
 * searchable by the mesh). Directories not made yet are skipped: they are created searchable.
 */
export async function assertSearchable(file: string, uid: number): Promise<void> {
  const resolved = path.resolve(file);
  for (let dir = path.dirname(resolved); ; dir = path.dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    const ok =
      !st ||
      (st.mode & 0o001) !== 0 ||
      (st.uid === uid && (st.mode & 0o100) !== 0) ||
      (st.gid === uid && (st.mode & 0o010) !== 0);
    if (!ok) {
      throw new LocalError(
        'WEFT_ERR_LOCAL_INPUT',
        `sidecars run as uid ${uid} and must reach ${resolved}, but ${dir} is closed to other users ` +
          `(mode ${(st!.mode & 0o777).toString(8)}): chmod o+x ${dir}, or use a --state-dir elsewhere`,
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

export function describeLeftovers(l: Leftovers): string {
  const parts: string[] = [];
  const add = (n: number, what: string) => n > 0 && parts.push(`${n} ${what}`);
  add(l.namespaces.length, 'network namespace(s)');
  add(l.links.length, 'link(s)');
  add(l.chains.length, 'iptables chain(s)');
  add(l.etcDirs.length, '/etc/netns dir(s)');
  add(l.pids.length, 'process(es)');
  return parts.join(', ') || 'nothing';
}

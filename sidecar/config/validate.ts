// The validator of the ProxyConfig contract. A proxy runs it on every config it is given and
// applies a config only when it passes whole; the control plane may run it on what it produces.
// Three steps: the apiVersion (an unknown one is a different contract, not a broken config), the
// zod schema, then the rules a schema cannot say — references between sections and semantic
// constraints — collecting every issue so one push reports everything wrong with it. Single pass
// over the config with maps: it has to stay fast at 10,000 routes.
import { ConfigError, type ConfigIssue, ConfigVersionError } from './errors.ts';
import {
  type Filters,
  PROXY_CONFIG_VERSION,
  type ProxyConfig,
  ProxyConfigSchema,
  type Route,
  RouteSchema,
  type RouteTable,
} from './proxy-config.ts';
import { regexProblem } from './regex.ts';

export type { ConfigIssue } from './errors.ts';

/** The apiVersions this proxy accepts (newest first). */
export const SUPPORTED_PROXY_CONFIG_VERSIONS: readonly string[] = [PROXY_CONFIG_VERSION];

export type ProxyConfigValidation = { ok: true; config: ProxyConfig } | { ok: false; issues: ConfigIssue[] };

/** Check a ProxyConfig; on success `config` has the schema's defaults applied. */
export function validateProxyConfig(input: unknown): ProxyConfigValidation {
  const result = check(input);
  return result.ok ? result : { ok: false, issues: result.issues };
}

/** The config, defaults applied; throws ConfigVersionError for an unknown apiVersion, ConfigError otherwise. */
export function parseProxyConfig(input: unknown): ProxyConfig {
  const result = check(input);
  if (result.ok) return result.config;
  throw result.versionError ?? new ConfigError(result.issues);
}

/**
 * Schema issues of one route on its own (paths relative to the route). The translator runs it on
 * every route it compiles, so a value the proxy would refuse is reported in that route's status
 * instead of making a whole ProxyConfig invalid.
 */
export function routeIssues(route: unknown): ConfigIssue[] {
  const parsed = RouteSchema.safeParse(route, { reportInput: true });
  return parsed.success ? [] : parsed.error.issues.flatMap(fromZodIssue);
}

type CheckResult =
  | { ok: true; config: ProxyConfig }
  | { ok: false; issues: ConfigIssue[]; versionError?: ConfigVersionError };

function check(input: unknown): CheckResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, issues: [{ path: ROOT, reason: 'must be an object (a ProxyConfig document)' }] };
  }
  const apiVersion = (input as { apiVersion?: unknown }).apiVersion;
  if (typeof apiVersion === 'string' && !SUPPORTED_PROXY_CONFIG_VERSIONS.includes(apiVersion)) {
    const versionError = new ConfigVersionError(apiVersion, SUPPORTED_PROXY_CONFIG_VERSIONS);
    return { ok: false, issues: [{ path: 'apiVersion', reason: versionError.message }], versionError };
  }
  const parsed = ProxyConfigSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) return { ok: false, issues: parsed.error.issues.flatMap(fromZodIssue) };
  const issues = semanticIssues(parsed.data);
  return issues.length === 0 ? { ok: true, config: parsed.data } : { ok: false, issues };
}

// ---- zod issues → ConfigIssue -------------------------------------------------------------

const ROOT = '(root)';
const RECORD_FIELDS = new Set(['routeTables', 'clusters', 'tlsCertificates']);
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `routeTables["shop/web:80"].virtualHosts[0]`: record keys bracket-quoted, `[i]` for arrays. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return ROOT;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && IDENTIFIER.test(seg) && !(i === 1 && RECORD_FIELDS.has(path[0] as string))) {
      out += i === 0 ? seg : `.${seg}`;
    } else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

interface ZodIssueLike {
  code: string;
  path: PropertyKey[];
  message: string;
  input?: unknown;
  expected?: string;
  keys?: string[];
  note?: string;
  discriminator?: string;
  options?: unknown[];
  errors?: ZodIssueLike[][];
  issues?: ZodIssueLike[];
}

function fromZodIssue(raw: unknown): ConfigIssue[] {
  const issue = raw as ZodIssueLike;
  if (issue.code === 'unrecognized_keys') {
    return (issue.keys ?? []).map((key) => ({ path: formatPath([...issue.path, key]), reason: 'unknown field' }));
  }
  return [{ path: formatPath(issue.path), reason: zodReason(issue) }];
}

function zodReason(issue: ZodIssueLike): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? `required (${issue.expected})`
        : `expected ${issue.expected}, got ${describe(issue.input)}`;
    case 'invalid_union': {
      if (issue.note === 'No matching discriminator') {
        const options = (issue.options ?? []).map((o) => JSON.stringify(o)).join(', ');
        const given = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator ?? ''];
        return given === undefined ? `required (one of ${options})` : `must be one of ${options}`;
      }
      if (issue.message !== 'Invalid input') return issue.message;
      const branches = new Set((issue.errors ?? []).flat().map((e) => zodReason(e)));
      return [...branches].join(' or ') || 'matches none of the allowed forms';
    }
    case 'invalid_key':
      return `invalid key: ${(issue.issues ?? []).map((e) => zodReason(e)).join('; ')}`;
    default:
      if (issue.input === undefined && issue.code === 'invalid_value') return `required (${plain(issue.message)})`;
      return plain(issue.message);
  }
}

/** zod's default messages start "Invalid input: " / "Too big: "; keep what follows, lower-cased. */
function plain(message: string): string {
  const m = /^(?:Invalid input|Invalid option): (.*)$/s.exec(message);
  const text = m ? m[1] : message;
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

// ---- cross-reference and semantic rules ---------------------------------------------------

const q = (s: string) => JSON.stringify(s);

function semanticIssues(config: ProxyConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (path: string, reason: string) => {
    issues.push({ path, reason });
  };
  const { proxy, trust } = config;

  const expectedId = `${proxy.mode}:${proxy.namespace}/${proxy.name}`;
  if (proxy.id !== expectedId) {
    add('proxy.id', `must be ${q(expectedId)} (from proxy.mode, proxy.namespace and proxy.name)`);
  }
  const trustPrefix = `spiffe://${trust.trustDomain}/`;
  const checkIdentity = (path: string, id: string | undefined) => {
    if (id !== undefined && !id.startsWith(trustPrefix)) {
      add(path, `must be in trust domain ${q(trust.trustDomain)} (${trustPrefix}…)`);
    }
  };
  checkIdentity('proxy.identity', proxy.identity);

  const hasRouteTable = (key: string) => Object.hasOwn(config.routeTables, key);
  const hasCluster = (key: string) => Object.hasOwn(config.clusters, key);
  const hasCertificate = (key: string) => Object.hasOwn(config.tlsCertificates, key);

  // Listeners.
  const listenerNames = new Map<string, number>();
  const bound = new Map<number, { address: string; index: number }[]>();
  config.listeners.forEach((listener, li) => {
    const lp = `listeners[${li}]`;
    const sameName = listenerNames.get(listener.name);
    if (sameName === undefined) listenerNames.set(listener.name, li);
    else add(`${lp}.name`, `duplicate listener name ${q(listener.name)} (also listeners[${sameName}])`);

    if (proxy.mode === 'edge' && listener.kind !== 'gateway') {
      add(`${lp}.kind`, `an edge proxy has only gateway listeners, not ${q(listener.kind)}`);
    } else if (proxy.mode === 'sidecar' && listener.kind === 'gateway') {
      add(`${lp}.kind`, 'a sidecar proxy has no gateway listeners');
    }

    const address = normalizeIP(listener.address);
    if (listener.port === config.admin.port) {
      add(`${lp}.port`, `port ${listener.port} is the admin port (admin.port)`);
    }
    const onPort = bound.get(listener.port) ?? [];
    for (const other of onPort) {
      const name = q(config.listeners[other.index].name);
      if (other.address === address) {
        add(
          `${lp}.port`,
          `${hostPort(address, listener.port)} is already bound by listeners[${other.index}] (${name})`,
        );
      } else if (overlaps(address, other.address)) {
        add(
          `${lp}.port`,
          `${hostPort(address, listener.port)} overlaps ${hostPort(other.address, listener.port)} of listeners[${other.index}] (${name}): a wildcard address takes the port on every address`,
        );
      }
    }
    onPort.push({ address, index: li });
    bound.set(listener.port, onPort);

    if (listener.kind === 'outbound') {
      // Outbound traffic is routed by destination ClusterIP or Host: each must name one Service.
      const hostOwner = new Map<string, number>();
      const ipOwner = new Map<string, number>();
      listener.services.forEach((service, si) => {
        const sp = `${lp}.services[${si}]`;
        const owner = (map: Map<string, number>, value: string, what: string, path: string) => {
          const first = map.get(value);
          if (first === undefined) map.set(value, si);
          else if (first !== si) {
            const claimant = q(listener.services[first].service);
            add(path, `${what} ${q(value)} is also claimed by services[${first}] (${claimant})`);
          }
        };
        service.hostnames.forEach((h, hi) => {
          owner(hostOwner, h, 'hostname', `${sp}.hostnames[${hi}]`);
        });
        service.clusterIPs.forEach((ip, ii) => {
          owner(ipOwner, normalizeIP(ip), 'ClusterIP', `${sp}.clusterIPs[${ii}]`);
        });
        const ports = new Map<number, number>();
        service.ports.forEach((port, pi) => {
          const pp = `${sp}.ports[${pi}]`;
          const first = ports.get(port.port);
          if (first === undefined) ports.set(port.port, pi);
          else add(`${pp}.port`, `duplicate port ${port.port} in this service (also ports[${first}])`);
          if (!hasRouteTable(port.routeTable)) add(`${pp}.routeTable`, `unknown route table ${q(port.routeTable)}`);
        });
      });
      // Passthrough to a pod IP: one identity per address, in the mesh's trust domain.
      const podOwner = new Map<string, number>();
      listener.meshedPods?.forEach((pod, pi) => {
        const pp = `${lp}.meshedPods[${pi}]`;
        const address = normalizeIP(pod.address);
        const first = podOwner.get(address);
        if (first === undefined) podOwner.set(address, pi);
        else add(`${pp}.address`, `address ${q(pod.address)} is also meshedPods[${first}]'s`);
        checkIdentity(`${pp}.identity`, pod.identity);
      });
    } else if (listener.kind === 'gateway') {
      const hostnames = new Map<string, number>();
      listener.hosts.forEach((host, hi) => {
        const hp = `${lp}.hosts[${hi}]`;
        const first = hostnames.get(host.hostname ?? '');
        if (first === undefined) hostnames.set(host.hostname ?? '', hi);
        else if (host.hostname === undefined) {
          add(
            `${hp}.hostname`,
            `more than one host without a hostname (any host) on this listener (also hosts[${first}])`,
          );
        } else {
          add(`${hp}.hostname`, `duplicate hostname ${q(host.hostname)} on this listener (also hosts[${first}])`);
        }
        if (!hasRouteTable(host.routeTable)) add(`${hp}.routeTable`, `unknown route table ${q(host.routeTable)}`);
        if (listener.protocol === 'HTTPS' && host.certificates.length === 0) {
          add(`${hp}.certificates`, 'an HTTPS listener host needs at least one certificate');
        } else if (listener.protocol === 'HTTP' && host.certificates.length > 0) {
          add(`${hp}.certificates`, 'an HTTP listener host takes no certificates');
        }
        host.certificates.forEach((cert, ci) => {
          if (!hasCertificate(cert))
            add(`${hp}.certificates[${ci}]`, `unknown TLS certificate ${q(cert)} (not in tlsCertificates)`);
        });
      });
    }
  });

  // Route tables. Identical regexes are common (one per route of a split): check each source once.
  const regexChecked = new Map<string, string | undefined>();
  const checkRegex = (path: string, source: string) => {
    let problem = regexChecked.get(source);
    if (problem === undefined && !regexChecked.has(source)) {
      problem = regexProblem(source);
      regexChecked.set(source, problem);
    }
    if (problem !== undefined) add(path, problem);
  };
  const checkFilters = (filters: Filters, fp: string, route: Route) => {
    const pathType = route.match.path?.type;
    for (const [kind, modifier] of [
      ['redirect', filters.redirect],
      ['rewrite', filters.rewrite],
    ] as const) {
      if (modifier?.path?.type === 'ReplacePrefixMatch' && pathType !== 'PathPrefix') {
        add(
          `${fp}.${kind}.path.type`,
          `ReplacePrefixMatch requires the route's match.path.type to be PathPrefix (it is ${pathType ?? 'absent'})`,
        );
      }
    }
    if (filters.redirect && filters.rewrite) add(`${fp}.rewrite`, 'a redirect and a rewrite cannot be combined');
    filters.mirrors.forEach((mirror, mi) => {
      if (!hasCluster(mirror.cluster)) add(`${fp}.mirrors[${mi}].cluster`, `unknown cluster ${q(mirror.cluster)}`);
    });
  };
  const checkRoute = (route: Route, rp: string) => {
    const { match } = route;
    if (match.path) {
      if (match.path.type === 'RegularExpression') checkRegex(`${rp}.match.path.value`, match.path.value);
      else {
        const problem = pathValueProblem(match.path.value);
        if (problem !== undefined) add(`${rp}.match.path.value`, `a ${match.path.type} path ${problem}`);
      }
    }
    match.headers.forEach((h, hi) => {
      if (h.type === 'RegularExpression') checkRegex(`${rp}.match.headers[${hi}].value`, h.value);
    });
    match.queryParams.forEach((p, pi) => {
      if (p.type === 'RegularExpression') checkRegex(`${rp}.match.queryParams[${pi}].value`, p.value);
    });
    checkFilters(route.filters, `${rp}.filters`, route);
    route.backends.forEach((backend, bi) => {
      const bp = `${rp}.backends[${bi}]`;
      if (backend.cluster !== null && !hasCluster(backend.cluster)) {
        add(`${bp}.cluster`, `unknown cluster ${q(backend.cluster)}`);
      }
      if (backend.filters) checkFilters(backend.filters, `${bp}.filters`, route);
    });
    if (route.filters.redirect && route.backends.length > 0) {
      add(`${rp}.backends`, 'a route with a redirect filter has no backends');
    }
    if (route.backends.length === 0 && !route.filters.redirect && !route.directResponse) {
      add(rp, 'a route needs backends, a redirect filter or a directResponse');
    }
    const t = route.timeouts;
    if (t?.request && t.backendRequest !== undefined && t.backendRequest > t.request) {
      add(`${rp}.timeouts.backendRequest`, `must not be longer than timeouts.request (${t.request} ms)`);
    }
  };
  for (const [key, table] of Object.entries(config.routeTables) as [string, RouteTable][]) {
    const tp = `routeTables[${q(key)}]`;
    const domainOwner = new Map<string, number>();
    table.virtualHosts.forEach((vhost, vi) => {
      const vp = `${tp}.virtualHosts[${vi}]`;
      vhost.domains.forEach((domain, di) => {
        const first = domainOwner.get(domain);
        if (first === undefined) domainOwner.set(domain, vi);
        else if (first !== vi)
          add(`${vp}.domains[${di}]`, `domain ${q(domain)} is already served by virtualHosts[${first}]`);
      });
      vhost.routes.forEach((route, ri) => {
        checkRoute(route, `${vp}.routes[${ri}]`);
      });
    });
  }

  // Clusters.
  for (const [key, cluster] of Object.entries(config.clusters)) {
    cluster.endpoints.forEach((endpoint, ei) => {
      const ep = `clusters[${q(key)}].endpoints[${ei}]`;
      if (endpoint.identity === undefined) return;
      if (endpoint.meshPort === undefined) {
        add(`${ep}.meshPort`, "required when identity is set (mTLS goes to the peer proxy's mesh port)");
      }
      checkIdentity(`${ep}.identity`, endpoint.identity);
    });
  }
  return issues;
}

// Gateway API HTTPPathMatch rules for Exact and PathPrefix values: the proxy matches requests in
// normal form, so a configured value must already be one (and `%00` is refused like in requests).
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;

/** Why an Exact/PathPrefix match value is not acceptable, or undefined; the translator reports it in route status. */
export function pathValueProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return 'must start with "/"';
  if (!PATH_CHARS.test(value)) return 'may contain only RFC 3986 path characters and %-escapes';
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '%00']) {
    if (value.includes(bad)) return `must not contain ${q(bad)}`;
  }
  if (value.endsWith('/.') || value.endsWith('/..')) return 'must not end with a "." or ".." segment';
  return undefined;
}

/** One spelling per address, so `::1` and `0:0:0:0:0:0:0:1` collide. */
function normalizeIP(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

/** Node listens dual-stack on `::`, so it takes the port on every address; `0.0.0.0` on every IPv4 one. */
function overlaps(a: string, b: string): boolean {
  if (a === '::' || b === '::') return true;
  const v4 = (x: string) => !x.includes(':');
  return (a === '0.0.0.0' && v4(b)) || (b === '0.0.0.0' && v4(a));
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

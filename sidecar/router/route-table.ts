// A RouteTable compiled once into lookup structures: exact-host map, wildcard suffixes longest
// first, a `*` fallback; per virtual host its routes in the order given (the control plane
// sorted them by Gateway API precedence: the first that matches wins) with prebuilt RegExps
// and lowercased header names. Matching a request allocates nothing unless a route matches on
// query parameters (they are parsed once, lazily) or a header is repeated.
import type { Route, RouteTable, StringMatch } from '../config/proxy-config.ts';
import { compileMatchRegex } from '../config/regex.ts';
import { ConfigCompileError } from '../errors.ts';
import { type CompiledFilters, compileFilters } from '../filters/compiled-filters.ts';
import { trimPrefix } from '../filters/path-modifier.ts';
import { NONE, RouteLabels } from '../metrics.ts';
import { cumulativeWeights } from '../upstream/balancer.ts';
import type { CompiledCluster } from '../upstream/cluster.ts';
import { normalizePath } from './path.ts';
import { headerValue, parseQuery, type RequestFacts } from './request-facts.ts';

const PATH_ANY = 0;
const PATH_EXACT = 1;
const PATH_PREFIX = 2;
const PATH_REGEX = 3;

export interface CompiledStringMatch {
  /** Header names lowercased; query parameter names as given (they are case-sensitive). */
  readonly name: string;
  readonly exact: string | undefined;
  readonly regex: RegExp | undefined;
}

export interface CompiledBackend {
  readonly cluster: CompiledCluster | null;
  readonly weight: number;
  /** The answer for an unresolved backend (`cluster: null`). */
  readonly status: number;
  readonly reason: string | undefined;
  readonly filters: CompiledFilters | undefined;
  /** Metric labels of requests sent (or answered) through this backend. */
  readonly labels: RouteLabels;
}

export interface CompiledRetry {
  readonly codes: ReadonlySet<number>;
  readonly attempts: number;
  readonly backoffMs: number;
}

export interface CompiledRoute {
  readonly source: Route;
  /** `namespace/name#rule` (or `#ruleName`), for logs and metrics. */
  readonly id: string;
  readonly pathKind: number;
  /** Exact: the normalised path. Prefix: the normalised prefix without trailing slashes ('' for `/`). */
  readonly pathValue: string;
  readonly pathRegex: RegExp | undefined;
  /** The trimmed PathPrefix, for ReplacePrefixMatch; undefined for other path matches. */
  readonly prefix: string | undefined;
  readonly method: string | undefined;
  readonly headers: readonly CompiledStringMatch[];
  readonly queryParams: readonly CompiledStringMatch[];
  readonly filters: CompiledFilters | undefined;
  readonly backends: readonly CompiledBackend[];
  readonly cumulativeWeights: readonly number[];
  /** 0 = none. */
  readonly requestTimeoutMs: number;
  readonly backendRequestTimeoutMs: number;
  readonly retry: CompiledRetry | undefined;
  readonly directResponse: { readonly status: number; readonly body: string | undefined } | undefined;
  /** Metric labels of requests this route answers before choosing a backend (redirects, direct responses). */
  readonly labels: RouteLabels;
}

export interface CompiledVirtualHost {
  readonly domains: readonly string[];
  readonly routes: readonly CompiledRoute[];
  /** For long route lists: candidates by path, so a lookup does not test every route. */
  readonly index: RouteIndex | undefined;
}

/**
 * Route positions by what their path match can match: Exact routes under their path, PathPrefix
 * routes under their trimmed prefix, the rest (RegularExpression, no path) always candidates.
 * Every list is in route order; the lookup takes the lowest matching position over the lists a
 * path selects, which is the first match of the full list — precedence is preserved.
 */
export interface RouteIndex {
  readonly exact: ReadonlyMap<string, readonly number[]>;
  readonly prefix: ReadonlyMap<string, readonly number[]>;
  readonly rest: readonly number[];
}

/** Below this many routes a straight scan is as fast as the index. */
const INDEX_THRESHOLD = 32;

/** Envoy's default pause between retries when the rule names none. */
const DEFAULT_RETRY_BACKOFF_MS = 25;

function compileRegex(source: string, where: string): RegExp {
  let re: RegExp;
  try {
    re = compileMatchRegex(source);
  } catch (err) {
    throw new ConfigCompileError(`${where}: ${(err as Error).message}`, { cause: err });
  }
  // A global or sticky RegExp carries lastIndex from one test() to the next.
  return re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
}

/** First entry of each name counts; later entries with an equivalent name are ignored (Gateway API). */
function compileStringMatches(matches: readonly StringMatch[], lowerNames: boolean, where: string) {
  const seen = new Set<string>();
  const out: CompiledStringMatch[] = [];
  matches.forEach((m, i) => {
    const name = lowerNames ? m.name.toLowerCase() : m.name;
    if (seen.has(name)) return;
    seen.add(name);
    out.push(
      m.type === 'Exact'
        ? { name, exact: m.value, regex: undefined }
        : { name, exact: undefined, regex: compileRegex(m.value, `${where}[${i}]`) },
    );
  });
  return out;
}

function compileRoute(route: Route, clusters: ReadonlyMap<string, CompiledCluster>, where: string): CompiledRoute {
  let pathKind = PATH_ANY;
  let pathValue = '';
  let pathRegex: RegExp | undefined;
  let prefix: string | undefined = '';
  const path = route.match.path;
  if (path) {
    if (path.type === 'RegularExpression') {
      pathKind = PATH_REGEX;
      pathRegex = compileRegex(path.value, `${where}.match.path`);
      prefix = undefined;
    } else {
      // Requests are matched in normal form, so the configured value must be in it too.
      const normal = normalizePath(path.value);
      if (normal === null)
        throw new ConfigCompileError(`${where}.match.path: ${JSON.stringify(path.value)} is not a valid path`);
      if (path.type === 'Exact') {
        pathKind = PATH_EXACT;
        pathValue = normal;
        prefix = undefined;
      } else {
        pathKind = PATH_PREFIX;
        pathValue = trimPrefix(normal);
        prefix = pathValue;
      }
    }
  }
  const rule = route.ruleName ?? String(route.rule);
  const backends = route.backends.map((b, i): CompiledBackend => {
    let cluster: CompiledCluster | null = null;
    if (b.cluster !== null) {
      const found = clusters.get(b.cluster);
      if (!found)
        throw new ConfigCompileError(`${where}.backends[${i}]: cluster ${JSON.stringify(b.cluster)} does not exist`);
      cluster = found;
    }
    return {
      cluster,
      weight: b.weight,
      status: b.status ?? 500,
      reason: b.reason,
      filters: compileFilters(b.filters, clusters, `${where}.backends[${i}].filters`),
      labels: new RouteLabels(route.route, rule, b.cluster ?? NONE),
    };
  });
  const retry = route.retry;
  return {
    source: route,
    id: `${route.route}#${route.ruleName ?? route.rule}`,
    pathKind,
    pathValue,
    pathRegex,
    prefix,
    method: route.match.method,
    headers: compileStringMatches(route.match.headers, true, `${where}.match.headers`),
    queryParams: compileStringMatches(route.match.queryParams, false, `${where}.match.queryParams`),
    filters: compileFilters(route.filters, clusters, `${where}.filters`),
    backends,
    cumulativeWeights: cumulativeWeights(backends),
    requestTimeoutMs: route.timeouts?.request ?? 0,
    backendRequestTimeoutMs: route.timeouts?.backendRequest ?? 0,
    retry:
      retry && retry.attempts > 0
        ? {
            codes: new Set(retry.codes),
            attempts: retry.attempts,
            backoffMs: retry.backoff ?? DEFAULT_RETRY_BACKOFF_MS,
          }
        : undefined,
    directResponse: route.directResponse
      ? { status: route.directResponse.status, body: route.directResponse.body }
      : undefined,
    labels: new RouteLabels(route.route, rule, NONE),
  };
}

function pathMatches(r: CompiledRoute, path: string): boolean {
  switch (r.pathKind) {
    case PATH_ANY:
      return true;
    case PATH_EXACT:
      return path === r.pathValue;
    case PATH_PREFIX: {
      const p = r.pathValue;
      // Element-wise: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
      return p === '' || (path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47));
    }
    default:
      return r.pathRegex!.test(path);
  }
}

function stringMatches(m: CompiledStringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  return m.exact !== undefined ? value === m.exact : m.regex!.test(value);
}

/** Query parameters of the request being matched, parsed on first need. */
interface QueryCache {
  params: Map<string, string> | undefined;
}

/** Whether the route's header, query and method matches hold (its path match is checked apart). */
function restMatches(r: CompiledRoute, facts: RequestFacts, cache: QueryCache): boolean {
  if (r.method !== undefined && r.method !== facts.method) return false;
  for (let h = 0; h < r.headers.length; h++) {
    const m = r.headers[h];
    if (!stringMatches(m, headerValue(facts.rawHeaders, m.name))) return false;
  }
  if (r.queryParams.length > 0) {
    cache.params ??= parseQuery(facts.query);
    for (let q = 0; q < r.queryParams.length; q++) {
      const m = r.queryParams[q];
      if (!stringMatches(m, cache.params.get(m.name))) return false;
    }
  }
  return true;
}

/** The first route of `routes` whose match holds for the request, or undefined. */
export function matchRoute(routes: readonly CompiledRoute[], facts: RequestFacts): CompiledRoute | undefined {
  const cache: QueryCache = { params: undefined };
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i];
    if (pathMatches(r, facts.path) && restMatches(r, facts, cache)) return r;
  }
  return undefined;
}

/** Lowest position in `list` below `best` whose route matches; `best` when none. */
function firstIn(
  routes: readonly CompiledRoute[],
  list: readonly number[] | undefined,
  facts: RequestFacts,
  cache: QueryCache,
  best: number,
): number {
  if (list === undefined) return best;
  for (let k = 0; k < list.length; k++) {
    const i = list[k];
    if (i >= best) return best;
    if (pathMatches(routes[i], facts.path) && restMatches(routes[i], facts, cache)) return i;
  }
  return best;
}

function matchIndexed(vhost: CompiledVirtualHost, index: RouteIndex, facts: RequestFacts): CompiledRoute | undefined {
  const routes = vhost.routes;
  const path = facts.path;
  const cache: QueryCache = { params: undefined };
  let best = firstIn(routes, index.rest, facts, cache, routes.length);
  best = firstIn(routes, index.exact.get(path), facts, cache, best);
  best = firstIn(routes, index.prefix.get(''), facts, cache, best);
  // Each ancestor of the path (`/a`, `/a/b`, …) and the path itself, without trailing slash.
  for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
    best = firstIn(routes, index.prefix.get(path.slice(0, i)), facts, cache, best);
  }
  if (path.length > 1 && path.charCodeAt(path.length - 1) !== 47) {
    best = firstIn(routes, index.prefix.get(path), facts, cache, best);
  }
  return best < routes.length ? routes[best] : undefined;
}

function buildIndex(routes: readonly CompiledRoute[]): RouteIndex | undefined {
  if (routes.length < INDEX_THRESHOLD) return undefined;
  const exact = new Map<string, number[]>();
  const prefix = new Map<string, number[]>();
  const rest: number[] = [];
  const push = (map: Map<string, number[]>, key: string, i: number) => {
    const list = map.get(key);
    if (list) list.push(i);
    else map.set(key, [i]);
  };
  routes.forEach((r, i) => {
    if (r.pathKind === PATH_EXACT) push(exact, r.pathValue, i);
    else if (r.pathKind === PATH_PREFIX) push(prefix, r.pathValue, i);
    else rest.push(i);
  });
  return { exact, prefix, rest };
}

export class CompiledRouteTable {
  readonly noMatchStatus: number;
  readonly #exact = new Map<string, CompiledVirtualHost>();
  /** `.suffix` of each `*.suffix` domain, longest first. */
  readonly #wildcards: { suffix: string; vhost: CompiledVirtualHost }[] = [];
  #any: CompiledVirtualHost | undefined;

  constructor(table: RouteTable, clusters: ReadonlyMap<string, CompiledCluster>, where = 'routeTable') {
    this.noMatchStatus = table.noMatchStatus;
    table.virtualHosts.forEach((vh, v) => {
      const routes = vh.routes.map((r, i) => compileRoute(r, clusters, `${where}.virtualHosts[${v}].routes[${i}]`));
      const vhost: CompiledVirtualHost = { domains: vh.domains, routes, index: buildIndex(routes) };
      // A domain listed twice belongs to its first virtual host.
      for (const domain of vh.domains) {
        const d = domain.toLowerCase();
        if (d === '*') this.#any ??= vhost;
        else if (d.startsWith('*.')) {
          const suffix = d.slice(1);
          if (!this.#wildcards.some((w) => w.suffix === suffix)) this.#wildcards.push({ suffix, vhost });
        } else if (!this.#exact.has(d)) this.#exact.set(d, vhost);
      }
    });
    // Stable sort: equal lengths keep config order.
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  /** The virtual host for a host name (lowercased, without port): exact, longest wildcard, then `*`. */
  virtualHost(host: string): CompiledVirtualHost | undefined {
    const exact = this.#exact.get(host);
    if (exact) return exact;
    const w = this.#wildcards;
    for (let i = 0; i < w.length; i++) {
      const s = w[i].suffix;
      if (host.length > s.length && host.endsWith(s)) return w[i].vhost;
    }
    return this.#any;
  }

  /** The route for a request, or undefined (→ noMatchStatus). */
  match(host: string, facts: RequestFacts): CompiledRoute | undefined {
    const vhost = this.virtualHost(host);
    if (vhost === undefined) return undefined;
    return vhost.index ? matchIndexed(vhost, vhost.index, facts) : matchRoute(vhost.routes, facts);
  }
}

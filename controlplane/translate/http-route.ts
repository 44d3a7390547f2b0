import type {
  Filters,
  HeaderModifier,
  PathModifier,
  Route,
  RouteMatch,
  WeightedBackend,
} from '../../sidecar/config/proxy-config.ts';
import { regexProblem } from '../../sidecar/config/regex.ts';
import { pathValueProblem, routeIssues } from '../../sidecar/config/validate.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type {
  BackendObjectReference,
  HTTPHeaderFilter,
  HTTPPathModifier,
  HTTPRoute,
  HTTPRouteFilter,
  HTTPRouteMatch,
  HTTPRouteRule,
  Service,
  ServicePort,
} from '../resources/types.ts';
import { joinMessages, Reason } from './conditions.ts';
import { parseDuration } from './duration.ts';
import { referenceAllowed } from './reference-grant.ts';

/** How a route is bound: Gateway parents need ReferenceGrants for cross-namespace backends, mesh parents do not (GEP-1294). */
export type Binding = 'gateway' | 'mesh';

export interface ClusterRef {
  key: string;
  service: Service;
  port: ServicePort;
}

export interface CompiledRule {
  rule: number;
  /** One config route per match, in match order. */
  routes: { match: number; route: Route }[];
}

export interface CompiledRoute {
  rules: CompiledRule[];
  /** Every cluster the compiled routes name. */
  clusters: Map<string, ClusterRef>;
  /** ResolvedRefs for this binding: the first failing reference, or True. */
  resolvedRefs: { ok: boolean; reason: string; message: string };
  /** Rules dropped because they are invalid or use something weft does not support ("Dropped Rule …"). */
  dropped: string[];
  /** Set when every rule was dropped: the route cannot be accepted. */
  rejected?: { reason: string; message: string };
}

const SUPPORTED_APP_PROTOCOLS = new Map<string | undefined, 'http1' | 'h2c' | 'websocket'>([
  [undefined, 'http1'],
  ['http', 'http1'],
  ['HTTP', 'http1'],
  ['kubernetes.io/h2c', 'h2c'],
  ['kubernetes.io/ws', 'websocket'],
]);

export function clusterProtocol(port: ServicePort): 'http1' | 'h2c' | 'websocket' | undefined {
  return SUPPORTED_APP_PROTOCOLS.get(port.appProtocol);
}

export function clusterKey(namespace: string, service: string, port: number): string {
  return `${namespace}/${service}:${port}`;
}

class RuleError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

interface RefProblem {
  reason: string;
  message: string;
}

/**
 * Compiles an HTTPRoute's rules into config routes for one binding. Pure: everything it reads
 * comes from the snapshot. Invalid rules are dropped (the spec's "Dropped Rule" approach to
 * PartiallyInvalid); unresolved backendRefs stay as `cluster: null` shares that answer 500.
 */
export function compileHttpRoute(snapshot: ResourceSnapshot, route: HTTPRoute, binding: Binding): CompiledRoute {
  const ns = route.metadata.namespace ?? 'default';
  const routeKey = `${ns}/${route.metadata.name}`;
  const clusters = new Map<string, ClusterRef>();
  const refProblems: RefProblem[] = [];
  const dropped: string[] = [];
  const rules: CompiledRule[] = [];
  const specRules: HTTPRouteRule[] = route.spec.rules?.length ? route.spec.rules : [{}];

  let lastReason: string = Reason.UnsupportedValue;
  const names = new Set<string>();
  specRules.forEach((rule, i) => {
    try {
      if (rule.name !== undefined) {
        if (names.has(rule.name))
          throw new RuleError(Reason.UnsupportedValue, `rule name "${rule.name}" is not unique`);
        names.add(rule.name);
      }
      rules.push(compileRule(snapshot, routeKey, ns, rule, i, binding, clusters, refProblems));
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      dropped.push(`Dropped Rule ${i}${rule.name ? ` (${rule.name})` : ''}: ${e.message}`);
      lastReason = e.reason;
    }
  });

  const first = refProblems[0];
  const out: CompiledRoute = {
    rules,
    clusters,
    resolvedRefs: first
      ? { ok: false, reason: first.reason, message: joinMessages(refProblems.map((p) => p.message)) }
      : { ok: true, reason: Reason.ResolvedRefs, message: 'All references resolved' },
    dropped,
  };
  if (rules.length === 0) out.rejected = { reason: lastReason, message: dropped.join('; ') };
  return out;
}

function compileRule(
  snapshot: ResourceSnapshot,
  routeKey: string,
  ns: string,
  rule: HTTPRouteRule,
  index: number,
  binding: Binding,
  clusters: Map<string, ClusterRef>,
  refProblems: RefProblem[],
): CompiledRule {
  const matches = (rule.matches?.length ? rule.matches : [{}]).map((m, j) => compileMatch(m, j));
  let filters: Filters = { mirrors: [] };
  let unresolvedExtension = false;
  try {
    filters = compileFilters(snapshot, ns, rule.filters ?? [], binding, clusters, refProblems, 'rule');
  } catch (e) {
    if (!(e instanceof ExtensionRefUnresolved)) throw e;
    unresolvedExtension = true;
  }
  const backendRefs = unresolvedExtension ? [] : (rule.backendRefs ?? []);

  const usesPrefixReplace =
    filters.redirect?.path?.type === 'ReplacePrefixMatch' || filters.rewrite?.path?.type === 'ReplacePrefixMatch';
  const backends: WeightedBackend[] = [];
  for (const [k, ref] of backendRefs.entries()) {
    let bf: Filters = { mirrors: [] };
    let backendExtension = false;
    try {
      bf = compileFilters(snapshot, ns, ref.filters ?? [], binding, clusters, refProblems, `backendRefs[${k}]`);
    } catch (e) {
      if (!(e instanceof ExtensionRefUnresolved)) throw e;
      backendExtension = true;
    }
    if (bf.cors) throw new RuleError(Reason.UnsupportedValue, `backendRefs[${k}]: CORS is a rule-level filter`);
    const resolved = resolveBackend(snapshot, ns, ref, binding, clusters);
    const weight = ref.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000)
      throw new RuleError(
        Reason.UnsupportedValue,
        `backendRefs[${k}].weight ${weight} is not an integer in 0..1000000`,
      );
    const backend: WeightedBackend = { cluster: null, weight };
    if (hasAny(bf)) backend.filters = bf;
    if (backendExtension) {
      backend.status = 500;
      backend.reason = 'InvalidKind: unresolved extensionRef filter';
    } else if (typeof resolved === 'string') backend.cluster = resolved;
    else {
      refProblems.push(resolved);
      backend.status = 500;
      backend.reason = `${resolved.reason}: ${resolved.message}`;
    }
    if (bf.redirect?.path?.type === 'ReplacePrefixMatch' || bf.rewrite?.path?.type === 'ReplacePrefixMatch') {
      checkSinglePrefixMatch(matches, `backendRefs[${k}]`);
    }
    backends.push(backend);
  }
  if (usesPrefixReplace) checkSinglePrefixMatch(matches, 'filters');
  if (filters.redirect && backends.length > 0)
    throw new RuleError(Reason.IncompatibleFilters, 'RequestRedirect must not be used together with backendRefs');

  let timeouts: Route['timeouts'];
  if (rule.timeouts) {
    timeouts = {};
    if (rule.timeouts.request !== undefined) timeouts.request = duration(rule.timeouts.request, 'timeouts.request');
    if (rule.timeouts.backendRequest !== undefined)
      timeouts.backendRequest = duration(rule.timeouts.backendRequest, 'timeouts.backendRequest');
    if (timeouts.request && timeouts.backendRequest && timeouts.backendRequest > timeouts.request)
      throw new RuleError(Reason.UnsupportedValue, 'timeouts.backendRequest must not be greater than timeouts.request');
  }
  let retry: Route['retry'];
  if (rule.retry) {
    // Unset attempts are implementation-specific (HTTPRouteRetry.attempts, minimum 1): weft retries once, like Envoy.
    const attempts = rule.retry.attempts ?? 1;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10)
      throw new RuleError(Reason.UnsupportedValue, `retry.attempts ${attempts} is not an integer in 1..10`);
    const codes = rule.retry.codes ?? [];
    for (const c of codes)
      if (!Number.isInteger(c) || c < 400 || c > 599)
        throw new RuleError(Reason.UnsupportedValue, `retry.codes: ${c} is not a status code in 400..599`);
    retry = { codes: [...codes], attempts };
    if (rule.retry.backoff !== undefined) retry.backoff = duration(rule.retry.backoff, 'retry.backoff');
  }
  if (rule.sessionPersistence !== undefined)
    throw new RuleError(Reason.UnsupportedValue, 'sessionPersistence is not supported by weft');

  const routes = matches.map((match, j) => {
    const r: Route = {
      route: routeKey,
      rule: index,
      match,
      filters,
      backends,
    };
    if (rule.name !== undefined) r.ruleName = rule.name;
    if (timeouts) r.timeouts = timeouts;
    if (retry) r.retry = retry;
    // A rule that neither forwards nor redirects answers 500 (HTTPRouteRule.backendRefs); so does
    // one whose extensionRef filter cannot be resolved (the filter must not be skipped).
    if (unresolvedExtension) r.directResponse = { status: 500, body: 'unresolved extensionRef filter' };
    else if (backends.length === 0 && !filters.redirect)
      r.directResponse = { status: 500, body: 'no backendRefs for this rule' };
    // Whatever the proxy's schema would refuse (header characters, hostnames…) drops this rule here,
    // with the reason in status, rather than invalidating every config that carries the route.
    const issues = routeIssues(r);
    if (issues.length > 0)
      throw new RuleError(Reason.UnsupportedValue, issues.map((i) => `${i.path}: ${i.reason}`).join('; '));
    return { match: j, route: r };
  });
  return { rule: index, routes };
}

function checkSinglePrefixMatch(matches: RouteMatch[], where: string): void {
  if (matches.length !== 1 || matches[0].path?.type !== 'PathPrefix')
    throw new RuleError(
      Reason.UnsupportedValue,
      `${where}: ReplacePrefixMatch requires exactly one match with a PathPrefix path`,
    );
}

function duration(value: string, field: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new RuleError(Reason.UnsupportedValue, `${field} "${value}" is not a valid duration`);
  return ms;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function compileMatch(m: HTTPRouteMatch, j: number): RouteMatch {
  const where = `matches[${j}]`;
  const type = m.path?.type ?? 'PathPrefix';
  const value = m.path?.value ?? '/';
  if (type !== 'Exact' && type !== 'PathPrefix' && type !== 'RegularExpression')
    throw new RuleError(Reason.UnsupportedValue, `${where}.path.type "${type}" is not supported`);
  if (type === 'RegularExpression') {
    const problem = regexProblem(value);
    if (problem) throw new RuleError(Reason.UnsupportedValue, `${where}.path: ${problem}`);
  } else {
    // The proxy's own rule (HTTPPathMatch's CRD rules): a value it would refuse must not reach a config.
    const problem = pathValueProblem(value);
    if (problem) throw new RuleError(Reason.UnsupportedValue, `${where}.path.value "${value}" ${problem}`);
  }
  const out: RouteMatch = { path: { type, value }, headers: [], queryParams: [] };
  const seenHeaders = new Set<string>();
  for (const [k, h] of (m.headers ?? []).entries()) {
    const name = h.name;
    if (!HEADER_NAME.test(name))
      throw new RuleError(Reason.UnsupportedValue, `${where}.headers[${k}].name "${name}" is invalid`);
    // "If multiple entries specify equivalent header names, only the first entry … MUST be considered."
    if (seenHeaders.has(name.toLowerCase())) continue;
    seenHeaders.add(name.toLowerCase());
    out.headers.push({ type: stringMatchType(h.type, `${where}.headers[${k}]`, h.value), name, value: h.value });
  }
  const seenQuery = new Set<string>();
  for (const [k, q] of (m.queryParams ?? []).entries()) {
    if (seenQuery.has(q.name)) continue;
    seenQuery.add(q.name);
    if (!q.name) throw new RuleError(Reason.UnsupportedValue, `${where}.queryParams[${k}].name is empty`);
    out.queryParams.push({
      type: stringMatchType(q.type, `${where}.queryParams[${k}]`, q.value),
      name: q.name,
      value: q.value,
    });
  }
  if (m.method !== undefined) {
    if (!METHODS.has(m.method))
      throw new RuleError(Reason.UnsupportedValue, `${where}.method "${m.method}" is not supported`);
    out.method = m.method as RouteMatch['method'];
  }
  return out;
}

function stringMatchType(t: string | undefined, where: string, value: string): 'Exact' | 'RegularExpression' {
  const type = t ?? 'Exact';
  if (type === 'Exact') return type;
  if (type === 'RegularExpression') {
    const problem = regexProblem(value);
    if (problem) throw new RuleError(Reason.UnsupportedValue, `${where}: ${problem}`);
    return type;
  }
  throw new RuleError(Reason.UnsupportedValue, `${where}.type "${type}" is not supported`);
}

function hasAny(f: Filters): boolean {
  return !!(f.requestHeaders || f.responseHeaders || f.redirect || f.rewrite || f.cors || f.mirrors.length);
}

const FILTER_FIELD: Record<string, keyof HTTPRouteFilter> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  RequestMirror: 'requestMirror',
  CORS: 'cors',
  ExtensionRef: 'extensionRef',
  ExternalAuth: 'externalAuth',
};

function compileFilters(
  snapshot: ResourceSnapshot,
  ns: string,
  filters: HTTPRouteFilter[],
  binding: Binding,
  clusters: Map<string, ClusterRef>,
  refProblems: RefProblem[],
  where: string,
): Filters {
  const out: Filters = { mirrors: [] };
  const seen = new Set<string>();
  for (const [k, f] of filters.entries()) {
    const at = `${where}.filters[${k}]`;
    const field = FILTER_FIELD[f.type];
    if (!field) throw new RuleError(Reason.UnsupportedValue, `${at}: filter type "${f.type}" is not supported`);
    if (f[field] === undefined)
      throw new RuleError(Reason.UnsupportedValue, `${at}: type ${f.type} needs field ${field}`);
    if (f.type !== 'RequestMirror' && f.type !== 'ExtensionRef') {
      if (seen.has(f.type)) throw new RuleError(Reason.UnsupportedValue, `${at}: ${f.type} may appear only once`);
      seen.add(f.type);
    }
    switch (f.type) {
      case 'RequestHeaderModifier':
        out.requestHeaders = headerModifier(f.requestHeaderModifier!, at);
        break;
      case 'ResponseHeaderModifier':
        out.responseHeaders = headerModifier(f.responseHeaderModifier!, at);
        break;
      case 'RequestRedirect': {
        const r = f.requestRedirect!;
        const statusCode = r.statusCode ?? 302;
        if (![301, 302, 303, 307, 308].includes(statusCode))
          throw new RuleError(Reason.UnsupportedValue, `${at}: redirect statusCode ${statusCode} is not supported`);
        if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https')
          throw new RuleError(Reason.UnsupportedValue, `${at}: redirect scheme "${r.scheme}" is not supported`);
        out.redirect = { statusCode: statusCode as 301 | 302 | 303 | 307 | 308 };
        if (r.scheme) out.redirect.scheme = r.scheme;
        if (r.hostname) out.redirect.hostname = r.hostname;
        if (r.port !== undefined) out.redirect.port = r.port;
        if (r.path) out.redirect.path = pathModifier(r.path, at);
        break;
      }
      case 'URLRewrite': {
        const u = f.urlRewrite!;
        out.rewrite = {};
        if (u.hostname) out.rewrite.hostname = u.hostname;
        if (u.path) out.rewrite.path = pathModifier(u.path, at);
        break;
      }
      case 'RequestMirror': {
        const m = f.requestMirror!;
        let percent = 100;
        if (m.percent !== undefined && m.fraction !== undefined)
          throw new RuleError(Reason.UnsupportedValue, `${at}: set percent or fraction, not both`);
        if (m.percent !== undefined) percent = m.percent;
        if (m.fraction !== undefined) {
          const den = m.fraction.denominator ?? 100;
          if (den <= 0 || m.fraction.numerator < 0 || m.fraction.numerator > den)
            throw new RuleError(
              Reason.UnsupportedValue,
              `${at}: fraction must satisfy 0 <= numerator <= denominator, denominator > 0`,
            );
          percent = (m.fraction.numerator / den) * 100;
        }
        if (!(percent >= 0 && percent <= 100))
          throw new RuleError(Reason.UnsupportedValue, `${at}: percent must be in 0..100`);
        const resolved = resolveBackend(snapshot, ns, m.backendRef, binding, clusters);
        // An unresolved mirror is reported in ResolvedRefs and not programmed: the real request is unaffected.
        if (typeof resolved === 'string') out.mirrors.push({ cluster: resolved, percent });
        else refProblems.push({ reason: resolved.reason, message: `${at} mirror: ${resolved.message}` });
        break;
      }
      case 'CORS': {
        const c = f.cors!;
        out.cors = {
          allowOrigins: [...(c.allowOrigins ?? [])],
          allowCredentials: c.allowCredentials ?? false,
          allowMethods: [...(c.allowMethods ?? [])],
          allowHeaders: [...(c.allowHeaders ?? [])],
          exposeHeaders: [...(c.exposeHeaders ?? [])],
          maxAge: c.maxAge ?? 5,
        };
        break;
      }
      case 'ExtensionRef': {
        // "If a reference to a custom filter type cannot be resolved, the filter MUST NOT be skipped":
        // weft knows no extension kinds, so the rule answers 500 and ResolvedRefs says why.
        const e = f.extensionRef!;
        refProblems.push({
          reason: Reason.InvalidKind,
          message: `${at}: extensionRef ${e.group}/${e.kind} ${e.name} is not a filter kind weft supports`,
        });
        throw new ExtensionRefUnresolved();
      }
      case 'ExternalAuth':
        throw new RuleError(Reason.UnsupportedValue, `${at}: ExternalAuth is not supported by weft`);
    }
  }
  if (out.redirect && out.rewrite)
    throw new RuleError(Reason.IncompatibleFilters, `${where}: RequestRedirect and URLRewrite cannot be combined`);
  return out;
}

/** Thrown through compileFilters so the caller turns the rule into a 500; see ExtensionRef above. */
export class ExtensionRefUnresolved extends Error {}

function headerModifier(h: HTTPHeaderFilter, at: string): HeaderModifier {
  const names = new Set<string>();
  const check = (name: string, list: string) => {
    if (!HEADER_NAME.test(name))
      throw new RuleError(Reason.UnsupportedValue, `${at}.${list}: header name "${name}" is invalid`);
    // One action per header name across set, add and remove (HTTPHeaderFilter); names are case-insensitive.
    const lower = name.toLowerCase();
    if (names.has(lower))
      throw new RuleError(Reason.UnsupportedValue, `${at}.${list}: header "${name}" has more than one action`);
    names.add(lower);
  };
  const pairs = (list: 'set' | 'add') =>
    (h[list] ?? []).map(({ name, value }) => {
      check(name, list);
      if (/[\r\n\0]/.test(value))
        throw new RuleError(Reason.UnsupportedValue, `${at}.${list}: value of "${name}" has CR/LF/NUL`);
      return { name, value };
    });
  const set = pairs('set');
  const add = pairs('add');
  const remove = (h.remove ?? []).map((name) => {
    check(name, 'remove');
    return name;
  });
  return { set, add, remove };
}

function pathModifier(p: HTTPPathModifier, at: string): PathModifier {
  if (p.type === 'ReplaceFullPath') {
    if (p.replaceFullPath === undefined)
      throw new RuleError(Reason.UnsupportedValue, `${at}: replaceFullPath is required`);
    return { type: 'ReplaceFullPath', value: p.replaceFullPath };
  }
  if (p.type === 'ReplacePrefixMatch') {
    if (p.replacePrefixMatch === undefined)
      throw new RuleError(Reason.UnsupportedValue, `${at}: replacePrefixMatch is required`);
    return { type: 'ReplacePrefixMatch', value: p.replacePrefixMatch };
  }
  throw new RuleError(
    Reason.UnsupportedValue,
    `${at}: path modifier type "${(p as { type: string }).type}" is not supported`,
  );
}

/**
 * Resolves a backendRef to a cluster key, or says why it cannot: kind (InvalidKind),
 * cross-namespace without a ReferenceGrant on Gateway bindings (RefNotPermitted), a missing
 * Service or port (BackendNotFound), an appProtocol weft cannot speak (UnsupportedProtocol).
 */
export function resolveBackend(
  snapshot: ResourceSnapshot,
  routeNs: string,
  ref: BackendObjectReference,
  binding: Binding,
  clusters: Map<string, ClusterRef>,
  // ReferenceGrant `from` names the referring kind: a grant for HTTPRoutes does not cover GRPCRoutes.
  routeKind: 'HTTPRoute' | 'GRPCRoute' = 'HTTPRoute',
): string | RefProblem {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  const ns = ref.namespace ?? routeNs;
  const name = `${ns}/${ref.name}`;
  if (group !== '' || kind !== 'Service')
    return {
      reason: Reason.InvalidKind,
      message: `backendRef ${group || 'core'}/${kind} ${name} is not a supported kind (Service)`,
    };
  if (
    binding === 'gateway' &&
    !referenceAllowed(
      snapshot,
      { group: 'gateway.networking.k8s.io', kind: routeKind, namespace: routeNs },
      { group: '', kind: 'Service', namespace: ns, name: ref.name },
    )
  )
    return {
      reason: Reason.RefNotPermitted,
      message: `backendRef to Service ${name} is not permitted by any ReferenceGrant`,
    };
  const svc = snapshot.get('Service', name);
  if (!svc) return { reason: Reason.BackendNotFound, message: `Service ${name} not found` };
  if (svc.spec.type === 'ExternalName')
    return {
      reason: Reason.BackendNotFound,
      message: `Service ${name} is of type ExternalName, which weft does not route to`,
    };
  if (ref.port === undefined)
    return { reason: Reason.BackendNotFound, message: `backendRef to Service ${name} needs a port` };
  const port = svc.spec.ports?.find((p) => p.port === ref.port && (p.protocol ?? 'TCP') === 'TCP');
  if (!port) return { reason: Reason.BackendNotFound, message: `Service ${name} has no TCP port ${ref.port}` };
  if (!clusterProtocol(port))
    return {
      reason: Reason.UnsupportedProtocol,
      message: `Service ${name} port ${ref.port} has appProtocol "${port.appProtocol}", which weft cannot speak`,
    };
  const key = clusterKey(ns, ref.name, ref.port);
  if (!clusters.has(key)) clusters.set(key, { key, service: svc, port });
  return key;
}

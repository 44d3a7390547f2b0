import type { RouteMatch } from '../../sidecar/config/proxy-config.ts';

/**
 * A comparable summary of one HTTPRoute match, in the order the Gateway API ranks them
 * (HTTPRouteRule.matches in apis/v1/httproute_types.go), after the hostname rule of
 * HTTPRouteSpec.hostnames:
 *  1. characters in the matching non-wildcard hostname, then in the matching hostname;
 *  2. an Exact path; then (weft's choice where the spec leaves RegularExpression to the
 *     implementation, as Linkerd and Envoy Gateway do) a RegularExpression path, longest
 *     pattern first; then a PathPrefix, longest first;
 *  3. a method match; 4. more header matches; 5. more query param matches;
 *  6. the oldest route (creationTimestamp); 7. `namespace/name` alphabetically;
 *  8. the rule's position in the route, then the match's position in the rule.
 */
export interface MatchSummary {
  hostExactChars: number;
  hostChars: number;
  pathRank: number;
  pathLength: number;
  hasMethod: boolean;
  headerCount: number;
  queryCount: number;
  /** RFC 3339 creation timestamp; '' when unknown (sorts after any known time). */
  created: string;
  routeKey: string;
  rule: number;
  match: number;
}

const PATH_RANK = { Exact: 3, RegularExpression: 2, PathPrefix: 1 } as const;

export function summarize(
  match: RouteMatch,
  at: { hostname?: string; created?: string; routeKey: string; rule: number; match: number },
): MatchSummary {
  const h = at.hostname;
  const wildcard = h?.startsWith('*.') ?? false;
  return {
    hostExactChars: h && !wildcard ? h.length : 0,
    hostChars: h ? h.length : 0,
    pathRank: match.path ? PATH_RANK[match.path.type] : PATH_RANK.PathPrefix,
    pathLength: match.path ? match.path.value.length : 1,
    hasMethod: match.method !== undefined,
    headerCount: match.headers.length,
    queryCount: match.queryParams.length,
    created: at.created ?? '',
    routeKey: at.routeKey,
    rule: at.rule,
    match: at.match,
  };
}

/** Negative when `a` takes precedence over `b`. One comparator, every tier in the spec's order. */
export function compareMatches(a: MatchSummary, b: MatchSummary): number {
  return (
    b.hostExactChars - a.hostExactChars ||
    b.hostChars - a.hostChars ||
    b.pathRank - a.pathRank ||
    b.pathLength - a.pathLength ||
    Number(b.hasMethod) - Number(a.hasMethod) ||
    b.headerCount - a.headerCount ||
    b.queryCount - a.queryCount ||
    compareCreated(a.created, b.created) ||
    (a.routeKey < b.routeKey ? -1 : a.routeKey > b.routeKey ? 1 : 0) ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

function compareCreated(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return 1;
  if (b === '') return -1;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (Number.isNaN(ta) || Number.isNaN(tb)) return a < b ? -1 : 1;
  return ta - tb;
}

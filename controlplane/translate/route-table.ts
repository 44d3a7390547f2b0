import type { Route, RouteTable, VirtualHost } from '../../sidecar/config/proxy-config.ts';
import type { CompiledRoute } from './http-route.ts';
import { isWildcard } from './hostnames.ts';
import { compareMatches, type MatchSummary, summarize } from './precedence.ts';

export interface TableEntry {
  compiled: CompiledRoute;
  /** Effective hostnames on this parent; undefined = any host (mesh, or a listener without hostname). */
  hostnames: string[] | undefined;
  created: string;
  routeKey: string;
}

/**
 * Builds a route table: one virtual host per distinct hostname among the entries (and `*` for
 * entries that match any host). A virtual host lists every route whose hostnames cover its
 * domain — exact names, then wildcards that include it, then any-host routes — sorted by the
 * precedence comparator, so the hostname tier of HTTPRouteSpec.hostnames comes first and a
 * request can fall through to less specific hostnames. The proxy picks the virtual host by the
 * request's host (exact, longest wildcard suffix, `*`) and takes the first matching route.
 */
export function buildRouteTable(entries: readonly TableEntry[]): RouteTable {
  const byPattern = new Map<string, TableEntry[]>();
  const anyHost: TableEntry[] = [];
  for (const e of entries) {
    if (e.hostnames === undefined) anyHost.push(e);
    else
      for (const h of e.hostnames) {
        const list = byPattern.get(h);
        if (list) list.push(e);
        else byPattern.set(h, [e]);
      }
  }
  const domains = [...byPattern.keys()].sort();
  if (anyHost.length > 0) domains.push('*');

  const virtualHosts: VirtualHost[] = [];
  for (const domain of domains) {
    const best = new Map<TableEntry, string | undefined>();
    if (domain !== '*') {
      for (const pattern of coveringPatterns(domain)) {
        for (const e of byPattern.get(pattern) ?? []) {
          const prev = best.get(e);
          if (prev === undefined || moreSpecific(pattern, prev)) best.set(e, pattern);
        }
      }
    }
    for (const e of anyHost) if (!best.has(e)) best.set(e, undefined);

    const items: { s: MatchSummary; r: Route }[] = [];
    for (const [e, hostname] of best) {
      for (const rule of e.compiled.rules) {
        for (const { match, route } of rule.routes) {
          items.push({
            s: summarize(route.match, { hostname, created: e.created, routeKey: e.routeKey, rule: rule.rule, match }),
            r: route,
          });
        }
      }
    }
    items.sort((a, b) => compareMatches(a.s, b.s));
    virtualHosts.push({ domains: [domain], routes: items.map((i) => i.r) });
  }
  return { virtualHosts, noMatchStatus: 404 };
}

/** The domain itself and every wildcard that covers it: `a.b.c` → `a.b.c`, `*.b.c`, `*.c`. */
function coveringPatterns(domain: string): string[] {
  const labels = (isWildcard(domain) ? domain.slice(2) : domain).split('.');
  const out = [domain];
  for (let i = 1; i < labels.length; i++) out.push(`*.${labels.slice(i).join('.')}`);
  return out;
}

function moreSpecific(a: string, b: string): boolean {
  const aw = isWildcard(a);
  const bw = isWildcard(b);
  if (aw !== bw) return !aw;
  return a.length > b.length;
}

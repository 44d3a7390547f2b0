// Generated route tables for the idle-RSS and route-lookup benchmarks, and the requests that
// probe them. Routes come in families of ten per service, in the order the control plane emits
// (Gateway API precedence: Exact before PathPrefix, longer prefixes first, then more header
// matches, then more query matches; RegularExpression last): Exact paths, an Exact with a
// method, PathPrefix at depths 1–5, header matches (Exact and RegularExpression), a query
// match, an 80/20 split, header and rewrite filters, and one RegularExpression path in every
// 50th family.
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';

type RouteTableInput = ProxyConfigInput['routeTables'][string];
type VirtualHostInput = RouteTableInput['virtualHosts'][number];
type RouteInput = VirtualHostInput['routes'][number];
type ClusterInput = ProxyConfigInput['clusters'][string];

export const ROUTES_PER_FAMILY = 10;
const REGEX_EVERY = 50;

/** One request of a probe set and the route (`id`) it must reach, or null for a miss. */
export interface Probe {
  kind: string;
  host: string;
  method: string;
  path: string;
  query: string;
  rawHeaders: string[];
  expect: string | null;
}

function family(i: number): RouteInput[] {
  const s = `s${i}`;
  const route = `bench/${s}`;
  const to = (cluster: string) => [{ cluster, weight: 1 }];
  const routes: RouteInput[] = [
    { route, rule: 0, match: { path: { type: 'Exact', value: `/api/${s}/health` } }, backends: to(`bench/${s}`) },
    {
      route,
      rule: 1,
      match: { path: { type: 'Exact', value: `/api/${s}/v1/items` }, method: 'GET' },
      backends: to(`bench/${s}`),
    },
    {
      route,
      rule: 2,
      match: {
        path: { type: 'PathPrefix', value: `/api/${s}/v2/users/admin` },
        headers: [{ type: 'Exact', name: 'x-tenant', value: `t${i % 7}` }],
      },
      backends: to(`bench/${s}`),
    },
    {
      route,
      rule: 3,
      match: { path: { type: 'PathPrefix', value: `/api/${s}/v2/users` } },
      backends: to(`bench/${s}`),
      timeouts: { request: 15_000 },
    },
    {
      route,
      rule: 4,
      match: {
        path: { type: 'PathPrefix', value: `/api/${s}/v2` },
        headers: [{ type: 'RegularExpression', name: 'x-canary', value: '^(true|yes)$' }],
      },
      backends: to(`bench/${s}-v2`),
    },
    {
      route,
      rule: 5,
      match: { path: { type: 'PathPrefix', value: `/api/${s}/v2` } },
      backends: to(`bench/${s}`),
      filters: { requestHeaders: { set: [{ name: 'x-route', value: s }] } },
    },
    {
      route,
      rule: 6,
      match: {
        path: { type: 'PathPrefix', value: `/api/${s}/static` },
        queryParams: [{ type: 'Exact', name: 'v', value: '2' }],
      },
      backends: to(`bench/${s}`),
    },
    {
      route,
      rule: 7,
      match: { path: { type: 'PathPrefix', value: `/api/${s}` } },
      backends: [
        { cluster: `bench/${s}`, weight: 80 },
        { cluster: `bench/${s}-v2`, weight: 20 },
      ],
      retry: { attempts: 1, codes: [503] },
    },
    {
      route,
      rule: 8,
      match: { path: { type: 'PathPrefix', value: `/${s}` } },
      filters: { rewrite: { path: { type: 'ReplacePrefixMatch', value: `/api/${s}` } } },
      backends: to(`bench/${s}`),
    },
    i % REGEX_EVERY === 0
      ? {
          route,
          rule: 9,
          match: { path: { type: 'RegularExpression', value: `^/re/${s}/[0-9]+$` } },
          backends: to(`bench/${s}`),
        }
      : {
          route,
          rule: 9,
          match: { path: { type: 'Exact', value: `/api/${s}/v1/items` }, method: 'POST' },
          backends: to(`bench/${s}`),
        },
  ];
  return routes;
}

const KIND_ORDER: Record<string, number> = { Exact: 0, PathPrefix: 1, RegularExpression: 2 };

/** Gateway API precedence, as the translator sorts a table (stable for equal keys). */
function byPrecedence(a: RouteInput, b: RouteInput): number {
  const pa = a.match.path!;
  const pb = b.match.path!;
  if (pa.type !== pb.type) return KIND_ORDER[pa.type] - KIND_ORDER[pb.type];
  if (pa.type !== 'RegularExpression' && pa.value.length !== pb.value.length) return pb.value.length - pa.value.length;
  if ((a.match.method === undefined) !== (b.match.method === undefined)) return a.match.method === undefined ? 1 : -1;
  const ha = a.match.headers?.length ?? 0;
  const hb = b.match.headers?.length ?? 0;
  if (ha !== hb) return hb - ha;
  return (b.match.queryParams?.length ?? 0) - (a.match.queryParams?.length ?? 0);
}

function clustersFor(services: number, endpoints: (i: number) => { address: string; port: number }[]) {
  const clusters: Record<string, ClusterInput> = {};
  for (let i = 0; i < services; i++) {
    for (const suffix of ['', '-v2']) {
      clusters[`bench/s${i}${suffix}`] = { service: `bench/s${i}${suffix}`, port: 80, endpoints: endpoints(i) };
    }
  }
  return clusters;
}

/** Three endpoints per cluster on addresses nothing listens on: the idle proxy never dials them. */
function idleEndpoints(i: number) {
  return [0, 1, 2].map((k) => ({ address: `127.1.${i % 250}.${k + 1}`, port: 8080 }));
}

export type Shape = 'one-host' | 'many-hosts';

/**
 * A route table of `routes` routes: `one-host` puts them all in one virtual host
 * (bench.example.com); `many-hosts` gives each family its own host (s<i>.example.com).
 */
export function generatedTable(
  shape: Shape,
  routes: number,
): { table: RouteTableInput; clusters: Record<string, ClusterInput> } {
  const families = Math.ceil(routes / ROUTES_PER_FAMILY);
  const clusters = clustersFor(families, idleEndpoints);
  if (shape === 'one-host') {
    const all: RouteInput[] = [];
    for (let i = 0; i < families; i++) all.push(...family(i));
    all.length = routes;
    all.sort(byPrecedence);
    return { table: { virtualHosts: [{ domains: ['bench.example.com'], routes: all }] }, clusters };
  }
  const virtualHosts: VirtualHostInput[] = [];
  for (let i = 0; i < families; i++) {
    virtualHosts.push({ domains: [`s${i}.example.com`], routes: family(i).sort(byPrecedence) });
  }
  return { table: { virtualHosts }, clusters };
}

const COMMON_HEADERS = ['User-Agent', 'curl/8.5.0', 'Accept', '*/*', 'X-Request-Id', 'c0ffee-1234'];

/** Probes of every kind for family `i` of a table of the given shape. */
export function probesFor(shape: Shape, i: number): Probe[] {
  const s = `s${i}`;
  const host = shape === 'one-host' ? 'bench.example.com' : `${s}.example.com`;
  const id = (rule: number) => `bench/${s}#${rule}`;
  const probe = (kind: string, path: string, expect: string | null, extra: string[] = [], query = '', m = 'GET') => ({
    kind,
    host,
    method: m,
    path,
    query,
    rawHeaders: ['Host', host, ...COMMON_HEADERS, ...extra],
    expect,
  });
  const out: Probe[] = [
    probe('Exact', `/api/${s}/health`, id(0)),
    probe('Exact + method', `/api/${s}/v1/items`, id(1)),
    probe('prefix depth 5 + header', `/api/${s}/v2/users/admin/7`, id(2), ['X-Tenant', `t${i % 7}`]),
    probe('prefix depth 4 (header falls through)', `/api/${s}/v2/users/admin/7`, id(3)),
    probe('prefix depth 3 + regex header', `/api/${s}/v2/orders`, id(4), ['X-Canary', 'yes']),
    probe('prefix depth 3', `/api/${s}/v2/orders/42`, id(5)),
    probe('prefix + query', `/api/${s}/static/app.js`, id(6), [], 'v=2&cache=1'),
    probe('prefix depth 2', `/api/${s}/other/thing`, id(7)),
    probe('prefix depth 1', `/${s}/login`, id(8)),
    probe('miss (no route)', `/nope/${s}/x`, null),
  ];
  if (i % REGEX_EVERY === 0) out.push(probe('RegularExpression', `/re/${s}/123`, id(9)));
  if (shape === 'many-hosts') {
    const miss = probe('miss (unknown host)', `/api/${s}/health`, null);
    miss.host = `${s}.example.org`;
    out.push(miss);
  }
  return out;
}

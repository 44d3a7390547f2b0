// The "Try:" lines `weft local up` prints: curl commands for the routes of each Gateway (through the edge proxy, with
// --resolve so no DNS is needed) and `weft local curl` commands for the mesh routes a sidecar applies, derived from
// the localized configs so they name the real addresses and ports.
import type { ProxyConfig, Route, RouteTable } from '../../sidecar/config/proxy-config.ts';

export interface ExampleOptions {
  configs: readonly ProxyConfig[];
  /** How to run weft, e.g. `node_modules/.bin/node bin/weft.ts`. */
  weft: string;
  /** ` --state-dir D` when not the default, else ''. */
  stateDirFlag: string;
  /** Lines per Gateway listener and for the mesh. Default 6. */
  max?: number;
  /** `--netns`: the network namespace of pod `ns/name`, for a plain curl run inside the client pod. */
  podNetns?: (key: string) => string | undefined;
}

const q = (s: string) => (/^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

interface Probe {
  path: string;
  headers: string[];
  method?: string;
  split: boolean;
}

/** One request per route that a plain request can hit: its path, its exact header matches, its method. */
function probes(table: RouteTable | undefined, max: number): Probe[] {
  const out: Probe[] = [];
  const seen = new Set<string>();
  for (const vh of table?.virtualHosts ?? []) {
    for (const r of vh.routes) {
      const p = probe(r);
      if (!p) continue;
      const key = JSON.stringify(p);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(p);
      if (out.length >= max) return out;
    }
  }
  return out;
}

function probe(r: Route): Probe | undefined {
  const m = r.match;
  if (m.path && m.path.type === 'RegularExpression') return undefined;
  if (m.headers.some((h) => h.type !== 'Exact') || m.queryParams.some((x) => x.type !== 'Exact')) return undefined;
  let path = m.path?.value ?? '/';
  if (m.queryParams.length > 0)
    path += `?${m.queryParams.map((x) => `${x.name}=${encodeURIComponent(x.value)}`).join('&')}`;
  const p: Probe = {
    path,
    headers: m.headers.map((h) => `${h.name}: ${h.value}`),
    split: r.backends.filter((b) => b.weight > 0).length > 1,
  };
  if (m.method && m.method !== 'GET') p.method = m.method;
  return p;
}

function gatewayLines(config: ProxyConfig, max: number): string[] {
  const lines: string[] = [];
  const listeners = config.listeners.flatMap((l) => (l.kind === 'gateway' ? [l] : []));
  // HTTPS first: it is what the example shows off; one line for each HTTP listener after it.
  listeners.sort((a, b) => (a.protocol === b.protocol ? a.port - b.port : a.protocol === 'HTTPS' ? -1 : 1));
  let detailed = false;
  for (const l of listeners) {
    const scheme = l.protocol === 'HTTPS' ? 'https' : 'http';
    const k = scheme === 'https' ? '-k ' : '';
    const domains = new Map<string, RouteTable>();
    for (const h of l.hosts) {
      const table = config.routeTables[h.routeTable];
      for (const vh of table?.virtualHosts ?? [])
        for (const d of vh.domains)
          if (!d.includes('*') && !domains.has(d)) domains.set(d, { ...table, virtualHosts: [vh] });
    }
    const shown: string[] = [];
    // The host with the most routes first: the richest example leads.
    const routes = (t: RouteTable) => t.virtualHosts.reduce((n, vh) => n + vh.routes.length, 0);
    const ordered = [...domains].sort(([a, ta], [b, tb]) => routes(tb) - routes(ta) || (a < b ? -1 : 1));
    for (const [domain, table] of ordered) {
      const base = `${scheme}://${domain}:${l.port}`;
      const resolve = `--resolve ${domain}:${l.port}:${l.address}`;
      let found = probes(table, max);
      // After the first listener, one plain request is enough.
      if (detailed) found = found.filter((p) => p.headers.length === 0 && !p.method && !p.split).slice(0, 1);
      for (const p of found) {
        const extra = [...(p.method ? [`-X ${p.method}`] : []), ...p.headers.map((h) => `-H ${q(h)}`)].join(' ');
        const url = q(`${base}${p.path}`);
        if (p.split && !detailed) {
          shown.push(
            `for i in $(seq 100); do curl -s${k ? 'k' : ''} ${resolve}${extra ? ` ${extra}` : ''} ${url} | grep -o '"pod": "[^"]*"'; done | sort | uniq -c`,
          );
        } else shown.push(`curl ${k}${resolve}${extra ? ` ${extra}` : ''} ${url}`);
        if (detailed) break;
      }
      if (detailed && shown.length > 0) break;
    }
    lines.push(...shown);
    if (shown.length > 0) detailed = true;
  }
  return lines;
}

function meshLines(client: ProxyConfig, o: ExampleOptions, max: number): string[] {
  const outbound = client.listeners.find((l) => l.kind === 'outbound');
  if (outbound?.kind !== 'outbound') return [];
  const lines: string[] = [];
  const from = `${client.proxy.namespace}/${client.proxy.name}`;
  const netns = o.podNetns?.(from);
  let plain: string | undefined;
  const done = () => (netns && plain ? [...lines, `ip netns exec ${netns} curl -s ${plain}`] : lines);
  for (const s of outbound.services) {
    for (const port of s.ports) {
      const table = client.routeTables[port.routeTable];
      // Services with routes of their own; plain ones just balance over their endpoints.
      if (!table?.virtualHosts.some((vh) => vh.routes.some((r) => !r.route.startsWith('default:')))) continue;
      const host = s.hostnames.find((h) => h.split('.').length === 2) ?? s.hostnames[0] ?? s.clusterIPs[0];
      const authority = port.port === 80 ? host : `${host}:${port.port}`;
      for (const p of probes(table, max)) {
        const extra = [...(p.method ? [`-X ${p.method}`] : []), ...p.headers.map((h) => `-H ${q(h)}`)].join(' ');
        const count = p.split ? ' --count 200' : '';
        const request = `${q(`http://${authority}${p.path}`)}${extra ? ` ${extra}` : ''}`;
        // The workload's own view: an unmodified curl in the pod, captured by iptables.
        if (!p.split) plain ??= request;
        lines.push(`${o.weft} local curl${o.stateDirFlag} --from ${from} ${request}${count}`);
        if (lines.length >= max) return done();
      }
    }
  }
  return done();
}

export function curlExamples(o: ExampleOptions): string[] {
  const max = o.max ?? 6;
  const configs = [...o.configs].sort((a, b) => (a.proxy.id < b.proxy.id ? -1 : 1));
  const lines: string[] = [];
  for (const c of configs) if (c.proxy.mode === 'edge') lines.push(...gatewayLines(c, max));
  const client = configs.find((c) => c.proxy.mode === 'sidecar');
  if (client) lines.push(...meshLines(client, o, max));
  return lines;
}

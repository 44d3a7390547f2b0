// Outbound requests to a destination that is no Service — a pod's IP, an address outside the cluster — pass
// through to that address and port without any route, as Istio's PassthroughCluster and Linkerd's endpoint
// forwarding do: to a meshed pod over mTLS to its proxy (with the identity the config lists for that IP), to
// anything else in plaintext. Each destination gets a catch-all route table of its own, made on first use and kept
// with the compiled listener (a config swap starts afresh); metrics count them all under one route and backend,
// `passthrough`, so destinations add no series.
import type { MeshedPod, RouteTable } from '../config/proxy-config.ts';
import type { CompiledCluster } from '../upstream/cluster.ts';
import type { EndpointRegistry } from '../upstream/endpoint-state.ts';
import { CompiledRouteTable } from './route-table.ts';

/** Route, rule-less backend and cluster key of passed-through requests (metrics, traces, logs). */
export const PASSTHROUGH = 'passthrough';

/** Destinations whose tables are kept; past it the cache starts over (the tables are cheap to make again). */
const MAX_TABLES = 1024;

const TABLE: RouteTable = {
  virtualHosts: [
    {
      domains: ['*'],
      routes: [
        {
          route: PASSTHROUGH,
          rule: 0,
          match: { headers: [], queryParams: [] },
          filters: { mirrors: [] },
          backends: [{ cluster: PASSTHROUGH, weight: 1 }],
        },
      ],
    },
  ],
  noMatchStatus: 404,
};

/** `::FFFF:10.0.0.1` and `10.0.0.1` are one destination, as are the cases of an IPv6 address. */
export function destinationAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

export class Passthrough {
  readonly #pods = new Map<string, MeshedPod>();
  readonly #registry: EndpointRegistry;
  readonly #tables = new Map<string, CompiledRouteTable>();

  constructor(pods: readonly MeshedPod[], registry: EndpointRegistry) {
    // The first entry for an address wins (the validator refuses a second).
    for (const p of pods) {
      const a = destinationAddress(p.address);
      if (!this.#pods.has(a)) this.#pods.set(a, p);
    }
    this.#registry = registry;
  }

  /** The meshed pod at `address`, if the config lists one. */
  pod(address: string): MeshedPod | undefined {
    return this.#pods.get(destinationAddress(address));
  }

  /** The route table that sends everything to `address:port`: mTLS when a meshed pod is there, else plaintext. */
  table(address: string, port: number): CompiledRouteTable {
    const a = destinationAddress(address);
    const key = `${a}|${port}`;
    let table = this.#tables.get(key);
    if (table !== undefined) return table;
    const pod = this.#pods.get(a);
    const state = pod
      ? this.#registry.getMeshed(a, pod.meshPort, pod.identity, port)
      : this.#registry.get(a, port, 'http1');
    const cluster: CompiledCluster = {
      key: PASSTHROUGH,
      service: pod?.pod ?? `${a.includes(':') ? `[${a}]` : a}:${port}`,
      protocol: 'http1',
      endpoints: [{ state, pod: pod?.pod, identity: pod?.identity }],
    };
    table = new CompiledRouteTable(TABLE, new Map([[PASSTHROUGH, cluster]]), PASSTHROUGH);
    if (this.#tables.size >= MAX_TABLES) this.#tables.clear();
    this.#tables.set(key, table);
    return table;
  }
}

// Clusters compiled for the request path: only ready endpoints, each bound to its shared state.
import type { Cluster } from '../config/proxy-config.ts';
import { ConfigCompileError } from '../errors.ts';
import type { RouteLabels } from '../metrics.ts';
import type { EndpointRegistry, EndpointState, UpstreamProtocol } from './endpoint-state.ts';

export interface CompiledEndpoint {
  readonly state: EndpointState;
  readonly pod: string | undefined;
  /** Present when the endpoint must be reached over mTLS (then `state.mesh` says how). */
  readonly identity: string | undefined;
}

export interface CompiledCluster {
  /** `namespace/name` key of the cluster in the config. */
  readonly key: string;
  readonly service: string;
  readonly protocol: Cluster['protocol'];
  readonly endpoints: readonly CompiledEndpoint[];
  /** Metric labels of a cluster no route leads to (the pod's app), made once; a routed request takes its route's. */
  readonly labels?: RouteLabels;
}

/** How the proxy speaks to endpoints of a cluster (WebSocket clusters are HTTP/1.1 with upgrades). */
export function upstreamProtocol(protocol: Cluster['protocol']): UpstreamProtocol {
  return protocol === 'h2c' ? 'h2c' : 'http1';
}

export function compileCluster(key: string, cluster: Cluster, registry: EndpointRegistry): CompiledCluster {
  const protocol = upstreamProtocol(cluster.protocol);
  const endpoints: CompiledEndpoint[] = [];
  for (const e of cluster.endpoints) {
    if (!e.ready) continue;
    // Meshed: one hop of HTTP/1.1 over mTLS to the peer proxy, which speaks the cluster's protocol to its app.
    if (e.identity !== undefined && e.meshPort === undefined) {
      throw new ConfigCompileError(`cluster ${key}: endpoint ${e.address} has an identity but no meshPort`);
    }
    const state =
      e.identity !== undefined
        ? registry.getMeshed(e.address, e.meshPort!, e.identity, e.port)
        : registry.get(e.address, e.port, protocol);
    endpoints.push({ state, pod: e.pod, identity: e.identity });
  }
  return { key, service: cluster.service, protocol: cluster.protocol, endpoints };
}

// Clusters compiled for the request path: only ready endpoints, each bound to its shared state.
import type { Cluster } from '../config/proxy-config.ts';
import type { EndpointRegistry, EndpointState, UpstreamProtocol } from './endpoint-state.ts';

export interface CompiledEndpoint {
  readonly state: EndpointState;
  readonly pod: string | undefined;
  /** Present when the endpoint must be reached over mTLS (not in this build: refused with 503). */
  readonly identity: string | undefined;
}

export interface CompiledCluster {
  /** `namespace/name` key of the cluster in the config. */
  readonly key: string;
  readonly service: string;
  readonly protocol: Cluster['protocol'];
  readonly endpoints: readonly CompiledEndpoint[];
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
    endpoints.push({ state: registry.get(e.address, e.port, protocol), pod: e.pod, identity: e.identity });
  }
  return { key, service: cluster.service, protocol: cluster.protocol, endpoints };
}

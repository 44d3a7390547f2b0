// A ProxyConfig compiled into everything the request path reads. Built whole before it is
// swapped in by reference: a config that does not compile never serves a request, and
// requests in flight keep the compiled config they started with.
import type { Listener, ProxyConfig } from './config/proxy-config.ts';
import { type CompiledGatewayListener, compileGatewayListener } from './listeners/gateway.ts';
import { type CompiledInboundListener, compileInboundListener } from './listeners/inbound.ts';
import { type CompiledMeshListener, compileMeshListener } from './listeners/mesh.ts';
import { type CompiledOutboundListener, compileOutboundListener } from './listeners/outbound.ts';
import { CompiledRouteTable } from './router/route-table.ts';
import { type CompiledCluster, compileCluster } from './upstream/cluster.ts';
import type { EndpointRegistry, EndpointState } from './upstream/endpoint-state.ts';

export type CompiledListener =
  | CompiledGatewayListener
  | CompiledOutboundListener
  | CompiledInboundListener
  | CompiledMeshListener;

export interface CompiledConfig {
  readonly config: ProxyConfig;
  readonly routeTables: ReadonlyMap<string, CompiledRouteTable>;
  readonly clusters: ReadonlyMap<string, CompiledCluster>;
  /** By listenerKey(). */
  readonly listeners: ReadonlyMap<string, CompiledListener>;
  /** Every endpoint this config can send to, so the registry can forget the others. */
  readonly endpoints: ReadonlySet<EndpointState>;
}

/**
 * What identifies a listening socket across configs: same key, same server (it keeps its
 * connections and picks up the new compiled listener); a new key binds a new socket.
 */
export function listenerKey(l: Listener): string {
  return `${l.kind}|${l.address}|${l.port}${l.kind === 'gateway' ? `|${l.protocol}` : ''}`;
}

export function compileConfig(config: ProxyConfig, registry: EndpointRegistry): CompiledConfig {
  const clusters = new Map<string, CompiledCluster>();
  for (const [key, cluster] of Object.entries(config.clusters))
    clusters.set(key, compileCluster(key, cluster, registry));
  const routeTables = new Map<string, CompiledRouteTable>();
  for (const [key, table] of Object.entries(config.routeTables)) {
    routeTables.set(key, new CompiledRouteTable(table, clusters, `routeTables[${JSON.stringify(key)}]`));
  }
  const listeners = new Map<string, CompiledListener>();
  for (const l of config.listeners) {
    if (l.kind === 'gateway') {
      listeners.set(listenerKey(l), compileGatewayListener(l, routeTables, config.tlsCertificates));
    } else if (l.kind === 'outbound') listeners.set(listenerKey(l), compileOutboundListener(l, routeTables, registry));
    else if (l.kind === 'inbound') listeners.set(listenerKey(l), compileInboundListener(l, registry));
    else if (l.kind === 'mesh') {
      listeners.set(listenerKey(l), compileMeshListener(l, config.trust.trustDomain, registry));
    }
  }
  const endpoints = new Set<EndpointState>();
  for (const c of clusters.values()) for (const e of c.endpoints) endpoints.add(e.state);
  for (const l of listeners.values()) {
    if (l.kind === 'inbound' && l.app) endpoints.add(l.app.endpoints[0].state);
    if (l.kind === 'mesh') for (const app of l.apps.values()) endpoints.add(app.endpoints[0].state);
  }
  return { config, routeTables, clusters, listeners, endpoints };
}

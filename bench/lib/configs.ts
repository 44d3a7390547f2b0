// ProxyConfigs of the benchmark's proxies: an edge proxy with one Gateway HTTP listener and one
// route to the backend (the forwarding bench), and the same listener with generated routes
// over many hosts and clusters (the idle-RSS bench: it serves no traffic).
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';
import { generatedTable, type Shape } from './routes.ts';

export const BACKEND_CLUSTER = 'bench/backend';

function edgeBase(listenPort: number): Omit<ProxyConfigInput, 'routeTables' | 'clusters'> {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'edge:bench/gw', mode: 'edge', namespace: 'bench', name: 'gw' },
    trust: { trustDomain: 'cluster.local' },
    listeners: [
      {
        kind: 'gateway',
        name: 'bench/gw/http',
        address: '127.0.0.1',
        port: listenPort,
        protocol: 'HTTP',
        hosts: [{ listener: 'bench/gw/http', routeTable: 'bench/gw/http' }],
      },
    ],
  };
}

/** The route table every forwarding bench uses: one route (PathPrefix `/`) to the backend. */
function toBackend(): ProxyConfigInput['routeTables'][string] {
  return {
    virtualHosts: [
      {
        domains: ['*'],
        routes: [
          {
            route: 'bench/backend',
            rule: 0,
            match: { path: { type: 'PathPrefix', value: '/' } },
            backends: [{ cluster: BACKEND_CLUSTER, weight: 1 }],
          },
        ],
      },
    ],
  };
}

/** The backend cluster of one endpoint. */
function backendCluster(
  endpoint: ProxyConfigInput['clusters'][string]['endpoints'][number],
): ProxyConfigInput['clusters'] {
  return { [BACKEND_CLUSTER]: { service: BACKEND_CLUSTER, port: 80, endpoints: [endpoint] } };
}

/** One listener, one route (PathPrefix `/`) to the backend. */
export function edgeOneRoute(listenPort: number, backendPort: number): ProxyConfigInput {
  return {
    ...edgeBase(listenPort),
    routeTables: { 'bench/gw/http': toBackend() },
    clusters: backendCluster({ address: '127.0.0.1', port: backendPort }),
  };
}

/** `routes` generated routes of the given shape (default: over routes/10 virtual hosts), clusters of 3 endpoints. */
export function edgeManyRoutes(listenPort: number, routes: number, shape: Shape = 'many-hosts'): ProxyConfigInput {
  const { table, clusters } = generatedTable(shape, routes);
  return { ...edgeBase(listenPort), routeTables: { 'bench/gw/http': table }, clusters };
}

export const TRUST_DOMAIN = 'cluster.local';
export const PAIR_SERVICE_HOST = 'backend.bench';

/**
 * Sidecar A (client side): an outbound listener on `outboundPort` that sends `backend.bench` to
 * the backend's pod through its sidecar B, over mTLS to B's mesh port, expecting B's identity.
 */
export function clientSidecar(outboundPort: number, meshPort: number, appPort: number, peer: string): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:bench/client-0', mode: 'sidecar', namespace: 'bench', name: 'client-0' },
    trust: { trustDomain: TRUST_DOMAIN },
    listeners: [
      {
        kind: 'outbound',
        name: 'outbound',
        address: '127.0.0.1',
        port: outboundPort,
        services: [
          {
            service: BACKEND_CLUSTER,
            hostnames: [PAIR_SERVICE_HOST],
            clusterIPs: [],
            ports: [{ port: 80, routeTable: 'bench/backend:80' }],
          },
        ],
      },
    ],
    routeTables: { 'bench/backend:80': toBackend() },
    clusters: backendCluster({ address: '127.0.0.1', port: appPort, meshPort, identity: peer, pod: 'bench/backend-0' }),
  };
}

/** Sidecar B (server side): a mesh listener on `meshPort` handing requests to the app on `appPort`. */
export function serverSidecar(meshPort: number, appPort: number): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:bench/backend-0', mode: 'sidecar', namespace: 'bench', name: 'backend-0' },
    trust: { trustDomain: TRUST_DOMAIN },
    listeners: [
      {
        kind: 'mesh',
        name: 'mesh',
        address: '127.0.0.1',
        port: meshPort,
        appAddress: '127.0.0.1',
        appPorts: [{ port: appPort }],
      },
    ],
    routeTables: {},
    clusters: {},
  };
}

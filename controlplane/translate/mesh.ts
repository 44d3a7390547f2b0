import { isIP } from 'node:net';
import type { Cluster, Endpoint, MeshedPod } from '../../sidecar/config/proxy-config.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { Pod, Service, ServicePort } from '../resources/types.ts';
import { type ClusterRef, clusterKey, clusterProtocol } from './http-route.ts';

export const INJECT_LABEL = 'weft.dev/inject';
export const INJECT_ANNOTATION = 'weft.dev/inject';
export const PLAINTEXT_ANNOTATION = 'weft.dev/plaintext';
export const PROXY_CONTAINER = 'weft-proxy';

/**
 * Whether a pod runs a weft sidecar: it was injected (has the proxy container), or — for
 * manifests that have not been through the webhook, as in `weft local` — it lives in a namespace
 * labelled `weft.dev/inject=enabled` and does not opt out. Gateway pods (labelled with their
 * Gateway) run the edge proxy instead; host-network pods are never meshed.
 */
export function isMeshed(snapshot: ResourceSnapshot, pod: Pod): boolean {
  if (pod.spec.hostNetwork) return false;
  if (pod.metadata.labels?.['gateway.networking.k8s.io/gateway-name']) return false;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return false;
  const injected = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].some((c) => c.name === PROXY_CONTAINER);
  if (injected) return true;
  if (pod.metadata.annotations?.[INJECT_ANNOTATION] === 'false') return false;
  const ns = snapshot.get('Namespace', pod.metadata.namespace ?? 'default');
  return ns?.metadata.labels?.[INJECT_LABEL] === 'enabled';
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function podIP(pod: Pod): string | undefined {
  return pod.status?.podIP ?? pod.status?.podIPs?.[0]?.ip;
}

/** ClusterIPs a client may dial; empty for headless and ExternalName Services. */
export function clusterIPs(svc: Service): string[] {
  if (svc.spec.type === 'ExternalName') return [];
  const ips = svc.spec.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec.clusterIP ? [svc.spec.clusterIP] : [];
  return ips.filter((ip) => isIP(ip) !== 0);
}

/** Ports a sidecar serves for: declared container ports and every port an EndpointSlice sends to this pod. */
export function podAppPorts(snapshot: ResourceSnapshot, pod: Pod): { port: number; appProtocol?: string }[] {
  const ports = new Map<number, string | undefined>();
  for (const c of pod.spec.containers)
    for (const p of c.ports ?? []) if ((p.protocol ?? 'TCP') === 'TCP') ports.set(p.containerPort, undefined);
  const ns = pod.metadata.namespace ?? 'default';
  for (const slice of snapshot.inNamespace('EndpointSlice', ns)) {
    const mine = slice.endpoints?.some((e) => e.targetRef?.kind === 'Pod' && e.targetRef.name === pod.metadata.name);
    if (!mine) continue;
    for (const p of slice.ports ?? [])
      if (p.port !== undefined && (p.protocol ?? 'TCP') === 'TCP' && !ports.get(p.port))
        ports.set(p.port, p.appProtocol);
  }
  return [...ports]
    .sort(([a], [b]) => a - b)
    .map(([port, appProtocol]) => (appProtocol ? { port, appProtocol } : { port }));
}

export interface ClusterContext {
  snapshot: ResourceSnapshot;
  trustDomain: string;
  meshPort: number;
  /** Pods that run a sidecar, by `namespace/name`. */
  meshedPods: Map<string, Pod>;
}

/**
 * A Service port's cluster: its ready and serving endpoints from EndpointSlices (matched by
 * port name, as kube-proxy does). Endpoints backed by a meshed pod carry that pod's SPIFFE
 * identity, so the caller's proxy must reach them over mTLS.
 */
export function buildCluster(ctx: ClusterContext, ref: ClusterRef): Cluster {
  const ns = ref.service.metadata.namespace ?? 'default';
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  for (const slice of ctx.snapshot.inNamespace('EndpointSlice', ns)) {
    if (slice.metadata.labels?.['kubernetes.io/service-name'] !== ref.service.metadata.name) continue;
    if (slice.addressType === 'FQDN') continue;
    const sp = slice.ports?.find((p) => (p.name ?? '') === (ref.port.name ?? '') && (p.protocol ?? 'TCP') === 'TCP');
    const port = sp?.port ?? numericTarget(ref.port);
    if (port === undefined) continue;
    for (const e of slice.endpoints ?? []) {
      const ready = e.conditions?.ready !== false;
      const podKey =
        e.targetRef?.kind === 'Pod' && e.targetRef.name
          ? `${e.targetRef.namespace ?? ns}/${e.targetRef.name}`
          : undefined;
      const pod = podKey ? ctx.meshedPods.get(podKey) : undefined;
      for (const address of e.addresses) {
        if (isIP(address) === 0) continue; // not an address the proxy can dial
        const id = `${address}:${port}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const ep: Endpoint = { address, port, ready };
        if (podKey) ep.pod = podKey;
        if (pod) {
          ep.identity = spiffeId(
            ctx.trustDomain,
            pod.metadata.namespace ?? 'default',
            pod.spec.serviceAccountName ?? 'default',
          );
          ep.meshPort = ctx.meshPort;
        }
        if (e.zone) ep.zone = e.zone;
        endpoints.push(ep);
      }
    }
  }
  endpoints.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
  return {
    service: `${ns}/${ref.service.metadata.name}`,
    port: ref.port.port,
    protocol: clusterProtocol(ref.port) ?? 'http1',
    endpoints,
  };
}

/**
 * Every meshed pod by IP (each of its addresses), sorted by address, for the sidecars' outbound listener: a request
 * to a pod's IP rather than a Service passes through to that pod over mTLS, checked against this identity. An
 * address two pods claim (one leaving, one coming) goes to the first by `namespace/name`.
 */
export function meshedPodsByIP(ctx: ClusterContext): MeshedPod[] {
  const byAddress = new Map<string, MeshedPod>();
  for (const key of [...ctx.meshedPods.keys()].sort()) {
    const pod = ctx.meshedPods.get(key)!;
    const identity = spiffeId(
      ctx.trustDomain,
      pod.metadata.namespace ?? 'default',
      pod.spec.serviceAccountName ?? 'default',
    );
    for (const address of [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)]) {
      if (!address || isIP(address) === 0 || byAddress.has(address)) continue;
      byAddress.set(address, { address, pod: key, identity, meshPort: ctx.meshPort });
    }
  }
  return [...byAddress.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function numericTarget(p: ServicePort): number | undefined {
  if (p.targetPort === undefined) return p.port;
  return typeof p.targetPort === 'number'
    ? p.targetPort
    : /^\d+$/.test(p.targetPort)
      ? Number(p.targetPort)
      : undefined;
}

export function serviceClusterRef(svc: Service, port: ServicePort): ClusterRef {
  return { key: clusterKey(svc.metadata.namespace ?? 'default', svc.metadata.name, port.port), service: svc, port };
}

/** DNS names a client in `clientNs` may use for a Service: the short name only from its own namespace. */
export function serviceHostnames(svc: Service, clientNs: string, clusterDomain: string): string[] {
  const ns = svc.metadata.namespace ?? 'default';
  const n = svc.metadata.name;
  const names = [`${n}.${ns}`, `${n}.${ns}.svc`, `${n}.${ns}.svc.${clusterDomain}`];
  return ns === clientNs ? [n, ...names] : names;
}

// Istio's port-name convention (`<protocol>[-suffix]`), used when a port has no appProtocol.
const OPAQUE_PORT_NAMES = new Set([
  'https',
  'tls',
  'tcp',
  'mongo',
  'mysql',
  'redis',
  'udp',
  'postgres',
  'amqp',
  'kafka',
]);

/**
 * Whether sidecars route a Service port as HTTP. An appProtocol weft speaks says yes, any other
 * appProtocol no; without one, a port named for an opaque protocol (`https`, `tls`, `tcp`,
 * `mysql-primary`, …) is passed through untouched and everything else is treated as HTTP.
 */
export function routesAsHttp(port: ServicePort): boolean {
  if ((port.protocol ?? 'TCP') !== 'TCP') return false;
  if (port.appProtocol !== undefined) return clusterProtocol(port) !== undefined;
  const prefix = (port.name ?? '').split('-')[0].toLowerCase();
  return !OPAQUE_PORT_NAMES.has(prefix);
}

/** The Service weft provisions for a Gateway: its traffic goes to the edge proxy as it is, not through mesh routes. */
export function isGatewayService(svc: Service): boolean {
  return (
    svc.metadata.labels?.['app.kubernetes.io/managed-by'] === 'weft' &&
    svc.metadata.labels?.['gateway.networking.k8s.io/gateway-name'] !== undefined
  );
}

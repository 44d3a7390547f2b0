import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';
import type { Condition, GatewayAddress, ParentReference, RouteGroupKind } from '../resources/types.ts';

export const DEFAULT_CONTROLLER_NAME = 'weft.dev/gateway-controller';

/** `sidecar:namespace/pod` or `edge:namespace/gateway`. */
export type ProxyId = string;

export interface TranslateOptions {
  /** GatewayClasses with this controllerName are weft's. */
  controllerName?: string;
  /** SPIFFE trust domain of workload identities. */
  trustDomain?: string;
  /** Kubernetes cluster DNS domain, for Service hostnames. */
  clusterDomain?: string;
  /** PEM of the mesh's trusted roots, copied into every proxy's config. */
  rootCAs?: string;
  /** Where a sidecar hands inbound traffic to its app: `127.0.0.1` in a pod, the pod IP in `weft local`. */
  inboundAppAddress?: 'loopback' | 'podIP';
  ports?: { outbound?: number; inbound?: number; mesh?: number; admin?: number };
  /**
   * Static Gateway addresses (`spec.addresses`) weft may use: IPs or CIDRs. Absent: any
   * `IPAddress` is usable. Hostname addresses are not supported.
   */
  usableAddresses?: string[];
  /**
   * When a usable static address counts as bound: `pool` (weft local: its edge proxy listens on it) or `service`
   * (a cluster: once the provisioned Service `<gw>-weft` carries it as an external IP, cluster IP or load-balancer
   * ingress; until then Programmed=False AddressNotAssigned). Default `pool`.
   */
  gatewayAddresses?: 'pool' | 'service';
}

export interface ConditionOut extends Omit<Condition, 'lastTransitionTime'> {
  observedGeneration: number;
}

export interface GatewayClassStatusOut {
  kind: 'GatewayClass';
  name: string;
  generation: number;
  status: { conditions: ConditionOut[]; supportedFeatures: { name: string }[] };
}

export interface ListenerStatusOut {
  name: string;
  supportedKinds: Required<RouteGroupKind>[];
  attachedRoutes: number;
  conditions: ConditionOut[];
}

export interface GatewayStatusOut {
  kind: 'Gateway';
  namespace: string;
  name: string;
  generation: number;
  status: { addresses: Required<GatewayAddress>[]; conditions: ConditionOut[]; listeners: ListenerStatusOut[] };
}

export interface RouteParentStatusOut {
  parentRef: ParentReference;
  controllerName: string;
  conditions: ConditionOut[];
}

export interface RouteStatusOut {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
  name: string;
  generation: number;
  /** Only the parents weft is responsible for; a status writer merges them with other controllers' entries. */
  status: { parents: RouteParentStatusOut[] };
}

export type StatusOut = GatewayClassStatusOut | GatewayStatusOut | RouteStatusOut;

export interface TranslateResult {
  /** One config per proxy, keys sorted. Sidecars in one namespace share their outbound tables by reference. */
  proxies: Map<ProxyId, ProxyConfig>;
  /** Status of every object weft owns, sorted by kind, namespace, name. Conditions carry no timestamps (pure). */
  statuses: StatusOut[];
}

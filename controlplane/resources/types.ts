// Kubernetes and Gateway API object shapes as weft reads them. Field names keep the
// upstream spellings (apis/v1 of kubernetes-sigs/gateway-api, core/v1, discovery/v1) so a
// manifest maps onto these types one to one. Only what weft reads is typed; everything else
// is carried along untouched in the parsed object.

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid?: string; controller?: boolean }[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

// ---- Gateway API ----

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
}

export interface SecretObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
}

export interface GatewayClass {
  apiVersion: string;
  kind: 'GatewayClass';
  metadata: ObjectMeta;
  spec: {
    controllerName: string;
    parametersRef?: { group: string; kind: string; name: string; namespace?: string };
    description?: string;
  };
  status?: { conditions?: Condition[]; supportedFeatures?: { name: string }[] };
}

export interface RouteGroupKind {
  group?: string;
  kind: string;
}

export interface GatewayTLSConfig {
  mode?: 'Terminate' | 'Passthrough';
  certificateRefs?: SecretObjectReference[];
  options?: Record<string, string>;
  frontendValidation?: unknown;
}

export interface Listener {
  name: string;
  hostname?: string;
  port: number;
  protocol: string;
  tls?: GatewayTLSConfig;
  allowedRoutes?: {
    namespaces?: {
      from?: 'All' | 'Same' | 'Selector' | 'None';
      selector?: LabelSelector;
    };
    kinds?: RouteGroupKind[];
  };
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** Gateway `spec.infrastructure` (GatewayInfrastructure). */
export interface GatewayInfrastructure {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  parametersRef?: { group: string; kind: string; name: string };
}

export interface GatewayAddress {
  type?: string;
  value: string;
}

export interface Gateway {
  apiVersion: string;
  kind: 'Gateway';
  metadata: ObjectMeta;
  spec: {
    gatewayClassName: string;
    listeners: Listener[];
    addresses?: GatewayAddress[];
    infrastructure?: GatewayInfrastructure;
    tls?: {
      frontend?: unknown;
      backend?: unknown;
    };
  };
  status?: unknown;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type StringMatchType = 'Exact' | 'RegularExpression';

export interface HTTPRouteMatch {
  path?: { type?: PathMatchType; value?: string };
  headers?: { type?: StringMatchType; name: string; value: string }[];
  queryParams?: { type?: StringMatchType; name: string; value: string }[];
  method?: string;
}

export interface HTTPHeaderFilter {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRouteFilter {
  type: string;
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestRedirect?: {
    scheme?: string;
    hostname?: string;
    path?: HTTPPathModifier;
    port?: number;
    statusCode?: number;
  };
  urlRewrite?: { hostname?: string; path?: HTTPPathModifier };
  requestMirror?: {
    backendRef: BackendObjectReference;
    percent?: number;
    fraction?: { numerator: number; denominator?: number };
  };
  cors?: {
    allowOrigins?: string[];
    allowCredentials?: boolean;
    allowMethods?: string[];
    allowHeaders?: string[];
    exposeHeaders?: string[];
    maxAge?: number;
  };
  externalAuth?: unknown;
  extensionRef?: { group: string; kind: string; name: string };
}

export interface HTTPBackendRef extends BackendObjectReference {
  weight?: number;
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
  sessionPersistence?: unknown;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface HTTPRoute {
  apiVersion: string;
  kind: 'HTTPRoute';
  metadata: ObjectMeta;
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: HTTPRouteRule[];
  };
  status?: { parents?: RouteParentStatus[] };
}

export interface GRPCRouteRule {
  name?: string;
  matches?: {
    method?: { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string };
    headers?: { type?: StringMatchType; name: string; value: string }[];
  }[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
}

export interface GRPCRoute {
  apiVersion: string;
  kind: 'GRPCRoute';
  metadata: ObjectMeta;
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: GRPCRouteRule[];
  };
  status?: { parents?: RouteParentStatus[] };
}

export interface ReferenceGrant {
  apiVersion: string;
  kind: 'ReferenceGrant';
  metadata: ObjectMeta;
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

// ---- core, apps, discovery ----

export interface ServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
  appProtocol?: string;
  nodePort?: number;
}

export interface Service {
  apiVersion: string;
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    selector?: Record<string, string>;
    ports?: ServicePort[];
    clusterIP?: string;
    clusterIPs?: string[];
    /** Addresses outside the cluster the Service's ports answer on (kube-proxy routes them). */
    externalIPs?: string[];
    externalName?: string;
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

export interface EndpointSlice {
  apiVersion: string;
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
    nodeName?: string;
    zone?: string;
  }[];
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: ContainerPort[];
  restartPolicy?: string;
  [key: string]: unknown;
}

export interface PodSpec {
  serviceAccountName?: string;
  containers: Container[];
  initContainers?: Container[];
  hostNetwork?: boolean;
  [key: string]: unknown;
}

export interface Pod {
  apiVersion: string;
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: PodSpec;
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    conditions?: { type: string; status: string }[];
  };
}

export interface Deployment {
  apiVersion: string;
  kind: 'Deployment';
  metadata: ObjectMeta;
  spec: {
    replicas?: number;
    selector: LabelSelector;
    template: { metadata?: Partial<ObjectMeta>; spec: PodSpec };
  };
}

export interface Namespace {
  apiVersion: string;
  kind: 'Namespace';
  metadata: ObjectMeta;
}

export interface Secret {
  apiVersion: string;
  kind: 'Secret';
  metadata: ObjectMeta;
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export interface ConfigMap {
  apiVersion: string;
  kind: 'ConfigMap';
  metadata: ObjectMeta;
  data?: Record<string, string>;
}

// ---- weft's own kinds ----

export const WEFT_GROUP = 'weft.dev';

/** Resource requests or limits: quantity strings (`100m`, `128Mi`) or plain numbers, by resource name. */
export type ResourceQuantities = Record<string, string | number>;

/**
 * How weft runs a Gateway's edge proxy (the Deployment and Service it provisions), referenced by a GatewayClass
 * `parametersRef` (defaults for the class) or a Gateway `spec.infrastructure.parametersRef` (overrides).
 */
export interface ProxySettings {
  apiVersion: string;
  kind: 'ProxySettings';
  metadata: ObjectMeta;
  spec: {
    replicas?: number;
    resources?: { requests?: ResourceQuantities; limits?: ResourceQuantities };
    service?: {
      type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
      annotations?: Record<string, string>;
    };
  };
}

export type Resource =
  | GatewayClass
  | Gateway
  | HTTPRoute
  | GRPCRoute
  | ReferenceGrant
  | Service
  | EndpointSlice
  | Pod
  | Deployment
  | Namespace
  | Secret
  | ConfigMap
  | ProxySettings;

export type ResourceKind = Resource['kind'];

/** apiVersions weft accepts for each kind; anything else is reported, not guessed at. */
export const KIND_API_VERSIONS: Record<ResourceKind, readonly string[]> = {
  GatewayClass: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Gateway: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1beta1', 'gateway.networking.k8s.io/v1'],
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  Pod: ['v1'],
  Deployment: ['apps/v1'],
  Namespace: ['v1'],
  Secret: ['v1'],
  ConfigMap: ['v1'],
  ProxySettings: ['weft.dev/v1alpha1'],
};

/** Kinds that live in a namespace (everything but GatewayClass and Namespace). */
export const CLUSTER_SCOPED: ReadonlySet<ResourceKind> = new Set(['GatewayClass', 'Namespace']);

// What weft runs for each Gateway of its class, as Kubernetes objects (pure; the provisioner does the I/O): a
// ServiceAccount, a Deployment of `weft proxy --mode edge` on the config push feed, and a Service with the
// listeners' ports, all named `<gateway>-weft` (shortened like gatewayServiceName for long names), labelled with
// the Gateway's name and controlled by the Gateway (ownerReferences, so the garbage collector removes them with it).
// Sizes and the Service's type come from ProxySettings (class defaults, Gateway overrides); the Gateway's
// `spec.infrastructure.labels/annotations` go onto every object and the Pods, as the Gateway API asks.
import { CA_DEFAULT_PORT, CA_TOKEN_AUDIENCE } from '../../sidecar/config/ca-api.ts';
import { PUSH_DEFAULT_PORT, PUSH_SERVER_NAME } from '../../sidecar/config/push-api.ts';
import { gatewayProxyServiceAccount } from '../push/identity.ts';
import {
  GATEWAY_CLASS_NAME_LABEL,
  GATEWAY_NAME_LABEL,
  gatewayServiceName,
  gatewayServicePorts,
  labelValueFor,
  MANAGED_BY_LABEL,
} from '../resources/materialize.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { Gateway, GatewayClass } from '../resources/types.ts';
import { serviceAddressRequest } from '../translate/gateway.ts';
import { INJECT_ANNOTATION, PROXY_CONTAINER } from '../translate/mesh.ts';
import {
  classProxySettings,
  type EffectiveProxySettings,
  gatewayProxySettings,
  type ServiceType,
} from '../translate/proxy-settings.ts';
import { DEFAULT_CONTROLLER_NAME } from '../translate/types.ts';
import type { KubeObject } from './client.ts';

/** Marks the pods of a Gateway's proxy (with the gateway-name label, the Deployment's selector). */
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const COMPONENT = 'weft-gateway';
/** The label and annotation keys weft copied from the Gateway and its ProxySettings, so it can remove them later. */
export const APPLIED_ANNOTATION = 'weft.dev/applied-keys';

/** Where the edge proxy finds its token and the mesh roots (the same paths the injector uses for sidecars). */
const TOKEN_DIR = '/var/run/secrets/weft/tokens';
const ROOT_CA_DIR = '/var/run/weft/root-ca';
const ROOT_CA_KEY = 'ca.crt';
const PROXY_UID = 1337;

export interface ProxyResources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface GatewayObjectOptions {
  /** The weft image (entrypoint `weft`): `weft controlplane --proxy-image`. */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The control plane's namespace: the default push and CA addresses point into it. Default `weft-system`. */
  controlPlaneNamespace?: string;
  /** Config push, host:port. Default `weft-controlplane.<controlPlaneNamespace>.svc:15010`. */
  pushAddress?: string;
  /** Mesh CA, host:port. Default `weft-controlplane.<controlPlaneNamespace>.svc:15012`. */
  caAddress?: string;
  trustDomain?: string;
  /** Audience of the projected ServiceAccount token the CA checks. Default `weft`. */
  tokenAudience?: string;
  tokenExpirationSeconds?: number;
  /** ConfigMap (key `ca.crt`) with the mesh roots, in the Gateway's namespace. Default `weft-root-ca`. */
  rootCaConfigMap?: string;
  adminPort?: number;
  logLevel?: string;
  /** What no ProxySettings sets. */
  replicas?: number;
  resources?: ProxyResources;
  serviceType?: ServiceType;
  /** GatewayClasses with this controllerName are weft's. */
  controllerName?: string;
  /** Static Gateway addresses weft may request (IPs or CIDRs; TranslateOptions.usableAddresses). Absent: any. */
  usableAddresses?: string[];
}

export const GATEWAY_OBJECT_DEFAULTS = {
  imagePullPolicy: 'IfNotPresent',
  controlPlaneNamespace: 'weft-system',
  trustDomain: 'cluster.local',
  tokenAudience: CA_TOKEN_AUDIENCE,
  tokenExpirationSeconds: 3600,
  rootCaConfigMap: 'weft-root-ca',
  adminPort: 15020,
  logLevel: 'info',
  replicas: 1,
  // An idle edge proxy is ~130 MiB resident, ~200 MiB with 1,000 routes (docs/performance.md).
  resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } } as ProxyResources,
  serviceType: 'LoadBalancer' as ServiceType,
  controllerName: DEFAULT_CONTROLLER_NAME,
} as const;

export type ResolvedGatewayObjectOptions = Required<
  Omit<GatewayObjectOptions, 'pushAddress' | 'caAddress' | 'usableAddresses'>
> & {
  pushAddress: string;
  caAddress: string;
  usableAddresses?: string[];
};

export function resolveGatewayObjectOptions(o: GatewayObjectOptions): ResolvedGatewayObjectOptions {
  const r = { ...GATEWAY_OBJECT_DEFAULTS, ...withoutUndefined(o), image: o.image };
  const host = `${PUSH_SERVER_NAME}.${r.controlPlaneNamespace}.svc`;
  return {
    ...r,
    pushAddress: o.pushAddress ?? `${host}:${PUSH_DEFAULT_PORT}`,
    caAddress: o.caAddress ?? `${host}:${CA_DEFAULT_PORT}`,
  };
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The objects of one Gateway, in the order they are created. */
export interface GatewayObjects {
  /** `namespace/name` of the Gateway. */
  key: string;
  namespace: string;
  gateway: string;
  serviceAccount: KubeObject;
  deployment: KubeObject;
  service: KubeObject;
}

/** The labels selecting a Gateway's proxy pods (the Deployment's selector, immutable: never change them). */
export function proxySelector(gatewayName: string): Record<string, string> {
  return { [GATEWAY_NAME_LABEL]: labelValueFor(gatewayName), [COMPONENT_LABEL]: COMPONENT };
}

/** The edge proxy's command line (after the image's `weft` entrypoint). */
export function edgeProxyArgs(gw: Gateway, o: ResolvedGatewayObjectOptions): string[] {
  const ns = gw.metadata.namespace ?? 'default';
  return [
    'proxy',
    '--mode',
    'edge',
    '--admin-port',
    String(o.adminPort),
    '--push',
    o.pushAddress,
    '--proxy-id',
    `edge:${ns}/${gw.metadata.name}`,
    '--ca-url',
    `https://${o.caAddress}`,
    '--trust-domain',
    o.trustDomain,
    '--service-account',
    gatewayProxyServiceAccount(gw.metadata.name),
    '--token-file',
    `${TOKEN_DIR}/token`,
    '--roots',
    `${ROOT_CA_DIR}/${ROOT_CA_KEY}`,
    '--log-level',
    o.logLevel,
  ];
}

/** The objects for one Gateway with its merged settings (options from resolveGatewayObjectOptions). */
export function gatewayObjects(
  gw: Gateway,
  gc: GatewayClass,
  settings: EffectiveProxySettings,
  o: ResolvedGatewayObjectOptions,
): GatewayObjects {
  const namespace = gw.metadata.namespace ?? 'default';
  const name = gatewayServiceName(gw.metadata.name);
  const infra = gw.spec.infrastructure ?? {};
  const ours = {
    [GATEWAY_NAME_LABEL]: labelValueFor(gw.metadata.name),
    [GATEWAY_CLASS_NAME_LABEL]: labelValueFor(gc.metadata.name),
    [MANAGED_BY_LABEL]: 'weft',
    [COMPONENT_LABEL]: COMPONENT,
  };
  // weft's own labels win over the Gateway's: the selector and ownership depend on them.
  const labels = { ...infra.labels, ...ours };
  const applied = JSON.stringify({
    labels: Object.keys(infra.labels ?? {})
      .filter((k) => !(k in ours))
      .sort(),
    annotations: [...new Set([...Object.keys(infra.annotations ?? {}), ...Object.keys(settings.serviceAnnotations)])]
      .filter((k) => k !== APPLIED_ANNOTATION)
      .sort(),
  });
  const annotations = { ...infra.annotations, [APPLIED_ANNOTATION]: applied };
  const metadata = (extra: Record<string, string> = {}) => {
    const m: KubeObject['metadata'] & object = {
      name,
      namespace,
      labels: { ...labels },
      annotations: { ...annotations, ...extra, [APPLIED_ANNOTATION]: applied },
    };
    if (gw.metadata.uid)
      m.ownerReferences = [
        {
          apiVersion: gw.apiVersion,
          kind: 'Gateway',
          name: gw.metadata.name,
          uid: gw.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ];
    return m;
  };
  const ports = gatewayServicePorts(gw);
  const serviceAccount: KubeObject = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: metadata(),
    // The proxy mounts its own audience-bound token; the API token is of no use to it.
    automountServiceAccountToken: false,
  };
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(),
    spec: {
      replicas: settings.replicas ?? o.replicas,
      selector: { matchLabels: proxySelector(gw.metadata.name) },
      template: {
        metadata: {
          labels: { ...labels },
          // An edge proxy is a proxy already: never give it a sidecar.
          annotations: { ...infra.annotations, [INJECT_ANNOTATION]: 'false' },
        },
        spec: {
          serviceAccountName: gatewayProxyServiceAccount(gw.metadata.name),
          automountServiceAccountToken: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: PROXY_UID,
            runAsGroup: PROXY_UID,
            // Listeners on 80 and 443 without root or NET_BIND_SERVICE (a safe sysctl since Kubernetes 1.22).
            sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }],
          },
          containers: [
            {
              name: PROXY_CONTAINER,
              image: o.image,
              imagePullPolicy: o.imagePullPolicy,
              args: edgeProxyArgs(gw, o),
              ports: [
                ...ports.map((p) => ({ containerPort: p.port, protocol: p.protocol ?? 'TCP' })),
                { name: 'admin', containerPort: o.adminPort, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: 'admin' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/live', port: 'admin' }, periodSeconds: 10 },
              resources: settings.resources ?? o.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'weft-token', mountPath: TOKEN_DIR, readOnly: true },
                { name: 'weft-root-ca', mountPath: ROOT_CA_DIR, readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            {
              name: 'weft-token',
              projected: {
                sources: [
                  {
                    serviceAccountToken: {
                      audience: o.tokenAudience,
                      expirationSeconds: o.tokenExpirationSeconds,
                      path: 'token',
                    },
                  },
                ],
              },
            },
            {
              name: 'weft-root-ca',
              configMap: { name: o.rootCaConfigMap, items: [{ key: ROOT_CA_KEY, path: ROOT_CA_KEY }] },
            },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
  const serviceType = settings.serviceType ?? o.serviceType;
  // The Gateway's static addresses, requested the way Envoy Gateway does (the translator reports them bound only
  // once the Service carries them).
  const request = serviceAddressRequest(gw, serviceType, o.usableAddresses);
  const service: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(settings.serviceAnnotations),
    spec: {
      type: serviceType,
      selector: proxySelector(gw.metadata.name),
      ports: ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.port, targetPort: p.targetPort })),
      ...(request.externalIPs.length > 0 ? { externalIPs: request.externalIPs } : {}),
      ...(request.clusterIP ? { clusterIP: request.clusterIP } : {}),
    },
  };
  return {
    key: `${namespace}/${gw.metadata.name}`,
    namespace,
    gateway: gw.metadata.name,
    serviceAccount,
    deployment,
    service,
  };
}

/**
 * Every Gateway weft runs a proxy for, with its merged settings: its GatewayClass is weft's and accepted, and its own
 * parametersRef (if any) resolves. A Gateway refused for other reasons (no valid listener, an unusable address)
 * keeps its proxy and Service, so its load-balancer address survives the fix.
 */
export function provisionedGateways(
  snapshot: ResourceSnapshot,
  controllerName: string = DEFAULT_CONTROLLER_NAME,
): { gateway: Gateway; gatewayClass: GatewayClass; settings: EffectiveProxySettings }[] {
  const classes = new Map<string, GatewayClass>();
  for (const gc of snapshot.list('GatewayClass'))
    if (gc.spec.controllerName === controllerName && classProxySettings(snapshot, gc).ok)
      classes.set(gc.metadata.name, gc);
  const out: { gateway: Gateway; gatewayClass: GatewayClass; settings: EffectiveProxySettings }[] = [];
  for (const gateway of snapshot.list('Gateway')) {
    const gatewayClass = classes.get(gateway.spec.gatewayClassName);
    if (!gatewayClass) continue;
    const settings = gatewayProxySettings(snapshot, gateway, gatewayClass);
    if (settings.ok) out.push({ gateway, gatewayClass, settings: settings.settings });
  }
  return out;
}

/**
 * The namespaces of provisioned Gateways: their proxies mount the root CA ConfigMap, so whoever publishes it
 * (RootCaPublisher's `namespaces`) must cover these next to the injected ones.
 */
export function gatewayNamespaces(snapshot: ResourceSnapshot, controllerName?: string): string[] {
  return [
    ...new Set(provisionedGateways(snapshot, controllerName).map((p) => p.gateway.metadata.namespace ?? 'default')),
  ];
}

/** The objects of every provisioned Gateway, by `namespace/name`. */
export function desiredGatewayObjects(
  snapshot: ResourceSnapshot,
  options: GatewayObjectOptions,
): Map<string, GatewayObjects> {
  const o = resolveGatewayObjectOptions(options);
  const out = new Map<string, GatewayObjects>();
  for (const p of provisionedGateways(snapshot, o.controllerName)) {
    const objects = gatewayObjects(p.gateway, p.gatewayClass, p.settings, o);
    out.set(objects.key, objects);
  }
  return out;
}

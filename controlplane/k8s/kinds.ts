// Where each kind of the ResourceSnapshot lives in the Kubernetes API: group, the versions weft reads (preferred
// first: the provider watches the first one the server serves), the plural resource name, scope, and the field
// selector an informer narrows its list/watch with.
import type { ResourceKind } from '../resources/types.ts';

export interface KindInfo {
  kind: ResourceKind;
  group: string;
  /** Versions weft can read, preferred first (all are in KIND_API_VERSIONS). */
  versions: readonly string[];
  plural: string;
  namespaced: boolean;
  /** Defined by a CRD (Gateway API's, weft's own): may be absent, and is then skipped, not an error. */
  optional: boolean;
  /** Server-side filter of the informer's list and watch. */
  fieldSelector?: string;
  /** The kind's `status` is written by controllers (weft among them) and not read by the translator. */
  statusIgnored?: boolean;
}

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

const gw = (kind: ResourceKind, plural: string, versions: string[], namespaced = true): KindInfo => ({
  kind,
  group: GATEWAY_API_GROUP,
  versions,
  plural,
  namespaced,
  optional: true,
  statusIgnored: kind !== 'ReferenceGrant',
});

const core = (kind: ResourceKind, plural: string, namespaced = true, group = '', version = 'v1'): KindInfo => ({
  kind,
  group,
  versions: [version],
  plural,
  namespaced,
  optional: false,
});

/** Every kind the snapshot holds, in the order informers start. */
export const WATCHED_KINDS: readonly KindInfo[] = [
  gw('GatewayClass', 'gatewayclasses', ['v1', 'v1beta1'], false),
  gw('Gateway', 'gateways', ['v1', 'v1beta1']),
  gw('HTTPRoute', 'httproutes', ['v1', 'v1beta1']),
  gw('GRPCRoute', 'grpcroutes', ['v1']),
  gw('ReferenceGrant', 'referencegrants', ['v1', 'v1beta1']),
  core('Namespace', 'namespaces', false),
  core('Service', 'services'),
  core('EndpointSlice', 'endpointslices', true, 'discovery.k8s.io'),
  core('Pod', 'pods'),
  core('Deployment', 'deployments', true, 'apps'),
  // Only certificates: a Gateway listener can use nothing else, and other Secrets are none of weft's business.
  { ...core('Secret', 'secrets'), fieldSelector: 'type=kubernetes.io/tls' },
  core('ConfigMap', 'configmaps'),
  // weft's own parameters kind: its CRD comes with the chart, and a cluster without it simply has none.
  { ...core('ProxySettings', 'proxysettings', true, 'weft.dev', 'v1alpha1'), optional: true },
];

export const KIND_INFO: ReadonlyMap<ResourceKind, KindInfo> = new Map(WATCHED_KINDS.map((k) => [k.kind, k]));

export const apiVersionOf = (group: string, version: string): string => (group ? `${group}/${version}` : version);

/** `/api/v1` or `/apis/<group>/<version>`. */
export function groupVersionPath(group: string, version: string): string {
  return group ? `/apis/${group}/${version}` : `/api/${version}`;
}

/** The REST path of a collection (all namespaces when `namespace` is undefined), an object, or its subresource. */
export function resourcePath(
  info: Pick<KindInfo, 'group' | 'plural' | 'namespaced'>,
  version: string,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let p = groupVersionPath(info.group, version);
  if (info.namespaced && namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${info.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

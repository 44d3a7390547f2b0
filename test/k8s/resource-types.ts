// The resources the test API server serves: their group, versions, names, scope and subresources (what discovery
// reports), the field selectors each supports, and the defaults the real API server (built-in strategies, or a
// CRD's OpenAPI `default`s) applies on write. The Gateway API defaults are those of the kubebuilder markers in
// apis/v1 (gateway-api v1.4): an object read back from a cluster carries them, a manifest on disk does not.

type Obj = Record<string, unknown>;

export interface ResourceType {
  group: string;
  /** Served versions, preferred first. */
  versions: string[];
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Has a `status` subresource: the main resource ignores status, `/status` ignores everything else. */
  status: boolean;
  /** Maintains `metadata.generation` (bumped when anything but metadata and status changes). */
  generation: boolean;
  /** Defined by a CustomResourceDefinition (can be absent; list items carry apiVersion/kind; no unconditional PUT). */
  crd: boolean;
  verbs: string[];
  /** Fields a fieldSelector may name beyond metadata.name and metadata.namespace. */
  fields?: Record<string, (o: Obj) => string | undefined>;
  /** Defaults applied on create and update (mutates). */
  defaults?: (o: Obj) => void;
  /** What a create resets (e.g. a Pod's status before the kubelet reports). */
  onCreate?: (o: Obj) => void;
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const rec = (v: unknown): Obj | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v.filter((x) => rec(x)) as Obj[]) : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function defaultParentRefs(spec: Obj | undefined): void {
  for (const p of arr(spec?.parentRefs)) {
    p.group ??= 'gateway.networking.k8s.io';
    p.kind ??= 'Gateway';
  }
}

function defaultBackendRef(b: Obj, weight: boolean): void {
  b.group ??= '';
  b.kind ??= 'Service';
  if (weight) b.weight ??= 1;
}

function defaultFilters(filters: unknown): void {
  for (const f of arr(filters)) {
    const mirror = rec(f.requestMirror);
    if (mirror) {
      const ref = rec(mirror.backendRef);
      if (ref) defaultBackendRef(ref, false);
      const fraction = rec(mirror.fraction);
      if (fraction) fraction.denominator ??= 100;
    }
    const redirect = rec(f.requestRedirect);
    if (redirect) redirect.statusCode ??= 302;
    const cors = rec(f.cors);
    if (cors) cors.maxAge ??= 5;
  }
}

function defaultHttpRoute(o: Obj): void {
  const spec = rec(o.spec);
  if (!spec) return;
  defaultParentRefs(spec);
  spec.rules ??= [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }];
  for (const rule of arr(spec.rules)) {
    rule.matches ??= [{ path: { type: 'PathPrefix', value: '/' } }];
    for (const m of arr(rule.matches)) {
      m.path ??= { type: 'PathPrefix', value: '/' };
      const path = rec(m.path);
      if (path) {
        path.type ??= 'PathPrefix';
        path.value ??= '/';
      }
      for (const h of arr(m.headers)) h.type ??= 'Exact';
      for (const q of arr(m.queryParams)) q.type ??= 'Exact';
    }
    defaultFilters(rule.filters);
    for (const b of arr(rule.backendRefs)) {
      defaultBackendRef(b, true);
      defaultFilters(b.filters);
    }
  }
}

function defaultGrpcRoute(o: Obj): void {
  const spec = rec(o.spec);
  if (!spec) return;
  defaultParentRefs(spec);
  for (const rule of arr(spec.rules)) {
    for (const m of arr(rule.matches)) {
      const method = rec(m.method);
      if (method) method.type ??= 'Exact';
      for (const h of arr(m.headers)) h.type ??= 'Exact';
    }
    defaultFilters(rule.filters);
    for (const b of arr(rule.backendRefs)) {
      defaultBackendRef(b, true);
      defaultFilters(b.filters);
    }
  }
}

const PENDING = (type: string) => ({
  type,
  status: 'Unknown',
  reason: 'Pending',
  message: 'Waiting for controller',
  lastTransitionTime: '1970-01-01T00:00:00Z',
});

function defaultGateway(o: Obj): void {
  const spec = rec(o.spec);
  for (const l of arr(spec?.listeners)) {
    l.allowedRoutes ??= { namespaces: { from: 'Same' } };
    const ns = rec(rec(l.allowedRoutes)?.namespaces);
    if (ns) ns.from ??= 'Same';
    const routeKinds = arr(rec(l.allowedRoutes)?.kinds);
    for (const k of routeKinds) k.group ??= 'gateway.networking.k8s.io';
    const tls = rec(l.tls);
    if (tls) {
      tls.mode ??= 'Terminate';
      for (const c of arr(tls.certificateRefs)) {
        c.group ??= '';
        c.kind ??= 'Secret';
      }
    }
  }
  for (const a of arr(spec?.addresses)) a.type ??= 'IPAddress';
}

function defaultGatewayStatus(o: Obj): void {
  o.status ??= { conditions: [PENDING('Accepted'), PENDING('Programmed')] };
}

function defaultGatewayClassStatus(o: Obj): void {
  o.status ??= { conditions: [PENDING('Accepted')] };
}

function defaultService(o: Obj): void {
  const spec = rec(o.spec) ?? {};
  o.spec = spec;
  spec.type ??= 'ClusterIP';
  if (spec.type !== 'ExternalName') {
    spec.sessionAffinity ??= 'None';
    spec.internalTrafficPolicy ??= 'Cluster';
  }
  for (const p of arr(spec.ports)) {
    p.protocol ??= 'TCP';
    if (spec.type !== 'ExternalName') p.targetPort ??= p.port;
  }
}

function defaultPodSpec(spec: Obj | undefined): void {
  if (!spec) return;
  spec.restartPolicy ??= 'Always';
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.serviceAccountName ??= 'default';
  spec.schedulerName ??= 'default-scheduler';
  for (const c of [...arr(spec.containers), ...arr(spec.initContainers)])
    for (const p of arr(c.ports)) p.protocol ??= 'TCP';
}

const gw = (kind: string, plural: string, versions: string[], extra: Partial<ResourceType> = {}): ResourceType => ({
  group: 'gateway.networking.k8s.io',
  versions,
  kind,
  plural,
  singular: kind.toLowerCase(),
  namespaced: true,
  status: true,
  generation: true,
  crd: true,
  verbs: ALL_VERBS,
  ...extra,
});

/** Every resource type the server knows (CRD-defined ones may be uninstalled at run time). */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  {
    group: '',
    versions: ['v1'],
    kind: 'Namespace',
    plural: 'namespaces',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    status: true,
    generation: false,
    crd: false,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    fields: { 'status.phase': (o) => str(rec(o.status)?.phase) },
    onCreate: (o) => {
      o.status = { phase: 'Active' };
    },
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Service',
    plural: 'services',
    singular: 'service',
    namespaced: true,
    shortNames: ['svc'],
    status: true,
    generation: false,
    crd: false,
    verbs: ALL_VERBS,
    defaults: defaultService,
    onCreate: (o) => {
      o.status = { loadBalancer: {} };
    },
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Pod',
    plural: 'pods',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    status: true,
    generation: true,
    crd: false,
    verbs: ALL_VERBS,
    fields: {
      'spec.nodeName': (o) => str(rec(o.spec)?.nodeName) ?? '',
      'spec.serviceAccountName': (o) => str(rec(o.spec)?.serviceAccountName) ?? '',
      'status.phase': (o) => str(rec(o.status)?.phase) ?? '',
      'status.podIP': (o) => str(rec(o.status)?.podIP) ?? '',
    },
    defaults: (o) => defaultPodSpec(rec(o.spec)),
    onCreate: (o) => {
      o.status = { phase: 'Pending', qosClass: 'BestEffort' };
    },
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Secret',
    plural: 'secrets',
    singular: 'secret',
    namespaced: true,
    status: false,
    generation: false,
    crd: false,
    verbs: ALL_VERBS,
    fields: { type: (o) => str(o.type) ?? 'Opaque' },
    defaults: (o) => {
      o.type ??= 'Opaque';
    },
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'ConfigMap',
    plural: 'configmaps',
    singular: 'configmap',
    namespaced: true,
    shortNames: ['cm'],
    status: false,
    generation: false,
    crd: false,
    verbs: ALL_VERBS,
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'ServiceAccount',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    namespaced: true,
    shortNames: ['sa'],
    status: false,
    generation: false,
    crd: false,
    verbs: ALL_VERBS,
  },
  {
    group: 'apps',
    versions: ['v1'],
    kind: 'Deployment',
    plural: 'deployments',
    singular: 'deployment',
    namespaced: true,
    shortNames: ['deploy'],
    status: true,
    generation: true,
    crd: false,
    verbs: ALL_VERBS,
    defaults: (o) => {
      const spec = rec(o.spec);
      if (!spec) return;
      spec.replicas ??= 1;
      defaultPodSpec(rec(rec(spec.template)?.spec));
    },
  },
  {
    group: 'discovery.k8s.io',
    versions: ['v1'],
    kind: 'EndpointSlice',
    plural: 'endpointslices',
    singular: 'endpointslice',
    namespaced: true,
    status: false,
    generation: true,
    crd: false,
    verbs: ALL_VERBS,
    fields: { addressType: (o) => str(o.addressType) },
  },
  {
    group: 'coordination.k8s.io',
    versions: ['v1'],
    kind: 'Lease',
    plural: 'leases',
    singular: 'lease',
    namespaced: true,
    status: false,
    generation: false,
    crd: false,
    verbs: ALL_VERBS,
  },
  {
    group: 'admissionregistration.k8s.io',
    versions: ['v1'],
    kind: 'MutatingWebhookConfiguration',
    plural: 'mutatingwebhookconfigurations',
    singular: 'mutatingwebhookconfiguration',
    namespaced: false,
    status: false,
    generation: true,
    crd: false,
    verbs: ALL_VERBS,
    defaults: (o) => {
      for (const w of arr(o.webhooks)) {
        w.failurePolicy ??= 'Fail';
        w.matchPolicy ??= 'Equivalent';
        w.reinvocationPolicy ??= 'Never';
        w.timeoutSeconds ??= 10;
        w.namespaceSelector ??= {};
        w.objectSelector ??= {};
        const service = rec(rec(w.clientConfig)?.service);
        if (service) service.port ??= 443;
      }
    },
  },
  {
    group: 'authentication.k8s.io',
    versions: ['v1'],
    kind: 'TokenReview',
    plural: 'tokenreviews',
    singular: 'tokenreview',
    namespaced: false,
    status: false,
    generation: false,
    crd: false,
    verbs: ['create'],
  },
  {
    group: 'apiextensions.k8s.io',
    versions: ['v1'],
    kind: 'CustomResourceDefinition',
    plural: 'customresourcedefinitions',
    singular: 'customresourcedefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    status: true,
    generation: true,
    crd: false,
    // Read-only here: CRDs are installed with the server's installCrd control.
    verbs: ['get', 'list', 'watch'],
  },
  gw('GatewayClass', 'gatewayclasses', ['v1', 'v1beta1'], {
    namespaced: false,
    shortNames: ['gc'],
    onCreate: defaultGatewayClassStatus,
  }),
  gw('Gateway', 'gateways', ['v1', 'v1beta1'], {
    shortNames: ['gtw'],
    defaults: defaultGateway,
    onCreate: defaultGatewayStatus,
  }),
  gw('HTTPRoute', 'httproutes', ['v1', 'v1beta1'], { defaults: defaultHttpRoute }),
  gw('GRPCRoute', 'grpcroutes', ['v1'], { defaults: defaultGrpcRoute }),
  gw('ReferenceGrant', 'referencegrants', ['v1', 'v1beta1'], {
    shortNames: ['refgrant'],
    status: false,
    generation: true,
  }),
  // weft's own CRD (charts/weft/crds).
  {
    group: 'weft.dev',
    versions: ['v1alpha1'],
    kind: 'ProxySettings',
    plural: 'proxysettings',
    singular: 'proxysettings',
    namespaced: true,
    status: false,
    generation: true,
    crd: true,
    verbs: ALL_VERBS,
  },
];

/** `group/plural` (core: `/plural`): the storage key shared by every version of a resource. */
export const groupResource = (t: Pick<ResourceType, 'group' | 'plural'>): string => `${t.group}/${t.plural}`;

export const apiVersionOf = (group: string, version: string): string => (group ? `${group}/${version}` : version);

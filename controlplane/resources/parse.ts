// One decoded YAML/JSON document → one Resource weft reads, `null` for a kind it does not read,
// or a ResourceError saying exactly which field is wrong. The checks stop at what the Kubernetes
// API server itself would refuse (OpenAPI/CRD schema types, required fields, name formats,
// port ranges); Gateway API semantics (unsupported protocols, bad references, CEL rules) are the
// translator's to report in status, so they pass here. Unknown fields pass through untouched.

import * as z from 'zod';
import { ResourceError, type SourcePosition } from './errors.ts';
import { CLUSTER_SCOPED, KIND_API_VERSIONS, type Resource, type ResourceKind } from './types.ts';

export type FieldPath = readonly (string | number)[];

export interface ParseWhere extends SourcePosition {
  /** Position of a field inside the document, when the caller knows it (YAML nodes); refines error positions. */
  locate?: (path: FieldPath) => { line: number; column: number } | undefined;
}

export interface ParseOptions {
  /** Namespace of namespaced objects that name none (kubectl's current namespace). Default `default`. */
  defaultNamespace?: string;
}

// ---- name formats (k8s.io/apimachinery/pkg/util/validation) ----

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

export function isDns1035Label(s: string): boolean {
  return s.length <= 63 && DNS1035_LABEL.test(s);
}

/** A label or annotation key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
export function isQualifiedName(s: string): boolean {
  const slash = s.indexOf('/');
  const prefix = slash >= 0 ? s.slice(0, slash) : undefined;
  const name = slash >= 0 ? s.slice(slash + 1) : s;
  if (prefix !== undefined && (prefix.length === 0 || !isDns1123Subdomain(prefix))) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}

const FORMAT_TEXT = {
  subdomain:
    "a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
  label:
    "a valid DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
  dns1035:
    "a valid DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters)",
} as const;

// What the API server requires of metadata.name, per kind (Service names become DNS labels).
const NAME_FORMAT: Record<ResourceKind, keyof typeof FORMAT_TEXT> = {
  GatewayClass: 'subdomain',
  Gateway: 'subdomain',
  HTTPRoute: 'subdomain',
  GRPCRoute: 'subdomain',
  ReferenceGrant: 'subdomain',
  Service: 'dns1035',
  EndpointSlice: 'subdomain',
  Pod: 'subdomain',
  Deployment: 'subdomain',
  Namespace: 'label',
  Secret: 'subdomain',
  ConfigMap: 'subdomain',
  ProxySettings: 'subdomain',
};

function nameMatches(format: keyof typeof FORMAT_TEXT, s: string): boolean {
  return format === 'label' ? isDns1123Label(s) : format === 'dns1035' ? isDns1035Label(s) : isDns1123Subdomain(s);
}

// ---- shape schemas (types, required fields, ranges the CRDs/OpenAPI declare) ----

const obj = z.looseObject;
const str = z.string();
const nonEmpty = z.string().min(1);
const strMap = z.record(z.string(), z.string());
const port = z.int().min(1).max(65535);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);
const base64 = z.string().regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, {
  error: 'expected base64-encoded string',
});
const intOrString = z.union([port, nonEmpty], {
  error: (iss) =>
    iss.input === undefined
      ? 'required'
      : typeof iss.input === 'number'
        ? 'must be an integer between 1 and 65535 or a port name'
        : `expected integer or string, got ${describe(iss.input)}`,
});

const quantities = z.record(z.string(), z.union([z.string(), z.number()]));

const labelSelector = obj({
  matchLabels: strMap.optional(),
  matchExpressions: z.array(obj({ key: str, operator: nonEmpty, values: z.array(str).optional() })).optional(),
});

const nameValue = obj({ name: nonEmpty, value: str });

const parentRef = obj({
  group: str.optional(),
  kind: str.optional(),
  namespace: str.optional(),
  name: nonEmpty,
  sectionName: str.optional(),
  port: port.optional(),
});

const backendObjectRefShape = {
  group: str.optional(),
  kind: str.optional(),
  name: nonEmpty,
  namespace: str.optional(),
  port: port.optional(),
};
const backendObjectRef = obj(backendObjectRefShape);

const headerFilter = obj({
  set: z.array(nameValue).optional(),
  add: z.array(nameValue).optional(),
  remove: z.array(str).optional(),
});

const pathModifier = obj({ type: nonEmpty, replaceFullPath: str.optional(), replacePrefixMatch: str.optional() });

const routeFilter = obj({
  type: nonEmpty,
  requestHeaderModifier: headerFilter.optional(),
  responseHeaderModifier: headerFilter.optional(),
  requestRedirect: obj({
    scheme: str.optional(),
    hostname: str.optional(),
    path: pathModifier.optional(),
    port: port.optional(),
    statusCode: z.int().optional(),
  }).optional(),
  urlRewrite: obj({ hostname: str.optional(), path: pathModifier.optional() }).optional(),
  requestMirror: obj({
    backendRef: backendObjectRef,
    percent: z.int().min(0).max(100).optional(),
    fraction: obj({ numerator: z.int().min(0), denominator: z.int().min(1).optional() }).optional(),
  }).optional(),
  cors: obj({
    allowOrigins: z.array(str).optional(),
    allowCredentials: z.boolean().optional(),
    allowMethods: z.array(str).optional(),
    allowHeaders: z.array(str).optional(),
    exposeHeaders: z.array(str).optional(),
    maxAge: z.int().optional(),
  }).optional(),
  extensionRef: obj({ group: str, kind: nonEmpty, name: nonEmpty }).optional(),
});

const routeBackendRef = obj({
  ...backendObjectRefShape,
  weight: z.int().min(0).max(1000000).optional(),
  filters: z.array(routeFilter).optional(),
});

const stringMatch = obj({ type: str.optional(), name: nonEmpty, value: str });

const httpRouteRule = obj({
  name: str.optional(),
  matches: z
    .array(
      obj({
        path: obj({ type: str.optional(), value: str.optional() }).optional(),
        headers: z.array(stringMatch).optional(),
        queryParams: z.array(stringMatch).optional(),
        method: str.optional(),
      }),
    )
    .optional(),
  filters: z.array(routeFilter).optional(),
  backendRefs: z.array(routeBackendRef).optional(),
  timeouts: obj({ request: str.optional(), backendRequest: str.optional() }).optional(),
  retry: obj({ codes: z.array(z.int()).optional(), attempts: z.int().optional(), backoff: str.optional() }).optional(),
});

const grpcRouteRule = obj({
  name: str.optional(),
  matches: z
    .array(
      obj({
        method: obj({ type: str.optional(), service: str.optional(), method: str.optional() }).optional(),
        headers: z.array(stringMatch).optional(),
      }),
    )
    .optional(),
  filters: z.array(routeFilter).optional(),
  backendRefs: z.array(routeBackendRef).optional(),
});

const listener = obj({
  name: nonEmpty,
  hostname: str.optional(),
  port,
  protocol: nonEmpty,
  tls: obj({
    mode: str.optional(),
    certificateRefs: z
      .array(obj({ group: str.optional(), kind: str.optional(), name: nonEmpty, namespace: str.optional() }))
      .optional(),
    options: strMap.optional(),
  }).optional(),
  allowedRoutes: obj({
    namespaces: obj({ from: str.optional(), selector: labelSelector.optional() }).optional(),
    kinds: z.array(obj({ group: str.optional(), kind: nonEmpty })).optional(),
  }).optional(),
});

const container = obj({
  name: nonEmpty,
  image: str.optional(),
  command: z.array(str).optional(),
  args: z.array(str).optional(),
  env: z.array(obj({ name: nonEmpty, value: str.optional() })).optional(),
  ports: z
    .array(
      obj({ name: str.optional(), containerPort: port, protocol: protocol.optional(), hostPort: z.int().optional() }),
    )
    .optional(),
  restartPolicy: str.optional(),
});

const podSpec = obj({
  containers: z.array(container).min(1),
  initContainers: z.array(container).optional(),
  serviceAccountName: str.optional(),
  hostNetwork: z.boolean().optional(),
});

const SCHEMAS: Record<ResourceKind, z.ZodType> = {
  GatewayClass: obj({
    spec: obj({
      controllerName: nonEmpty,
      parametersRef: obj({ group: str, kind: nonEmpty, name: nonEmpty, namespace: str.optional() }).optional(),
      description: str.optional(),
    }),
  }),
  Gateway: obj({
    spec: obj({
      gatewayClassName: nonEmpty,
      listeners: z.array(listener).min(1),
      addresses: z.array(obj({ type: str.optional(), value: str.optional() })).optional(),
      infrastructure: obj({
        labels: strMap.optional(),
        annotations: strMap.optional(),
        parametersRef: obj({ group: str, kind: nonEmpty, name: nonEmpty }).optional(),
      }).optional(),
    }),
  }),
  HTTPRoute: obj({
    spec: obj({
      parentRefs: z.array(parentRef).optional(),
      hostnames: z.array(str).optional(),
      rules: z.array(httpRouteRule).optional(),
    }),
  }),
  GRPCRoute: obj({
    spec: obj({
      parentRefs: z.array(parentRef).optional(),
      hostnames: z.array(str).optional(),
      rules: z.array(grpcRouteRule).optional(),
    }),
  }),
  ReferenceGrant: obj({
    spec: obj({
      from: z.array(obj({ group: str, kind: nonEmpty, namespace: nonEmpty })).min(1),
      to: z.array(obj({ group: str, kind: nonEmpty, name: str.optional() })).min(1),
    }),
  }),
  Service: obj({
    spec: obj({
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
      selector: strMap.optional(),
      ports: z
        .array(
          obj({
            name: str.optional(),
            protocol: protocol.optional(),
            port,
            targetPort: intOrString.optional(),
            appProtocol: str.optional(),
            nodePort: z.int().optional(),
          }),
        )
        .optional(),
      clusterIP: str.optional(),
      clusterIPs: z.array(str).optional(),
      externalIPs: z.array(str).optional(),
      externalName: str.optional(),
    }).optional(),
  }),
  EndpointSlice: obj({
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    endpoints: z
      .array(
        obj({
          addresses: z.array(str).min(1),
          conditions: obj({
            ready: z.boolean().optional(),
            serving: z.boolean().optional(),
            terminating: z.boolean().optional(),
          }).optional(),
          targetRef: obj({
            kind: str.optional(),
            name: str.optional(),
            namespace: str.optional(),
            uid: str.optional(),
          }).optional(),
          nodeName: str.optional(),
          zone: str.optional(),
        }),
      )
      .optional(),
    ports: z
      .array(
        obj({
          name: str.optional(),
          port: z.int().min(0).max(65535).optional(),
          protocol: protocol.optional(),
          appProtocol: str.optional(),
        }),
      )
      .optional(),
  }),
  Pod: obj({
    spec: podSpec,
    status: obj({
      phase: str.optional(),
      podIP: str.optional(),
      podIPs: z.array(obj({ ip: str })).optional(),
      conditions: z.array(obj({ type: nonEmpty, status: str })).optional(),
    }).optional(),
  }),
  Deployment: obj({
    spec: obj({
      replicas: z.int().min(0).optional(),
      selector: labelSelector,
      template: obj({
        metadata: obj({ labels: strMap.optional(), annotations: strMap.optional() }).optional(),
        spec: podSpec,
      }),
    }).superRefine((spec, ctx) => {
      // apps/v1 validation: the selector must select the Pods the template makes.
      const labels = spec.template.metadata?.labels ?? {};
      for (const [k, v] of Object.entries(spec.selector.matchLabels ?? {})) {
        if (labels[k] !== v) {
          ctx.addIssue({
            code: 'custom',
            path: ['template', 'metadata', 'labels'],
            message: `selector does not match template labels (${k}=${v} missing)`,
          });
          return;
        }
      }
    }),
  }),
  Namespace: obj({}),
  Secret: obj({ type: str.optional(), data: z.record(z.string(), base64).optional(), stringData: strMap.optional() }),
  ConfigMap: obj({ data: strMap.optional(), binaryData: z.record(z.string(), base64).optional() }),
  // The CRD's types (charts/weft/crds/weft.dev_proxysettings.yaml); what the values mean is checked by the
  // translator, which reports a bad value on the GatewayClass or Gateway that uses it.
  ProxySettings: obj({
    spec: obj({
      replicas: z.int().min(0).optional(),
      resources: obj({ requests: quantities.optional(), limits: quantities.optional() }).optional(),
      service: obj({
        type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).optional(),
        annotations: strMap.optional(),
      }).optional(),
    }),
  }),
};

// ---- helpers ----

/** `spec.listeners[1].port`; keys that are not identifiers are quoted: `metadata.labels["app/x"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$-]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`;
  return typeof v;
}

const TYPE_NAMES: Record<string, string> = { int: 'integer', number: 'integer', record: 'object', map: 'object' };

function issueText(iss: z.core.$ZodIssue): string {
  const input = (iss as { input?: unknown }).input;
  switch (iss.code) {
    case 'invalid_type':
      return input === undefined
        ? 'required'
        : `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(input)}`;
    case 'too_small':
      if (iss.origin === 'array') return `must have at least ${iss.minimum} item${iss.minimum === 1 ? '' : 's'}`;
      if (iss.origin === 'string') return 'must not be empty';
      return `must be >= ${iss.minimum}, got ${describe(input)}`;
    case 'too_big':
      if (iss.origin === 'array') return `must have at most ${iss.maximum} items`;
      if (iss.origin === 'string') return `must be at most ${iss.maximum} characters`;
      return `must be <= ${iss.maximum}, got ${describe(input)}`;
    case 'invalid_value':
      if (input === undefined) return 'required';
      return `must be one of ${iss.values.map((v) => String(v)).join(', ')}, got ${describe(input)}`;
    default:
      return iss.message;
  }
}

/** A deep copy without `null`-valued keys: to the API server (and kubectl apply) `field: null` means unset. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
    return out;
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash >= 0 ? apiVersion.slice(0, slash) : '';
}

// Groups that once served a kind before it moved (so the old apiVersion is a mistake, not another API).
const RETIRED_GROUPS: Partial<Record<ResourceKind, readonly string[]>> = { Deployment: ['extensions'] };

/** True for the kinds weft reads (the members of `Resource`). */
export function isReadKind(kind: string): kind is ResourceKind {
  return Object.hasOwn(KIND_API_VERSIONS, kind);
}

interface Ref {
  kind?: string;
  namespace?: string;
  name?: string;
}

function fail(where: ParseWhere, ref: Ref, path: FieldPath, reason: string): never {
  let pos: { line: number; column: number } | undefined;
  // A missing field has no position of its own: fall back to its nearest present parent.
  for (let n = path.length; !pos && n > 0 && where.locate; n--) pos = where.locate(path.slice(0, n));
  throw new ResourceError({
    file: where.file,
    line: pos?.line ?? where.line,
    column: pos?.column ?? where.column,
    kind: ref.kind,
    namespace: ref.namespace,
    name: ref.name,
    reason,
  });
}

function checkStringMap(
  where: ParseWhere,
  ref: Ref,
  path: FieldPath,
  m: unknown,
  checkValue: ((v: string) => boolean) | undefined,
): void {
  if (m === undefined) return;
  const at = formatPath(path);
  if (!isPlainObject(m)) fail(where, ref, path, `${at}: expected object, got ${describe(m)}`);
  for (const [k, v] of Object.entries(m)) {
    const p = [...path, k];
    if (!isQualifiedName(k))
      fail(
        where,
        ref,
        p,
        `${at}: key ${JSON.stringify(k)} is not a valid qualified name (optional DNS-subdomain prefix and '/', then at most 63 of [A-Za-z0-9-_.] starting and ending alphanumeric)`,
      );
    if (typeof v !== 'string') fail(where, ref, p, `${formatPath(p)}: expected string, got ${describe(v)}`);
    if (checkValue && !checkValue(v))
      fail(
        where,
        ref,
        p,
        `${formatPath(p)}: ${JSON.stringify(v)} is not a valid label value (at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric)`,
      );
  }
}

/**
 * Checks one decoded document and returns the object weft will use: a deep copy without
 * `null` fields, with `metadata.namespace` set for namespaced kinds (defaulted) and removed for
 * cluster-scoped ones, and `spec: {}` for a Service without spec. Returns `null` for a kind weft
 * does not read — including a kind whose name weft knows but whose API group differs (an Istio
 * `Gateway`, a Knative `Service`); a known kind in a known group but an unserved version is an error.
 * Throws ResourceError.
 */
export function parseResource(doc: unknown, where: ParseWhere, opts: ParseOptions = {}): Resource | null {
  const ref: Ref = {};
  if (!isPlainObject(doc)) fail(where, ref, [], `document is not an object (got ${describe(doc)})`);
  const { apiVersion, kind } = doc;
  if (typeof kind === 'string' && kind) ref.kind = kind;
  const md = doc.metadata;
  if (isPlainObject(md)) {
    if (typeof md.name === 'string' && md.name) ref.name = md.name;
    if (typeof md.namespace === 'string' && md.namespace) ref.namespace = md.namespace;
  }

  if (apiVersion === undefined || apiVersion === null || apiVersion === '')
    fail(where, ref, ['apiVersion'], 'apiVersion: required');
  if (typeof apiVersion !== 'string')
    fail(where, ref, ['apiVersion'], `apiVersion: expected string, got ${describe(apiVersion)}`);
  if (kind === undefined || kind === null || kind === '') fail(where, ref, ['kind'], 'kind: required');
  if (typeof kind !== 'string') fail(where, ref, ['kind'], `kind: expected string, got ${describe(kind)}`);
  if (md === undefined || md === null) fail(where, ref, ['metadata'], 'metadata: required');
  if (!isPlainObject(md)) fail(where, ref, ['metadata'], `metadata: expected object, got ${describe(md)}`);
  if (md.name === undefined || md.name === null || md.name === '')
    fail(where, ref, ['metadata', 'name'], 'metadata.name: required');
  if (typeof md.name !== 'string')
    fail(where, ref, ['metadata', 'name'], `metadata.name: expected string, got ${describe(md.name)}`);
  // Every object name is a URL path segment.
  if (md.name === '.' || md.name === '..' || /[/%]/.test(md.name))
    fail(
      where,
      ref,
      ['metadata', 'name'],
      `metadata.name: ${JSON.stringify(md.name)} may not be '.', '..' or contain '/' or '%'`,
    );

  if (!isReadKind(kind)) return null;
  if (CLUSTER_SCOPED.has(kind)) delete ref.namespace;
  else ref.namespace ??= opts.defaultNamespace ?? 'default';
  const served = KIND_API_VERSIONS[kind];
  if (!served.includes(apiVersion)) {
    const group = groupOf(apiVersion);
    const sameApi = served.some((v) => groupOf(v) === group) || RETIRED_GROUPS[kind]?.includes(group);
    if (!sameApi) return null; // same kind name, another API
    fail(where, ref, ['apiVersion'], `apiVersion ${apiVersion} is not served for ${kind}; use ${served.join(' or ')}`);
  }

  const out = withoutNulls(doc) as Record<string, unknown> & { metadata: Record<string, unknown> };
  const meta = out.metadata;
  const clusterScoped = CLUSTER_SCOPED.has(kind);
  if (clusterScoped) {
    delete meta.namespace; // the API server ignores it for cluster-scoped kinds
  } else {
    if (meta.namespace === undefined || meta.namespace === '') meta.namespace = opts.defaultNamespace ?? 'default';
    if (typeof meta.namespace !== 'string')
      fail(
        where,
        ref,
        ['metadata', 'namespace'],
        `metadata.namespace: expected string, got ${describe(meta.namespace)}`,
      );
    ref.namespace = meta.namespace;
    if (!isDns1123Label(meta.namespace))
      fail(
        where,
        ref,
        ['metadata', 'namespace'],
        `metadata.namespace: ${JSON.stringify(meta.namespace)} is not ${FORMAT_TEXT.label}`,
      );
  }
  const format = NAME_FORMAT[kind];
  if (!nameMatches(format, md.name))
    fail(where, ref, ['metadata', 'name'], `metadata.name: ${JSON.stringify(md.name)} is not ${FORMAT_TEXT[format]}`);
  checkStringMap(where, ref, ['metadata', 'labels'], meta.labels, isLabelValue);
  checkStringMap(where, ref, ['metadata', 'annotations'], meta.annotations, undefined);

  const result = SCHEMAS[kind].safeParse(out, { reportInput: true });
  if (!result.success) {
    const issues = result.error.issues;
    const texts = issues.slice(0, 3).map((iss) => {
      const at = formatPath(iss.path);
      return at ? `${at}: ${issueText(iss)}` : issueText(iss);
    });
    if (issues.length > 3) texts.push(`(and ${issues.length - 3} more)`);
    fail(where, ref, issues[0].path as FieldPath, texts.join('; '));
  }
  if (kind === 'Service' && out.spec === undefined) out.spec = {};
  if (kind === 'Gateway') {
    // `value` became optional (empty = "assign one of this type"); Go clients read a missing one as "".
    const spec = out.spec as { addresses?: { value?: string }[] };
    for (const a of spec.addresses ?? []) a.value ??= '';
  }
  // The schemas only check; `out` (not zod's copy) is returned so key order and unknown fields stay as written.
  return out as unknown as Resource;
}

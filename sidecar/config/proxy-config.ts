// The ProxyConfig contract: everything one weft proxy runs with. The proxy owns it (this
// file lives in sidecar/), the control plane produces it. The schema is the single source of
// truth: the TypeScript types are inferred from it and the validator runs it, then the
// cross-reference checks in validate.ts. Bump PROXY_CONFIG_VERSION on any incompatible change.
//
// Conventions: durations are integer milliseconds; keys of objects are `namespace/name`;
// Gateway API spellings are kept where a field mirrors one.
import { z } from 'zod';

export const PROXY_CONFIG_VERSION = 'weft.dev/v1alpha1';

// RFC 9110 token (header names), and a value without CR/LF/NUL (header injection) or any other
// character Node's http refuses (it would throw ERR_INVALID_CHAR on every request, not at load).
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// RFC 1123 hostname, optionally with one leading `*.` label (Gateway API Hostname).
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/;

const Port = z.int().min(1).max(65535);
const Millis = z.int().min(0);
const HeaderName = z.string().regex(HEADER_NAME, 'not a valid HTTP header name');
const HeaderValue = z
  .string()
  .regex(
    HEADER_VALUE,
    'header value must not contain CR, LF, NUL, other control characters or characters above U+00FF',
  );
const Hostname = z.string().max(253).regex(HOSTNAME, 'not a valid hostname (RFC 1123, optional leading "*.")');
/** Gateway API PreciseHostname: no wildcard (a Location header or a Service DNS name cannot be one). */
const PreciseHostname = z.string().max(253).regex(PRECISE_HOSTNAME, 'not a valid hostname (RFC 1123, no wildcard)');
/** A virtual host domain: a hostname, a `*.` wildcard, or `*` for any host. */
const Domain = z.union([z.literal('*'), Hostname], {
  error: 'not a valid domain ("*", or an RFC 1123 hostname with optional leading "*.")',
});
const IP = z.union([z.ipv4(), z.ipv6()], { error: 'not a valid IPv4 or IPv6 address' });
const Key = z.string().min(1).max(512);

export const HeaderModifierSchema = z.strictObject({
  set: z.array(z.strictObject({ name: HeaderName, value: HeaderValue })).default([]),
  add: z.array(z.strictObject({ name: HeaderName, value: HeaderValue })).default([]),
  remove: z.array(HeaderName).default([]),
});

export const StringMatchSchema = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']),
  name: HeaderName,
  value: z.string(),
});

export const PathMatchSchema = z.strictObject({
  type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']),
  value: z.string().min(1),
});

export const RouteMatchSchema = z.strictObject({
  path: PathMatchSchema.optional(),
  headers: z.array(StringMatchSchema).default([]),
  queryParams: z.array(StringMatchSchema).default([]),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']).optional(),
});

/** ReplacePrefixMatch replaces the matched `match.path` prefix; the route's match must be a PathPrefix. */
export const PathModifierSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ReplaceFullPath'), value: z.string() }),
  z.strictObject({ type: z.literal('ReplacePrefixMatch'), value: z.string() }),
]);

/**
 * RequestRedirect, fields as in the Gateway API. Absent `scheme` keeps the request's; absent
 * `hostname` keeps the request's host; absent `port` follows the spec: the well-known port of
 * an explicit scheme, else the port the request arrived on. The Location omits :80 for http
 * and :443 for https.
 */
export const RedirectSchema = z.strictObject({
  scheme: z.enum(['http', 'https']).optional(),
  hostname: PreciseHostname.optional(),
  port: Port.optional(),
  path: PathModifierSchema.optional(),
  statusCode: z.literal([301, 302, 303, 307, 308]),
});

export const RewriteSchema = z.strictObject({
  hostname: PreciseHostname.optional(),
  path: PathModifierSchema.optional(),
});

/** A mirror copies the request to `cluster` for `percent` % of requests (0–100, fractional allowed). */
export const MirrorSchema = z.strictObject({
  cluster: Key,
  percent: z.number().min(0).max(100),
});

export const CorsSchema = z.strictObject({
  allowOrigins: z.array(z.string()).default([]),
  allowCredentials: z.boolean().default(false),
  allowMethods: z.array(z.string()).default([]),
  allowHeaders: z.array(z.string()).default([]),
  exposeHeaders: z.array(z.string()).default([]),
  maxAge: z.int().min(0).default(5),
});

export const FiltersSchema = z.strictObject({
  requestHeaders: HeaderModifierSchema.optional(),
  responseHeaders: HeaderModifierSchema.optional(),
  redirect: RedirectSchema.optional(),
  rewrite: RewriteSchema.optional(),
  mirrors: z.array(MirrorSchema).default([]),
  cors: CorsSchema.optional(),
});

/**
 * One weighted share of a rule. `cluster: null` marks a backendRef that did not resolve: its
 * share of requests is answered with `status` (500 by the Gateway API) and never forwarded.
 */
export const WeightedBackendSchema = z.strictObject({
  cluster: Key.nullable(),
  weight: z.int().min(0).max(1_000_000),
  filters: FiltersSchema.optional(),
  status: z.int().min(400).max(599).optional(),
  reason: z.string().optional(),
});

export const TimeoutsSchema = z.strictObject({
  /** Whole request, client to last byte of the response headers; 0 = none. */
  request: Millis.optional(),
  /** Each attempt to a backend; 0 = none. */
  backendRequest: Millis.optional(),
});

export const RetrySchema = z.strictObject({
  codes: z.array(z.int().min(400).max(599)).default([]),
  attempts: z.int().min(0).max(10),
  backoff: Millis.optional(),
});

/**
 * One match of one HTTPRoute rule. Route tables hold these already sorted by the Gateway
 * API precedence: the proxy takes the first whose match holds.
 */
export const RouteSchema = z.strictObject({
  /** The HTTPRoute, `namespace/name`. */
  route: Key,
  /** Index of the rule in the HTTPRoute's `spec.rules`, and its name if it has one. */
  rule: z.int().min(0),
  ruleName: z.string().optional(),
  match: RouteMatchSchema,
  filters: FiltersSchema.default({ mirrors: [] }),
  backends: z.array(WeightedBackendSchema).default([]),
  timeouts: TimeoutsSchema.optional(),
  retry: RetrySchema.optional(),
  /**
   * A response the proxy gives itself, without forwarding: used for rules the control plane
   * could not program (e.g. an unresolvable filter), so they fail loudly instead of vanishing.
   */
  directResponse: z.strictObject({ status: z.int().min(200).max(599), body: z.string().optional() }).optional(),
});

export const VirtualHostSchema = z.strictObject({
  /** Hosts this virtual host serves: exact names, `*.suffix` wildcards, or `*` for any. */
  domains: z.array(Domain).min(1),
  routes: z.array(RouteSchema),
});

/**
 * A route table: the proxy picks the virtual host by the request host (exact, then the
 * longest wildcard suffix, then `*`), then the first route whose match holds. No host or no
 * route → `noMatchStatus` (404).
 */
export const RouteTableSchema = z.strictObject({
  virtualHosts: z.array(VirtualHostSchema),
  noMatchStatus: z.int().min(400).max(599).default(404),
});

export const EndpointSchema = z.strictObject({
  address: IP,
  /** The port the workload listens on (the Service's targetPort resolved for this pod). */
  port: Port,
  /** `namespace/name` of the pod behind it, for metrics and traces. */
  pod: Key.optional(),
  /**
   * Present when the endpoint runs a weft proxy: traffic goes over mTLS to `meshPort` and the
   * peer certificate must carry exactly this SPIFFE ID. Absent: plaintext to `address:port`.
   */
  identity: z.string().regex(SPIFFE_ID, 'not a SPIFFE ID').optional(),
  meshPort: Port.optional(),
  ready: z.boolean().default(true),
  zone: z.string().optional(),
});

export const ClusterSchema = z.strictObject({
  /** `namespace/name` of the Service. */
  service: Key,
  port: Port,
  /** From the Service port's appProtocol: `kubernetes.io/h2c` → h2c, `kubernetes.io/ws` → websocket. */
  protocol: z.enum(['http1', 'h2c', 'websocket']).default('http1'),
  endpoints: z.array(EndpointSchema),
});

export const OutboundServiceSchema = z.strictObject({
  /** `namespace/name` of the Service. */
  service: Key,
  /** DNS names a client may use for it: name, name.ns, name.ns.svc, name.ns.svc.<cluster domain>. */
  hostnames: z.array(PreciseHostname),
  clusterIPs: z.array(IP),
  ports: z.array(
    z.strictObject({
      port: Port,
      name: z.string().optional(),
      appProtocol: z.string().optional(),
      routeTable: Key,
    }),
  ),
});

/**
 * A meshed pod, by IP. A captured request to it that is no Service's passes through without routes, over mTLS to
 * the pod's proxy at `meshPort`, whose certificate must carry `identity` (Istio's PassthroughCluster, Linkerd's
 * endpoint forwarding).
 */
export const MeshedPodSchema = z.strictObject({
  address: IP,
  /** `namespace/name` of the pod. */
  pod: Key,
  identity: z.string().regex(SPIFFE_ID, 'not a SPIFFE ID'),
  meshPort: Port,
});

export const TlsCertificateRefSchema = Key;

export const ListenerSchema = z.discriminatedUnion('kind', [
  /** Sidecar: the pod's captured (or explicitly proxied) outbound connections. */
  z.strictObject({
    kind: z.literal('outbound'),
    name: Key,
    address: IP.default('0.0.0.0'),
    port: Port,
    services: z.array(OutboundServiceSchema),
    /**
     * Meshed pods a request may be addressed to directly (absent: none); other destinations that are no Service
     * get plaintext. Optional, not defaulted, so producers and stored configs need not change.
     */
    meshedPods: z.array(MeshedPodSchema).optional(),
  }),
  /** Sidecar: captured inbound plaintext, handed to the app. */
  z.strictObject({
    kind: z.literal('inbound'),
    name: Key,
    address: IP.default('0.0.0.0'),
    port: Port,
    appAddress: IP,
    /** App ports that may be reached; anything else is refused. */
    appPorts: z.array(z.strictObject({ port: Port, appProtocol: z.string().optional() })),
    /** Whether plaintext from unmeshed clients is accepted (a per-namespace choice). */
    acceptPlaintext: z.boolean().default(true),
  }),
  /** Sidecar: proxy-to-proxy traffic over mTLS; the peer's SPIFFE ID is checked and passed on. */
  z.strictObject({
    kind: z.literal('mesh'),
    name: Key,
    address: IP.default('0.0.0.0'),
    port: Port,
    appAddress: IP,
    appPorts: z.array(z.strictObject({ port: Port, appProtocol: z.string().optional() })),
  }),
  /** Edge: one port of a Gateway; the Gateway's listeners on that port are chosen by host. */
  z.strictObject({
    kind: z.literal('gateway'),
    name: Key,
    address: IP.default('0.0.0.0'),
    port: Port,
    protocol: z.enum(['HTTP', 'HTTPS']),
    hosts: z
      .array(
        z.strictObject({
          /** `namespace/gateway/listener`. */
          listener: Key,
          /** Absent: any host. */
          hostname: Hostname.optional(),
          routeTable: Key,
          /** HTTPS: keys into `tlsCertificates`, chosen by SNI. */
          certificates: z.array(TlsCertificateRefSchema).default([]),
        }),
      )
      .min(1),
  }),
]);

export const TlsCertificateSchema = z.strictObject({
  certChain: z.string().includes('-----BEGIN CERTIFICATE-----', { message: 'certChain must be PEM' }),
  privateKey: z.string().includes('PRIVATE KEY-----', { message: 'privateKey must be PEM' }),
});

/**
 * Limits every listener enforces on requests. The defaults are what the proxy enforced before
 * this section existed, so a config without it behaves as before.
 */
export const DEFAULT_LIMITS = {
  maxRequestBodyBytes: 0,
  maxRequestHeaderBytes: 16 * 1024,
  maxRequestHeaders: 100,
} as const;

export const LimitsSchema = z.strictObject({
  /** Most bytes of a request body (after de-chunking); more → 413, never forwarded. 0 = no limit. */
  maxRequestBodyBytes: z.int().min(0).default(DEFAULT_LIMITS.maxRequestBodyBytes),
  /** Most bytes of the request line plus header section; more → 431. */
  maxRequestHeaderBytes: z
    .int()
    .min(1024)
    .max(1024 * 1024)
    .default(DEFAULT_LIMITS.maxRequestHeaderBytes),
  /** Most request header fields; more → 431. */
  maxRequestHeaders: z.int().min(1).max(10_000).default(DEFAULT_LIMITS.maxRequestHeaders),
});

export const ProxyConfigSchema = z.strictObject({
  apiVersion: z.literal(PROXY_CONFIG_VERSION),
  proxy: z.strictObject({
    /** `sidecar:namespace/pod` or `edge:namespace/gateway`. */
    id: z
      .string()
      .regex(
        /^(sidecar|edge):[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
        'must be "sidecar:<namespace>/<pod>" or "edge:<namespace>/<gateway>"',
      ),
    mode: z.enum(['sidecar', 'edge']),
    namespace: z.string().min(1),
    name: z.string().min(1),
    serviceAccount: z.string().optional(),
    /** The SPIFFE ID this proxy's workload certificate must carry. */
    identity: z.string().regex(SPIFFE_ID, 'not a SPIFFE ID').optional(),
  }),
  trust: z.strictObject({
    trustDomain: z
      .string()
      .regex(/^[a-z0-9._-]+$/, 'not a valid trust domain (lowercase letters, digits, ".", "_", "-")'),
    /** PEM bundle of trusted roots; absent when the proxy reads it from a file it was given. */
    rootCAs: z.string().optional(),
  }),
  admin: z.strictObject({ port: Port }).default({ port: 15020 }),
  /** Absent: DEFAULT_LIMITS. Optional (not defaulted) so producers and stored configs need not change. */
  limits: LimitsSchema.optional(),
  listeners: z.array(ListenerSchema),
  routeTables: z.record(Key, RouteTableSchema),
  clusters: z.record(Key, ClusterSchema),
  tlsCertificates: z.record(Key, TlsCertificateSchema).default({}),
});

export type ProxyConfig = z.infer<typeof ProxyConfigSchema>;
/** The same contract before defaults are applied: what a producer may write. */
export type ProxyConfigInput = z.input<typeof ProxyConfigSchema>;
export type Listener = z.infer<typeof ListenerSchema>;
export type OutboundService = z.infer<typeof OutboundServiceSchema>;
export type MeshedPod = z.infer<typeof MeshedPodSchema>;
export type RouteTable = z.infer<typeof RouteTableSchema>;
export type VirtualHost = z.infer<typeof VirtualHostSchema>;
export type Route = z.infer<typeof RouteSchema>;
export type RouteMatch = z.infer<typeof RouteMatchSchema>;
export type StringMatch = z.infer<typeof StringMatchSchema>;
export type PathMatch = z.infer<typeof PathMatchSchema>;
export type Filters = z.infer<typeof FiltersSchema>;
export type HeaderModifier = z.infer<typeof HeaderModifierSchema>;
export type Redirect = z.infer<typeof RedirectSchema>;
export type Rewrite = z.infer<typeof RewriteSchema>;
export type PathModifier = z.infer<typeof PathModifierSchema>;
export type Mirror = z.infer<typeof MirrorSchema>;
export type Cors = z.infer<typeof CorsSchema>;
export type WeightedBackend = z.infer<typeof WeightedBackendSchema>;
export type Timeouts = z.infer<typeof TimeoutsSchema>;
export type Retry = z.infer<typeof RetrySchema>;
export type Cluster = z.infer<typeof ClusterSchema>;
export type Endpoint = z.infer<typeof EndpointSchema>;
export type TlsCertificate = z.infer<typeof TlsCertificateSchema>;
export type Limits = z.infer<typeof LimitsSchema>;

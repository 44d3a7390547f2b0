// Synthetic snapshots for benchmarks: N HTTPRoutes spread over Services and namespaces, with the
// Pods, EndpointSlices and Gateway Service a cluster would have, so the translator produces an edge
// config and one sidecar config per pod. Deterministic (a seeded PRNG): the same options give the
// same objects. Every route is valid, so a benchmark measures real work, not early refusals.
//
// Shape, for `routes` = R (defaults scale with it: R = 10,000 → 1,000 Services in 50 namespaces,
// 1,000 Gateway hostnames): every Service gets R / services routes; even ones attach to the Gateway
// (with one of the hostnames), odd ones to the Service itself (mesh). Rules mix PathPrefix, Exact and
// RegularExpression paths, header, query and method matches, 80/20 splits across two Services, and
// header modifiers, rewrites, redirects, mirrors and timeouts.
import type {
  EndpointSlice,
  Gateway,
  GatewayClass,
  HTTPRoute,
  HTTPRouteFilter,
  HTTPRouteRule,
  Namespace,
  Pod,
  Resource,
  Secret,
  Service,
} from '../controlplane/resources/types.ts';

export interface SyntheticOptions {
  /** HTTPRoutes in all. */
  routes: number;
  /** Default: routes / 10, at least 2. */
  services?: number;
  /** Default: services / 20, at least 1. */
  namespaces?: number;
  /** Distinct hostnames of the Gateway's routes. Default: routes / 10, at least 1. */
  hostnames?: number;
  /** Pods (each with a sidecar) behind each Service. Default 1. */
  podsPerService?: number;
  /** A PEM certificate and key for `*.example.com` (the seed's): with it the Gateway also gets an HTTPS listener. */
  certificate?: { certChain: string; privateKey: string };
  seed?: number;
}

export interface SyntheticSnapshot {
  resources: Resource[];
  counts: {
    routes: number;
    gatewayRoutes: number;
    meshRoutes: number;
    services: number;
    namespaces: number;
    pods: number;
    hostnames: number;
  };
}

const GW_NS = 'bench-infra';
// The seed certificate's domain, so a benchmark can reuse it for the HTTPS listener.
const DOMAIN = 'example.com';

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ip(base: number, n: number): string {
  return `${base}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function syntheticSnapshot(opts: SyntheticOptions): SyntheticSnapshot {
  const R = opts.routes;
  const S = opts.services ?? Math.max(2, Math.round(R / 10));
  const NS = opts.namespaces ?? Math.max(1, Math.round(S / 20));
  const H = opts.hostnames ?? Math.max(1, Math.round(R / 10));
  const P = opts.podsPerService ?? 1;
  const rand = prng(opts.seed ?? 1);
  const out: Resource[] = [];

  const nsName = (k: number) => `team-${String(k).padStart(3, '0')}`;
  for (let k = 0; k < NS; k++) {
    const ns: Namespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: nsName(k), labels: { 'weft.dev/inject': 'enabled', 'gateway-access': 'true' } },
    };
    out.push(ns);
  }
  out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: GW_NS } } satisfies Namespace);

  // Services, their pods and EndpointSlices. Service s lives in namespace s % NS.
  const svc = (s: number) => ({ ns: nsName(s % NS), name: `svc-${String(s).padStart(4, '0')}` });
  let podN = 0;
  for (let s = 0; s < S; s++) {
    const { ns, name } = svc(s);
    const service: Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: {
        type: 'ClusterIP',
        selector: { app: name },
        clusterIP: ip(10, 0x600000 + s),
        clusterIPs: [ip(10, 0x600000 + s)],
        ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      },
    };
    out.push(service);
    const endpoints: NonNullable<EndpointSlice['endpoints']> = [];
    for (let p = 0; p < P; p++) {
      const podName = `${name}-7d9f8b6c5d-${String(p).padStart(5, 'x')}`;
      const podIP = ip(10, 0x10000 + podN++);
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: podName, namespace: ns, labels: { app: name } },
        spec: {
          serviceAccountName: name,
          containers: [{ name: 'app', image: 'weft.dev/echo', ports: [{ name: 'http', containerPort: 8080 }] }],
        },
        status: {
          phase: 'Running',
          podIP,
          podIPs: [{ ip: podIP }],
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      };
      out.push(pod);
      endpoints.push({
        addresses: [podIP],
        conditions: { ready: true, serving: true, terminating: false },
        targetRef: { kind: 'Pod', namespace: ns, name: podName },
      });
    }
    const slice: EndpointSlice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-abcde`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints,
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    };
    out.push(slice);
  }

  // The Gateway, and the Service weft would provision for it (with its address).
  const gatewayClass: GatewayClass = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft' },
    spec: { controllerName: 'weft.dev/gateway-controller' },
  };
  const allowed = {
    namespaces: { from: 'Selector' as const, selector: { matchLabels: { 'gateway-access': 'true' } } },
  };
  const gateway: Gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: GW_NS },
    spec: {
      gatewayClassName: 'weft',
      listeners: [{ name: 'http', protocol: 'HTTP', port: 80, hostname: `*.${DOMAIN}`, allowedRoutes: allowed }],
    },
  };
  if (opts.certificate) {
    gateway.spec.listeners.push({
      name: 'https',
      protocol: 'HTTPS',
      port: 443,
      hostname: `*.${DOMAIN}`,
      tls: { mode: 'Terminate', certificateRefs: [{ name: 'edge-cert' }] },
      allowedRoutes: allowed,
    });
    const secret: Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'edge-cert', namespace: GW_NS },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': opts.certificate.certChain, 'tls.key': opts.certificate.privateKey },
    };
    out.push(secret);
  }
  const gatewayService: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'edge-weft', namespace: GW_NS, labels: { 'gateway.networking.k8s.io/gateway-name': 'edge' } },
    spec: {
      type: 'LoadBalancer',
      clusterIP: ip(10, 0x6fffff),
      ports: gateway.spec.listeners.map((l) => ({ name: l.name, port: l.port, targetPort: l.port, protocol: 'TCP' })),
    },
    status: { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } },
  };
  out.push(gatewayClass, gateway, gatewayService);

  // Routes.
  let gatewayRoutes = 0;
  let meshRoutes = 0;
  for (let i = 0; i < R; i++) {
    const s = i % S;
    const { ns, name } = svc(s);
    // A second Service in the same namespace for splits and mirrors.
    const peer = svc((s + NS) % S).ns === ns ? svc((s + NS) % S) : svc(s);
    const toGateway = Math.floor(i / S) % 2 === 0;
    const base = `/${name}/r${Math.floor(i / S)}`;
    const rules: HTTPRouteRule[] = [];
    const headerMods: HTTPRouteFilter = {
      type: 'RequestHeaderModifier',
      requestHeaderModifier: {
        set: [{ name: 'x-route', value: `r${i}` }],
        add: [{ name: 'x-bench', value: '1' }],
        remove: ['x-debug'],
      },
    };
    // Rule 0: a prefix with an optional header match, split 80/20.
    const rule0: HTTPRouteRule = {
      matches: [
        {
          path: { type: 'PathPrefix', value: base },
          ...(i % 2 === 0 ? { headers: [{ name: 'x-tenant', value: `t${i % 10}` }] } : {}),
        },
      ],
      backendRefs: [
        { name, port: 80, weight: 80 },
        { name: peer.name, port: 80, weight: 20 },
      ],
    };
    const filters0: HTTPRouteFilter[] = [];
    if (i % 5 === 0) filters0.push(headerMods);
    if (i % 7 === 0)
      filters0.push({
        type: 'ResponseHeaderModifier',
        responseHeaderModifier: { set: [{ name: 'cache-control', value: 'no-store' }] },
      });
    if (i % 11 === 0)
      filters0.push({
        type: 'URLRewrite',
        urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } },
      });
    if (i % 17 === 0)
      filters0.push({
        type: 'RequestMirror',
        requestMirror: { backendRef: { name: peer.name, port: 80 }, percent: 10 },
      });
    if (filters0.length > 0) rule0.filters = filters0;
    if (i % 3 === 0) rule0.timeouts = { request: '10s', backendRequest: '2s' };
    rules.push(rule0);
    // Rule 1: exact path, query and method.
    rules.push({
      matches: [
        {
          path: { type: 'Exact', value: `${base}/exact` },
          queryParams: [{ name: 'version', value: `v${1 + (i % 3)}` }],
          method: rand() < 0.5 ? 'GET' : 'POST',
        },
      ],
      backendRefs: [{ name, port: 80 }],
    });
    // Rule 2 (every fourth route): regular expressions.
    if (i % 4 === 0)
      rules.push({
        matches: [
          {
            path: { type: 'RegularExpression', value: `${base}/items/[0-9]+` },
            headers: [{ type: 'RegularExpression', name: 'x-user', value: '[a-z]+-[0-9]{2,4}' }],
          },
        ],
        backendRefs: [{ name: peer.name, port: 80 }],
      });
    // Rule 3 (every thirteenth route): a redirect, no backends.
    if (i % 13 === 0)
      rules.push({
        matches: [{ path: { type: 'PathPrefix', value: `${base}/old` } }],
        filters: [
          {
            type: 'RequestRedirect',
            requestRedirect: {
              scheme: 'https',
              statusCode: 301,
              path: { type: 'ReplacePrefixMatch', replacePrefixMatch: `${base}/new` },
            },
          },
        ],
      });

    const route: HTTPRoute = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `route-${String(i).padStart(5, '0')}`, namespace: ns },
      spec: toGateway
        ? {
            parentRefs: [{ name: 'edge', namespace: GW_NS }],
            hostnames: [`h${String(i % H).padStart(4, '0')}.${DOMAIN}`],
            rules,
          }
        : { parentRefs: [{ group: '', kind: 'Service', name, port: 80 }], rules },
    };
    out.push(route);
    if (toGateway) gatewayRoutes++;
    else meshRoutes++;
  }
  return {
    resources: out,
    counts: {
      routes: R,
      gatewayRoutes,
      meshRoutes,
      services: S,
      namespaces: NS,
      pods: S * P,
      hostnames: Math.min(H, gatewayRoutes),
    },
  };
}

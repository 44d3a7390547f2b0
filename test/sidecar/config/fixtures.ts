// Complete, valid ProxyConfigs — one sidecar, one edge — exercising every section of the
// contract. Other suites (the proxy's) reuse them: each call returns a fresh object, so a test may
// mutate its copy. Both are written in the output form (every default spelled out), so
// `parseProxyConfig(x)` deep-equals `x` and they type as `ProxyConfig`.
import { PROXY_CONFIG_VERSION, type ProxyConfig } from '../../../sidecar/config/index.ts';

export const TRUST_DOMAIN = 'cluster.local';

/**
 * Self-signed ECDSA P-256 leaf for `example.com` and `*.example.com`, valid 2020–2120: real
 * enough for TLS tests (trust it with `ca: TEST_CERT_PEM`), never a secret.
 */
export const TEST_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIBATAKBggqhkjOPQQDAjAWMRQwEgYDVQQDDAtleGFtcGxl
LmNvbTAgFw0yMDAxMDEwMDAwMDBaGA8yMTIwMDEwMTAwMDAwMFowFjEUMBIGA1UE
AwwLZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASDjZ05crmY
c12Mf2Aew2aUw/GV/1BK4X400s0mXHcB5YdwCFkURKzZyEO6oQhGSriOIcTZyd6A
8weMcSQEBx+Co3gwdjAlBgNVHREEHjAcggtleGFtcGxlLmNvbYINKi5leGFtcGxl
LmNvbTAMBgNVHRMBAf8EAjAAMAsGA1UdDwQEAwIHgDATBgNVHSUEDDAKBggrBgEF
BQcDATAdBgNVHQ4EFgQUywNXJ5KqGv8jrTMzFsawK3YkPKUwCgYIKoZIzj0EAwID
SAAwRQIhAKMUSYMAHdr5fzp7AGZ6A7tRxX7RYhWSvOtdQeDG2UHdAiBVpOvh5sPN
68zvic/t0Jhvbq3M34bJxU4KEU/8pWijMQ==
-----END CERTIFICATE-----
`;
export const TEST_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB5ISAAQYYM64BKPx
5mbLNA0eibyP08py7ixqLSSy+dahRANCAASDjZ05crmYc12Mf2Aew2aUw/GV/1BK
4X400s0mXHcB5YdwCFkURKzZyEO6oQhGSriOIcTZyd6A8weMcSQEBx+C
-----END PRIVATE KEY-----
`;

const NO_FILTERS = () => ({ mirrors: [] });
const NO_MATCH_EXTRAS = () => ({ headers: [], queryParams: [] });

/** A meshed endpoint: mTLS to `meshPort`, the peer must present `identity`. */
function meshed(address: string, port: number, ns: string, sa: string, pod: string, zone: string) {
  return {
    address,
    port,
    pod: `${ns}/${pod}`,
    identity: `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`,
    meshPort: 15008,
    ready: true,
    zone,
  };
}

/**
 * The sidecar of pod `shop/web-7d9f8c6b5-x2x4z`: outbound routes for two Services (a canary by
 * header, a 90/10 split, a regex rule with a mirror, a prefix rewrite, a redirect, an unresolved
 * backendRef, a directResponse), inbound and mesh listeners for its app on 8080.
 */
export function validSidecarConfig(): ProxyConfig {
  return {
    apiVersion: PROXY_CONFIG_VERSION,
    proxy: {
      id: 'sidecar:shop/web-7d9f8c6b5-x2x4z',
      mode: 'sidecar',
      namespace: 'shop',
      name: 'web-7d9f8c6b5-x2x4z',
      serviceAccount: 'web',
      identity: `spiffe://${TRUST_DOMAIN}/ns/shop/sa/web`,
    },
    trust: { trustDomain: TRUST_DOMAIN, rootCAs: TEST_CERT_PEM },
    admin: { port: 15020 },
    listeners: [
      {
        kind: 'outbound',
        name: 'outbound',
        address: '0.0.0.0',
        port: 15001,
        services: [
          {
            service: 'shop/catalog',
            hostnames: ['catalog', 'catalog.shop', 'catalog.shop.svc', 'catalog.shop.svc.cluster.local'],
            clusterIPs: ['10.96.10.20'],
            ports: [{ port: 80, name: 'http', appProtocol: 'http', routeTable: 'shop/catalog:80' }],
          },
          {
            service: 'shop/reviews',
            hostnames: ['reviews', 'reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.cluster.local'],
            clusterIPs: ['10.96.10.21', 'fd00:10:96::21'],
            ports: [
              { port: 9080, name: 'http', routeTable: 'shop/reviews:9080' },
              { port: 9443, name: 'http-alt', appProtocol: 'kubernetes.io/h2c', routeTable: 'shop/reviews:9443' },
            ],
          },
        ],
      },
      {
        kind: 'inbound',
        name: 'inbound',
        address: '0.0.0.0',
        port: 15006,
        appAddress: '127.0.0.1',
        appPorts: [{ port: 8080, appProtocol: 'http' }],
        acceptPlaintext: true,
      },
      {
        kind: 'mesh',
        name: 'mesh',
        address: '0.0.0.0',
        port: 15008,
        appAddress: '127.0.0.1',
        appPorts: [{ port: 8080 }],
      },
    ],
    routeTables: {
      'shop/catalog:80': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['*'],
            routes: [
              {
                // A consumer route in the caller's namespace: `env: canary` goes to v2.
                route: 'shop/catalog-canary',
                rule: 0,
                ruleName: 'canary',
                match: {
                  path: { type: 'PathPrefix', value: '/' },
                  headers: [{ type: 'Exact', name: 'env', value: 'canary' }],
                  queryParams: [],
                },
                filters: NO_FILTERS(),
                backends: [{ cluster: 'shop/catalog-v2:80', weight: 1 }],
              },
              {
                route: 'shop/catalog',
                rule: 0,
                ruleName: 'item',
                match: {
                  path: { type: 'RegularExpression', value: '/api/v1/items/[0-9]+' },
                  headers: [{ type: 'RegularExpression', name: 'x-user', value: '(?i)[a-z][a-z0-9-]*' }],
                  queryParams: [{ type: 'Exact', name: 'view', value: 'full' }],
                  method: 'GET',
                },
                filters: {
                  requestHeaders: {
                    set: [{ name: 'x-route', value: 'item' }],
                    add: [{ name: 'x-trace-tag', value: 'catalog' }],
                    remove: ['x-debug'],
                  },
                  responseHeaders: { set: [{ name: 'cache-control', value: 'no-store' }], add: [], remove: ['server'] },
                  mirrors: [{ cluster: 'shop/catalog-shadow:80', percent: 12.5 }],
                  cors: {
                    allowOrigins: ['https://shop.example.com'],
                    allowCredentials: true,
                    allowMethods: ['GET'],
                    allowHeaders: ['x-user'],
                    exposeHeaders: ['x-route'],
                    maxAge: 600,
                  },
                },
                backends: [
                  { cluster: 'shop/catalog-v1:80', weight: 90 },
                  { cluster: 'shop/catalog-v2:80', weight: 10 },
                ],
                timeouts: { request: 10_000, backendRequest: 2_000 },
                retry: { codes: [502, 503], attempts: 2, backoff: 25 },
              },
              {
                route: 'shop/catalog',
                rule: 1,
                match: { path: { type: 'PathPrefix', value: '/api' }, ...NO_MATCH_EXTRAS() },
                filters: {
                  rewrite: { hostname: 'catalog.internal', path: { type: 'ReplacePrefixMatch', value: '/' } },
                  mirrors: [],
                },
                backends: [
                  { cluster: 'shop/catalog-v1:80', weight: 3 },
                  // A backendRef that did not resolve: its share is answered 500.
                  { cluster: null, weight: 1, status: 500, reason: 'BackendNotFound' },
                ],
              },
              {
                route: 'shop/catalog',
                rule: 2,
                match: { path: { type: 'PathPrefix', value: '/old' }, ...NO_MATCH_EXTRAS() },
                filters: {
                  redirect: { path: { type: 'ReplacePrefixMatch', value: '/new' }, statusCode: 301 },
                  mirrors: [],
                },
                backends: [],
              },
              {
                route: 'shop/catalog',
                rule: 3,
                match: { path: { type: 'PathPrefix', value: '/' }, ...NO_MATCH_EXTRAS() },
                filters: NO_FILTERS(),
                backends: [
                  {
                    cluster: 'shop/catalog-v1:80',
                    weight: 1,
                    filters: {
                      requestHeaders: { set: [{ name: 'x-backend', value: 'v1' }], add: [], remove: [] },
                      rewrite: { path: { type: 'ReplaceFullPath', value: '/index' } },
                      mirrors: [],
                    },
                  },
                ],
              },
            ],
          },
        ],
      },
      'shop/reviews:9080': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['*'],
            routes: [
              {
                // A rule the control plane could not program: it fails loudly.
                route: 'shop/reviews',
                rule: 0,
                match: { path: { type: 'Exact', value: '/broken' }, ...NO_MATCH_EXTRAS() },
                filters: NO_FILTERS(),
                backends: [],
                directResponse: { status: 500, body: 'unsupported filter' },
              },
              {
                route: 'shop/reviews',
                rule: 1,
                match: { path: { type: 'PathPrefix', value: '/' }, ...NO_MATCH_EXTRAS() },
                filters: NO_FILTERS(),
                backends: [{ cluster: 'shop/reviews:9080', weight: 1 }],
              },
            ],
          },
        ],
      },
      'shop/reviews:9443': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['*'],
            routes: [
              {
                // A Service without HTTPRoutes: its own default route.
                route: 'shop/reviews',
                rule: 0,
                match: { ...NO_MATCH_EXTRAS() },
                filters: NO_FILTERS(),
                backends: [{ cluster: 'shop/reviews:9443', weight: 1 }],
              },
            ],
          },
        ],
      },
    },
    clusters: {
      'shop/catalog-v1:80': {
        service: 'shop/catalog-v1',
        port: 80,
        protocol: 'http1',
        endpoints: [
          meshed('10.244.1.5', 8080, 'shop', 'catalog', 'catalog-v1-6f7c9-abcde', 'zone-a'),
          meshed('10.244.2.9', 8080, 'shop', 'catalog', 'catalog-v1-6f7c9-fghij', 'zone-b'),
        ],
      },
      'shop/catalog-v2:80': {
        service: 'shop/catalog-v2',
        port: 80,
        protocol: 'http1',
        endpoints: [meshed('10.244.1.6', 8080, 'shop', 'catalog', 'catalog-v2-5d4b8-klmno', 'zone-a')],
      },
      'shop/catalog-shadow:80': {
        service: 'shop/catalog-shadow',
        port: 80,
        protocol: 'http1',
        // Not meshed: plaintext to the pod.
        endpoints: [{ address: '10.244.3.2', port: 8080, ready: true }],
      },
      'shop/reviews:9080': {
        service: 'shop/reviews',
        port: 9080,
        protocol: 'http1',
        endpoints: [
          meshed('10.244.1.7', 9080, 'shop', 'reviews', 'reviews-7b9c-pqrst', 'zone-a'),
          { ...meshed('10.244.2.8', 9080, 'shop', 'reviews', 'reviews-7b9c-uvwxy', 'zone-b'), ready: false },
        ],
      },
      'shop/reviews:9443': {
        service: 'shop/reviews',
        port: 9443,
        protocol: 'h2c',
        endpoints: [meshed('fd00:10:244::7', 9443, 'shop', 'reviews', 'reviews-7b9c-pqrst', 'zone-a')],
      },
    },
    tlsCertificates: {},
  };
}

/**
 * The edge proxy of Gateway `infra/public-gw` (the Gateway API's introductory scenario): port 80
 * redirects to HTTPS; port 443 serves `foo.example.com` (team foo: /login, /home, /) and
 * `*.example.com` (team bar: 90/10 split, `env: canary` to v2) with certificates by SNI.
 */
export function validEdgeConfig(): ProxyConfig {
  const fooRoute = (rule: number, type: 'Exact' | 'PathPrefix', path: string, cluster: string) => ({
    route: 'foo/foo-route',
    rule,
    match: { path: { type, value: path }, headers: [], queryParams: [] },
    filters: NO_FILTERS(),
    backends: [{ cluster, weight: 1 }],
  });
  return {
    apiVersion: PROXY_CONFIG_VERSION,
    proxy: {
      id: 'edge:infra/public-gw',
      mode: 'edge',
      namespace: 'infra',
      name: 'public-gw',
      serviceAccount: 'public-gw',
      identity: `spiffe://${TRUST_DOMAIN}/ns/infra/sa/public-gw`,
    },
    trust: { trustDomain: TRUST_DOMAIN, rootCAs: TEST_CERT_PEM },
    admin: { port: 15020 },
    listeners: [
      {
        kind: 'gateway',
        name: 'http',
        address: '0.0.0.0',
        port: 80,
        protocol: 'HTTP',
        hosts: [{ listener: 'infra/public-gw/http', routeTable: 'infra/public-gw/http', certificates: [] }],
      },
      {
        kind: 'gateway',
        name: 'https',
        address: '0.0.0.0',
        port: 443,
        protocol: 'HTTPS',
        hosts: [
          {
            listener: 'infra/public-gw/https-foo',
            hostname: 'foo.example.com',
            routeTable: 'infra/public-gw/https-foo',
            certificates: ['infra/foo-example-com'],
          },
          {
            listener: 'infra/public-gw/https',
            hostname: '*.example.com',
            routeTable: 'infra/public-gw/https',
            certificates: ['infra/wildcard-example-com'],
          },
        ],
      },
    ],
    routeTables: {
      'infra/public-gw/http': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['*'],
            routes: [
              {
                route: 'infra/https-redirect',
                rule: 0,
                match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
                filters: { redirect: { scheme: 'https', statusCode: 301 }, mirrors: [] },
                backends: [],
              },
            ],
          },
        ],
      },
      'infra/public-gw/https-foo': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['foo.example.com'],
            routes: [
              fooRoute(0, 'PathPrefix', '/login', 'foo/foo-login:80'),
              fooRoute(1, 'PathPrefix', '/home', 'foo/foo-home:80'),
              fooRoute(2, 'PathPrefix', '/', 'foo/foo-site:80'),
            ],
          },
        ],
      },
      'infra/public-gw/https': {
        noMatchStatus: 404,
        virtualHosts: [
          {
            domains: ['bar.example.com'],
            routes: [
              {
                route: 'bar/bar-route',
                rule: 1,
                match: {
                  path: { type: 'PathPrefix', value: '/' },
                  headers: [{ type: 'Exact', name: 'env', value: 'canary' }],
                  queryParams: [],
                },
                filters: NO_FILTERS(),
                backends: [{ cluster: 'bar/bar-v2:80', weight: 1 }],
              },
              {
                route: 'bar/bar-route',
                rule: 0,
                match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
                filters: {
                  responseHeaders: { set: [], add: [{ name: 'x-served-by', value: 'public-gw' }], remove: [] },
                  mirrors: [],
                },
                backends: [
                  { cluster: 'bar/bar-v1:80', weight: 90 },
                  { cluster: 'bar/bar-v2:80', weight: 10 },
                ],
                timeouts: { request: 30_000 },
              },
            ],
          },
          {
            domains: ['*.example.com'],
            routes: [
              {
                route: 'infra/health',
                rule: 0,
                match: { path: { type: 'Exact', value: '/healthz' }, headers: [], queryParams: [], method: 'GET' },
                filters: NO_FILTERS(),
                backends: [],
                directResponse: { status: 200, body: 'ok' },
              },
            ],
          },
        ],
      },
    },
    clusters: {
      'foo/foo-login:80': {
        service: 'foo/foo-login',
        port: 80,
        protocol: 'http1',
        endpoints: [meshed('10.244.4.2', 8080, 'foo', 'foo-login', 'foo-login-1a2b3-aaaaa', 'zone-a')],
      },
      'foo/foo-home:80': {
        service: 'foo/foo-home',
        port: 80,
        protocol: 'http1',
        endpoints: [meshed('10.244.4.3', 8080, 'foo', 'foo-home', 'foo-home-4c5d6-bbbbb', 'zone-a')],
      },
      'foo/foo-site:80': {
        service: 'foo/foo-site',
        port: 80,
        protocol: 'http1',
        endpoints: [meshed('10.244.4.4', 8080, 'foo', 'foo-site', 'foo-site-7e8f9-ccccc', 'zone-b')],
      },
      'bar/bar-v1:80': {
        service: 'bar/bar-v1',
        port: 80,
        protocol: 'http1',
        endpoints: [
          meshed('10.244.5.2', 8080, 'bar', 'bar', 'bar-v1-0a1b2-ddddd', 'zone-a'),
          meshed('10.244.5.3', 8080, 'bar', 'bar', 'bar-v1-0a1b2-eeeee', 'zone-b'),
        ],
      },
      'bar/bar-v2:80': {
        service: 'bar/bar-v2',
        port: 80,
        protocol: 'http1',
        endpoints: [meshed('10.244.5.4', 8080, 'bar', 'bar', 'bar-v2-3c4d5-fffff', 'zone-a')],
      },
    },
    tlsCertificates: {
      'infra/foo-example-com': { certChain: TEST_CERT_PEM, privateKey: TEST_KEY_PEM },
      'infra/wildcard-example-com': { certChain: TEST_CERT_PEM, privateKey: TEST_KEY_PEM },
    },
  };
}

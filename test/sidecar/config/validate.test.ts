import test, { type ExecutionContext } from 'ava';
import {
  type ConfigIssue,
  ConfigError,
  ConfigVersionError,
  PROXY_CONFIG_VERSION,
  type ProxyConfig,
  parseProxyConfig,
  SUPPORTED_PROXY_CONFIG_VERSIONS,
  validateProxyConfig,
} from '../../../sidecar/config/index.ts';
import { validEdgeConfig, validSidecarConfig } from './fixtures.ts';

const CATALOG = 'routeTables["shop/catalog:80"].virtualHosts[0]';
const EDGE_HTTPS = 'routeTables["infra/public-gw/https"]';

// biome-ignore lint/suspicious/noExplicitAny: tests mutate configs into shapes the types forbid, on purpose.
type Loose = any;

/** The issues of a fixture after `mutate`. */
function issuesAfter(mutate: (c: Loose) => void, base: () => ProxyConfig = validSidecarConfig): ConfigIssue[] {
  const config = base();
  mutate(config);
  const result = validateProxyConfig(config);
  return result.ok ? [] : result.issues;
}

/** Exactly one issue, at `path`, whose reason contains `reason`. */
function only(t: ExecutionContext, issues: ConfigIssue[], path: string, reason: string) {
  t.deepEqual(
    issues.map((i) => i.path),
    [path],
    JSON.stringify(issues, null, 1),
  );
  t.true(issues[0]?.reason.includes(reason), `reason ${JSON.stringify(issues[0]?.reason)} lacks ${reason}`);
}

// ---- the fixtures ---------------------------------------------------------------------------

test('the sidecar fixture is valid and parses to itself (every default spelled out)', (t) => {
  const result = validateProxyConfig(validSidecarConfig());
  t.deepEqual(result, { ok: true, config: validSidecarConfig() });
  t.deepEqual(parseProxyConfig(validSidecarConfig()), validSidecarConfig());
});

test('the edge fixture is valid and parses to itself', (t) => {
  const result = validateProxyConfig(validEdgeConfig());
  t.deepEqual(result, { ok: true, config: validEdgeConfig() });
});

test('defaults are applied to a minimal producer document', (t) => {
  const config = parseProxyConfig({
    apiVersion: PROXY_CONFIG_VERSION,
    proxy: { id: 'sidecar:a/b', mode: 'sidecar', namespace: 'a', name: 'b' },
    trust: { trustDomain: 'td' },
    listeners: [{ kind: 'inbound', name: 'in', port: 15006, appAddress: '127.0.0.1', appPorts: [{ port: 80 }] }],
    routeTables: {
      t: {
        virtualHosts: [
          { domains: ['*'], routes: [{ route: 'a/r', rule: 0, match: {}, directResponse: { status: 503 } }] },
        ],
      },
    },
    clusters: {},
  });
  t.deepEqual(config.admin, { port: 15020 });
  t.deepEqual(config.tlsCertificates, {});
  t.deepEqual(config.listeners[0], {
    kind: 'inbound',
    name: 'in',
    address: '0.0.0.0',
    port: 15006,
    appAddress: '127.0.0.1',
    appPorts: [{ port: 80 }],
    acceptPlaintext: true,
  });
  t.is(config.routeTables.t.noMatchStatus, 404);
  const route = config.routeTables.t.virtualHosts[0].routes[0];
  t.deepEqual(route.filters, { mirrors: [] });
  t.deepEqual(route.backends, []);
  t.deepEqual(route.match, { headers: [], queryParams: [] });
});

// ---- apiVersion and errors ------------------------------------------------------------------

test('an unknown apiVersion is a version error naming the supported ones', (t) => {
  const issues = issuesAfter((c) => {
    c.apiVersion = 'weft.dev/v2';
  });
  only(t, issues, 'apiVersion', 'unsupported ProxyConfig apiVersion "weft.dev/v2"');
  t.true(issues[0].reason.includes(PROXY_CONFIG_VERSION));
  const config = validSidecarConfig() as Loose;
  config.apiVersion = 'weft.dev/v2';
  const err = t.throws(() => parseProxyConfig(config), { instanceOf: ConfigVersionError });
  t.is(err?.code, 'WEFT_ERR_CONFIG_VERSION');
  t.is(err?.apiVersion, 'weft.dev/v2');
  t.deepEqual(err?.supported, SUPPORTED_PROXY_CONFIG_VERSIONS);
});

test('a missing apiVersion is a config error, not a version error', (t) => {
  only(
    t,
    issuesAfter((c) => {
      delete c.apiVersion;
    }),
    'apiVersion',
    'required',
  );
  const config = validSidecarConfig() as Loose;
  delete config.apiVersion;
  t.throws(() => parseProxyConfig(config), { instanceOf: ConfigError });
});

test('a document that is not an object is refused at the root', (t) => {
  for (const input of [null, 'x', 3, []]) {
    const result = validateProxyConfig(input);
    t.false(result.ok);
    if (!result.ok) only(t, result.issues, '(root)', 'must be an object');
  }
});

test('ConfigError carries every issue and names the first few in its message', (t) => {
  const config = validSidecarConfig() as Loose;
  for (let i = 0; i < 7; i++) config.listeners[0].services[0].ports.push({ port: 0, routeTable: 'shop/catalog:80' });
  const err = t.throws(() => parseProxyConfig(config), { instanceOf: ConfigError });
  t.is(err?.code, 'WEFT_ERR_CONFIG_INVALID');
  t.is(err?.issues.length, 7);
  t.true(err?.message.includes('7 issues'));
  t.true(err?.message.includes('listeners[0].services[0].ports[1].port: '));
  t.true(err?.message.includes('and 2 more'));
  t.false(err?.message.includes('ports[7]'));
});

test('all issues are collected, not just the first', (t) => {
  const issues = issuesAfter((c: ProxyConfig) => {
    c.proxy.id = 'sidecar:shop/other';
    c.listeners[1].name = 'outbound';
    (c.clusters['shop/catalog-v2:80'].endpoints[0] as Loose).meshPort = undefined;
  });
  t.deepEqual(issues.map((i) => i.path).sort(), [
    'clusters["shop/catalog-v2:80"].endpoints[0].meshPort',
    'listeners[1].name',
    'proxy.id',
  ]);
});

// ---- schema constraints -----------------------------------------------------------------------

test('schema: a header name must be an RFC 9110 token', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].filters.requestHeaders.set[0].name = 'x route';
    }),
    `${CATALOG}.routes[1].filters.requestHeaders.set[0].name`,
    'not a valid HTTP header name',
  );
});

test('schema: a header value must not contain CR/LF or control characters', (t) => {
  for (const value of ['a\r\nx-injected: 1', 'a\nb', 'a\u0000b', 'a\u0001b', 'snow ☃']) {
    only(
      t,
      issuesAfter((c) => {
        c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].filters.responseHeaders.set[0].value = value;
      }),
      `${CATALOG}.routes[1].filters.responseHeaders.set[0].value`,
      'must not contain CR, LF',
    );
  }
  t.deepEqual(
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].filters.responseHeaders.set[0].value = 'tab\tand é';
    }),
    [],
  );
});

test('schema: hostnames are RFC 1123, lower case; Service and redirect hostnames take no wildcard', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].services[0].hostnames[1] = 'Catalog_Shop';
    }),
    'listeners[0].services[0].hostnames[1]',
    'not a valid hostname',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].services[0].hostnames[1] = '*.shop';
    }),
    'listeners[0].services[0].hostnames[1]',
    'no wildcard',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].hosts[1].hostname = 'bad..example.com';
    }, validEdgeConfig),
    'listeners[1].hosts[1].hostname',
    'not a valid hostname',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['infra/public-gw/https'].virtualHosts[0].domains[0] = 'bar.example.com.';
    }, validEdgeConfig),
    `${EDGE_HTTPS}.virtualHosts[0].domains[0]`,
    'not a valid hostname',
  );
});

test('schema: a weight is a non-negative integer', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].backends[0].weight = -1;
    }),
    `${CATALOG}.routes[1].backends[0].weight`,
    'too small',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].backends[0].weight = 1.5;
    }),
    `${CATALOG}.routes[1].backends[0].weight`,
    'expected int',
  );
});

test('schema: strict objects refuse unknown fields, each reported at its own path', (t) => {
  const issues = issuesAfter((c) => {
    c.listeners[0].services[0].weight = 3;
    c.extra = true;
  });
  t.deepEqual(issues, [
    { path: 'listeners[0].services[0].weight', reason: 'unknown field' },
    { path: 'extra', reason: 'unknown field' },
  ]);
});

test('schema: missing required fields and wrong types', (t) => {
  only(
    t,
    issuesAfter((c) => {
      delete c.clusters['shop/catalog-v1:80'].endpoints[1].port;
    }),
    'clusters["shop/catalog-v1:80"].endpoints[1].port',
    'required',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].port = '15008';
    }),
    'listeners[2].port',
    'expected number, got string',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].port = 70000;
    }),
    'listeners[2].port',
    'too big',
  );
});

test('schema: listener kind must be a known one', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].kind = 'tcp';
    }),
    'listeners[2].kind',
    'must be one of "outbound", "inbound", "mesh", "gateway"',
  );
});

test('schema: addresses must be IPs', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.clusters['shop/catalog-shadow:80'].endpoints[0].address = 'catalog-shadow';
    }),
    'clusters["shop/catalog-shadow:80"].endpoints[0].address',
    'not a valid IPv4 or IPv6 address',
  );
});

test('schema: enums and literals (method, redirect status)', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].match.method = 'get';
    }),
    `${CATALOG}.routes[1].match.method`,
    'expected one of',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[3].filters.redirect.statusCode = 304;
    }),
    `${CATALOG}.routes[3].filters.redirect.statusCode`,
    '301',
  );
});

test('schema: SPIFFE IDs, PEM and the proxy id format', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.clusters['shop/catalog-v2:80'].endpoints[0].identity = 'shop/catalog';
    }),
    'clusters["shop/catalog-v2:80"].endpoints[0].identity',
    'not a SPIFFE ID',
  );
  only(
    t,
    issuesAfter((c) => {
      c.tlsCertificates['infra/foo-example-com'].certChain = 'not pem';
    }, validEdgeConfig),
    'tlsCertificates["infra/foo-example-com"].certChain',
    'must be PEM',
  );
  only(
    t,
    issuesAfter((c) => {
      c.proxy.id = 'pod:shop/web';
    }),
    'proxy.id',
    'must be "sidecar:<namespace>/<pod>"',
  );
});

test('schema: record keys are validated and quoted in paths', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.clusters[''] = c.clusters['shop/catalog-v1:80'];
    }),
    'clusters[""]',
    'invalid key',
  );
});

// ---- listeners ----------------------------------------------------------------------------------

test('listener names are unique', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].name = 'inbound';
    }),
    'listeners[2].name',
    'duplicate listener name "inbound" (also listeners[1])',
  );
});

test('(address, port) is unique across listeners, wildcards included', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].port = 15006;
    }),
    'listeners[2].port',
    '0.0.0.0:15006 is already bound by listeners[1] ("inbound")',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].address = '127.0.0.1';
      c.listeners[2].port = 15006;
    }),
    'listeners[2].port',
    'overlaps 127.0.0.1:15006 of listeners[1]',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].address = '::1';
      c.listeners[2].address = '0:0:0:0:0:0:0:1';
      c.listeners[2].port = 15006;
    }),
    'listeners[2].port',
    '[::1]:15006 is already bound',
  );
  // Two specific addresses share a port without conflict.
  t.deepEqual(
    issuesAfter((c) => {
      c.listeners[1].address = '127.0.0.1';
      c.listeners[2].address = '10.0.0.1';
      c.listeners[2].port = 15006;
    }),
    [],
  );
});

test('no listener takes the admin port', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[2].port = 15020;
    }),
    'listeners[2].port',
    'admin port',
  );
});

test('an edge proxy has only gateway listeners; a sidecar none', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners.push({ ...validSidecarConfig().listeners[2] });
    }, validEdgeConfig),
    'listeners[2].kind',
    'an edge proxy has only gateway listeners',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners.push({ ...validEdgeConfig().listeners[0], port: 8080 });
      c.routeTables['infra/public-gw/http'] = validEdgeConfig().routeTables['infra/public-gw/http'];
    }),
    'listeners[3].kind',
    'a sidecar proxy has no gateway listeners',
  );
});

// ---- references -------------------------------------------------------------------------------

test('every route table named by an outbound service port or a gateway host exists', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].services[1].ports[1].routeTable = 'shop/reviews:9444';
    }),
    'listeners[0].services[1].ports[1].routeTable',
    'unknown route table "shop/reviews:9444"',
  );
  only(
    t,
    issuesAfter((c) => {
      delete c.routeTables['infra/public-gw/https-foo'];
    }, validEdgeConfig),
    'listeners[1].hosts[0].routeTable',
    'unknown route table "infra/public-gw/https-foo"',
  );
});

test('every cluster named by a backend or a mirror exists', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].backends[1].cluster = 'shop/catalog-v3:80';
    }),
    `${CATALOG}.routes[1].backends[1].cluster`,
    'unknown cluster "shop/catalog-v3:80"',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].filters.mirrors[0].cluster = 'shop/gone:80';
    }),
    `${CATALOG}.routes[1].filters.mirrors[0].cluster`,
    'unknown cluster "shop/gone:80"',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[4].backends[0].filters.mirrors.push({
        cluster: 'shop/gone:80',
        percent: 1,
      });
    }),
    `${CATALOG}.routes[4].backends[0].filters.mirrors[0].cluster`,
    'unknown cluster',
  );
  // `cluster: null` is an unresolved backendRef, not a dangling reference.
  t.is(validSidecarConfig().routeTables['shop/catalog:80'].virtualHosts[0].routes[2].backends[1].cluster, null);
});

test('every certificate key exists; HTTPS hosts have one, HTTP hosts none', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].hosts[1].certificates.push('infra/missing');
    }, validEdgeConfig),
    'listeners[1].hosts[1].certificates[1]',
    'unknown TLS certificate "infra/missing"',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].hosts[0].certificates = [];
    }, validEdgeConfig),
    'listeners[1].hosts[0].certificates',
    'an HTTPS listener host needs at least one certificate',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].hosts[0].certificates = ['infra/foo-example-com'];
    }, validEdgeConfig),
    'listeners[0].hosts[0].certificates',
    'an HTTP listener host takes no certificates',
  );
});

// ---- hosts and domains ----------------------------------------------------------------------------

test('within one gateway listener, host hostnames are unique (absent counts as one)', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].hosts[1].hostname = 'foo.example.com';
    }, validEdgeConfig),
    'listeners[1].hosts[1].hostname',
    'duplicate hostname "foo.example.com" on this listener (also hosts[0])',
  );
  only(
    t,
    issuesAfter((c) => {
      c.listeners[1].hosts[0].hostname = undefined;
      c.listeners[1].hosts[1].hostname = undefined;
    }, validEdgeConfig),
    'listeners[1].hosts[1].hostname',
    'more than one host without a hostname',
  );
});

test('within a route table, a domain belongs to one virtual host', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['infra/public-gw/https'].virtualHosts[1].domains.push('bar.example.com');
    }, validEdgeConfig),
    `${EDGE_HTTPS}.virtualHosts[1].domains[1]`,
    'domain "bar.example.com" is already served by virtualHosts[0]',
  );
});

// ---- routes --------------------------------------------------------------------------------------

test('every RegularExpression match compiles in weft’s dialect', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].match.path.value = '/api/(?=v1)';
    }),
    `${CATALOG}.routes[1].match.path.value`,
    'lookahead (?= is not supported',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].match.headers[0].value = '(a)\\1';
    }),
    `${CATALOG}.routes[1].match.headers[0].value`,
    'backreference \\1',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].match.queryParams[0] = {
        type: 'RegularExpression',
        name: 'view',
        value: 'x{1001}',
      };
    }),
    `${CATALOG}.routes[1].match.queryParams[0].value`,
    'above 1000',
  );
  // The same pattern used by many routes is reported at each of them.
  const issues = issuesAfter((c) => {
    for (const route of c.routeTables['shop/catalog:80'].virtualHosts[0].routes) {
      route.match.path = { type: 'RegularExpression', value: '(?<=x)y' };
      if (route.filters.redirect) route.filters.redirect.path = undefined;
      if (route.filters.rewrite) route.filters.rewrite.path = undefined;
      for (const b of route.backends) if (b.filters?.rewrite) b.filters.rewrite = undefined;
    }
  });
  t.is(issues.length, 5);
  t.true(issues.every((i) => i.reason.includes('lookbehind')));
});

test('Exact and PathPrefix paths follow the Gateway API path rules', (t) => {
  const cases: [string, string][] = [
    ['broken', 'must start with "/"'],
    ['/a b', 'only RFC 3986 path characters'],
    ['/a#b', 'only RFC 3986 path characters'],
    ['/a\\b', 'only RFC 3986 path characters'],
    ['/a/%zz', 'only RFC 3986 path characters'],
    ['/a//b', 'must not contain "//"'],
    ['/a/../b', 'must not contain "/../"'],
    ['/a%2Fb', 'must not contain "%2F"'],
    ['/a%00', 'must not contain "%00"'],
    ['/a/..', 'must not end with'],
    ['/a/.', 'must not end with'],
  ];
  for (const [value, reason] of cases) {
    only(
      t,
      issuesAfter((c) => {
        c.routeTables['shop/reviews:9080'].virtualHosts[0].routes[0].match.path.value = value;
      }),
      'routeTables["shop/reviews:9080"].virtualHosts[0].routes[0].match.path.value',
      reason,
    );
  }
  t.deepEqual(
    issuesAfter((c) => {
      c.routeTables['shop/reviews:9080'].virtualHosts[0].routes[0].match.path.value = "/a/b.c/~x/%41;v=1:@!$&'()*+,";
    }),
    [],
  );
});

test('ReplacePrefixMatch (redirect or rewrite, rule or backend) needs a PathPrefix match', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[3].match.path.type = 'Exact';
    }),
    `${CATALOG}.routes[3].filters.redirect.path.type`,
    "ReplacePrefixMatch requires the route's match.path.type to be PathPrefix (it is Exact)",
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[2].match.path = undefined;
    }),
    `${CATALOG}.routes[2].filters.rewrite.path.type`,
    'it is absent',
  );
  only(
    t,
    issuesAfter((c) => {
      const route = c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1];
      route.backends[0].filters = { rewrite: { path: { type: 'ReplacePrefixMatch', value: '/' } }, mirrors: [] };
    }),
    `${CATALOG}.routes[1].backends[0].filters.rewrite.path.type`,
    'it is RegularExpression',
  );
});

test('a redirect and a rewrite are not combined in one filter set', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[3].filters.rewrite = { hostname: 'x.example.com' };
    }),
    `${CATALOG}.routes[3].filters.rewrite`,
    'cannot be combined',
  );
});

test('a route with a redirect has no backends; every route has backends, a redirect or a directResponse', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[3].backends = [
        { cluster: 'shop/catalog-v1:80', weight: 1 },
      ];
    }),
    `${CATALOG}.routes[3].backends`,
    'a route with a redirect filter has no backends',
  );
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/reviews:9080'].virtualHosts[0].routes[0].directResponse = undefined;
    }),
    'routeTables["shop/reviews:9080"].virtualHosts[0].routes[0]',
    'a route needs backends, a redirect filter or a directResponse',
  );
});

test('backendRequest timeout is not longer than the request timeout', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].timeouts.backendRequest = 20_000;
    }),
    `${CATALOG}.routes[1].timeouts.backendRequest`,
    'must not be longer than timeouts.request (10000 ms)',
  );
  t.deepEqual(
    issuesAfter((c) => {
      c.routeTables['shop/catalog:80'].virtualHosts[0].routes[1].timeouts = { request: 0, backendRequest: 20_000 };
    }),
    [],
  );
});

// ---- identity ------------------------------------------------------------------------------------

test('an endpoint with an identity has a meshPort', (t) => {
  only(
    t,
    issuesAfter((c) => {
      delete c.clusters['shop/reviews:9443'].endpoints[0].meshPort;
    }),
    'clusters["shop/reviews:9443"].endpoints[0].meshPort',
    'required when identity is set',
  );
});

test('identities are in the trust domain', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.clusters['shop/catalog-v1:80'].endpoints[1].identity = 'spiffe://other.domain/ns/shop/sa/catalog';
    }),
    'clusters["shop/catalog-v1:80"].endpoints[1].identity',
    'must be in trust domain "cluster.local"',
  );
  only(
    t,
    issuesAfter((c) => {
      c.proxy.identity = 'spiffe://cluster.local.evil/ns/shop/sa/web';
    }),
    'proxy.identity',
    'must be in trust domain "cluster.local"',
  );
});

test('proxy.id agrees with mode, namespace and name', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.proxy.id = 'edge:shop/web-7d9f8c6b5-x2x4z';
    }),
    'proxy.id',
    'must be "sidecar:shop/web-7d9f8c6b5-x2x4z"',
  );
  only(
    t,
    issuesAfter((c) => {
      c.proxy.namespace = 'other';
    }, validEdgeConfig),
    'proxy.id',
    'must be "edge:other/public-gw"',
  );
});

// ---- outbound services ---------------------------------------------------------------------------

test('two services of an outbound listener cannot claim one DNS name or ClusterIP', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].services[1].hostnames[3] = 'catalog.shop.svc.cluster.local';
    }),
    'listeners[0].services[1].hostnames[3]',
    'hostname "catalog.shop.svc.cluster.local" is also claimed by services[0] ("shop/catalog")',
  );
  only(
    t,
    issuesAfter((c) => {
      // The same address spelled differently is the same address.
      c.listeners[0].services[0].clusterIPs.push('fd00:10:96:0:0:0:0:21');
    }),
    'listeners[0].services[1].clusterIPs[1]',
    'ClusterIP "fd00:10:96::21" is also claimed by services[0] ("shop/catalog")',
  );
});

test('ports are unique within a service', (t) => {
  only(
    t,
    issuesAfter((c) => {
      c.listeners[0].services[1].ports[1].port = 9080;
    }),
    'listeners[0].services[1].ports[1].port',
    'duplicate port 9080 in this service (also ports[0])',
  );
});

// ---- scale ------------------------------------------------------------------------------------------

test('a config with 10,000 routes validates, and issues deep inside it are found', (t) => {
  const config = validSidecarConfig() as Loose;
  const vhost = config.routeTables['shop/catalog:80'].virtualHosts[0];
  const template = vhost.routes[1];
  for (let i = 0; i < 10_000; i++) {
    vhost.routes.push({
      ...template,
      rule: i,
      match: { ...template.match, path: { type: 'RegularExpression', value: `/r${i % 50}/[a-z]+` } },
    });
  }
  t.true(validateProxyConfig(config).ok);
  vhost.routes[9_000].backends = [{ cluster: 'shop/nope:80', weight: 1 }];
  const result = validateProxyConfig(config);
  only(t, result.ok ? [] : result.issues, `${CATALOG}.routes[9000].backends[0].cluster`, 'unknown cluster');
});

// parseResource: the checks a Kubernetes API server would apply before accepting an object,
// reported with the field path, and nothing more (Gateway API semantics pass through).
import test from 'ava';
import { ResourceError } from '../../../controlplane/resources/errors.ts';
import {
  formatPath,
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isLabelValue,
  isQualifiedName,
  parseResource,
} from '../../../controlplane/resources/parse.ts';

const where = { file: 'm.yaml', line: 7, column: 1 };

function gateway(spec: unknown = {}, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'infra', ...metadata },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }], ...(spec as object) },
  };
}

function reasonOf(doc: unknown): string {
  const err = t_throws(doc);
  return err.reason;
}

function t_throws(doc: unknown): ResourceError {
  try {
    parseResource(doc, where);
  } catch (e) {
    if (e instanceof ResourceError) return e;
    throw e;
  }
  throw new Error('expected a ResourceError');
}

test('a valid Gateway is returned as a copy, unknown fields untouched', (t) => {
  const doc = gateway({ infrastructure: { labels: { a: 'b' } }, futureField: [1, 2] }, { annotations: { x: 'y' } });
  const r = parseResource(doc, where);
  t.truthy(r);
  t.is(r!.kind, 'Gateway');
  t.deepEqual((r as unknown as { spec: { futureField: number[] } }).spec.futureField, [1, 2]);
  t.deepEqual(r, doc as never);
  t.not(r, doc as never);
});

test('namespace defaults to default (or the given default); cluster-scoped kinds lose theirs', (t) => {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } };
  t.is(parseResource(svc, where)!.metadata.namespace, 'default');
  t.is(parseResource(svc, where, { defaultNamespace: 'team-a' })!.metadata.namespace, 'team-a');
  const gc = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft', namespace: 'ignored' },
    spec: { controllerName: 'weft.dev/gateway-controller' },
  };
  const r = parseResource(gc, where)!;
  t.false('namespace' in r.metadata);
  const ns = parseResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a', namespace: 'x' } }, where)!;
  t.false('namespace' in ns.metadata);
});

test('null fields mean unset (kubectl create -o yaml output loads)', (t) => {
  const r = parseResource(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', creationTimestamp: null, labels: null },
      spec: {
        replicas: null,
        selector: { matchLabels: { app: 'web' } },
        strategy: {},
        template: {
          metadata: { creationTimestamp: null, labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'nginx', resources: {} }] },
        },
      },
      status: {},
    },
    where,
  )!;
  t.false('creationTimestamp' in r.metadata);
  t.false('replicas' in (r as { spec: object }).spec);
});

test('a Service without spec gets spec {}; a Gateway address without value gets value ""', (t) => {
  const svc = parseResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } }, where)!;
  t.deepEqual((svc as { spec: unknown }).spec, {});
  const gw = parseResource(gateway({ addresses: [{ type: 'IPAddress' }] }), where)!;
  t.deepEqual((gw as { spec: { addresses: unknown } }).spec.addresses, [{ type: 'IPAddress', value: '' }]);
});

test('kinds weft does not read are null, including a known kind name of another API group', (t) => {
  t.is(parseResource({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa' } }, where), null);
  t.is(
    parseResource(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'system:x' } },
      where,
    ),
    null,
  );
  t.is(parseResource({ ...gateway(), apiVersion: 'networking.istio.io/v1beta1' }, where), null);
  t.is(parseResource({ apiVersion: 'serving.knative.dev/v1', kind: 'Service', metadata: { name: 'k' } }, where), null);
});

test('a known kind with an unserved version of its group is an error', (t) => {
  t.is(
    reasonOf({ ...gateway(), apiVersion: 'gateway.networking.k8s.io/v1alpha2' }),
    'apiVersion gateway.networking.k8s.io/v1alpha2 is not served for Gateway; use gateway.networking.k8s.io/v1 or gateway.networking.k8s.io/v1beta1',
  );
  t.regex(
    reasonOf({ apiVersion: 'extensions/v1beta1', kind: 'Deployment', metadata: { name: 'x' } }),
    /apiVersion extensions\/v1beta1 is not served/,
  );
  t.regex(reasonOf({ apiVersion: 'v2', kind: 'Service', metadata: { name: 'x' } }), /use v1$/);
});

test('apiVersion, kind and metadata.name are required of every document', (t) => {
  t.is(reasonOf({ kind: 'Service', metadata: { name: 'x' } }), 'apiVersion: required');
  t.is(reasonOf({ apiVersion: 'v1', metadata: { name: 'x' } }), 'kind: required');
  t.is(reasonOf({ apiVersion: 'v1', kind: 'ServiceAccount' }), 'metadata: required');
  t.is(reasonOf({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: {} }), 'metadata.name: required');
  t.is(
    reasonOf({ apiVersion: 'v1', kind: 'Service', metadata: { name: 5 } }),
    'metadata.name: expected string, got number 5',
  );
  t.is(
    reasonOf({ apiVersion: 1, kind: 'Service', metadata: { name: 'x' } }),
    'apiVersion: expected string, got number 1',
  );
  t.is(reasonOf([1, 2]), 'document is not an object (got array)');
  t.is(reasonOf('text'), 'document is not an object (got string "text")');
  t.regex(reasonOf({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'a/b' } }), /may not be/);
});

test('names, namespaces, label keys and values are checked as the API server does', (t) => {
  t.regex(reasonOf(gateway({}, { name: 'Bad_Name' })), /^metadata\.name: "Bad_Name" is not a valid DNS-1123 subdomain/);
  t.notThrows(() => parseResource(gateway({}, { name: 'a.b-c' }), where));
  t.notThrows(() => parseResource(gateway({}, { name: `g-${'a'.repeat(250)}` }), where));
  t.regex(reasonOf(gateway({}, { name: `g-${'a'.repeat(252)}` })), /DNS-1123 subdomain/);
  // Services are DNS-1035 labels: no leading digit, no dots.
  t.regex(reasonOf({ apiVersion: 'v1', kind: 'Service', metadata: { name: '1web' } }), /DNS-1035 label/);
  t.regex(reasonOf({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a.b' } }), /DNS-1035 label/);
  t.regex(reasonOf({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } }), /DNS-1123 label/);
  t.regex(reasonOf(gateway({}, { namespace: 'Infra' })), /^metadata\.namespace: "Infra" is not a valid DNS-1123 label/);
  t.regex(reasonOf(gateway({}, { labels: { 'bad key!': 'x' } })), /^metadata\.labels: key "bad key!" is not a valid/);
  t.regex(
    reasonOf(gateway({}, { labels: { app: 'no spaces' } })),
    /^metadata\.labels\.app: "no spaces" is not a valid label value/,
  );
  t.is(reasonOf(gateway({}, { labels: { port: 80 } })), 'metadata.labels.port: expected string, got number 80');
  t.is(
    reasonOf(gateway({}, { annotations: { 'weft.dev/inject': true } })),
    'metadata.annotations["weft.dev/inject"]: expected string, got boolean true',
  );
  t.notThrows(() => parseResource(gateway({}, { annotations: { 'a.b/c': 'any text at all: ok' } }), where));
});

test('wrong Gateway field types are reported with their path', (t) => {
  const listeners = [
    { name: 'http', port: 80, protocol: 'HTTP' },
    { name: 'other', port: '8080', protocol: 'HTTP' },
  ];
  t.is(reasonOf(gateway({ listeners })), 'spec.listeners[1].port: expected integer, got string "8080"');
  t.is(reasonOf(gateway({ listeners: [] })), 'spec.listeners: must have at least 1 item');
  t.is(reasonOf(gateway({ listeners: {} })), 'spec.listeners: expected array, got object');
  t.is(reasonOf(gateway({ listeners: ['http'] })), 'spec.listeners[0]: expected object, got string "http"');
  t.is(
    reasonOf(gateway({ listeners: [{ name: 'a', port: 0, protocol: 'HTTP' }] })),
    'spec.listeners[0].port: must be >= 1, got number 0',
  );
  t.is(
    reasonOf(gateway({ listeners: [{ name: 'a', port: 80.5, protocol: 'HTTP' }] })),
    'spec.listeners[0].port: expected integer, got number 80.5',
  );
  t.is(reasonOf(gateway({ listeners: [{ name: 'a', port: 80 }] })), 'spec.listeners[0].protocol: required');
  t.is(reasonOf({ ...gateway(), spec: undefined }), 'spec: required');
  t.is(reasonOf(gateway({ gatewayClassName: '' })), 'spec.gatewayClassName: must not be empty');
});

test('semantic Gateway API rules are left to the translator', (t) => {
  t.notThrows(() =>
    parseResource(
      gateway({
        listeners: [
          { name: 'a', port: 80, protocol: 'NOT-A-PROTOCOL', hostname: '*.*.bad' },
          { name: 'a', port: 80, protocol: 'HTTP', tls: { mode: 'Terminate' } }, // duplicate name, tls on HTTP
        ],
        addresses: [{ type: 'test/fake-invalid-type', value: 'fake address teehee!' }],
      }),
      where,
    ),
  );
  t.notThrows(() =>
    parseResource(
      httpRoute({
        rules: [
          { matches: [{ path: { type: 'Bogus', value: 'no-slash' } }], backendRefs: [{ name: 'x', kind: 'Unknown' }] },
        ],
      }),
      where,
    ),
  );
});

function httpRoute(spec: unknown): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'app' },
    spec,
  };
}

test('wrong HTTPRoute field types are reported with their path', (t) => {
  t.is(reasonOf(httpRoute({ rules: {} })), 'spec.rules: expected array, got object');
  t.is(
    reasonOf(httpRoute({ rules: [{ matches: ['/'] }] })),
    'spec.rules[0].matches[0]: expected object, got string "/"',
  );
  t.is(reasonOf(httpRoute({ rules: [{ filters: [{}] }] })), 'spec.rules[0].filters[0].type: required');
  t.is(
    reasonOf(
      httpRoute({
        rules: [
          { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: 1 }] } }] },
        ],
      }),
    ),
    'spec.rules[0].filters[0].requestHeaderModifier.set[0].value: expected string, got number 1',
  );
  t.is(
    reasonOf(httpRoute({ rules: [{ backendRefs: [{ port: 80 }] }] })),
    'spec.rules[0].backendRefs[0].name: required',
  );
  t.is(
    reasonOf(httpRoute({ rules: [{ backendRefs: [{ name: 'a', weight: -1 }] }] })),
    'spec.rules[0].backendRefs[0].weight: must be >= 0, got number -1',
  );
  t.is(
    reasonOf(httpRoute({ parentRefs: [{ name: 'gw', port: 'http' }] })),
    'spec.parentRefs[0].port: expected integer, got string "http"',
  );
  t.is(reasonOf(httpRoute({ hostnames: 'a.example' })), 'spec.hostnames: expected array, got string "a.example"');
  t.is(reasonOf(httpRoute(undefined)), 'spec: required');
});

test('several problems are reported together, the first one first', (t) => {
  const reason = reasonOf(httpRoute({ rules: [{ backendRefs: [{}, {}, {}, {}] }] }));
  t.is(
    reason,
    'spec.rules[0].backendRefs[0].name: required; spec.rules[0].backendRefs[1].name: required; spec.rules[0].backendRefs[2].name: required; (and 1 more)',
  );
});

test('core kinds: Service ports, EndpointSlice, Pod, Deployment, Secret, ConfigMap', (t) => {
  const svc = (spec: unknown) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec });
  t.is(reasonOf(svc({ ports: [{ name: 'http' }] })), 'spec.ports[0].port: required');
  t.is(reasonOf(svc({ ports: [80] })), 'spec.ports[0]: expected object, got number 80');
  t.is(
    reasonOf(svc({ ports: [{ port: 80, targetPort: true }] })),
    'spec.ports[0].targetPort: expected integer or string, got boolean true',
  );
  t.notThrows(() =>
    parseResource(
      svc({
        ports: [
          { port: 80, targetPort: 'http' },
          { port: 81, targetPort: 8081 },
        ],
      }),
      where,
    ),
  );
  t.is(
    reasonOf(svc({ type: 'Internal' })),
    'spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName, got string "Internal"',
  );
  t.is(reasonOf(svc({ selector: { app: 1 } })), 'spec.selector.app: expected string, got number 1');

  const es = (rest: object) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'e' },
    ...rest,
  });
  t.is(reasonOf(es({})), 'addressType: required');
  t.is(reasonOf(es({ addressType: 'IPv5' })), 'addressType: must be one of IPv4, IPv6, FQDN, got string "IPv5"');
  t.is(
    reasonOf(es({ addressType: 'IPv4', endpoints: [{ addresses: [] }] })),
    'endpoints[0].addresses: must have at least 1 item',
  );
  t.is(
    reasonOf(es({ addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: 'yes' } }] })),
    'endpoints[0].conditions.ready: expected boolean, got string "yes"',
  );

  const pod = (spec: unknown) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec });
  t.is(reasonOf(pod({ containers: [] })), 'spec.containers: must have at least 1 item');
  t.is(
    reasonOf(pod({ containers: [{ name: 'c', ports: [{ containerPort: '80' }] }] })),
    'spec.containers[0].ports[0].containerPort: expected integer, got string "80"',
  );
  t.is(
    reasonOf(pod({ containers: [{ name: 'c', env: [{ name: 'PORT', value: 8080 }] }] })),
    'spec.containers[0].env[0].value: expected string, got number 8080',
  );

  const deploy = (spec: unknown) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec });
  const template = { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c' }] } };
  t.is(reasonOf(deploy({ template })), 'spec.selector: required');
  t.is(
    reasonOf(deploy({ selector: { matchLabels: { app: 'other' } }, template })),
    'spec.template.metadata.labels: selector does not match template labels (app=other missing)',
  );
  t.is(reasonOf(deploy({ replicas: -1, selector: {}, template })), 'spec.replicas: must be >= 0, got number -1');

  t.is(
    reasonOf({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { 'tls.crt': 'not base64!' } }),
    'data["tls.crt"]: expected base64-encoded string',
  );
  t.is(
    reasonOf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { port: 8080 } }),
    'data.port: expected string, got number 8080',
  );
});

test('ResourceError carries position, object and a compiler-style toString', (t) => {
  const err = t_throws(gateway({ listeners: [{ name: 'a', port: 'x', protocol: 'HTTP' }] }));
  t.is(err.code, 'WEFT_ERR_RESOURCE_INVALID');
  t.like(err, { file: 'm.yaml', line: 7, column: 1, kind: 'Gateway', namespace: 'infra', name: 'gw' });
  t.is(String(err), 'm.yaml:7:1: Gateway infra/gw: spec.listeners[0].port: expected integer, got string "x"');
  t.is(err.message, String(err));
  t.true(err instanceof Error);
  // Cluster-scoped objects have no namespace; an object without a name shows its kind only.
  const gc = t_throws({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'c' },
    spec: {},
  });
  t.is(String(gc), 'm.yaml:7:1: GatewayClass c: spec.controllerName: required');
  t.is(
    String(t_throws({ apiVersion: 'v1', kind: 'Service', metadata: {} })),
    'm.yaml:7:1: Service: metadata.name: required',
  );
});

test('locate refines the position to the offending field, falling back to its parent', (t) => {
  const seen: (readonly (string | number)[])[] = [];
  const locate = (p: readonly (string | number)[]) => {
    seen.push(p);
    return p.length === 3 ? { line: 20, column: 9 } : undefined;
  };
  let err: ResourceError | undefined;
  try {
    parseResource(gateway({ listeners: [{ name: 'a', port: 80 }] }), { ...where, locate });
  } catch (e) {
    err = e as ResourceError;
  }
  t.like(err, { line: 20, column: 9 });
  t.deepEqual(seen, [
    ['spec', 'listeners', 0, 'protocol'],
    ['spec', 'listeners', 0],
  ]);
});

test('name-format helpers', (t) => {
  t.true(isDns1123Label('a-1'));
  t.false(isDns1123Label('a.b'));
  t.false(isDns1123Label('a'.repeat(64)));
  t.true(isDns1123Subdomain('a.b-c.d'));
  t.false(isDns1123Subdomain('-a'));
  t.true(isDns1035Label('web'));
  t.false(isDns1035Label('9web'));
  t.true(isQualifiedName('app.kubernetes.io/name'));
  t.true(isQualifiedName('Name_x.y'));
  t.false(isQualifiedName('/name'));
  t.false(isQualifiedName('a/b/c'));
  t.true(isLabelValue(''));
  t.false(isLabelValue('a b'));
  t.is(formatPath(['spec', 'listeners', 1, 'port']), 'spec.listeners[1].port');
  t.is(formatPath(['metadata', 'labels', 'app.kubernetes.io/name']), 'metadata.labels["app.kubernetes.io/name"]');
});

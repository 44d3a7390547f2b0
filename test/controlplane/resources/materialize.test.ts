// materialize: what a cluster would add to a directory of manifests, deterministically.
import test from 'ava';
import { AddressPoolError } from '../../../controlplane/resources/errors.ts';
import { loadText } from '../../../controlplane/resources/files.ts';
import {
  AddressPool,
  assignAddresses,
  fnv1a32,
  formatIPv4,
  gatewayServiceName,
  labelValueFor,
  MATERIALIZE_DEFAULTS,
  materialize,
  parseIPv4,
} from '../../../controlplane/resources/materialize.ts';
import { isDns1035Label, isLabelValue } from '../../../controlplane/resources/parse.ts';
import { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';
import type { EndpointSlice, Pod, Resource, Service } from '../../../controlplane/resources/types.ts';

function load(text: string): Resource[] {
  const r = loadText(text, 'in.yaml');
  if (r.errors.length) throw new Error(r.errors.map(String).join('\n'));
  return r.resources;
}

function snap(text: string, opts = {}): ResourceSnapshot {
  return ResourceSnapshot.from(materialize(load(text), opts));
}

const deployment = (name: string, replicas?: number, extraSpec = '', labels = `app: ${name}`) => `---
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: app }
spec:
${replicas === undefined ? '' : `  replicas: ${replicas}\n`}  selector: { matchLabels: { ${labels} } }
  template:
    metadata:
      labels: { ${labels}, tier: backend }
      annotations: { note: kept }
    spec:
      containers:
        - name: main
          image: echo
          ports: [{ name: http, containerPort: 3000 }, { name: grpc, containerPort: 9000 }]
${extraSpec}`;

const service = (name: string, body: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: app }
spec:
${body}
`;

const BASE = `${deployment('web', 3)}${deployment('api')}${service(
  'web',
  `  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: http, appProtocol: http }
    - { name: raw, port: 81, targetPort: 8081 }
    - { port: 9000 }`,
)}`;

const POD_NAME = /^web-[0-9a-f]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/;

test('Deployments become Pods as a ReplicaSet would make them', (t) => {
  const s = snap(BASE);
  const web = s.list('Pod').filter((p) => p.metadata.name.startsWith('web-'));
  const api = s.list('Pod').filter((p) => p.metadata.name.startsWith('api-'));
  t.is(web.length, 3);
  t.is(api.length, 1, 'replicas defaults to 1');
  t.is(new Set(web.map((p) => p.metadata.name)).size, 3);
  const hash = web[0].metadata.name.split('-')[1];
  for (const p of web) {
    t.regex(p.metadata.name, POD_NAME);
    t.is(p.metadata.namespace, 'app');
    t.deepEqual(p.metadata.labels, { app: 'web', tier: 'backend', 'pod-template-hash': hash });
    t.deepEqual(p.metadata.annotations, { note: 'kept' });
    t.like(p.metadata.ownerReferences?.[0], {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      name: `web-${hash}`,
      controller: true,
    });
    t.regex(p.metadata.uid ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    t.is(p.spec.serviceAccountName, 'default');
    t.is(p.spec.containers[0].image, 'echo');
    t.is(p.status?.phase, 'Running');
    t.deepEqual(
      p.status?.conditions?.find((c) => c.type === 'Ready'),
      { type: 'Ready', status: 'True' },
    );
    t.true(new AddressPool(MATERIALIZE_DEFAULTS.podCidr).contains(p.status!.podIP!));
    t.deepEqual(p.status?.podIPs, [{ ip: p.status!.podIP! }]);
  }
  t.is(new Set(s.list('Pod').map((p) => p.status?.podIP)).size, 4);
});

test('the template hash follows the template: a change renames that Deployment’s Pods only', (t) => {
  const names = (s: ResourceSnapshot, prefix: string) =>
    s
      .list('Pod')
      .filter((p) => p.metadata.name.startsWith(prefix))
      .map((p) => p.metadata.name);
  const orig = snap(`${deployment('web', 3)}${deployment('api')}`);
  const edited = snap(`${deployment('web', 3)}${deployment('api').replace('image: echo', 'image: echo:2')}`);
  t.deepEqual(names(edited, 'web-'), names(orig, 'web-'));
  t.notDeepEqual(names(edited, 'api-'), names(orig, 'api-'));
  t.deepEqual(snap(deployment('web', 0)).list('Pod'), []);
});

test('deterministic: same input, same output; input order and repeated runs do not matter; input untouched', (t) => {
  t.deepEqual(materialize(load(BASE)), materialize(load(BASE)));
  const frozen = ResourceSnapshot.from(load(BASE)).all(); // deep-frozen: a mutation would throw
  const copy = structuredClone(frozen);
  const a = materialize(frozen);
  t.deepEqual(frozen, copy);
  t.deepEqual(ResourceSnapshot.from(a).all(), ResourceSnapshot.from(materialize(load(BASE))).all());
  const reversed = materialize([...load(BASE)].reverse());
  t.deepEqual(ResourceSnapshot.from(reversed).all(), ResourceSnapshot.from(a).all());
  t.deepEqual(
    ResourceSnapshot.from(materialize(a)).all(),
    ResourceSnapshot.from(a).all(),
    'materializing twice adds nothing',
  );
});

test('user Pods are kept as written and get an IP (and a running status) when they have none', (t) => {
  const s = snap(`---
apiVersion: v1
kind: Pod
metadata: { name: bare, namespace: app, labels: { app: web } }
spec: { containers: [{ name: c, ports: [{ name: http, containerPort: 3000 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: pinned, namespace: app }
spec: { containers: [{ name: c }] }
status: { podIP: 127.20.0.7, phase: Running }
---
apiVersion: v1
kind: Pod
metadata: { name: notready, namespace: app }
spec: { containers: [{ name: c }] }
status: { phase: Running, conditions: [{ type: Ready, status: "False" }] }
`);
  const bare = s.get('Pod', 'app/bare')!;
  t.is(bare.spec.serviceAccountName, undefined, 'a user Pod is not rewritten');
  t.is(bare.status?.phase, 'Running');
  t.truthy(bare.status?.podIP);
  t.deepEqual(s.get('Pod', 'app/pinned')!.status, { podIP: '127.20.0.7', phase: 'Running' });
  const nr = s.get('Pod', 'app/notready')!;
  t.deepEqual(nr.status?.conditions, [{ type: 'Ready', status: 'False' }]);
  t.truthy(nr.status?.podIP);
  t.not(nr.status?.podIP, '127.20.0.7');
});

test('Services get a clusterIP from the pool; None, ExternalName and set IPs are left alone', (t) => {
  const s = snap(
    `${service('a', '  ports: [{ port: 80 }]')}${service('b', '  clusterIP: ""\n  ports: [{ port: 80 }]')}${service(
      'headless',
      '  clusterIP: None\n  selector: { app: x }',
    )}${service('ext', '  type: ExternalName\n  externalName: example.com')}${service('fixed', '  clusterIP: 127.10.1.1')}`,
  );
  const pool = new AddressPool(MATERIALIZE_DEFAULTS.serviceCidr);
  for (const n of ['a', 'b']) {
    const svc = s.get('Service', `app/${n}`)!;
    t.true(pool.contains(svc.spec.clusterIP!), n);
    t.deepEqual(svc.spec.clusterIPs, [svc.spec.clusterIP]);
  }
  t.is(s.get('Service', 'app/headless')!.spec.clusterIP, 'None');
  t.is(s.get('Service', 'app/ext')!.spec.clusterIP, undefined);
  t.is(s.get('Service', 'app/fixed')!.spec.clusterIP, '127.10.1.1');
  t.not(s.get('Service', 'app/a')!.spec.clusterIP, s.get('Service', 'app/b')!.spec.clusterIP);
});

function slicesOf(s: ResourceSnapshot, svc: string): EndpointSlice[] {
  return s.list('EndpointSlice').filter((es) => es.metadata.labels?.['kubernetes.io/service-name'] === svc);
}

test('EndpointSlices: one endpoint per selected Pod, target ports resolved, appProtocol copied', (t) => {
  const s = snap(BASE);
  const [es, ...rest] = slicesOf(s, 'web');
  t.deepEqual(rest, []);
  t.regex(es.metadata.name, /^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  t.is(es.metadata.namespace, 'app');
  t.deepEqual(es.metadata.labels, {
    'kubernetes.io/service-name': 'web',
    'endpointslice.kubernetes.io/managed-by': 'weft-local',
  });
  t.like(es.metadata.ownerReferences?.[0], { kind: 'Service', name: 'web' });
  t.is(es.addressType, 'IPv4');
  t.deepEqual(es.ports, [
    { name: 'http', port: 3000, protocol: 'TCP', appProtocol: 'http' },
    { name: 'raw', port: 8081, protocol: 'TCP' },
    { name: '', port: 9000, protocol: 'TCP' },
  ]);
  const pods = s.list('Pod').filter((p) => p.metadata.labels?.app === 'web');
  t.is(es.endpoints?.length, 3);
  t.deepEqual(
    es.endpoints!.map((e) => e.targetRef?.name),
    pods.map((p) => p.metadata.name),
  );
  for (const e of es.endpoints!) {
    const pod = s.get('Pod', `app/${e.targetRef!.name}`)!;
    t.deepEqual(e.addresses, [pod.status!.podIP!]);
    t.deepEqual(e.conditions, { ready: true, serving: true, terminating: false });
    t.like(e.targetRef, { kind: 'Pod', namespace: 'app', uid: pod.metadata.uid });
  }
  t.deepEqual(slicesOf(s, 'api'), [], 'no Service, no slice');
});

test('EndpointSlices: readiness per Pod, other namespaces and terminal Pods excluded, no match gives an empty slice', (t) => {
  const s = snap(`${service('web', '  selector: { app: web }\n  ports: [{ port: 80, targetPort: 8080 }]')}${service(
    'nobody',
    '  selector: { app: nobody }\n  ports: [{ port: 80 }]',
  )}---
apiVersion: v1
kind: Pod
metadata: { name: ready, namespace: app, labels: { app: web } }
spec: { containers: [{ name: c }] }
---
apiVersion: v1
kind: Pod
metadata: { name: unready, namespace: app, labels: { app: web } }
spec: { containers: [{ name: c }] }
status: { phase: Running, conditions: [{ type: Ready, status: "False" }] }
---
apiVersion: v1
kind: Pod
metadata: { name: done, namespace: app, labels: { app: web } }
spec: { containers: [{ name: c }] }
status: { phase: Succeeded }
---
apiVersion: v1
kind: Pod
metadata: { name: elsewhere, namespace: other, labels: { app: web } }
spec: { containers: [{ name: c }] }
`);
  const [es] = slicesOf(s, 'web');
  t.deepEqual(
    es.endpoints!.map((e) => [e.targetRef!.name, e.conditions!.ready]),
    [
      ['ready', true],
      ['unready', false],
    ],
  );
  t.deepEqual(es.ports, [{ name: '', port: 8080, protocol: 'TCP' }]);
  const empty = slicesOf(s, 'nobody');
  t.is(empty.length, 1);
  t.deepEqual(empty[0].endpoints, []);
});

test('EndpointSlices: Pods that resolve a named port differently get one slice each', (t) => {
  const pod = (name: string, port: number) => `---
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: app, labels: { app: mixed } }
spec: { containers: [{ name: c, ports: [{ name: http, containerPort: ${port} }] }] }
`;
  const s = snap(
    `${service('mixed', '  selector: { app: mixed }\n  ports: [{ name: web, port: 80, targetPort: http }, { name: metrics, port: 9090, targetPort: 9090 }]')}${pod(
      'a',
      3000,
    )}${pod('b', 4000)}${pod('c', 3000)}---
apiVersion: v1
kind: Pod
metadata: { name: d, namespace: app, labels: { app: mixed } }
spec: { containers: [{ name: c }] }
`,
  );
  const slices = slicesOf(s, 'mixed');
  t.is(slices.length, 3);
  t.is(new Set(slices.map((x) => x.metadata.name)).size, 3);
  const byPods = Object.fromEntries(
    slices.map((x) => [
      x.endpoints!.map((e) => e.targetRef!.name).join(','),
      x.ports!.map((p) => `${p.name}:${p.port}`).join(','),
    ]),
  );
  t.deepEqual(byPods, {
    'a,c': 'web:3000,metrics:9090',
    b: 'web:4000,metrics:9090',
    d: 'metrics:9090', // kube leaves out a port the Pod cannot resolve
  });
});

test('EndpointSlices written by the user win: none is generated for their Service', (t) => {
  const s = snap(`${BASE}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-manual, namespace: app, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
endpoints: [{ addresses: [10.0.0.1] }]
ports: [{ port: 80 }]
`);
  t.deepEqual(
    slicesOf(s, 'web').map((x) => x.metadata.name),
    ['web-manual'],
  );
});

const GATEWAYS = `---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: weft }
spec: { controllerName: weft.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: other }
spec: { controllerName: example.com/other }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: infra }
spec:
  gatewayClassName: weft
  listeners:
    - { name: http, port: 80, protocol: HTTP }
    - { name: https, port: 443, protocol: HTTPS, hostname: a.example }
    - { name: https-b, port: 443, protocol: HTTPS, hostname: b.example }
    - { name: dns.udp, port: 53, protocol: UDP }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: foreign, namespace: infra }
spec: { gatewayClassName: other, listeners: [{ name: http, port: 80, protocol: HTTP }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: classless, namespace: infra }
spec: { gatewayClassName: missing, listeners: [{ name: http, port: 80, protocol: HTTP }] }
`;

test('a Gateway of our GatewayClass gets its LoadBalancer Service', (t) => {
  const s = snap(GATEWAYS);
  const services = s.list('Service');
  t.deepEqual(
    services.map((x) => `${x.metadata.namespace}/${x.metadata.name}`),
    ['infra/edge-weft'],
  );
  const svc = services[0];
  t.deepEqual(svc.metadata.labels, {
    'gateway.networking.k8s.io/gateway-name': 'edge',
    'gateway.networking.k8s.io/gateway-class-name': 'weft',
    'app.kubernetes.io/managed-by': 'weft',
  });
  t.like(svc.metadata.ownerReferences?.[0], {
    kind: 'Gateway',
    name: 'edge',
    apiVersion: 'gateway.networking.k8s.io/v1',
  });
  t.is(svc.spec.type, 'LoadBalancer');
  t.deepEqual(svc.spec.ports, [
    { name: 'http', protocol: 'TCP', port: 80, targetPort: 80 },
    { name: 'https', protocol: 'TCP', port: 443, targetPort: 443 },
    { name: 'port-53', protocol: 'UDP', port: 53, targetPort: 53 },
  ]);
  t.true(new AddressPool(MATERIALIZE_DEFAULTS.serviceCidr).contains(svc.spec.clusterIP!));
  const ingress = svc.status?.loadBalancer?.ingress;
  t.is(ingress?.length, 1);
  t.true(new AddressPool(MATERIALIZE_DEFAULTS.gatewayCidr).contains(ingress![0].ip!));
  t.deepEqual(slicesOf(s, 'edge-weft'), [], 'no selector, no slice');
  // Another controller name claims the other class instead.
  const other = snap(GATEWAYS, { controllerName: 'example.com/other' });
  t.deepEqual(
    other.list('Service').map((x) => x.metadata.name),
    ['foreign-weft'],
  );
});

test('an existing Gateway Service is left alone', (t) => {
  const s = snap(`${GATEWAYS}---
apiVersion: v1
kind: Service
metadata: { name: edge-weft, namespace: infra }
spec: { type: LoadBalancer, clusterIP: 10.0.0.10, ports: [{ port: 8080 }] }
status: { loadBalancer: { ingress: [{ ip: 192.0.2.1 }] } }
`);
  const svc = s.get('Service', 'infra/edge-weft')!;
  t.deepEqual(svc.spec.ports, [{ port: 8080 }]);
  t.deepEqual(svc.status?.loadBalancer?.ingress, [{ ip: '192.0.2.1' }]);
  t.is(svc.metadata.labels, undefined);
});

test('a Gateway name too long for a Service name is shortened deterministically', (t) => {
  const long = `gateway-name-maximum-length-${'a'.repeat(225)}`;
  t.is(long.length, 253);
  const name = gatewayServiceName(long);
  t.true(isDns1035Label(name), name);
  t.is(name, gatewayServiceName(long));
  t.not(name, gatewayServiceName(`${long.slice(0, -1)}b`));
  t.is(gatewayServiceName('edge'), 'edge-weft');
  t.true(isDns1035Label(gatewayServiceName('1.edge')));
  t.true(isLabelValue(labelValueFor(long)));
  t.is(labelValueFor('edge'), 'edge');
  const s = snap(GATEWAYS.replace('name: edge,', `name: ${long},`));
  const svc = s.list('Service')[0] as Service;
  t.is(svc.metadata.name, name);
  t.is(svc.metadata.labels?.['gateway.networking.k8s.io/gateway-name'], labelValueFor(long));
  t.is(svc.metadata.ownerReferences?.[0].name, long);
});

test('address pools: hashed slot, linear probing, network and broadcast skipped, exhaustion reported', (t) => {
  t.is(fnv1a32(''), 0x811c9dc5);
  t.is(fnv1a32('a'), 0xe40c292c);
  t.is(fnv1a32('foobar'), 0xbf9cf968);
  t.is(parseIPv4('127.20.0.1'), 0x7f140001);
  t.is(parseIPv4('256.0.0.1'), undefined);
  t.is(parseIPv4('01.2.3.4'), undefined);
  t.is(formatIPv4(0x7f140001), '127.20.0.1');

  const pool = new AddressPool('10.0.0.0/16');
  const key = 'app/web';
  const expected = formatIPv4(0x0a000000 + (fnv1a32(key) % 65536));
  t.is(pool.allocate(key), expected);
  t.is(pool.allocate(key), formatIPv4(parseIPv4(expected)! + 1), 'a taken slot probes to the next');

  // A /30 has four addresses; only .1 and .2 are usable.
  const small = new AddressPool('192.168.0.0/30');
  const got = [small.allocate('x'), small.allocate('y')].sort();
  t.deepEqual(got, ['192.168.0.1', '192.168.0.2']);
  const err = t.throws(() => small.allocate('z'), { instanceOf: AddressPoolError });
  t.is(err?.code, 'WEFT_ERR_POOL_EXHAUSTED');
  // /32 and /31 have no network or broadcast address.
  t.is(new AddressPool('10.1.2.3/32').allocate('k'), '10.1.2.3');

  const reserved = new AddressPool('10.0.0.0/16');
  t.true(reserved.reserve(expected));
  t.false(reserved.reserve('11.0.0.1'));
  t.not(reserved.allocate(key), expected);

  for (const bad of ['10.0.0.0', '10.0.0.0/33', 'x/8', '10.0.0.1/16'])
    t.is(t.throws(() => new AddressPool(bad), { instanceOf: AddressPoolError })?.code, 'WEFT_ERR_POOL_INVALID', bad);
  t.throws(() => materialize([], { podCidr: 'nope' }), { instanceOf: AddressPoolError });
});

test('assignAddresses: sorted keys, so order of arrival does not matter and one more key rarely moves others', (t) => {
  const keys = Array.from({ length: 50 }, (_, i) => `ns/pod-${i}`);
  const a = assignAddresses(new AddressPool('127.20.0.0/16'), keys);
  const b = assignAddresses(new AddressPool('127.20.0.0/16'), [...keys].reverse());
  t.deepEqual([...a].sort(), [...b].sort());
  const c = assignAddresses(new AddressPool('127.20.0.0/16'), [...keys, 'ns/new-pod']);
  for (const k of keys) t.is(c.get(k), a.get(k), k);
  t.is(new Set(a.values()).size, 50);
});

test('pools come from the options; adding a Deployment keeps the other Pods’ addresses', (t) => {
  const s = snap(BASE, { podCidr: '10.244.0.0/24', serviceCidr: '10.96.0.0/24', gatewayCidr: '172.18.0.0/28' });
  for (const p of s.list('Pod')) t.true(new AddressPool('10.244.0.0/24').contains(p.status!.podIP!));
  t.true(new AddressPool('10.96.0.0/24').contains(s.get('Service', 'app/web')!.spec.clusterIP!));
  const before = new Map(
    snap(BASE)
      .list('Pod')
      .map((p) => [p.metadata.name, p.status?.podIP]),
  );
  const after = snap(`${BASE}${deployment('extra', 2)}`).list('Pod') as readonly Pod[];
  for (const p of after) if (before.has(p.metadata.name)) t.is(p.status?.podIP, before.get(p.metadata.name));
  t.is(after.length, before.size + 2);
});

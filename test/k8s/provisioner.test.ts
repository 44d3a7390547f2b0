// Gateway provisioning against the test API server (which has no garbage collector and no Deployment controller):
// a Gateway of weft's class gets its ServiceAccount, Deployment and Service, owned by it and sized by ProxySettings;
// the Service's address becomes the Gateway's status.addresses; changes to ProxySettings and hand edits are
// reconciled; deleting the Gateway (or moving it to another class) removes the objects; other classes get nothing;
// only the leader writes, and a new leader removes what was left of Gateways deleted meanwhile. Then the pure parts:
// drift comparison, merge patches and the objects themselves.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { KubeObject } from '../../controlplane/k8s/client.ts';
import { kubernetesControlPlane } from '../../controlplane/k8s/control-plane.ts';
import {
  edgeProxyArgs,
  gatewayNamespaces,
  gatewayObjects,
  resolveGatewayObjectOptions,
} from '../../controlplane/k8s/gateway-objects.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { covers, driftPatch, GatewayProvisioner } from '../../controlplane/k8s/provisioner.ts';
import type { Leadership } from '../../controlplane/k8s/status-writer.ts';
import { ResourceSnapshot } from '../../controlplane/resources/snapshot.ts';
import type { Gateway, GatewayClass, Resource } from '../../controlplane/resources/types.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import { parseQuantity } from '../../controlplane/translate/proxy-settings.ts';
import type { Obj } from './api-server.ts';
import { type CapturedLogs, type Cluster, clusterTest, eventually } from './support.ts';

const test = clusterTest();

const IMAGE = 'registry.example/weft:test';
const FAST = { backoff: { initialMs: 20, maxMs: 100 }, resyncMs: 0 };
const GW = KIND_INFO.get('Gateway')!;
const PS = KIND_INFO.get('ProxySettings')!;
const DEPLOY = KIND_INFO.get('Deployment')!;
const SVC = KIND_INFO.get('Service')!;

type Ctx = { context: { c: Cluster; logs: CapturedLogs; cleanup: (() => Promise<void>)[] } };

function ns(name: string): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

function gatewayClass(name: string, extra: Obj = {}, controllerName = 'weft.dev/gateway-controller'): Obj {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name },
    spec: { controllerName, ...extra },
  };
}

function gateway(namespace: string, name: string, className = 'weft', extra: Obj = {}): Obj {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace },
    spec: {
      gatewayClassName: className,
      listeners: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'alt', port: 8080, protocol: 'HTTP' },
      ],
      ...extra,
    },
  };
}

function proxySettings(namespace: string, name: string, spec: Obj): Obj {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'ProxySettings', metadata: { name, namespace }, spec };
}

/** A whole control plane (provider, translator, status writer, provisioner) on the test cluster, started. */
async function controlPlane(t: Ctx, leader?: Leadership) {
  const { c, logs } = t.context;
  const cp = kubernetesControlPlane({
    client: c.client,
    namespace: 'weft-system',
    logger: logs.logger,
    leader: false,
    provider: { debounceMs: 10 },
    writer: { backoff: { initialMs: 20, maxMs: 100 } },
    provisioner: { image: IMAGE, ...FAST },
  });
  const provisioner = cp.provisioner!;
  if (leader) {
    // The same provisioner, gated by a Leadership the test controls.
    const gated = new GatewayProvisioner({ client: c.client, image: IMAGE, leader, logger: logs.logger, ...FAST });
    gated.attach(cp.pipeline.snapshots);
    cp.runners.splice(cp.runners.indexOf(provisioner), 1, gated);
    const sup = new Supervisor({ logger: logs.logger });
    for (const r of cp.runners) await sup.add(r);
    await sup.start();
    gated.setCache(cp.provider);
    t.context.cleanup.push(() => sup.close());
    return { cp, provisioner: gated };
  }
  const sup = new Supervisor({ logger: logs.logger });
  for (const r of cp.runners) await sup.add(r);
  await sup.start();
  t.context.cleanup.push(() => sup.close());
  return { cp, provisioner };
}

const get = (c: Cluster, kind: string, namespace: string, name: string) =>
  c.server.get(kind, namespace, name) as (KubeObject & { spec?: Obj; status?: Obj }) | undefined;

const owned = (c: Cluster, namespace: string, name: string) =>
  ['ServiceAccount', 'Deployment', 'Service'].map((k) => get(c, k, namespace, name));

const container = (d: KubeObject | undefined): Obj =>
  ((((d?.spec as Obj)?.template as Obj)?.spec as Obj)?.containers as Obj[] | undefined)?.[0] ?? {};

function conditionOf(c: Cluster, namespace: string, name: string, type: string): Obj | undefined {
  const conditions = ((get(c, 'Gateway', namespace, name)?.status as Obj)?.conditions ?? []) as Obj[];
  return conditions.find((x) => x.type === type);
}

/** Namespace `infra`, weft's class `weft` and another implementation's class `other`. */
const withClasses = () => [ns('infra'), gatewayClass('weft'), gatewayClass('other', {}, 'example.com/other')];

async function seed(c: Cluster, ...objects: Obj[]): Promise<void> {
  for (const o of objects) c.server.put(o);
}

// ---- against the API server ----

test('a Gateway of weft’s class gets a ServiceAccount, Deployment and Service, owned by it, sized by ProxySettings', async (t) => {
  const { c } = t.context;
  await seed(
    c,
    ns('weft-system'),
    ns('infra'),
    proxySettings('weft-system', 'class-defaults', {
      replicas: 2,
      resources: { requests: { cpu: '200m', memory: '300Mi' } },
      service: { type: 'NodePort', annotations: { 'example.com/lb': 'internal' } },
    }),
    proxySettings('infra', 'big', { replicas: 3, service: { annotations: { 'example.com/extra': 'yes' } } }),
    gatewayClass('weft', {
      parametersRef: { group: 'weft.dev', kind: 'ProxySettings', name: 'class-defaults', namespace: 'weft-system' },
    }),
    gateway('infra', 'edge', 'weft', {
      infrastructure: {
        labels: { team: 'edge' },
        annotations: { 'example.com/owner': 'platform' },
        parametersRef: { group: 'weft.dev', kind: 'ProxySettings', name: 'big' },
      },
    }),
  );
  await controlPlane(t);
  await eventually(() => owned(c, 'infra', 'edge-weft').every(Boolean), 'the three objects');
  const [sa, deploy, svc] = owned(c, 'infra', 'edge-weft');
  const gw = get(c, 'Gateway', 'infra', 'edge')!;
  for (const o of [sa, deploy, svc]) {
    t.deepEqual(o?.metadata?.ownerReferences, [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        name: 'edge',
        uid: gw.metadata?.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    t.like(o?.metadata?.labels, {
      'gateway.networking.k8s.io/gateway-name': 'edge',
      'gateway.networking.k8s.io/gateway-class-name': 'weft',
      'app.kubernetes.io/managed-by': 'weft',
      team: 'edge',
    });
    t.is(o?.metadata?.annotations?.['example.com/owner'], 'platform');
  }
  t.is(sa?.automountServiceAccountToken, false);
  // The Gateway's replicas override the class's; the class's resources and Service type stay.
  const spec = deploy?.spec as {
    replicas: number;
    selector: { matchLabels: Obj };
    template: { metadata: Obj; spec: Obj };
  };
  t.is(spec.replicas, 3);
  t.like(spec.template.metadata.labels as Obj, spec.selector.matchLabels);
  t.is((spec.template.metadata.annotations as Obj)['weft.dev/inject'], 'false');
  t.is(spec.template.spec.serviceAccountName, 'edge-weft');
  const proxy = container(deploy);
  t.is(proxy.image, IMAGE);
  t.deepEqual(proxy.resources, { requests: { cpu: '200m', memory: '300Mi' } });
  const args = proxy.args as string[];
  t.deepEqual(args.slice(0, 3), ['proxy', '--mode', 'edge']);
  t.is(args[args.indexOf('--proxy-id') + 1], 'edge:infra/edge');
  t.is(args[args.indexOf('--service-account') + 1], 'edge-weft');
  t.is(args[args.indexOf('--push') + 1], 'weft-controlplane.weft-system.svc:15010');
  t.is(args[args.indexOf('--ca-url') + 1], 'https://weft-controlplane.weft-system.svc:15012');
  t.deepEqual(
    (proxy.ports as Obj[]).map((p) => p.containerPort),
    [80, 8080, 15020],
  );
  const volumes = spec.template.spec.volumes as Obj[];
  t.like(
    volumes.find((v) => v.name === 'weft-token'),
    {
      projected: { sources: [{ serviceAccountToken: { audience: 'weft', path: 'token' } }] },
    },
  );
  t.like(
    volumes.find((v) => v.name === 'weft-root-ca'),
    { configMap: { name: 'weft-root-ca' } },
  );
  const svcSpec = svc?.spec as { type: string; selector: Obj; ports: Obj[] };
  t.is(svcSpec.type, 'NodePort');
  t.deepEqual(svcSpec.selector, spec.selector.matchLabels);
  t.deepEqual(
    svcSpec.ports.map((p) => [p.name, p.port, p.targetPort]),
    [
      ['http', 80, 80],
      ['alt', 8080, 8080],
    ],
  );
  t.like(svc?.metadata?.annotations, { 'example.com/lb': 'internal', 'example.com/extra': 'yes' });
});

test('the Service’s address is the Gateway’s status.addresses; without a Service, Programmed is False', async (t) => {
  const { c } = t.context;
  await seed(c, ns('infra'), ns('locked'), gatewayClass('weft'), gateway('infra', 'edge'), gateway('locked', 'edge'));
  // Services cannot be created in `locked` (a quota, a policy): its Gateway never gets an address.
  c.server.failNext({ verb: 'create', resource: 'services', namespace: 'locked', code: 403, times: 1_000_000 });
  const { provisioner } = await controlPlane(t);
  const svc = await eventually(() => get(c, 'Service', 'infra', 'edge-weft'), 'the Service');
  t.is((svc.spec as Obj).type, 'LoadBalancer');
  const clusterIP = String((svc.spec as Obj).clusterIP);
  // No load balancer yet: the ClusterIP.
  await eventually(
    () =>
      JSON.stringify(get(c, 'Gateway', 'infra', 'edge')?.status?.addresses) ===
      JSON.stringify([{ type: 'IPAddress', value: clusterIP }]),
    'the ClusterIP as address',
  );
  t.like(conditionOf(c, 'infra', 'edge', 'Programmed'), { status: 'True' });
  // A load balancer controller assigns an address.
  await c.client.replaceStatus(SVC, 'v1', 'infra', 'edge-weft', {
    ...svc,
    status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }, { hostname: 'lb.example.net' }] } },
  });
  await eventually(
    () =>
      JSON.stringify(get(c, 'Gateway', 'infra', 'edge')?.status?.addresses) ===
      JSON.stringify([
        { type: 'IPAddress', value: '203.0.113.7' },
        { type: 'Hostname', value: 'lb.example.net' },
      ]),
    'the load balancer’s addresses',
  );
  await eventually(
    () => conditionOf(c, 'locked', 'edge', 'Programmed')?.reason === 'AddressNotAssigned',
    'Programmed=False AddressNotAssigned',
  );
  t.is(conditionOf(c, 'locked', 'edge', 'Programmed')?.status, 'False');
  t.deepEqual(get(c, 'Gateway', 'locked', 'edge')?.status?.addresses, []);
  await eventually(
    () => t.context.logs.events('provision.failed').find((l) => l.gateway === 'locked/edge'),
    'the refused create logged (and retried)',
  );
  t.true(provisioner.stats.failures > 0);
  t.deepEqual(get(c, 'Gateway', 'locked', 'edge')?.status?.addresses, []);
  // Everything else of the locked Gateway is there.
  t.truthy(get(c, 'Deployment', 'locked', 'edge-weft'));
});

test('deleting the Gateway, or moving it to another class, removes its objects', async (t) => {
  const { c } = t.context;
  await seed(c, ...withClasses(), gateway('infra', 'a'), gateway('infra', 'b'));
  const { provisioner } = await controlPlane(t);
  await eventually(() => [...owned(c, 'infra', 'a-weft'), ...owned(c, 'infra', 'b-weft')].every(Boolean), 'both');
  await c.client.delete(GW, 'v1', 'infra', 'a');
  await eventually(() => owned(c, 'infra', 'a-weft').every((o) => o === undefined), 'a’s objects removed');
  const b = get(c, 'Gateway', 'infra', 'b')!;
  await c.client.replace(GW, 'v1', 'infra', 'b', { ...b, spec: { ...(b.spec as Obj), gatewayClassName: 'other' } });
  await eventually(() => owned(c, 'infra', 'b-weft').every((o) => o === undefined), 'b’s objects removed');
  // The server drops the last object before its DELETE's answer reaches the provisioner, which counts and logs it.
  await provisioner.idle();
  t.is(provisioner.stats.deletes, 6);
  t.is(t.context.logs.events('provision.deleted').length, 6);
});

test('a ProxySettings change updates the Deployment and Service; keys no longer set are removed', async (t) => {
  const { c } = t.context;
  await seed(
    c,
    ns('infra'),
    proxySettings('infra', 'p', {
      replicas: 2,
      service: { type: 'LoadBalancer', annotations: { 'example.com/a': '1', 'example.com/b': '2' } },
    }),
    gatewayClass('weft'),
    gateway('infra', 'edge', 'weft', {
      infrastructure: { parametersRef: { group: 'weft.dev', kind: 'ProxySettings', name: 'p' } },
    }),
  );
  const { provisioner } = await controlPlane(t);
  await eventually(() => owned(c, 'infra', 'edge-weft').every(Boolean), 'provisioned');
  t.is((get(c, 'Deployment', 'infra', 'edge-weft')?.spec as Obj)?.replicas, 2);
  // Someone else's annotation on the Service: weft leaves it.
  const svc = get(c, 'Service', 'infra', 'edge-weft')!;
  await c.client.patch(SVC, 'v1', 'infra', 'edge-weft', { metadata: { annotations: { 'someone.else/x': 'y' } } });
  const ps = c.server.get('ProxySettings', 'infra', 'p')!;
  await c.client.replace(PS, 'v1alpha1', 'infra', 'p', {
    ...ps,
    spec: {
      replicas: 4,
      resources: { requests: { cpu: '0.5' }, limits: { memory: '1Gi' } },
      service: { type: 'ClusterIP', annotations: { 'example.com/a': '10' } },
    },
  });
  await eventually(() => (get(c, 'Deployment', 'infra', 'edge-weft')?.spec as Obj)?.replicas === 4, '4 replicas');
  await eventually(() => (get(c, 'Service', 'infra', 'edge-weft')?.spec as Obj)?.type === 'ClusterIP', 'ClusterIP');
  await provisioner.idle();
  const deploy = get(c, 'Deployment', 'infra', 'edge-weft');
  t.deepEqual(container(deploy).resources, { requests: { cpu: '0.5' }, limits: { memory: '1Gi' } });
  const updated = get(c, 'Service', 'infra', 'edge-weft')!;
  const annotations = updated.metadata?.annotations ?? {};
  t.is(annotations['example.com/a'], '10');
  t.false('example.com/b' in annotations);
  t.is(annotations['someone.else/x'], 'y');
  t.is(updated.metadata?.uid, svc.metadata?.uid, 'patched, not recreated');
});

test('hand edits are corrected: replicas scaled by hand, a deleted Service', async (t) => {
  const { c } = t.context;
  await seed(c, ns('infra'), gatewayClass('weft'), gateway('infra', 'edge'));
  const { provisioner } = await controlPlane(t);
  await eventually(() => owned(c, 'infra', 'edge-weft').every(Boolean), 'provisioned');
  await provisioner.idle();
  const patches = provisioner.stats.patches;
  await c.client.patch(DEPLOY, 'v1', 'infra', 'edge-weft', { spec: { replicas: 7 } });
  await eventually(() => (get(c, 'Deployment', 'infra', 'edge-weft')?.spec as Obj)?.replicas === 1, 'back to 1');
  await provisioner.idle();
  t.is(provisioner.stats.patches, patches + 1);
  t.truthy(t.context.logs.events('provision.updated').find((l) => l.kind === 'Deployment'));
  // A status change (the Deployment controller's) is no drift: no write.
  const d = get(c, 'Deployment', 'infra', 'edge-weft')!;
  await c.client.replaceStatus(DEPLOY, 'v1', 'infra', 'edge-weft', { ...d, status: { replicas: 1, readyReplicas: 1 } });
  await c.client.delete(SVC, 'v1', 'infra', 'edge-weft');
  await eventually(() => get(c, 'Service', 'infra', 'edge-weft'), 'the Service made again');
  await provisioner.idle();
  t.is(provisioner.stats.patches, patches + 1);
});

test('other classes get nothing; an object of the same name weft does not control is left alone', async (t) => {
  const { c } = t.context;
  await seed(
    c,
    ...withClasses(),
    gateway('infra', 'theirs', 'other'),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'taken-weft', namespace: 'infra' },
      spec: { ports: [{ port: 1 }] },
    },
    gateway('infra', 'taken'),
    gateway('infra', 'mine'),
  );
  const { provisioner } = await controlPlane(t);
  await eventually(() => owned(c, 'infra', 'mine-weft').every(Boolean), 'mine provisioned');
  await eventually(() => get(c, 'Deployment', 'infra', 'taken-weft'), 'taken’s Deployment');
  await provisioner.idle();
  t.deepEqual(owned(c, 'infra', 'theirs-weft'), [undefined, undefined, undefined]);
  const foreign = get(c, 'Service', 'infra', 'taken-weft')!;
  t.is(foreign.metadata?.ownerReferences, undefined);
  t.deepEqual(
    (foreign.spec as { ports: Obj[] }).ports.map((p) => p.port),
    [1],
  );
  t.is(provisioner.stats.foreign, 1);
  t.is(t.context.logs.events('provision.foreign').length, 1);
  // weft never even looked for objects of the other class's Gateway.
  t.false(c.server.requests.some((r) => r.path.includes('theirs-weft')));
});

test('only the leader writes; a new leader removes what Gateways deleted meanwhile left behind', async (t) => {
  const { c } = t.context;
  await seed(c, ns('infra'), gatewayClass('weft'), gateway('infra', 'edge'));
  // Left over from a Gateway deleted while no leader ran (no garbage collector here).
  const leftover = {
    metadata: {
      name: 'gone-weft',
      namespace: 'infra',
      labels: { 'app.kubernetes.io/managed-by': 'weft', 'app.kubernetes.io/component': 'weft-gateway' },
      ownerReferences: [
        { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'gone', uid: 'u-gone', controller: true },
      ],
    },
  };
  c.server.put({ apiVersion: 'v1', kind: 'ServiceAccount', ...leftover });
  c.server.put({ apiVersion: 'v1', kind: 'Service', ...leftover, spec: { ports: [{ port: 80 }] } });
  const listeners = new Set<(leading: boolean) => void>();
  const leader = {
    isLeader: false,
    onChange(l: (leading: boolean) => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  const { cp, provisioner } = await controlPlane(t, leader);
  await eventually(() => cp.pipeline.ready, 'translated');
  await eventually(() => get(c, 'Gateway', 'infra', 'edge')?.status?.conditions, 'a status (the writer is not gated)');
  t.is(provisioner.active, false);
  t.is(c.server.count({ verb: 'create', resource: 'deployments' }), 0);
  leader.isLeader = true;
  for (const l of listeners) l(true);
  await eventually(() => owned(c, 'infra', 'edge-weft').every(Boolean), 'provisioned by the leader');
  await eventually(
    () => !get(c, 'Service', 'infra', 'gone-weft') && !get(c, 'ServiceAccount', 'infra', 'gone-weft'),
    'leftovers removed',
  );
});

// ---- pure parts ----

test('quantities and the drift comparison', (t) => {
  t.is(parseQuantity('500m'), 0.5);
  t.is(parseQuantity('1Gi'), 2 ** 30);
  t.is(parseQuantity('1e3'), 1000);
  t.is(parseQuantity(2), 2);
  t.is(parseQuantity('lots'), undefined);
  t.is(parseQuantity('1.5.3'), undefined);
  // Extra fields (the API server's defaults) are fine; a changed or missing one is drift.
  t.true(covers({ a: 1, b: { c: [1, 2], d: 'x' } }, { b: { c: [1, 2] } }));
  t.false(covers({ a: 1 }, { a: 2 }));
  t.false(covers({ c: [1, 2, 3] }, { c: [1, 2] }));
  t.false(covers({}, { a: { b: 1 } }));
  // Quantities compare by value under `resources` only: the API server writes them in canonical form.
  t.true(
    covers(
      { resources: { requests: { cpu: '500m', memory: '1Gi' } } },
      { resources: { requests: { cpu: '0.5', memory: '1024Mi' } } },
    ),
  );
  t.false(covers({ resources: { limits: { cpu: '1' } } }, { resources: { limits: { cpu: '2' } } }));
  t.false(covers({ replicas: '1' }, { replicas: 1 }));
});

function fixture(extra: Partial<Gateway['spec']> = {}): { gw: Gateway; gc: GatewayClass } {
  const gc: GatewayClass = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft' },
    spec: { controllerName: 'weft.dev/gateway-controller' },
  };
  const gw: Gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'infra', uid: 'u-1' },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }], ...extra },
  };
  return { gw, gc };
}

test('driftPatch: nothing when the object holds weft’s fields; removes keys weft no longer copies; keeps node ports', (t) => {
  const o = resolveGatewayObjectOptions({ image: IMAGE });
  const { gw, gc } = fixture({ infrastructure: { labels: { team: 'a' }, annotations: { note: 'n' } } });
  const before = gatewayObjects(gw, gc, { serviceAnnotations: { 'lb/x': '1' }, sources: [] }, o);
  const { gw: gw2 } = fixture();
  const after = gatewayObjects(gw2, gc, { serviceAnnotations: {}, sources: [] }, o);
  // What the API server returns: defaults added, node ports allocated, someone's label.
  const current = structuredClone(before.service) as KubeObject & { spec: { ports: Obj[] } };
  current.metadata!.labels!['someone/else'] = 'x';
  current.spec.ports[0].nodePort = 31234;
  (current.spec as Obj).sessionAffinity = 'None';
  t.is(driftPatch('Service', current, before.service), undefined);
  const patch = driftPatch('Service', current, after.service) as { metadata: Obj; spec: { ports: Obj[] } };
  t.like(patch.metadata.labels as Obj, { team: null });
  t.false('someone/else' in (patch.metadata.labels as Obj));
  t.like(patch.metadata.annotations as Obj, { note: null, 'lb/x': null });
  t.is(patch.spec.ports[0].nodePort, 31234);
  // The Deployment's pod template loses the label too.
  const deployment = driftPatch('Deployment', structuredClone(before.deployment), after.deployment) as {
    spec: { template: { metadata: { labels: Obj; annotations: Obj } } };
  };
  t.is(deployment.spec.template.metadata.labels.team, null);
  t.is(deployment.spec.template.metadata.annotations.note, null);
  t.is(deployment.spec.template.metadata.annotations['weft.dev/inject'], 'false');
});

test('objects of a long Gateway name: names shortened like the Service, label values too; the args name them', (t) => {
  const o = resolveGatewayObjectOptions({ image: IMAGE, pushAddress: 'cp.weft:15010', trustDomain: 'example.org' });
  const { gw, gc } = fixture();
  gw.metadata.name = `very.long.${'x'.repeat(70)}`;
  const objs = gatewayObjects(gw, gc, { serviceAnnotations: {}, sources: [] }, o);
  const name = String(objs.service.metadata?.name);
  t.true(name.length <= 63 && /^[a-z][-a-z0-9]*-weft$/.test(name), name);
  t.is(objs.deployment.metadata?.name, name);
  t.true(String(objs.service.metadata?.labels?.['gateway.networking.k8s.io/gateway-name']).length <= 63);
  const args = edgeProxyArgs(gw, o);
  t.is(args[args.indexOf('--service-account') + 1], name);
  t.is(args[args.indexOf('--push') + 1], 'cp.weft:15010');
  t.is(args[args.indexOf('--trust-domain') + 1], 'example.org');
});

test('gatewayNamespaces: where the root CA ConfigMap must be published', (t) => {
  const { gw, gc } = fixture();
  const other: Gateway = {
    ...gw,
    metadata: { name: 'x', namespace: 'elsewhere' },
    spec: { ...gw.spec, gatewayClassName: 'nope' },
  };
  const refused: Gateway = {
    ...gw,
    metadata: { name: 'y', namespace: 'refused' },
    spec: { ...gw.spec, infrastructure: { parametersRef: { group: 'weft.dev', kind: 'ProxySettings', name: 'none' } } },
  };
  const snapshot = ResourceSnapshot.from([gc, gw, other, refused] as Resource[]);
  t.deepEqual(gatewayNamespaces(snapshot), ['infra']);
});

test('the ProxySettings CRD matches what weft watches and reads', (t) => {
  const file = fileURLToPath(new URL('../../charts/weft/crds/weft.dev_proxysettings.yaml', import.meta.url));
  const crd = parse(readFileSync(file, 'utf8')) as {
    spec: { group: string; scope: string; names: { kind: string; plural: string }; versions: Obj[] };
  };
  t.like(crd.spec, { group: PS.group, scope: 'Namespaced', names: { kind: 'ProxySettings', plural: PS.plural } });
  t.deepEqual(
    crd.spec.versions.map((v) => v.name),
    [...PS.versions],
  );
  const spec = (crd.spec.versions[0] as { schema: { openAPIV3Schema: { properties: { spec: Obj } } } }).schema
    .openAPIV3Schema.properties.spec as { properties: Record<string, { properties?: Record<string, Obj> }> };
  t.deepEqual(Object.keys(spec.properties), ['replicas', 'resources', 'service']);
  t.deepEqual(Object.keys(spec.properties.resources.properties ?? {}), ['requests', 'limits']);
  t.deepEqual(Object.keys(spec.properties.service.properties ?? {}), ['type', 'annotations']);
  t.deepEqual(spec.properties.service.properties?.type.enum, ['ClusterIP', 'NodePort', 'LoadBalancer']);
  // The quantity pattern accepts what parseQuantity reads, and refuses what it refuses.
  const pattern = new RegExp(
    String((spec.properties.resources.properties?.requests.additionalProperties as Obj | undefined)?.pattern),
  );
  for (const q of ['100m', '1Gi', '0.5', '1e3', '+2', '.5'])
    t.true(pattern.test(q) && parseQuantity(q) !== undefined, q);
  for (const q of ['lots', '1.5.3', '1 Gi', 'Gi']) t.false(pattern.test(q) || parseQuantity(q) !== undefined, q);
});

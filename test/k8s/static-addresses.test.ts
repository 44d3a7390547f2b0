// Static Gateway addresses (`spec.addresses`) in a cluster, against the test API server: the provisioned Service
// `<gw>-weft` requests them as Envoy Gateway does (external IPs of a LoadBalancer Service, the cluster IP of a
// ClusterIP one); the Gateway reports an address only once that Service carries it, with Programmed=False
// AddressNotAssigned until then; an address that can never be used (outside the usable pool, a second cluster IP)
// gets AddressNotUsable and is not requested.
import type { KubeObject } from '../../controlplane/k8s/client.ts';
import { kubernetesControlPlane } from '../../controlplane/k8s/control-plane.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import { Supervisor } from '../../controlplane/runtime/runner.ts';
import type { Obj } from './api-server.ts';
import { type CapturedLogs, type Cluster, clusterTest, eventually } from './support.ts';

const test = clusterTest();

const GW = KIND_INFO.get('Gateway')!;
const SVC = KIND_INFO.get('Service')!;

function gateway(name: string, addresses: Obj[], extra: Obj = {}): Obj {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'infra' },
    spec: { gatewayClassName: 'weft', addresses, listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }], ...extra },
  };
}

const ip = (value: string) => ({ type: 'IPAddress', value });

function seed(c: Cluster, ...objects: Obj[]): void {
  for (const o of [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'infra' } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'weft' },
      spec: { controllerName: 'weft.dev/gateway-controller' },
    },
    ...objects,
  ])
    c.server.put(o);
}

/** A whole control plane with provisioning on the test cluster, started. */
async function controlPlane(
  t: { context: { c: Cluster; logs: CapturedLogs; cleanup: (() => Promise<void>)[] } },
  usableAddresses?: string[],
) {
  const { c, logs } = t.context;
  const cp = kubernetesControlPlane({
    client: c.client,
    namespace: 'weft-system',
    logger: logs.logger,
    leader: false,
    provider: { debounceMs: 10 },
    writer: { backoff: { initialMs: 20, maxMs: 100 } },
    provisioner: { image: 'registry.example/weft:test', backoff: { initialMs: 20, maxMs: 100 }, resyncMs: 0 },
    ...(usableAddresses ? { translateOptions: { usableAddresses } } : {}),
  });
  const sup = new Supervisor({ logger: logs.logger });
  for (const r of cp.runners) await sup.add(r);
  await sup.start();
  t.context.cleanup.push(() => sup.close());
  return cp;
}

const get = (c: Cluster, kind: string, name: string) =>
  c.server.get(kind, 'infra', name) as (KubeObject & { spec?: Obj; status?: Obj }) | undefined;
const addressesOf = (c: Cluster, name: string) => JSON.stringify(get(c, 'Gateway', name)?.status?.addresses);
const programmed = (c: Cluster, name: string) =>
  (((get(c, 'Gateway', name)?.status as Obj)?.conditions ?? []) as Obj[]).find((x) => x.type === 'Programmed');

test('a LoadBalancer Service requests the address as an external IP; status waits until the Service carries it', async (t) => {
  const { c } = t.context;
  // A Service of that name weft does not control (no owner, no labels): weft leaves it alone, so the address is
  // never requested on it, and the Gateway must not claim it.
  seed(c, gateway('edge', [ip('198.51.100.10')]), {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'edge-weft', namespace: 'infra' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  });
  await controlPlane(t);
  await eventually(() => programmed(c, 'edge')?.reason === 'AddressNotAssigned', 'AddressNotAssigned');
  t.like(programmed(c, 'edge'), { status: 'False' });
  t.regex(String(programmed(c, 'edge')?.message), /198\.51\.100\.10 is requested in Service infra\/edge-weft/);
  t.is(addressesOf(c, 'edge'), '[]');
  t.truthy(get(c, 'Service', 'edge-weft'), 'the same-named Service not owned by weft still exists');
  t.is((get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.externalIPs, undefined);

  // Gone: weft makes its own, with the address, and then the Gateway reports it.
  await c.client.delete(SVC, 'v1', 'infra', 'edge-weft');
  const svc = await eventually(
    () =>
      (get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.externalIPs
        ? get(c, 'Service', 'edge-weft')
        : undefined,
    'weft’s Service',
  );
  t.deepEqual((svc.spec as Obj).externalIPs, ['198.51.100.10']);
  t.is((svc.spec as Obj).type, 'LoadBalancer');
  await eventually(() => programmed(c, 'edge')?.status === 'True', 'Programmed=True');
  // Only the static address, not the Service's cluster IP.
  t.is(addressesOf(c, 'edge'), JSON.stringify([ip('198.51.100.10')]));

  // The address dropped from the Gateway: the external IP leaves the Service, and the Service's address is back.
  const gw = get(c, 'Gateway', 'edge')!;
  await c.client.replace(GW, 'v1', 'infra', 'edge', { ...gw, spec: { ...(gw.spec as Obj), addresses: [] } });
  await eventually(
    () => (get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.externalIPs === undefined,
    'external IP removed',
  );
  const clusterIP = String((get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.clusterIP);
  await eventually(() => addressesOf(c, 'edge') === JSON.stringify([ip(clusterIP)]), 'the cluster IP as address');
});

test('an address outside the usable pool is AddressNotUsable and never requested', async (t) => {
  const { c } = t.context;
  seed(c, gateway('edge', [ip('10.20.0.5'), ip('192.0.2.1')]));
  await controlPlane(t, ['10.20.0.0/16']);
  await eventually(() => programmed(c, 'edge')?.reason === 'AddressNotUsable', 'AddressNotUsable');
  t.like(programmed(c, 'edge'), { status: 'False' });
  t.regex(String(programmed(c, 'edge')?.message), /192\.0\.2\.1 cannot be used: not among the usable addresses/);
  // The usable one is requested and, once carried, reported; the unusable one is neither.
  await eventually(() => addressesOf(c, 'edge') === JSON.stringify([ip('10.20.0.5')]), 'the usable address bound');
  t.deepEqual((get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.externalIPs, ['10.20.0.5']);
});

test('a ClusterIP Service requests the address as its cluster IP, is made again to change it; a second is unusable', async (t) => {
  const { c } = t.context;
  const settings = {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'ProxySettings',
    metadata: { name: 'internal', namespace: 'infra' },
    spec: { service: { type: 'ClusterIP' } },
  };
  const infrastructure = { parametersRef: { group: 'weft.dev', kind: 'ProxySettings', name: 'internal' } };
  seed(c, settings, gateway('edge', [ip('10.96.200.1')], { infrastructure }));
  await controlPlane(t);
  await eventually(() => programmed(c, 'edge')?.status === 'True', 'Programmed=True');
  const first = get(c, 'Service', 'edge-weft')!;
  t.like(first.spec, { type: 'ClusterIP', clusterIP: '10.96.200.1' });
  t.is((first.spec as Obj).externalIPs, undefined);
  t.is(addressesOf(c, 'edge'), JSON.stringify([ip('10.96.200.1')]));

  // Another address, and a second one: the cluster IP cannot change in place, so the Service is made again.
  const gw = get(c, 'Gateway', 'edge')!;
  await c.client.replace(GW, 'v1', 'infra', 'edge', {
    ...gw,
    spec: { ...(gw.spec as Obj), addresses: [ip('10.96.200.2'), ip('10.96.200.3')] },
  });
  await eventually(
    () => (get(c, 'Service', 'edge-weft')?.spec as Obj | undefined)?.clusterIP === '10.96.200.2',
    'the new cluster IP',
  );
  t.not(get(c, 'Service', 'edge-weft')?.metadata?.uid, first.metadata?.uid);
  await eventually(() => programmed(c, 'edge')?.reason === 'AddressNotUsable', 'AddressNotUsable');
  t.regex(
    String(programmed(c, 'edge')?.message),
    /10\.96\.200\.3 cannot be used: a ClusterIP Service has one cluster IP/,
  );
  await eventually(() => addressesOf(c, 'edge') === JSON.stringify([ip('10.96.200.2')]), 'the bound one listed');
  t.true(t.context.logs.events('provision.replaced').length > 0);
});

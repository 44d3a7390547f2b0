// What weft local runs for a snapshot (plan), how configs are bound to this machine (localize), and the lines it
// suggests (examples): pure functions, on the seed and on small manifests.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { curlExamples } from '../../controlplane/local/examples.ts';
import { localizeConfig, localPort } from '../../controlplane/local/localize.ts';
import { planLocalMesh, standIn } from '../../controlplane/local/plan.ts';
import { loadSnapshot } from '../../controlplane/resources/files.ts';
import { ResourceSnapshot } from '../../controlplane/resources/snapshot.ts';
import type { Resource } from '../../controlplane/resources/types.ts';
import { translate } from '../../controlplane/translate/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function seed() {
  const { snapshot, errors } = await loadSnapshot([path.join(root, 'examples/seed')]);
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return { snapshot, result: translate(snapshot, { inboundAppAddress: 'podIP' }) };
}

test('localPort shifts only privileged ports, and only with an offset', (t) => {
  t.is(localPort(80, 10_000), 10_080);
  t.is(localPort(1023, 10_000), 11_023);
  t.is(localPort(1024, 10_000), 1024);
  t.is(localPort(8080, 10_000), 8080);
  t.is(localPort(80, 0), 80);
});

test('the seed plans six pods with sidecars and the Gateway on its Service address', async (t) => {
  const { snapshot, result } = await seed();
  const plan = planLocalMesh(snapshot, result.proxies.keys(), { portOffset: 10_000 });
  t.is(plan.pods.length, 6);
  t.deepEqual(plan.unplaced, []);
  for (const p of plan.pods) {
    t.regex(p.ip, /^127\.20\./);
    t.is(p.proxyId, `sidecar:${p.key}`);
    t.deepEqual(
      p.workloads.map((w) => [w.image, w.ports, w.format]),
      [['weft.dev/echo', [8080], 'json']],
    );
    t.like(p.workloads[0].env, { POD_NAME: p.name, NAMESPACE: p.namespace });
  }
  t.is(new Set(plan.pods.map((p) => p.ip)).size, 6);
  t.deepEqual(
    plan.gateways.map((g) => [g.key, g.proxyId, g.serviceAccount]),
    [['infra/gateway', 'edge:infra/gateway', 'gateway-weft']],
  );
  t.regex(plan.gateways[0].address!, /^127\.30\./);
  // Without a config for it (e.g. not injected), a pod runs without a sidecar.
  const bare = planLocalMesh(snapshot, [], { portOffset: 0 });
  t.true(bare.pods.every((p) => p.proxyId === undefined));
  t.deepEqual(bare.gateways, []);
});

test('localized configs bind the pod IP or the Gateway address, shifting privileged ports everywhere', async (t) => {
  const { snapshot, result } = await seed();
  const plan = planLocalMesh(snapshot, result.proxies.keys(), { portOffset: 10_000 });
  const gw = plan.gateways[0];
  const edge = localizeConfig(result.proxies.get('edge:infra/gateway')!, {
    bindAddress: gw.address!,
    portOffset: 10_000,
  });
  t.deepEqual(edge.listeners.map((l) => [l.address, l.port]).sort(), [
    [gw.address, 10_080],
    [gw.address, 10_443],
  ]);
  const pod = plan.pods[0];
  const sidecar = localizeConfig(result.proxies.get(pod.proxyId!)!, { bindAddress: pod.ip, portOffset: 10_000 });
  for (const l of sidecar.listeners) t.is(l.address, pod.ip);
  t.deepEqual(sidecar.listeners.map((l) => l.port).sort(), [15001, 15006, 15008]);
  const inbound = sidecar.listeners.find((l) => l.kind === 'inbound');
  t.is(inbound?.kind === 'inbound' ? inbound.appAddress : '', pod.ip);
  // The input is not changed.
  t.true(result.proxies.get(pod.proxyId!)!.listeners.every((l) => l.address === '0.0.0.0'));
  // Endpoints on privileged ports are dialled where their workloads bind.
  const low: Resource[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a', labels: { 'weft.dev/inject': 'enabled' } } },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'a', labels: { app: 'web' } },
      spec: { containers: [{ name: 'nginx', image: 'nginx:1', ports: [{ containerPort: 80 }] }] },
      status: { podIP: '127.20.0.9', phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'a' },
      spec: { clusterIP: '127.10.0.9', selector: { app: 'web' }, ports: [{ port: 80 }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'a', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['127.20.0.9'],
          conditions: { ready: true },
          targetRef: { kind: 'Pod', name: 'web', namespace: 'a' },
        },
      ],
      ports: [{ port: 80, protocol: 'TCP', name: '' }],
    },
  ] as Resource[];
  const small = ResourceSnapshot.from(low);
  const r = translate(small, { inboundAppAddress: 'podIP' });
  const webPlan = planLocalMesh(small, r.proxies.keys(), { portOffset: 10_000 });
  t.deepEqual(webPlan.pods[0].workloads[0].ports, [10_080]);
  const web = localizeConfig(r.proxies.get('sidecar:a/web')!, { bindAddress: '127.20.0.9', portOffset: 10_000 });
  t.deepEqual(
    Object.values(web.clusters).flatMap((c) => c.endpoints.map((e) => e.port)),
    [10_080],
  );
});

test('stand-ins: echo-basic serves 3000 and h2c 3001, echo-advanced its non-TLS --port flags in Istio format', (t) => {
  t.deepEqual(standIn({ name: 'b', image: 'registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0' }), {
    ports: [3000],
    h2cPorts: [3001],
    format: 'json',
  });
  t.deepEqual(
    standIn({
      name: 'a',
      image: 'registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0',
      args: ['--tcp=9090', '--port=8080', '--grpc=7070', '--port=8443', '--tls=8443'],
      ports: [{ containerPort: 8080 }, { containerPort: 8443 }],
    }),
    { ports: [8080], h2cPorts: [], format: 'istio' },
  );
  t.deepEqual(standIn({ name: 'x', image: 'nginx', ports: [{ containerPort: 53, protocol: 'UDP' }] }).ports, []);
});

test('pods outside 127.0.0.0/8, without IP or on the host network are reported, not run', (t) => {
  const pod = (name: string, ip: string | undefined, hostNetwork = false): Resource =>
    ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'a' },
      spec: { hostNetwork, containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 8080 }] }] },
      status: ip ? { podIP: ip } : {},
    }) as Resource;
  const plan = planLocalMesh(
    ResourceSnapshot.from([pod('far', '10.0.0.1'), pod('none', undefined), pod('host', '127.0.0.5', true)]),
    [],
    { portOffset: 0 },
  );
  t.deepEqual(plan.pods, []);
  t.deepEqual(
    plan.unplaced.map((u) => u.key),
    ['a/far', 'a/host', 'a/none'],
  );
});

test('the suggested lines name the real addresses: Gateway curl with --resolve, weft local curl for mesh routes', async (t) => {
  const { snapshot, result } = await seed();
  const plan = planLocalMesh(snapshot, result.proxies.keys(), { portOffset: 10_000 });
  const configs = [...result.proxies.values()].map((c) => {
    const bind =
      c.proxy.mode === 'edge' ? plan.gateways[0].address! : plan.pods.find((p) => p.proxyId === c.proxy.id)!.ip;
    return localizeConfig(c, { bindAddress: bind, portOffset: 10_000 });
  });
  const lines = curlExamples({ configs, weft: 'weft', stateDirFlag: '' });
  const ip = plan.gateways[0].address!;
  t.is(lines[0], `curl -k --resolve foo.example.com:10443:${ip} https://foo.example.com:10443/login`);
  t.true(
    lines.includes(`curl -k --resolve bar.example.com:10443:${ip} -H 'env: canary' https://bar.example.com:10443/`),
  );
  t.true(
    lines.some((l) => l.startsWith('for i in $(seq 100); do curl -sk') && l.includes('https://bar.example.com:10443/')),
  );
  t.true(lines.includes(`curl --resolve foo.example.com:10080:${ip} http://foo.example.com:10080/login`));
  t.true(lines.some((l) => /^weft local curl --from bar\/bar-v1-\S+ http:\/\/bar\.bar\/ --count 200$/.test(l)));
  t.true(lines.some((l) => /^weft local curl --from \S+ http:\/\/foo\.foo\/login$/.test(l)));
});

// What `weft local up --netns` puts in each pod's namespace, computed from the seed: the addressing of a range, the
// namespace names, the capture init step's command line, the hosts file and the kube-proxy stand-in's rules, and the
// plan and configs of netns mode. Pure functions; no root needed.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { localizeConfig } from '../../controlplane/local/localize.ts';
import { planLocalMesh } from '../../controlplane/local/plan.ts';
import {
  initIptablesArgs,
  netnsAddressing,
  podNamespaceName,
  serviceHosts,
  serviceRules,
} from '../../controlplane/local/pod-network.ts';
import { loadSnapshot } from '../../controlplane/resources/files.ts';
import type { Pod } from '../../controlplane/resources/types.ts';
import { translate } from '../../controlplane/translate/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function seed() {
  const materialize = { podCidr: '10.244.128.0/17', serviceCidr: '10.96.0.0/16' };
  const { snapshot, errors } = await loadSnapshot([path.join(root, 'examples/seed')], { materialize });
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return { snapshot, result: translate(snapshot, {}) };
}

test('a range gives the bridge its first host and the pods its upper half', (t) => {
  t.deepEqual(netnsAddressing('10.244.0.0/16'), {
    gateway: '10.244.0.1',
    prefixLength: 16,
    podCidr: '10.244.128.0/17',
  });
  t.deepEqual(netnsAddressing('192.168.7.9/24'), {
    gateway: '192.168.7.1',
    prefixLength: 24,
    podCidr: '192.168.7.128/25',
  });
  for (const bad of ['10.0.0.0/28', '10.0.0.0', 'fd00::/64', '10.0.0.0/4'])
    t.throws(() => netnsAddressing(bad), { code: 'WEFT_ERR_LOCAL_INPUT' }, bad);
});

test('a pod namespace is the prefix, the namespace and the pod; a hash when that is too long', (t) => {
  t.is(podNamespaceName('weft-', 'bar/bar-v1-6c3bdf4449-2tsx7'), 'weft-bar.bar-v1-6c3bdf4449-2tsx7');
  const long = podNamespaceName('weft-', `ns/${'x'.repeat(70)}`);
  t.regex(long, /^weft-[0-9a-f]{12}$/);
  t.is(long, podNamespaceName('weft-', `ns/${'x'.repeat(70)}`));
});

test('hosts: every Service by its ClusterIP, short names in the pod’s own namespace only', async (t) => {
  const { snapshot } = await seed();
  const bar = snapshot.get('Service', 'bar/bar')!;
  const ip = bar.spec.clusterIP!;
  t.regex(ip, /^10\.96\./);
  const inBar = serviceHosts(snapshot, 'bar').find((e) => e.address === ip);
  const inFoo = serviceHosts(snapshot, 'foo').find((e) => e.address === ip);
  t.deepEqual(inBar?.names, ['bar', 'bar.bar', 'bar.bar.svc', 'bar.bar.svc.cluster.local']);
  t.deepEqual(inFoo?.names, ['bar.bar', 'bar.bar.svc', 'bar.bar.svc.cluster.local']);
});

test('Service rules: a uniform random DNAT over the ready endpoints, then a refusal for the rest of the range', async (t) => {
  const { snapshot } = await seed();
  const ip = snapshot.get('Service', 'bar/bar')!.spec.clusterIP!;
  const endpoints = snapshot
    .list('Pod')
    .filter((p) => p.metadata.namespace === 'bar')
    .map((p) => p.status!.podIP!)
    .sort();
  const rules = serviceRules(snapshot, '10.96.0.0/16', false).split('\n');
  const bar = rules.filter((l) => l.includes(` -d ${ip}/32 `));
  t.deepEqual(
    bar.map((l) => [/--probability (\S+)/.exec(l)?.[1], /--to-destination (\S+)/.exec(l)?.[1]]),
    [
      ['0.3333333333', `${endpoints[0]}:8080`],
      ['0.5000000000', `${endpoints[1]}:8080`],
      [undefined, `${endpoints[2]}:8080`],
    ],
  );
  t.true(bar.every((l) => l.startsWith('-A WEFT_LOCAL_SERVICES ') && l.includes('-p tcp -m tcp --dport 80 ')));
  t.is(rules.indexOf('*filter') > rules.indexOf('COMMIT'), true);
  t.true(rules.includes('-A WEFT_LOCAL_SERVICES -d 10.96.0.0/16 -p tcp -j REJECT --reject-with tcp-reset'));
  t.false(
    rules.some((l) => l.startsWith('-A OUTPUT')),
    'no hook on an update',
  );
  const first = serviceRules(snapshot, '10.96.0.0/16', true).split('\n');
  t.is(first.filter((l) => l === '-A OUTPUT -p tcp -j WEFT_LOCAL_SERVICES').length, 2, 'nat and filter hooks');
});

test('the init step is `weft proxy init-iptables` with the config’s ports and the pod’s exclusions', async (t) => {
  const { snapshot, result } = await seed();
  const [id, config] = [...result.proxies].find(([k]) => k.startsWith('sidecar:bar/'))!;
  const pod = snapshot.get('Pod', id.slice('sidecar:'.length))!;
  const args = 'proxy init-iptables --proxy-uid 1337 --proxy-gid 1337 --outbound-port 15001 --inbound-port 15006';
  t.deepEqual(initIptablesArgs(config, pod, 1337), [...args.split(' '), '--exclude-inbound-ports', '15020,15008']);
  const annotated: Pod = {
    ...pod,
    metadata: {
      ...pod.metadata,
      annotations: {
        'weft.dev/exclude-inbound-ports': '9090',
        'weft.dev/exclude-outbound-ports': '5432',
        'weft.dev/exclude-outbound-ips': '169.254.169.254',
      },
    },
  };
  const excluded = '--exclude-inbound-ports 15020,15008,9090 --exclude-outbound-ports 5432';
  t.deepEqual(initIptablesArgs(config, annotated, 1000).slice(10), [
    ...excluded.split(' '),
    ...'--exclude-outbound-cidrs 169.254.169.254'.split(' '),
  ]);
});

test('netns plan: pods in the pool run with their own ports; gateways keep the loopback, endpoints unshifted', async (t) => {
  const { snapshot, result } = await seed();
  const podRange = { contains: (ip: string) => ip.startsWith('10.244.'), text: 'in the pool' };
  const plan = planLocalMesh(snapshot, result.proxies.keys(), { portOffset: 0, podRange });
  t.is(plan.pods.length, 6);
  t.deepEqual(plan.unplaced, []);
  t.true(plan.pods.every((p) => p.proxyId !== undefined && p.workloads[0].ports[0] === 8080));
  const loopbackPlan = planLocalMesh(snapshot, result.proxies.keys(), { portOffset: 0 });
  t.is(loopbackPlan.unplaced.length, 6);
  t.regex(loopbackPlan.unplaced[0].reason, /not a loopback address/);

  const edge = result.proxies.get('edge:infra/gateway')!;
  const local = localizeConfig(edge, { bindAddress: '127.30.0.9', portOffset: 10_000, shiftEndpoints: false });
  t.true(local.listeners.every((l) => l.address === '127.30.0.9' && l.port > 10_000));
  t.deepEqual(local.clusters, edge.clusters);
});

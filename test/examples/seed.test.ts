// The seed scenario says what DESIGN.md says ("Embedded default"): foo's three paths to three
// Services, bar's canary header before a 90/10 split, an HTTPS Gateway with its own certificate —
// at the edge and, through Service parentRefs, in every sidecar.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { statusProblems } from '../../bin/commands/translate.ts';
import { loadDirectory } from '../../controlplane/resources/files.ts';
import { materialize } from '../../controlplane/resources/materialize.ts';
import { ResourceSnapshot } from '../../controlplane/resources/snapshot.ts';
import { translate } from '../../controlplane/translate/index.ts';
import type { ProxyConfig, Route, RouteTable } from '../../sidecar/config/proxy-config.ts';
import { validateProxyConfig } from '../../sidecar/config/validate.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const loaded = await loadDirectory(join(root, 'examples/seed'));
const result = translate(ResourceSnapshot.from(materialize(loaded.resources)));
const edge = result.proxies.get('edge:infra/gateway');
const sidecars = [...result.proxies.values()].filter((c) => c.proxy.mode === 'sidecar');

function vhostRoutes(table: RouteTable | undefined, host: string): Route[] {
  const vh = table?.virtualHosts.find((v) => v.domains.includes(host));
  if (!vh) throw new Error(`no virtual host ${host}`);
  return vh.routes;
}

/** [path type, path value, header matches, [cluster, weight] per backend] of each route, in table order. */
function summary(routes: Route[]): unknown[] {
  return routes.map((r) => [
    r.match.path?.type,
    r.match.path?.value,
    r.match.headers.map((h) => `${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`),
    r.backends.map((b) => [b.cluster, b.weight]),
  ]);
}

const FOO = [
  ['PathPrefix', '/login', [], [['foo/foo-login:80', 1]]],
  ['PathPrefix', '/home', [], [['foo/foo-home:80', 1]]],
  ['PathPrefix', '/', [], [['foo/foo-site:80', 1]]],
];
const BAR = [
  ['PathPrefix', '/', ['env=canary'], [['bar/bar-v2:80', 1]]],
  [
    'PathPrefix',
    '/',
    [],
    [
      ['bar/bar-v1:80', 90],
      ['bar/bar-v2:80', 10],
    ],
  ],
];

test('the seed loads cleanly and every status is healthy', (t) => {
  t.deepEqual(
    loaded.errors.map((e) => e.toString()),
    [],
  );
  t.deepEqual(
    loaded.warnings.map((w) => w.toString()),
    [],
  );
  t.deepEqual(statusProblems(result.statuses), []);
  t.is(result.statuses.length, 6);
});

test('every config is one the proxy accepts', (t) => {
  t.is(result.proxies.size, 7);
  for (const [id, config] of result.proxies) {
    const v = validateProxyConfig(config);
    t.true(v.ok, `${id}: ${v.ok ? '' : JSON.stringify(v.issues)}`);
  }
});

test('edge: foo.example.com /login, /home and / go to three Services, on both listeners', (t) => {
  for (const listener of ['https', 'http']) {
    const routes = vhostRoutes(edge?.routeTables[`gateway/infra/gateway/${listener}`], 'foo.example.com');
    t.deepEqual(summary(routes), FOO, listener);
    t.true(routes.every((r) => r.route === 'foo/foo-route'));
  }
  t.deepEqual(
    Object.keys(edge!.clusters).filter((k) => k.startsWith('foo/')),
    ['foo/foo-home:80', 'foo/foo-login:80', 'foo/foo-site:80'],
  );
});

test('edge: bar.example.com sends env: canary to bar-v2 first, then splits 90/10', (t) => {
  for (const listener of ['https', 'http']) {
    const routes = vhostRoutes(edge?.routeTables[`gateway/infra/gateway/${listener}`], 'bar.example.com');
    t.deepEqual(summary(routes), BAR, listener);
  }
});

test('edge: an HTTPS listener on 443 for *.example.com with the seed certificate, and HTTP on 80', (t) => {
  const listeners = edge!.listeners as Extract<ProxyConfig['listeners'][number], { kind: 'gateway' }>[];
  const https = listeners.find((l) => l.port === 443)!;
  t.is(https.protocol, 'HTTPS');
  t.is(https.hosts.length, 1);
  t.is(https.hosts[0].hostname, '*.example.com');
  t.deepEqual(https.hosts[0].certificates, ['infra/gateway-cert']);
  const http = listeners.find((l) => l.port === 80)!;
  t.is(http.protocol, 'HTTP');
  t.deepEqual(http.hosts[0].certificates, []);

  const pair = edge!.tlsCertificates['infra/gateway-cert'];
  const cert = new X509Certificate(pair.certChain);
  t.truthy(cert.checkHost('foo.example.com'));
  t.truthy(cert.checkHost('bar.example.com'));
  t.true(cert.checkPrivateKey(createPrivateKey(pair.privateKey)));
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  t.true(days >= 3649 && days <= 3651, `valid for ${days} days`);
});

test('edge: backends are reached over mTLS (endpoints carry the pods identities)', (t) => {
  const v1 = edge!.clusters['bar/bar-v1:80'];
  t.is(v1.endpoints.length, 2);
  for (const ep of v1.endpoints) {
    t.is(ep.identity, 'spiffe://cluster.local/ns/bar/sa/bar');
    t.is(ep.port, 8080);
    t.truthy(ep.meshPort);
  }
});

test('mesh: a sidecar per pod, each with the foo and bar routes on the Services foo and bar', (t) => {
  t.deepEqual(sidecars.map((c) => c.proxy.id.replace(/-[a-z0-9]{10}-[a-z0-9]{5}$/, '')).sort(), [
    'sidecar:bar/bar-v1',
    'sidecar:bar/bar-v1',
    'sidecar:bar/bar-v2',
    'sidecar:foo/foo-home',
    'sidecar:foo/foo-login',
    'sidecar:foo/foo-site',
  ]);
  for (const c of sidecars) {
    const outbound = c.listeners.find((l) => l.kind === 'outbound');
    if (outbound?.kind !== 'outbound') return t.fail('no outbound listener');
    const foo = outbound.services.find((s) => s.service === 'foo/foo')!;
    const bar = outbound.services.find((s) => s.service === 'bar/bar')!;
    t.truthy(foo.hostnames.includes('foo.foo.svc.cluster.local'));
    t.truthy(bar.hostnames.includes('bar.bar.svc.cluster.local'));
    const fooRoutes = c.routeTables[foo.ports[0].routeTable].virtualHosts.flatMap((v) => v.routes);
    const barRoutes = c.routeTables[bar.ports[0].routeTable].virtualHosts.flatMap((v) => v.routes);
    t.deepEqual(summary(fooRoutes), FOO, c.proxy.id);
    t.deepEqual(summary(barRoutes), BAR, c.proxy.id);
    t.true(fooRoutes.every((r) => r.route === 'foo/foo-mesh'));
    t.true(barRoutes.every((r) => r.route === 'bar/bar-mesh'));
  }
});

test("mesh: each sidecar has its Deployment's ServiceAccount identity and serves the echo port", (t) => {
  for (const c of sidecars) {
    const sa = c.proxy.namespace === 'bar' ? 'bar' : c.proxy.name.replace(/-[a-z0-9]{10}-[a-z0-9]{5}$/, '');
    t.is(c.proxy.identity, `spiffe://cluster.local/ns/${c.proxy.namespace}/sa/${sa}`);
    const inbound = c.listeners.find((l) => l.kind === 'inbound');
    t.deepEqual(inbound?.kind === 'inbound' ? inbound.appPorts : undefined, [{ port: 8080 }]);
  }
});

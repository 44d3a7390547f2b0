// `weft check` against the test Kubernetes API server: a healthy installation gives every check ✓; each thing broken
// on purpose gives its own ✗ (or ‼) with the fix, and leaves the other checks alone.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { MeshCA, ROOT_LIFETIME_MS } from '../../controlplane/certs/index.ts';
import type { CheckResult } from '../../controlplane/check/result.ts';
import { runChecks } from '../../controlplane/check/run.ts';
import { KubeClient, kubeConfigFor } from '../../controlplane/k8s/client.ts';
import { formatChecks } from '../../bin/commands/check.ts';
import { closedPort, runWeft } from '../helpers/run-weft.ts';
import { NS, proxyRecord, rootAt, startWeftCluster, type WeftCluster } from './cluster.ts';

const DAY = 24 * 60 * 60 * 1000;

const NAMES = [
  'Kubernetes API',
  'Gateway API CRDs',
  'weft CRDs',
  'GatewayClass weft',
  'control plane',
  'root CA certificate',
  'root CA ConfigMaps',
  'webhook configuration',
  'webhook reachable',
  'proxies connected',
];

async function cluster(t: { teardown(f: () => unknown): void }, o?: Parameters<typeof startWeftCluster>[0]) {
  const c = await startWeftCluster(o);
  t.teardown(() => c.close());
  return c;
}

const byName = (results: CheckResult[]) => new Map(results.map((r) => [r.name, r]));

/** Every check but `except` came out ok. */
function othersOk(
  t: { deepEqual(a: unknown, b: unknown, m?: string): void },
  results: CheckResult[],
  except: string[],
) {
  const bad = results
    .filter((r) => !except.includes(r.name) && r.status !== 'ok')
    .map((r) => `${r.name}: ${r.message}`);
  t.deepEqual(bad, [], 'the other checks are unaffected');
}

test('a healthy installation: every check ✓, and the text says what each found', async (t) => {
  const c = await cluster(t);
  const results = await runChecks(c.options());
  t.deepEqual(
    results.map((r) => r.name),
    NAMES,
  );
  othersOk(t, results, []);
  const r = byName(results);
  t.regex(r.get('Kubernetes API')!.message, /^Kubernetes v1\.35\.0-weft-test at http:\/\/127\.0\.0\.1:\d+$/);
  t.is(
    r.get('Gateway API CRDs')!.message,
    'gatewayclasses, gateways, httproutes, referencegrants served at v1 (release v1.4.0, standard channel)',
  );
  t.is(r.get('weft CRDs')!.message, 'proxysettings.weft.dev served at v1alpha1');
  t.is(r.get('control plane')!.message, `2/2 replicas of Deployment ${NS}/weft-controlplane available`);
  t.regex(
    r.get('root CA certificate')!.message,
    /^root CN=weft mesh root CA \(cluster\.local\) from Secret weft-system\/weft-ca: valid until \d{4}-\d\d-\d\d, 36\d\d days left$/,
  );
  t.is(
    r.get('root CA ConfigMaps')!.message,
    'weft-root-ca holds the root in the namespace labelled weft.dev/inject=enabled (shop)',
  );
  t.regex(
    r.get('webhook reachable')!.message,
    /^TLS to 127\.0\.0\.1:\d+ verified as weft-controlplane\.weft-system\.svc against the caBundle/,
  );
  t.is(r.get('proxies connected')!.message, '2 connected, each on its latest config');
  const text = formatChecks(results);
  const lines = text.trimEnd().split('\n');
  t.is(lines.length, NAMES.length + 2);
  for (const [i, name] of NAMES.entries()) t.true(lines[i].startsWith(`✓ ${name}: `), lines[i]);
  t.is(lines.at(-1), 'weft check: no problem found');
});

test('a Gateway API CRD missing: ✗ with the install command; without GatewayClasses that check is skipped', async (t) => {
  const c = await cluster(t);
  c.server.uninstallCrd('HTTPRoute');
  let results = await runChecks(c.options());
  const crds = byName(results).get('Gateway API CRDs')!;
  t.is(crds.status, 'fail');
  t.is(crds.message, 'httproutes.gateway.networking.k8s.io is not installed');
  t.is(
    crds.fix,
    'install the Gateway API v1.4.0 standard CRDs: kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.0/standard-install.yaml',
  );
  othersOk(t, results, ['Gateway API CRDs']);
  const text = formatChecks(results).split('\n');
  const at = text.indexOf('✗ Gateway API CRDs: httproutes.gateway.networking.k8s.io is not installed');
  t.true(at >= 0, text.join('\n'));
  t.regex(text[at + 1], /^ {4}fix: install the Gateway API v1\.4\.0 standard CRDs: kubectl apply --server-side -f /);
  t.is(text.at(-2), 'weft check: 1 check failed');

  c.server.uninstallCrd('GatewayClass');
  results = await runChecks(c.options());
  t.deepEqual(byName(results).get('GatewayClass weft'), {
    name: 'GatewayClass weft',
    status: 'skip',
    message: 'needs the Gateway API CRDs',
  });
  t.regex(
    byName(results).get('Gateway API CRDs')!.message,
    /gatewayclasses\.gateway\.networking\.k8s\.io is not installed; httproutes/,
  );
});

test('weft’s own CRD missing: ✗ weft CRDs with the chart’s CRDs to apply', async (t) => {
  const c = await cluster(t);
  c.server.uninstallCrd('ProxySettings');
  const results = await runChecks(c.options());
  const r = byName(results).get('weft CRDs')!;
  t.is(r.status, 'fail');
  t.is(r.message, 'proxysettings.weft.dev is not installed');
  t.regex(r.fix!, /kubectl apply --server-side -f charts\/weft\/crds\//);
  othersOk(t, results, ['weft CRDs']);
});

test('a root CA within 30 days of expiry: ‼ (not a failure) with how to rotate it', async (t) => {
  const c = await cluster(t);
  const notAfter = new X509Certificate(c.root.certPem).validToDate.getTime();
  const results = await runChecks(c.options({ now: () => notAfter - 12 * DAY }));
  const r = byName(results).get('root CA certificate')!;
  t.is(r.status, 'warn');
  t.regex(r.message, /valid until \d{4}-\d\d-\d\d, 1[12] days left: expires within 30 days$/);
  t.regex(r.fix!, /put a new CA into Secret weft-system\/weft-ca .* rollout restart deployment weft-controlplane/);
  othersOk(t, results, ['root CA certificate']);
  const text = formatChecks(results);
  t.regex(text, /\n‼ root CA certificate: .*\n {4}fix: rotate the CA before it expires/);
  t.true(text.endsWith('weft check: no problem found, 1 warning\n'));
});

test('an expired root CA: ✗ with the date and the rotation', async (t) => {
  const c = await cluster(t, { root: rootAt(Date.now() - ROOT_LIFETIME_MS - 3 * DAY) });
  const results = await runChecks(c.options());
  const r = byName(results).get('root CA certificate')!;
  t.is(r.status, 'fail');
  t.regex(
    r.message,
    /^root CN=weft mesh root CA \(cluster\.local\) from Secret weft-system\/weft-ca: expired on \d{4}-\d\d-\d\d, 3 days ago: proxies get no certificates and mTLS fails$/,
  );
  t.regex(r.fix!, /^rotate the CA before it expires/);
  // Without a root that can issue, no webhook serves here: not run in the cluster and no --webhook-url, it is skipped.
  t.is(byName(results).get('webhook reachable')!.status, 'skip');
});

test('the CA Secret missing: ✗ root CA certificate, the webhook bundle still compared with the published root', async (t) => {
  const c = await cluster(t);
  c.server.remove('Secret', NS, 'weft-ca');
  const results = await runChecks(c.options());
  const r = byName(results).get('root CA certificate')!;
  t.is(r.status, 'fail');
  t.is(r.message, 'Secret weft-system/weft-ca does not exist');
  t.regex(r.fix!, /the control plane creates it on its first start/);
  othersOk(t, results, ['root CA certificate']);
});

test('a caBundle of another root: ✗ webhook configuration naming both certificates, and the handshake is skipped', async (t) => {
  const c = await cluster(t);
  const other = rootAt(Date.now());
  const wc = c.server.get('MutatingWebhookConfiguration', undefined, 'weft-injector')!;
  (wc.webhooks as { clientConfig: { caBundle: string } }[])[0].clientConfig.caBundle = Buffer.from(
    other.certPem,
  ).toString('base64');
  c.server.put(wc);
  const results = await runChecks(c.options());
  const r = byName(results).get('webhook configuration')!;
  t.is(r.status, 'fail');
  t.regex(
    r.message,
    /^webhook inject\.weft\.dev's caBundle \(CN=weft mesh root CA \(cluster\.local\), SHA-256 [0-9A-F:]+…\) does not hold the mesh root CA \(CN=weft mesh root CA \(cluster\.local\), SHA-256 [0-9A-F:]+…\)$/,
  );
  t.regex(r.fix!, /the control plane keeps caBundle equal to its root CA/);
  t.deepEqual(byName(results).get('webhook reachable'), {
    name: 'webhook reachable',
    status: 'skip',
    message: 'needs a valid webhook configuration',
  });
  othersOk(t, results, ['webhook configuration', 'webhook reachable']);

  (wc.webhooks as { clientConfig: { caBundle: string } }[])[0].clientConfig.caBundle = '';
  c.server.put(wc);
  const empty = byName(await runChecks(c.options())).get('webhook configuration')!;
  t.is(empty.message, 'webhook inject.weft.dev has no caBundle: the API server cannot verify the injector');
});

test('a webhook serving a certificate the caBundle does not verify: ✗ webhook reachable with the TLS error', async (t) => {
  const c = await cluster(t);
  const stranger = MeshCA.fromPem(rootAt(Date.now()), { trustDomain: 'cluster.local' }).issueServing({
    dnsNames: [`weft-controlplane.${NS}.svc`],
    ips: [],
  });
  const server = createHttpsServer({ cert: stranger.certChainPem, key: stranger.keyPem }, (_q, s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const results = await runChecks(c.options({ webhookUrl: `https://127.0.0.1:${port}` }));
  const r = byName(results).get('webhook reachable')!;
  t.is(r.status, 'fail');
  t.regex(
    r.message,
    new RegExp(
      `^TLS to 127\\.0\\.0\\.1:${port} as weft-controlplane\\.weft-system\\.svc: .*(verify|signature|issuer|self-signed)`,
      'i',
    ),
  );
  t.regex(
    r.fix!,
    /serving certificate does not verify against the caBundle.*rollout restart deployment weft-controlplane/,
  );
  othersOk(t, results, ['webhook reachable']);

  const down = byName(await runChecks(c.options({ webhookUrl: `https://127.0.0.1:${await closedPort()}` }))).get(
    'webhook reachable',
  )!;
  t.is(down.status, 'fail');
  t.regex(down.message, /ECONNREFUSED/);
  t.is(
    down.fix,
    `is the control plane running and its Service selecting it? (kubectl -n ${NS} get endpoints weft-controlplane)`,
  );
});

test('the admin endpoint unreachable: ✗ proxies connected, through the API server and through --admin-url', async (t) => {
  const c = await cluster(t);
  c.server.resolveService = () => undefined;
  let results = await runChecks(c.options());
  let r = byName(results).get('proxies connected')!;
  t.is(r.status, 'fail');
  t.regex(
    r.message,
    /^cannot read the control plane's \/proxies from the API server's service proxy \(.*\): 503 ServiceUnavailable: no endpoints available for service "weft-controlplane"$/,
  );
  t.is(
    r.fix,
    'reach the admin port directly: kubectl -n weft-system port-forward deployment/weft-controlplane 15014, then weft check --admin-url http://127.0.0.1:15014',
  );
  othersOk(t, results, ['proxies connected']);

  const port = await closedPort();
  results = await runChecks(c.options({ adminUrl: `http://127.0.0.1:${port}` }));
  r = byName(results).get('proxies connected')!;
  t.is(r.status, 'fail');
  t.regex(r.message, new RegExp(`from http://127\\.0\\.0\\.1:${port}/proxies: connect ECONNREFUSED`));
  t.regex(r.fix!, /^is the control plane's admin port reachable there\? \(kubectl -n weft-system port-forward/);

  r = byName(await runChecks(c.options({ adminUrl: c.admin.url }))).get('proxies connected')!;
  t.is(r.status, 'ok', 'the admin URL given directly works without the API server');
});

test('proxies: a refused config is ✗ with the reason, a config not acknowledged yet is ‼', async (t) => {
  const c = await cluster(t);
  c.proxies.push(
    proxyRecord('sidecar:shop/web-3', {
      currentVersion: 'v3',
      lastSentVersion: 'v3',
      lastNack: { version: 'v3', reason: 'routeTables["shop/web:80"]: bad regex', at: new Date().toISOString() },
      nacks: 1,
    }),
    proxyRecord('sidecar:shop/gone', { connected: false, currentVersion: 'v9' }),
  );
  let r = byName(await runChecks(c.options())).get('proxies connected')!;
  t.is(r.status, 'fail');
  t.is(r.message, '1 of 3 refused their latest config: sidecar:shop/web-3 (routeTables["shop/web:80"]: bad regex)');
  t.regex(r.fix!, /^weft proxy-status shows each reason/);

  c.proxies.splice(2, 1, proxyRecord('sidecar:shop/web-3', { currentVersion: 'v4', lastSentVersion: 'v4' }));
  r = byName(await runChecks(c.options())).get('proxies connected')!;
  t.is(r.status, 'warn');
  t.is(r.message, '1 of 3 have not acknowledged their latest config yet: sidecar:shop/web-3');
});

test('GatewayClass not accepted, control plane unavailable, root CA ConfigMap missing or stale: each its own ✗', async (t) => {
  const c = await cluster(t);
  const gc = c.server.get('GatewayClass', undefined, 'weft')!;
  gc.status = {
    conditions: [{ type: 'Accepted', status: 'Unknown', reason: 'Pending', message: 'Waiting for controller' }],
  };
  c.server.put(gc);
  const d = c.server.get('Deployment', NS, 'weft-controlplane')!;
  d.status = { replicas: 2, availableReplicas: 0 };
  c.server.put(d);
  c.server.put({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'plain', labels: { 'weft.dev/inject': 'enabled' } },
  });
  c.server.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'weft-root-ca', namespace: 'shop' },
    data: { 'ca.crt': rootAt(Date.now()).certPem },
  });
  const results = await runChecks(c.options());
  const r = byName(results);
  t.like(r.get('GatewayClass weft'), {
    status: 'fail',
    message: "not Accepted yet (Pending): weft's controller has not processed it",
  });
  t.regex(r.get('GatewayClass weft')!.fix!, /is the control plane running\?/);
  t.like(r.get('control plane'), {
    status: 'fail',
    message: 'no replica of Deployment weft-system/weft-controlplane is available (0/2)',
    fix: 'kubectl -n weft-system describe deployment weft-controlplane; kubectl -n weft-system logs deployment/weft-controlplane',
  });
  t.like(r.get('root CA ConfigMaps'), {
    status: 'fail',
    message:
      'ConfigMap weft-root-ca missing in plain (injected pods there cannot start); holds no copy of the root in shop',
  });
  othersOk(t, results, ['GatewayClass weft', 'control plane', 'root CA ConfigMaps']);
});

test('the Kubernetes API unreachable: ✗ with the fix, every check that needs it skipped', async (t) => {
  const port = await closedPort();
  const client = new KubeClient(kubeConfigFor(`http://127.0.0.1:${port}`), { timeoutMs: 5000 });
  t.teardown(() => client.close());
  const results = await runChecks({ client, inCluster: false });
  t.deepEqual(
    results.map((r) => r.name),
    NAMES,
  );
  t.like(results[0], { status: 'fail' });
  t.regex(results[0].message, new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  t.regex(results[0].fix!, /kubectl config current-context/);
  t.true(results.slice(1).every((r) => r.status === 'skip'));
  t.is(results.at(-1)!.message, 'needs the Kubernetes API, or --admin-url');

  const none = await runChecks({ clientError: new Error('kubeconfig has no current cluster'), inCluster: false });
  t.like(none[0], { status: 'fail', message: 'no usable kubeconfig: kubeconfig has no current cluster' });
});

// Not "in the cluster", whatever machine this runs on.
const run = (args: string[]) =>
  runWeft(['check', '--timeout-seconds', '30', ...args], { ...process.env, KUBERNETES_SERVICE_HOST: '' });

async function kubeconfig(t: { teardown(f: () => unknown): void }, c: WeftCluster): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'kubeconfig');
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: test\n  cluster:\n    server: ${c.url}\n    insecure-skip-tls-verify: true`,
      'users:',
      '- name: test\n  user: {}',
      'contexts:',
      '- name: test\n  context:\n    cluster: test\n    user: test',
      'current-context: test',
      '',
    ].join('\n'),
  );
  return file;
}

test('weft check: exit 0 on a healthy cluster, exit 1 with ✗ and fix lines on a broken one; -o json', async (t) => {
  const c = await cluster(t);
  const file = await kubeconfig(t, c);
  const healthy = await run(['--kubeconfig', file, '--webhook-url', c.webhookUrl!]);
  t.is(healthy.code, 0, healthy.stderr + healthy.stdout);
  t.is(healthy.stdout.split('\n').filter((l) => l.startsWith('✓ ')).length, NAMES.length, healthy.stdout);

  c.server.uninstallCrd('HTTPRoute');
  const broken = await run(['--kubeconfig', file, '--webhook-url', c.webhookUrl!]);
  t.is(broken.code, 1);
  t.regex(broken.stdout, /\n✗ Gateway API CRDs: httproutes\.gateway\.networking\.k8s\.io is not installed\n {4}fix: /);
  t.is(broken.stderr, 'weft: check: 1 check failed\n');

  const json = await run(['--kubeconfig', file, '-o', 'json']);
  t.is(json.code, 1);
  const parsed = JSON.parse(json.stdout) as { checks: CheckResult[] };
  t.deepEqual(
    parsed.checks.map((r) => [r.name, r.status]),
    NAMES.map((n) => [n, n === 'Gateway API CRDs' ? 'fail' : n === 'webhook reachable' ? 'skip' : 'ok']),
  );

  // The flag reaches the check (commander alone would have stored it as rootCaConfigmap, and the default won).
  const otherMap = await run(['--kubeconfig', file, '--root-ca-configmap', 'mesh-roots', '-o', 'json']);
  t.like(
    (JSON.parse(otherMap.stdout) as { checks: CheckResult[] }).checks.find((r) => r.name === 'root CA ConfigMaps'),
    { status: 'fail', message: 'ConfigMap mesh-roots missing in shop (injected pods there cannot start)' },
  );

  const noContext = await run(['--kubeconfig', file, '--context', 'elsewhere']);
  t.is(noContext.code, 1);
  t.regex(noContext.stdout, /^✗ Kubernetes API: no usable kubeconfig: the kubeconfig has no context "elsewhere"\n/);
});

test('weft check: a bad flag value is a usage error (exit 2) naming what was expected, before any request', async (t) => {
  for (const [args, message] of [
    [['--namespace', 'Weft_System'], /argument 'Weft_System' is invalid\. not a namespace name/],
    [['--ca-secret', 'a/b'], /argument 'a\/b' is invalid\. not a Secret name/],
    [['--admin-url', 'ftp://x'], /not an http\(s\) URL/],
    [['--timeout-seconds', '0'], /not a whole number of seconds/],
  ] as const) {
    const r = await run(['--kubeconfig', '/nonexistent', ...args]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.is(r.stdout, '', 'no check ran');
  }
});

// `weft controlplane` as a real process against the test API server (kubeconfig file, every port 0): it becomes
// ready on /readyz, creates the CA Secret, publishes weft-root-ca, keeps the webhook caBundle, hosts the injector
// that the API server calls for a Deployment's pod, holds the Lease, and on SIGTERM exits 0 having released it.
// Then the flags it refuses.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import type { Obj } from './api-server.ts';
import { deployment, INJECTOR_CONFIGURATION, WEFT_NAMESPACE } from './cluster-fixtures.ts';
import { DeploymentController } from './deployment-controller.ts';
import { type Cluster, eventually, startCluster } from './support.ts';

const weft = join(dirname(fileURLToPath(import.meta.url)), '../../bin/weft.ts');

interface Ctx {
  c: Cluster;
  dir: string;
  kubeconfig: string;
  child?: ChildProcess;
  controller?: DeploymentController;
}

const test = anyTest as TestFn<Ctx>;

test.beforeEach(async (t) => {
  t.context.c = await startCluster({ token: 'controlplane-token' });
  t.context.dir = mkdtempSync(join(tmpdir(), 'weft-controlplane-'));
  t.context.kubeconfig = join(t.context.dir, 'kubeconfig');
  writeFileSync(
    t.context.kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: t.context.c.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'weft', user: { token: 'controlplane-token' } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'weft' } }],
      'current-context': 'test',
    }),
  );
});

test.afterEach.always(async (t) => {
  await t.context.controller?.close();
  if (t.context.child && t.context.child.exitCode === null) t.context.child.kill('SIGKILL');
  await t.context.c?.close();
  rmSync(t.context.dir, { recursive: true, force: true });
});

const env = () => {
  const e = { ...process.env };
  delete e.POD_NAMESPACE;
  delete e.KUBERNETES_SERVICE_HOST;
  return e;
};

test('weft controlplane: ready, publishes the root CA, keeps the caBundle, injects, and stops on SIGTERM', async (t) => {
  const { server, client } = t.context.c;
  for (const [name, labels] of [
    [WEFT_NAMESPACE, {}],
    ['shop', { 'weft.dev/inject': 'enabled' }],
  ] as const)
    server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  server.put(INJECTOR_CONFIGURATION);

  const child = spawn(
    process.execPath,
    [
      weft,
      'controlplane',
      '--kubeconfig',
      t.context.kubeconfig,
      ...['--push-port', '0', '--ca-port', '0', '--admin-port', '0', '--webhook-port', '0'],
    ],
    { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.context.child = child;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {}
  });
  const started = await eventually(
    () => lines.find((l) => l.event === 'controlplane.started') as { ports: Record<string, number> } | undefined,
    `the started line (stderr: ${stderr})`,
    30_000,
  );
  const { admin, webhook } = started.ports;
  server.resolveService = (ns, name) =>
    ns === WEFT_NAMESPACE && name === 'weft-controlplane' ? { host: '127.0.0.1', port: webhook } : undefined;

  t.is((await fetch(`http://127.0.0.1:${admin}/healthz`)).status, 200);
  await eventually(async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200, '/readyz 200', 30_000);
  t.like(await (await fetch(`http://127.0.0.1:${admin}/readyz`)).json(), { ready: true });

  const secret = server.get('Secret', WEFT_NAMESPACE, 'weft-ca');
  const root = Buffer.from((secret!.data as Record<string, string>)['ca.crt'], 'base64').toString();
  t.regex(root, /BEGIN CERTIFICATE/);
  const cm = await eventually(() => server.get('ConfigMap', 'shop', 'weft-root-ca'), 'weft-root-ca published');
  t.is((cm.data as Record<string, string>)['ca.crt'], root);
  const caBundle = () =>
    (
      (server.get('MutatingWebhookConfiguration', undefined, 'weft-injector')!.webhooks as Obj[])[0].clientConfig as {
        caBundle?: string;
      }
    ).caBundle;
  await eventually(() => caBundle() === Buffer.from(root).toString('base64'), 'caBundle kept');

  // The API server calls the process's webhook for a Deployment's pod.
  t.context.controller = new DeploymentController(server, client, { retryMs: 50 });
  server.put(deployment('shop', 'web', 1));
  t.context.controller.start();
  const pod = await eventually(() => server.list('Pod')[0], 'a web pod', 30_000);
  const names = ((pod.spec as { initContainers?: { name: string }[] }).initContainers ?? []).map((c) => c.name);
  t.true(names.includes('weft-proxy'), JSON.stringify(names));

  const holder = () =>
    (server.get('Lease', WEFT_NAMESPACE, 'weft-controlplane')?.spec as { holderIdentity?: string } | undefined)
      ?.holderIdentity;
  await eventually(() => holder(), 'the Lease held');

  child.kill('SIGTERM');
  t.is(await exited, 0, stderr);
  t.falsy(holder(), 'the Lease is released on SIGTERM');
  t.true(lines.some((l) => l.event === 'controlplane.stopped'));
});

/** Runs weft controlplane to its exit without blocking this process (the test API server lives here). */
function run(t: { context: Ctx }, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [weft, 'controlplane', '--kubeconfig', t.context.kubeconfig, ...args], {
      env: env(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

for (const [args, code, says] of [
  [['--cert-ttl', '30d'], 2, 'not a duration'],
  [['--namespace', 'Weft_System'], 2, 'not a namespace name'],
  [['--inject-settings', '/nonexistent/settings.yaml'], 1, 'cannot read /nonexistent/settings.yaml'],
] as const) {
  test(`weft controlplane ${args.join(' ')}: exit ${code} saying "${says}"`, async (t) => {
    const r = await run(t, [...args]);
    t.is(r.code, code, r.stderr);
    t.true(r.stderr.includes(says), r.stderr);
  });
}

test('weft controlplane: invalid injector settings are refused before anything starts', async (t) => {
  const file = join(t.context.dir, 'settings.yaml');
  writeFileSync(file, 'ports:\n  outbound: 70000\n');
  const r = await run(t, ['--inject-settings', file]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /ports\.outbound/);
  t.is(t.context.c.server.count(), 0, 'no request reached the API server');
});

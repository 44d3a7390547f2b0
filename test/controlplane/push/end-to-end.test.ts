// The control plane's runtime joined up, as bin/ will join it: FileProvider on a temp dir → pipeline → push server
// (mTLS, identities from the snapshot) → a push client feeding a real proxy; the admin endpoint; and
// `weft proxy-status` run as a user runs it. A file edit reaches the proxy as a new config it acknowledges.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import { formatProxyStatus } from '../../../bin/commands/proxy-status.ts';
import { type AdminServer, startAdminServer } from '../../../controlplane/admin/server.ts';
import { snapshotAuthorizer } from '../../../controlplane/push/identity.ts';
import { type ProxyRecord, type PushServer, startPushServer } from '../../../controlplane/push/server.ts';
import { FileProvider } from '../../../controlplane/resources/files.ts';
import { Pipeline, type TranslationEvent } from '../../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../../controlplane/runtime/runner.ts';
import { startProxy } from '../../../sidecar/proxy.ts';
import { PushClient } from '../../../sidecar/push/client.ts';
import { ca, captureLogs, spiffe, TD, workloadCredentials } from './support.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const test = anyTest.serial as TestFn<{ dir: string; cleanup: (() => Promise<void>)[] }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-push-e2e-'));
  t.context.cleanup = [];
});

test.afterEach.always(async (t) => {
  for (const c of t.context.cleanup.reverse()) await c();
  await rm(t.context.dir, { recursive: true, force: true });
});

const shop = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {weft.dev/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: web, containers: [{name: app, image: echo, ports: [{containerPort: 8080}]}]}
`;

const route = (prefix: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]
    backendRefs: [{name: web, port: 80}]
`;

interface ControlPlane {
  pipeline: Pipeline;
  supervisor: Supervisor;
  push: PushServer;
  admin: AdminServer;
}

async function controlPlane(t: { context: { dir: string; cleanup: (() => Promise<void>)[] } }): Promise<ControlPlane> {
  const { logger } = captureLogs('warn');
  const pipeline = new Pipeline({
    provider: () => new FileProvider({ paths: [t.context.dir], debounceMs: 10 }),
    translateOptions: { trustDomain: TD, rootCAs: ca.rootCAsPem },
    logger,
  });
  const supervisor = new Supervisor({ logger });
  for (const r of pipeline.runners) supervisor.add(r);
  t.context.cleanup.push(() => supervisor.close());
  const first = new Promise<void>((r) => {
    const off = pipeline.onTranslation(() => {
      off();
      r();
    });
  });
  await supervisor.start();
  await first;
  const push = await startPushServer({
    configs: pipeline.proxies,
    authorize: snapshotAuthorizer({ snapshot: () => pipeline.snapshot, trustDomain: TD }),
    ca,
    port: 0,
    logger,
  });
  t.context.cleanup.push(() => push.close());
  const admin = await startAdminServer({
    port: 0,
    logger,
    ready: () => {
      const reasons: string[] = [];
      if (!pipeline.ready) reasons.push('no translation yet');
      if (!supervisor.ready) reasons.push('a runner is not running');
      return { ready: reasons.length === 0, reasons };
    },
    proxies: () => push.records(),
    statuses: () => pipeline.statuses.entries().map(([, s]) => s),
    runners: () => supervisor.status(),
  });
  t.context.cleanup.push(() => admin.close());
  return { pipeline, supervisor, push, admin };
}

function weft(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [join(root, 'bin/weft.ts'), ...args], { cwd: root }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test('a file edit reaches a real proxy through the pipeline and push; admin and proxy-status show it', async (t) => {
  await writeFile(path.join(t.context.dir, 'shop.yaml'), shop);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/'));
  const cp = await controlPlane(t);
  const [proxyId] = cp.pipeline.proxies.keys();
  t.regex(proxyId, /^sidecar:shop\/web-/);

  const proxy = await startProxy({ adminPort: 0, listenPort: () => 0, logger: captureLogs('error').logger });
  t.context.cleanup.push(() => proxy.close());
  const client = new PushClient({
    host: '127.0.0.1',
    port: cp.push.port,
    proxyId,
    nodeVersion: 'weft-test/1',
    credentials: () => workloadCredentials('shop', 'web'),
    apply: (config) => proxy.update(config),
    logger: captureLogs('error').logger,
  });
  t.context.cleanup.push(() => client.close());
  const acked = (version: string) =>
    new Promise<void>((r) => {
      const on = (_id: string, v: string) => {
        if (v !== version) return;
        cp.push.off('ack', on);
        r();
      };
      cp.push.on('ack', on);
    });
  const v1 = cp.pipeline.proxies.load(proxyId)!.version;
  const firstAck = acked(v1);
  client.start();
  await firstAck;
  t.is(proxy.config?.proxy.id, proxyId);

  const translated = new Promise<TranslationEvent>((r) => {
    const off = cp.pipeline.onTranslation((e) => {
      off();
      r(e);
    });
  });
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/api'));
  t.true((await translated).ok);
  const v2 = cp.pipeline.proxies.load(proxyId)!.version;
  t.not(v2, v1);
  await acked(v2);
  const paths = Object.values(proxy.config!.routeTables).flatMap((rt) =>
    rt.virtualHosts.flatMap((vh) => vh.routes.map((r) => r.match.path?.value)),
  );
  t.true(paths.includes('/api'));

  // Admin endpoint.
  const get = async (p: string) => {
    const res = await fetch(`${cp.admin.url}${p}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  t.deepEqual(await get('/ready'), { status: 200, body: { ready: true } });
  const proxies = await get('/proxies');
  const records = proxies.body.proxies as ProxyRecord[];
  t.like(records[0], {
    proxyId,
    identity: spiffe('shop', 'web'),
    connected: true,
    lastSentVersion: v2,
    lastAckedVersion: v2,
    currentVersion: v2,
  });
  const statuses = (await get('/statuses')).body.statuses as { kind: string; name: string }[];
  t.true(statuses.some((s) => s.kind === 'HTTPRoute' && s.name === 'web'));
  const runners = (await get('/runners')).body.runners as { name: string; state: string }[];
  t.deepEqual(
    runners.map((r) => [r.name, r.state]),
    [
      ['provider', 'running'],
      ['translator', 'running'],
    ],
  );
  t.is((await get('/nope')).status, 404);
  t.is((await fetch(`${cp.admin.url}/proxies`, { method: 'POST' })).status, 405);

  // `weft proxy-status`, as a user runs it.
  const run = await weft('proxy-status', '--admin', cp.admin.url);
  t.is(run.code, 0, run.stderr);
  const [header, row, ...rest] = run.stdout.trimEnd().split('\n');
  t.deepEqual(header.split(/\s{2,}/), ['PROXY', 'IDENTITY', 'CONNECTED', 'VERSION SENT', 'ACKED', 'LAST NACK']);
  t.deepEqual(rest, []);
  const cells = row.split(/\s{2,}/);
  t.is(cells[0], proxyId);
  t.is(cells[1], spiffe('shop', 'web'));
  t.regex(cells[2], /^\d+s$/);
  t.is(cells[3], v2.slice(0, 12));
  t.is(cells[4], 'yes');
  t.is(cells[5], '-');
  const json = await weft('proxy-status', '--admin', cp.admin.url, '-o', 'json');
  t.is((JSON.parse(json.stdout) as ProxyRecord[])[0].proxyId, proxyId);
});

test('proxy-status fails clearly when the admin endpoint is unreachable', async (t) => {
  const admin = await startAdminServer({
    port: 0,
    logger: captureLogs().logger,
    ready: () => ({ ready: true }),
    proxies: () => [],
    statuses: () => [],
  });
  const url = admin.url;
  await admin.close();
  const run = await weft('proxy-status', '--admin', url);
  t.is(run.code, 1);
  t.regex(run.stderr, /^weft: cannot read http:\/\/127\.0\.0\.1:\d+\/proxies .*ECONNREFUSED\n$/);
});

test('proxy-status table: nack, pending and gone proxies', (t) => {
  const now = Date.parse('2025-01-01T00:10:00Z');
  const base = { nodeVersion: 'x', remoteAddress: '127.0.0.1:1', nacks: 0 };
  const records: ProxyRecord[] = [
    {
      ...base,
      proxyId: 'edge:infra/gw',
      identity: spiffe('infra', 'gw-weft'),
      connected: true,
      connectedSince: '2025-01-01T00:00:00Z',
      currentVersion: 'b'.repeat(64),
      lastSentVersion: 'b'.repeat(64),
      lastAckedVersion: 'a'.repeat(64),
      lastNack: { version: 'b'.repeat(64), reason: 'listeners[0].port: port 15020 is the admin port', at: '' },
      nacks: 1,
    },
    {
      ...base,
      proxyId: 'sidecar:shop/web-1',
      identity: spiffe('shop', 'web'),
      connected: true,
      connectedSince: '2025-01-01T00:09:58Z',
      currentVersion: 'c'.repeat(64),
      lastSentVersion: 'c'.repeat(64),
    },
    {
      ...base,
      proxyId: 'sidecar:shop/web-2',
      identity: spiffe('shop', 'web'),
      connected: false,
      connectedSince: '2025-01-01T00:00:00Z',
      disconnectedAt: '2025-01-01T00:08:30Z',
    },
  ];
  t.is(
    formatProxyStatus(records, now),
    [
      'PROXY               IDENTITY                                    CONNECTED   VERSION SENT  ACKED  LAST NACK',
      'edge:infra/gw       spiffe://cluster.local/ns/infra/sa/gw-weft  10m0s       bbbbbbbbbbbb  NACK   listeners[0].port: port 15020 is the admin port',
      'sidecar:shop/web-1  spiffe://cluster.local/ns/shop/sa/web       2s          cccccccccccc  no     -',
      'sidecar:shop/web-2  spiffe://cluster.local/ns/shop/sa/web       gone 1m30s  -             -      -',
      '',
    ].join('\n'),
  );
  t.is(formatProxyStatus([], now), 'no proxies connected\n');
});

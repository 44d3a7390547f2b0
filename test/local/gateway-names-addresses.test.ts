// `weft local` with names as long as Kubernetes allows and with static Gateway addresses (startLocalMesh in this
// process, real proxies as children):
// - a 253-character Gateway name and a Deployment whose pod and container names make file names over 255 bytes:
//   the edge proxy starts and routes, its token, config and log files and the container's log have bounded names;
// - `usableAddresses` (`weft local up --usable-address`): a static address in the pool is the Gateway's status
//   address and where its proxy listens; one outside it gets Programmed=False with reason AddressNotUsable.
// Names and addresses are this file's own, so the pods' loopback addresses differ from other tests'.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { stringify } from 'yaml';
import { containerLogName, localFileName, MAX_KEPT_NAME } from '../../controlplane/local/file-name.ts';
import { type LocalMesh, startLocalMesh } from '../../controlplane/local/mesh.ts';
import type { GatewayStatusOut, StatusOut } from '../../controlplane/translate/types.ts';
import { testMeshOptions } from './support.ts';

const NS = 'weft-names-test';
// 253 characters, the longest a Gateway's name may be.
const LONG_GATEWAY = `gw-${'long-'.repeat(49)}end`;
const LONG_DEPLOYMENT = `echo-${'x'.repeat(195)}`;
const LONG_CONTAINER = `c${'y'.repeat(49)}`;
const PORT = 18_651;
const STATIC = '127.31.77.1';
const NOT_USABLE = '127.32.77.1';

interface Ctx {
  tmp: string;
  mesh: LocalMesh;
}
const test = anyTest.serial as TestFn<Ctx>;

test('file names: short ids kept as the docs show them; long ones cut, bounded and distinct', (t) => {
  t.is(localFileName('edge:infra/gateway'), 'edge_infra_gateway');
  t.is(localFileName('sidecar:bar/bar-v1-6c3bdf4449-2tsx7'), 'sidecar_bar_bar-v1-6c3bdf4449-2tsx7');
  t.is(containerLogName('foo', 'foo-login-1', 'echo'), 'foo_foo-login-1.echo.log');
  const a = localFileName(`edge:${NS}/${LONG_GATEWAY}`);
  const b = localFileName(`edge:${NS}/${LONG_GATEWAY.slice(0, -1)}x`);
  t.not(a, b);
  t.true(a.startsWith(`edge_${NS}_gw-long-long-`));
  t.true(a.length > MAX_KEPT_NAME);
  // With the longest suffix weft adds (`.token.<pid>.tmp`) still within 255 bytes.
  t.true(Buffer.byteLength(`${a}.token.4194304.tmp`) <= 255);
  t.is(localFileName(`edge:${NS}/${LONG_GATEWAY}`), a, 'stable');
  t.true(Buffer.byteLength(containerLogName(NS, `${LONG_DEPLOYMENT}-0123456789-abcde`, LONG_CONTAINER)) <= 255);
  // A kept name never equals a cut one: cut names are longer than any kept name.
  t.is(localFileName('x'.repeat(MAX_KEPT_NAME)), 'x'.repeat(MAX_KEPT_NAME));
});

function manifests(): string {
  const gateway = (name: string, addresses?: string[]) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: NS },
    spec: {
      gatewayClassName: 'weft',
      ...(addresses ? { addresses: addresses.map((value) => ({ type: 'IPAddress', value })) } : {}),
      listeners: [{ name: 'http', port: PORT, protocol: 'HTTP' }],
    },
  });
  const docs = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'weft' },
      spec: { controllerName: 'weft.dev/gateway-controller' },
    },
    gateway(LONG_GATEWAY),
    gateway('static', [STATIC]),
    gateway('static-unusable', [NOT_USABLE]),
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: LONG_DEPLOYMENT, namespace: NS },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'echo' } },
        template: {
          metadata: { labels: { app: 'echo' } },
          spec: { containers: [{ name: LONG_CONTAINER, image: 'weft.dev/echo', ports: [{ containerPort: 8080 }] }] },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'echo', namespace: NS },
      spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080 }] },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'echo', namespace: NS },
      spec: {
        parentRefs: [{ name: LONG_GATEWAY }, { name: 'static' }],
        rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }],
      },
    },
  ];
  return docs.map((d) => stringify(d)).join('---\n');
}

test.before(async (t) => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weft-names-'));
  const dir = path.join(tmp, 'manifests');
  await mkdir(dir);
  t.context = { tmp } as Ctx;
  await writeFile(path.join(dir, 'all.yaml'), manifests());
  t.context.mesh = await startLocalMesh(
    testMeshOptions(dir, path.join(tmp, 'state'), { usableAddresses: ['127.31.77.0/24'] }),
  );
  await t.context.mesh.whenReady();
});

test.after.always(async (t) => {
  await t.context.mesh?.close();
  if (t.context.tmp) await rm(t.context.tmp, { recursive: true, force: true });
});

function get(host: string, port: number): Promise<{ status: number; pod?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString('utf8');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, pod: (JSON.parse(body) as { pod?: string }).pod }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function gatewayStatus(mesh: LocalMesh, name: string): Promise<GatewayStatusOut['status']> {
  const res = await fetch(`${mesh.controlPlane.admin}/statuses`);
  const { statuses } = (await res.json()) as { statuses: StatusOut[] };
  const s = statuses.find((x): x is GatewayStatusOut => x.kind === 'Gateway' && x.name === name);
  if (!s) throw new Error(`no status of Gateway ${name}`);
  return s.status;
}

test('a 253-character Gateway name: its edge proxy starts and routes; every file name fits', async (t) => {
  const { mesh } = t.context;
  const gw = mesh.state().gateways.find((g) => g.name === LONG_GATEWAY);
  t.truthy(gw?.configured, 'the edge proxy has its config');
  const r = await get(gw!.address!, PORT);
  t.is(r.status, 200);
  t.true(r.pod?.startsWith(LONG_DEPLOYMENT));
  const state = path.join(t.context.tmp, 'state');
  const id = localFileName(`edge:${NS}/${LONG_GATEWAY}`);
  t.true((await readdir(path.join(state, 'tokens'))).includes(`${id}.token`));
  t.true((await readdir(path.join(state, 'logs'))).includes(`${id}.log`));
  // The echo server's lines are in its container's log (the conformance runner reads mirrored requests there).
  const pod = mesh.state().pods.find((p) => p.name.startsWith(LONG_DEPLOYMENT))!;
  const log = await readFile(path.join(state, 'logs', containerLogName(NS, pod.name, LONG_CONTAINER)), 'utf8');
  t.regex(log, /weft echo: serving/);
});

test('static addresses: one in the usable pool is the status address and where the proxy listens', async (t) => {
  const { mesh } = t.context;
  const status = await gatewayStatus(mesh, 'static');
  t.deepEqual(status.addresses, [{ type: 'IPAddress', value: STATIC }]);
  t.like(
    status.conditions.find((c) => c.type === 'Programmed'),
    { status: 'True' },
  );
  t.is(mesh.state().gateways.find((g) => g.name === 'static')?.address, STATIC);
  const r = await get(STATIC, PORT);
  t.is(r.status, 200);
});

test('static addresses: one outside the pool is not programmed (AddressNotUsable)', async (t) => {
  const status = await gatewayStatus(t.context.mesh, 'static-unusable');
  t.like(
    status.conditions.find((c) => c.type === 'Programmed'),
    { status: 'False', reason: 'AddressNotUsable' },
  );
  t.deepEqual(status.addresses, []);
});

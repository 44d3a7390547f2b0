// `weft local` on the seed with the push feed (startLocalMesh in this process, real proxies as children), under a
// steady load through the HTTPS Gateway (edge proxy → sidecar over mTLS → echo), with 6 s workload certificates:
//  (a) a config the edge proxy refuses is pushed — injected with the mesh's `configTransform` hook, which adds a
//      listener on the proxy's admin port (the proxy's validator refuses it whole) — and traffic keeps flowing on
//      the old config while the nack shows in the admin endpoint's /proxies;
//  (b) the push and CA servers are stopped and started again: zero failed requests, every proxy reconnects and acks;
//  (c) the certificates rotate at least twice under load with zero failed requests.
// The seed's pod templates get an extra label and the ports another offset, so the pods' loopback addresses and the
// Gateway's ports differ from those of test/local/local-up.test.ts, which may run at the same time.
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { parseAllDocuments } from 'yaml';
import { type LocalMesh, startLocalMesh } from '../../controlplane/local/mesh.ts';
import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';
import { root, testMeshOptions } from './support.ts';

const OFFSET = 20_000;
// Long enough that a 2 s control-plane outage under a loaded CI machine cannot outlast a renewal window (rotation
// at 2/3: 8 s), short enough for two rotations within the test.
const LEAF_MS = 12000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  tmp: string;
  dir: string;
  mesh: LocalMesh;
  ca: string;
  agent: Agent;
  gateway: { address: string; port: number };
  /** Set: the edge proxy's next config carries a listener on its admin port. */
  breakEdge: { on: boolean };
}
const test = anyTest.serial as TestFn<Ctx>;

test.before(async (t) => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weft-push-mesh-'));
  const dir = path.join(tmp, 'seed');
  await cp(path.join(root, 'examples/seed'), dir, { recursive: true });
  for (const f of ['foo.yaml', 'bar.yaml']) {
    const file = path.join(dir, f);
    const text = await readFile(file, 'utf8');
    await writeFile(
      file,
      text.replaceAll('    metadata:\n      labels:\n', '    metadata:\n      labels:\n        run: push\n'),
    );
  }
  const infra = parseAllDocuments(await readFile(path.join(dir, 'infra.yaml'), 'utf8')).map((d) => d.toJS());
  const ca = Buffer.from(infra.find((d) => d?.kind === 'Secret').data['tls.crt'], 'base64').toString('utf8');
  const breakEdge = { on: false };
  const mesh = await startLocalMesh(
    testMeshOptions(dir, path.join(tmp, 'state'), {
      portOffset: OFFSET,
      leafLifetimeMs: LEAF_MS,
      configTransform: (c: ProxyConfig) => {
        if (!breakEdge.on || c.proxy.mode !== 'edge') return c;
        const l = c.listeners.find((x) => x.kind === 'gateway')!;
        return { ...c, listeners: [...c.listeners, { ...l, name: 'on-admin-port', port: c.admin.port }] };
      },
    }),
  );
  await mesh.whenReady();
  const gw = mesh.state().gateways[0];
  const https = gw.listeners.find((l) => l.protocol === 'HTTPS')!;
  t.context = {
    tmp,
    dir,
    mesh,
    ca,
    agent: new Agent({ keepAlive: true, maxSockets: 8 }),
    gateway: { address: gw.address!, port: https.localPort },
    breakEdge,
  };
});

test.after.always(async (t) => {
  t.context.agent?.destroy();
  await t.context.mesh?.close();
  if (t.context.tmp) await rm(t.context.tmp, { recursive: true, force: true });
});

function get(c: Ctx, pathname: string): Promise<{ status: number; pod?: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: c.gateway.address,
        port: c.gateway.port,
        path: pathname,
        servername: 'foo.example.com',
        headers: { host: 'foo.example.com' },
        ca: c.ca,
        agent: c.agent,
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString('utf8');
        });
        res.on('end', () => {
          let pod: string | undefined;
          try {
            pod = (JSON.parse(body) as { pod?: string }).pod;
          } catch {}
          resolve({ status: res.statusCode ?? 0, pod });
        });
        res.on('error', () => resolve({ status: 0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0 }));
    req.end();
  });
}

/** Requests /login in a loop (4 at a time) until stopped; counts answers other than 200. */
function load(c: Ctx) {
  let running = true;
  const tally = { ok: 0, failed: 0, statuses: {} as Record<number, number>, pods: new Set<string>() };
  const worker = async () => {
    while (running) {
      const r = await get(c, '/login');
      if (r.status === 200) tally.ok++;
      else {
        tally.failed++;
        tally.statuses[r.status] = (tally.statuses[r.status] ?? 0) + 1;
      }
      if (r.pod) tally.pods.add(r.pod.replace(/-[0-9a-f]{10}-[0-9a-z]{5}$/, ''));
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  return {
    tally,
    async stop() {
      running = false;
      await Promise.all(workers);
      return tally;
    },
  };
}

async function records(c: Ctx): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${c.mesh.controlPlane.admin}/proxies`);
  return ((await res.json()) as { proxies: Record<string, unknown>[] }).proxies;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const allAcked = (rs: Record<string, unknown>[]) =>
  rs.length === 7 && rs.every((r) => r.connected === true && r.lastAckedVersion === r.currentVersion);

test('(a) a config the edge proxy refuses is nacked, shown in /proxies, and the old config keeps serving', async (t) => {
  const c = t.context;
  t.true(allAcked(await records(c)), 'every proxy has acked its config');
  const before = (await records(c)).find((r) => r.proxyId === 'edge:infra/gateway')!;
  const l = load(c);
  await sleep(500);
  // A route edit (foo's /login to foo-home) whose edge config comes out with a listener the proxy refuses.
  c.breakEdge.on = true;
  const file = path.join(c.dir, 'foo.yaml');
  const original = await readFile(file, 'utf8');
  const at = original.indexOf('name: foo-mesh');
  await writeFile(
    file,
    original.slice(0, at).replace('- name: foo-login\n          port: 80', '- name: foo-home\n          port: 80') +
      original.slice(at),
  );
  await until('the edge proxy to nack', async () => {
    const r = (await records(c)).find((x) => x.proxyId === 'edge:infra/gateway');
    return (
      (r?.lastNack as { version?: string } | undefined)?.version === r?.currentVersion &&
      r?.currentVersion !== before.currentVersion
    );
  });
  await sleep(1000);
  const tally = await l.stop();
  const edge = (await records(c)).find((x) => x.proxyId === 'edge:infra/gateway')!;
  t.is(edge.lastAckedVersion, before.lastAckedVersion, 'the edge proxy still runs its old config');
  t.regex(String((edge.lastNack as { reason: string }).reason), /admin/);
  t.log(`during the refused push: ${tally.ok} ok, ${tally.failed} failed`, tally.statuses);
  t.true(tally.ok > 0);
  t.is(tally.failed, 0);
  t.deepEqual([...tally.pods], ['foo-login'], '/login still goes where the old config sends it');
  // The hook off, the same edit comes through.
  c.breakEdge.on = false;
  await writeFile(file, `${original}\n`);
  await until('every proxy to ack again', async () => allAcked(await records(c)));
});

test('(b) the push and CA servers stop and start again; proxies keep serving, reconnect and ack', async (t) => {
  const c = t.context;
  const l = load(c);
  await sleep(500);
  await c.mesh.stopControlPlaneServers();
  t.deepEqual(c.mesh.proxyRecords(), []);
  await sleep(2000);
  const during = l.tally.ok;
  await c.mesh.startControlPlaneServers();
  await until('every proxy to reconnect and ack', async () => allAcked(await records(c)));
  await sleep(500);
  const tally = await l.stop();
  t.log(`across the outage: ${tally.ok} ok (${during} before the restart), ${tally.failed} failed`, tally.statuses);
  t.true(during > 0);
  t.is(tally.failed, 0);
});

test('(c) workload certificates rotate at least twice under load with zero failed requests', async (t) => {
  const c = t.context;
  const logFile = path.join(c.tmp, 'state', 'logs', 'edge_infra_gateway.log');
  const issued = async (f: string) =>
    (await readFile(f, 'utf8')).split('\n').filter((x) => x.includes('"identity.issued"')).length;
  const logs = path.join(c.tmp, 'state', 'logs');
  const sidecarFile = path.join(logs, (await readdir(logs)).find((x) => x.startsWith('sidecar_foo_foo-login'))!);
  const start = { edge: await issued(logFile), sidecar: await issued(sidecarFile) };
  const l = load(c);
  await until(
    'two more certificates for the edge proxy and foo-login sidecar',
    async () => (await issued(logFile)) >= start.edge + 2 && (await issued(sidecarFile)) >= start.sidecar + 2,
    40_000,
  );
  await sleep(500);
  const tally = await l.stop();
  t.log(
    `rotations edge ${(await issued(logFile)) - start.edge}, sidecar ${(await issued(sidecarFile)) - start.sidecar}; ${tally.ok} ok, ${tally.failed} failed`,
    tally.statuses,
  );
  t.true(tally.ok > 0);
  t.is(tally.failed, 0);
});

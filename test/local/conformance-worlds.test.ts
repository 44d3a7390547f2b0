// `weft local` on Gateway API conformance worlds: each world is built as the suite's Applier builds it
// (test/conformance/suite-setup.ts: the `weft` GatewayClass, the base manifests, the programmatic Secrets, the test's
// manifests, the namespaces labelled for injection), written as YAML to a temp directory and started with
// startLocalMesh — real edge proxies, sidecars and echo servers, sidecar to sidecar over mTLS. The case files'
// requests are then replayed and compared as the upstream harnesses compare them (status, the answering pod's
// prefix, and for the gateway harness the echoed namespace, path and method).
// One mesh at a time. Pod templates get an extra label (new pod names, so new loopback addresses) and ports another
// offset, so nothing collides with the other test/local tests that may run at the same time.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import { stringify } from 'yaml';
import { backendOf, localCurl } from '../../controlplane/local/curl.ts';
import { type LocalMesh, startLocalMesh } from '../../controlplane/local/mesh.ts';
import type { Resource } from '../../controlplane/resources/types.ts';
import { CONFORMANCE_DIR, setUpCase } from '../../conformance/suite-setup.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OFFSET = 30_000;
const RUN_LABEL = 'conformance-worlds';

interface TrafficCase {
  name: string;
  request: { host?: string; path: string; method: string; headers: Record<string, string> };
  response: { statusCodes: number[] };
  expectedRequest?: { path?: string; method?: string; headers?: Record<string, string> };
  backend?: string;
  namespace?: string;
  /** Gateway cases: the Gateway and the port of the listener the request goes to. */
  gateway?: { name: string; namespace: string; port: number };
}

interface CaseFile {
  test: string;
  manifests: string[];
  baseManifests: string[];
  cases: TrafficCase[];
}

interface Ctx {
  tmp: string;
}
const test = anyTest.serial as TestFn<Ctx>;

test.before(async (t) => {
  t.context = { tmp: await mkdtemp(path.join(tmpdir(), 'weft-conformance-worlds-')) };
});

test.after.always(async (t) => {
  if (t.context.tmp) await rm(t.context.tmp, { recursive: true, force: true });
});

async function caseFile(rel: string): Promise<CaseFile> {
  return JSON.parse(await readFile(path.join(CONFORMANCE_DIR, 'cases', rel), 'utf8')) as CaseFile;
}

/** The world of `files` (their base manifests, then all their manifests in order), as one YAML file in a new dir. */
async function writeWorld(tmp: string, name: string, files: CaseFile[]): Promise<string> {
  const cluster = setUpCase({
    baseManifests: files[0].baseManifests,
    manifests: [...new Set(files.flatMap((f) => f.manifests))],
  });
  const docs = cluster.resources().map((r: Resource) => {
    if (r.kind !== 'Deployment') return r;
    const labels = r.spec.template.metadata?.labels ?? {};
    r.spec.template.metadata = { ...r.spec.template.metadata, labels: { ...labels, run: RUN_LABEL } };
    return r;
  });
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'world.yaml'), docs.map((d) => stringify(d)).join('---\n'));
  return dir;
}

async function startWorld(tmp: string, name: string, dir: string): Promise<LocalMesh> {
  const mesh = await startLocalMesh({
    dir,
    stateDir: path.join(tmp, `${name}-state`),
    portOffset: OFFSET,
    node: process.execPath,
    weftBin: path.join(root, 'bin/weft.ts'),
    pushPort: 0,
    caPort: 0,
    adminPort: 0,
    stopGraceMs: 2000,
  });
  await mesh.whenReady();
  return mesh;
}

interface Reply {
  status: number;
  body: string;
}

function httpGet(address: string, port: number, c: TrafficCase): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: address,
      port,
      method: c.request.method,
      path: c.request.path,
      // The Go round tripper: Host is the URL authority unless the case sets one; no keep-alive.
      headers: { host: c.request.host ?? `${address}:${port}`, ...c.request.headers, connection: 'close' },
      agent: false,
      timeout: 10_000,
    });
    req.on('timeout', () => req.destroy(new Error('no response in 10 s')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end();
  });
}

test('gateway world: HTTPRouteSimpleSameNamespace and HTTPRouteMatching through the same-namespace Gateway', async (t) => {
  const files = [
    await caseFile('gateway/HTTPRouteSimpleSameNamespace.json'),
    await caseFile('gateway/HTTPRouteMatching.json'),
  ];
  const started = Date.now();
  const mesh = await startWorld(t.context.tmp, 'gateway', await writeWorld(t.context.tmp, 'gateway', files));
  try {
    t.log(`gateway world ready in ${Date.now() - started} ms`);
    const gateways = mesh.state().gateways;
    const identities = new Set<string>();
    for (const f of files) {
      for (const c of f.cases) {
        const label = `${f.test} / ${c.name}`;
        const ref = c.gateway!;
        const gw = gateways.find((g) => g.namespace === ref.namespace && g.name === ref.name);
        if (!gw?.address) return t.fail(`${label}: no address for Gateway ${ref.namespace}/${ref.name}`);
        // The listener whose port the suite joins with the Gateway's address, moved up by the offset.
        const listener = gw.listeners.find((l) => l.port === c.gateway!.port && l.protocol === 'HTTP');
        if (!listener)
          return t.fail(`${label}: no HTTP listener on ${c.gateway!.port}: ${JSON.stringify(gw.listeners)}`);
        t.is(listener.localPort, c.gateway!.port + OFFSET);
        const r = await httpGet(gw.address, listener.localPort, c);
        t.true(c.response.statusCodes.includes(r.status), `${label}: status ${r.status}, body ${r.body}`);
        if (r.status !== 200 && r.status !== 204) continue;
        const echo = JSON.parse(r.body) as {
          pod: string;
          namespace: string;
          path: string;
          method: string;
          headers: Record<string, string[]>;
        };
        if (c.backend) t.true(echo.pod.startsWith(c.backend), `${label}: answered by ${echo.pod}`);
        if (c.namespace !== undefined) t.is(echo.namespace, c.namespace, label);
        if (c.expectedRequest?.path !== undefined) t.is(echo.path, c.expectedRequest.path, label);
        if (c.expectedRequest?.method !== undefined) t.is(echo.method, c.expectedRequest.method, label);
        for (const [name, value] of Object.entries(c.expectedRequest?.headers ?? {})) {
          const got = Object.entries(echo.headers).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
          t.is(got?.join(','), value, `${label}: header ${name}`);
        }
        for (const v of echo.headers['X-Weft-Peer-Identity'] ?? echo.headers['x-weft-peer-identity'] ?? [])
          identities.add(v);
      }
    }
    // The backends are meshed: the edge proxy reached their sidecars over mTLS with the Gateway's own identity.
    t.deepEqual([...identities], ['spiffe://cluster.local/ns/gateway-conformance-infra/sa/same-namespace-weft']);
  } finally {
    await mesh.close();
    t.log(`gateway world done in ${Date.now() - started} ms`);
  }
});

test('mesh world: MeshHTTPRouteMatching and MeshTrafficSplit from echo-v1 through its sidecar, sidecar to sidecar over mTLS', async (t) => {
  // Both tests' routes attach to Service echo at once: their cases still hold (an Exact match outranks a PathPrefix
  // across routes), so one world serves both.
  const files = [await caseFile('mesh/MeshHTTPRouteMatching.json'), await caseFile('mesh/MeshTrafficSplit.json')];
  const started = Date.now();
  const tmp = t.context.tmp;
  const stateDir = path.join(tmp, 'mesh-state');
  const mesh = await startWorld(tmp, 'mesh', await writeWorld(tmp, 'mesh', files));
  try {
    t.log(`mesh world ready in ${Date.now() - started} ms`);
    const identities = new Set<string>();
    for (const f of files) {
      for (const c of f.cases) {
        const label = `${f.test} / ${c.name}`;
        const { response: r } = await localCurl({
          stateDir,
          from: 'gateway-conformance-mesh/echo-v1',
          url: `http://${c.request.host ?? 'echo'}${c.request.path}`,
          method: c.request.method,
          headers: Object.entries(c.request.headers).map(([k, v]) => `${k}: ${v}`),
        });
        t.true(c.response.statusCodes.includes(r.status), `${label}: status ${r.status}, body ${r.body}`);
        if (r.status !== 200) continue;
        // The harness's check is a prefix of the pod name; the Deployment the pod belongs to is stricter.
        t.is(r.pod && backendOf(r.pod), c.backend, `${label}: answered by ${r.pod}`);
        const peer = /^RequestHeader=x-weft-peer-identity:(.+)$/im.exec(r.body)?.[1];
        if (peer) identities.add(peer.trim());
      }
    }
    // The callee's sidecar saw the caller's certificate: echo-v1 runs as the namespace's default ServiceAccount.
    t.deepEqual([...identities], ['spiffe://cluster.local/ns/gateway-conformance-mesh/sa/default']);
  } finally {
    await mesh.close();
    t.log(`mesh world done in ${Date.now() - started} ms`);
  }
});

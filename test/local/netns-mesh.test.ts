// `weft local up --netns`: every pod in its own network namespace on a bridge, the workload's traffic captured by
// the rules of `weft proxy init-iptables`, Service names from the pod's hosts file. A small mesh — namespaces front
// and back labelled for injection, plain not — where back's HTTPRoute on Service echo sends `env: canary` to echo-v2
// and everything else to echo-v1: an unmodified client in front/client calls http://echo.back (and echo-v1 calls
// http://echo) and the answers prove the route applied (kube-proxy alone would spread over both versions) over mTLS
// (the callee's sidecar names the caller's SPIFFE identity); the pod in plain, without a sidecar, reaches the Service
// through the Service rules and gets both versions. Then `weft local up --netns` as a command: up and down twice,
// and a SIGKILL followed by `weft local down`, each leaving no namespace, link, chain, hosts dir or process.
// Root only; skipped otherwise (the not-root refusal is checked then instead).
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { answeringPod, backendOf, requestFromPod, requestsFromPod } from '../../controlplane/local/curl.ts';
import { runProcesses } from '../../controlplane/local/down.ts';
import { startLocalMesh } from '../../controlplane/local/mesh.ts';
import { cleanupAll, isEmpty, type Leftovers, listLeftovers } from '../../controlplane/local/netns.ts';
import { listRules, reapStale, testPrefix, whyNotRunnable } from '../capture/helpers.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const weft = path.join(root, 'bin/weft.ts');
const why = whyNotRunnable();

const ns = (name: string, inject: boolean) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels: inject ? { 'weft.dev/inject': 'enabled' } : {} },
});

function deployment(namespace: string, name: string, labels: Record<string, string>) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: name,
          containers: [{ name: 'echo', image: 'weft.dev/echo', ports: [{ name: 'http', containerPort: 8080 }] }],
        },
      },
    },
  };
}

const service = (namespace: string, name: string, selector: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
});

const MESH = [
  ns('front', true),
  ns('back', true),
  ns('plain', false),
  deployment('front', 'client', { app: 'client' }),
  deployment('back', 'echo-v1', { app: 'echo', version: 'v1' }),
  deployment('back', 'echo-v2', { app: 'echo', version: 'v2' }),
  deployment('plain', 'plain', { app: 'plain' }),
  service('back', 'echo', { app: 'echo' }),
  service('back', 'echo-v1', { app: 'echo', version: 'v1' }),
  service('back', 'echo-v2', { app: 'echo', version: 'v2' }),
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'echo-canary', namespace: 'back' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 80 }],
      rules: [
        {
          matches: [{ headers: [{ name: 'env', value: 'canary' }] }],
          backendRefs: [{ name: 'echo-v2', port: 80 }],
        },
        { backendRefs: [{ name: 'echo-v1', port: 80 }] },
      ],
    },
  },
];

/** The smallest injected world: one pod with a sidecar and its Service. */
const TINY = [ns('tiny', true), deployment('tiny', 'one', { app: 'one' }), service('tiny', 'one', { app: 'one' })];

async function writeDir(docs: unknown[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-netns-mesh-'));
  await chmod(dir, 0o755); // the sidecars (uid 1337) read their token under it
  await writeFile(path.join(dir, 'world.yaml'), docs.map((d) => JSON.stringify(d)).join('\n---\n'));
  return dir;
}

const taken = new Set<string>();

/** A /24 of 10.252.0.0/16 no host route covers (the bridge's range; createBridge checks again). */
function freeCidr(): string {
  const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
  const start = Math.floor(Math.random() * 256);
  for (let i = 0; i < 256; i++) {
    const cidr = `10.252.${(start + i) % 256}.0/24`;
    if (!routes.includes(cidr.slice(0, -5)) && !taken.has(cidr)) {
      taken.add(cidr);
      return cidr;
    }
  }
  throw new Error('no free /24 in 10.252.0.0/16');
}

/** Nothing of the run is left: no namespace, link, chain, /etc/netns dir, process in them, or child of the run. */
async function assertNothingLeft(t: ExecutionContext, prefix: string, stateDir: string, when: string) {
  const left: Leftovers = await listLeftovers(prefix);
  t.true(isEmpty(left), `${when}: leftovers ${JSON.stringify(left)}`);
  t.deepEqual(runProcesses(stateDir), [], `${when}: processes of the run are still there`);
  const chain = prefix.toUpperCase().replaceAll('-', '_');
  t.false(listRules('iptables', 'filter').includes(chain), `${when}: host FORWARD chain`);
}

if (why !== undefined && process.getuid?.() === 0) {
  test.skip(`weft local up --netns — skipped: ${why}`, () => {});
} else if (why !== undefined) {
  test(`weft local up --netns refuses without root (the namespace tests are skipped: ${why})`, async (t) => {
    const dir = await writeDir(TINY);
    const stateDir = path.join(dir, 'state');
    try {
      await t.throwsAsync(
        startLocalMesh({ dir, stateDir, portOffset: 10_000, node: process.execPath, weftBin: weft, netns: true }),
        { code: 'WEFT_ERR_LOCAL_NOT_ROOT', message: /needs root/ },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
} else {
  test.before(async () => {
    await reapStale();
  });

  test('a mesh in network namespaces: unmodified clients, the route applied over mTLS, plain pods direct', async (t) => {
    const prefix = testPrefix('m');
    const dir = await writeDir(MESH);
    const stateDir = path.join(dir, 'state');
    t.teardown(() => cleanupAll(prefix).then(() => {}));
    const mesh = await startLocalMesh({
      dir,
      stateDir,
      portOffset: 0,
      node: process.execPath,
      weftBin: weft,
      pushPort: 0,
      caPort: 0,
      adminPort: 0,
      stopGraceMs: 2000,
      netns: { prefix, cidr: freeCidr() },
    });
    try {
      await mesh.whenReady();
      const state = mesh.state();
      t.is(state.netns?.prefix, prefix);
      t.true(state.pods.every((p) => p.netns?.startsWith(prefix)));
      t.is(state.pods.find((p) => p.namespace === 'plain')?.sidecar, undefined, 'no sidecar outside labelled ns');

      // front/client's workload: a plain GET of http://echo.back/, captured, routed by the HTTPRoute, over mTLS.
      const r = await requestFromPod(state, { from: 'front/client', url: 'http://echo.back/' });
      t.is(r.status, 200, r.body);
      t.is(r.pod && backendOf(r.pod), 'echo-v1');
      const echoed = JSON.parse(r.body) as { host: string; headers: Record<string, string[]> };
      t.is(echoed.host, 'echo.back');
      t.deepEqual(echoed.headers['X-Weft-Peer-Identity'], ['spiffe://cluster.local/ns/front/sa/client']);
      const canary = await requestFromPod(state, {
        from: 'front/client',
        url: 'http://echo.back/',
        headers: { env: 'canary' },
      });
      t.is(canary.pod && backendOf(canary.pod), 'echo-v2');
      // A Host header of its own replaces the URL's authority (one Host line, as curl -H 'Host: …' sends).
      const named = await requestFromPod(state, {
        from: 'front/client',
        url: 'http://echo.back/',
        headers: ['host: echo.back.svc.cluster.local', 'env: canary'],
      });
      t.is(named.status, 200, named.body);
      t.is((JSON.parse(named.body) as { host: string }).host, 'echo.back.svc.cluster.local');
      t.is(named.pod && backendOf(named.pod), 'echo-v2');
      // Ten in a row, all to echo-v1: the Service rules alone would pick each version half the time.
      const tally = await requestsFromPod(state, { from: 'front/client', url: 'http://echo.back/', count: 10 });
      t.deepEqual(tally.backends, { 'echo-v1': 10 }, JSON.stringify(tally));

      // The short name in the Service's own namespace, from a pod that is itself a backend.
      const short = await requestFromPod(state, {
        from: 'back/echo-v1',
        url: 'http://echo/',
        headers: ['env: canary'],
      });
      t.is(short.pod && backendOf(short.pod), 'echo-v2');
      t.regex(short.body, /spiffe:\/\/cluster\.local\/ns\/back\/sa\/echo-v1/);

      // plain has no sidecar and no capture: the Service rules send it to either version, in plaintext.
      const direct = await requestsFromPod(state, { from: 'plain/plain', url: 'http://echo.back/', count: 20 });
      t.is(direct.statuses['200'], 20, JSON.stringify(direct));
      t.deepEqual(Object.keys(direct.backends).sort(), ['echo-v1', 'echo-v2']);
      const one = await requestFromPod(state, { from: 'plain/plain', url: 'http://echo.back.svc.cluster.local/' });
      t.is(one.status, 200);
      t.false(one.body.includes('X-Weft-Peer-Identity'), 'no mTLS from a pod without a sidecar');
      t.truthy(answeringPod(one.body));
      // A port the Service does not have is refused at once, as kube-proxy refuses it.
      await t.throwsAsync(requestFromPod(state, { from: 'plain/plain', url: 'http://echo.back:81/' }), {
        code: 'WEFT_ERR_LOCAL_REQUEST',
        message: /ECONNREFUSED|ECONNRESET/,
      });

      // The capture is in the injected pods only.
      const client = state.pods.find((p) => p.namespace === 'front')!;
      const plain = state.pods.find((p) => p.namespace === 'plain')!;
      t.regex(listRules('iptables', 'nat', client.netns), /-A OUTPUT -p tcp -j WEFT_OUTPUT/);
      t.notRegex(listRules('iptables', 'nat', plain.netns), /WEFT_OUTPUT/);
      t.regex(listRules('iptables', 'nat', plain.netns), /-A OUTPUT -p tcp -j WEFT_LOCAL_SERVICES/);
    } finally {
      await mesh.close();
    }
    await assertNothingLeft(t, prefix, stateDir, 'after close');
    await rm(dir, { recursive: true, force: true });
  });

  test('a state dir other users cannot reach is refused before anything is made', async (t) => {
    const prefix = testPrefix('r');
    const dir = await writeDir(TINY);
    const closed = path.join(dir, 'closed');
    await mkdir(closed, { mode: 0o700 });
    try {
      await t.throwsAsync(
        startLocalMesh({
          dir,
          stateDir: path.join(closed, 'state'),
          portOffset: 0,
          node: process.execPath,
          weftBin: weft,
          netns: { prefix, cidr: freeCidr() },
        }),
        { code: 'WEFT_ERR_LOCAL_INPUT', message: /uid 1337 .*closed to other users/ },
      );
      t.true(isEmpty(await listLeftovers(prefix)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** `weft local up --netns` as a command, resolved once it printed its ready banner. */
  async function up(
    t: ExecutionContext,
    dir: string,
    stateDir: string,
    prefix: string,
    cidr: string,
  ): Promise<ChildProcess> {
    const args = [weft, 'local', 'up', dir, '--netns', '--netns-prefix', prefix, '--netns-cidr', cidr];
    args.push('--state-dir', stateDir, '--push-port', '0', '--ca-port', '0', '--admin-port', '0');
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    // Whatever happens to the test, nothing of it stays.
    t.teardown(async () => {
      child.kill('SIGKILL');
      await cleanupAll(prefix);
    });
    const output: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output.push(chunk.toString('utf8'));
        if (output.join('').includes('Ctrl-C stops everything')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`weft local up exited (${code}):\n${output.join('')}`)));
    });
    return child;
  }

  const exited = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });

  test('weft local up --netns twice in a row: each Ctrl-C leaves nothing behind', async (t) => {
    const prefix = testPrefix('u');
    const dir = await writeDir(TINY);
    const stateDir = path.join(dir, 'state');
    const cidr = freeCidr();
    try {
      for (const run of [1, 2]) {
        const child = await up(t, dir, stateDir, prefix, cidr);
        t.false(isEmpty(await listLeftovers(prefix)), `run ${run}: the pod's namespace is there`);
        child.kill('SIGTERM');
        t.is(await exited(child), 0);
        await assertNothingLeft(t, prefix, stateDir, `after run ${run}`);
        t.false(existsSync(path.join(stateDir, 'mesh.json')));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a SIGKILLed weft local up --netns: weft local down removes what it left', async (t) => {
    const prefix = testPrefix('k');
    const dir = await writeDir(TINY);
    const stateDir = path.join(dir, 'state');
    try {
      const child = await up(t, dir, stateDir, prefix, freeCidr());
      child.kill('SIGKILL');
      await exited(child);
      const left = await listLeftovers(prefix);
      t.true(left.namespaces.length === 1 && left.links.length >= 1, JSON.stringify(left));
      const down = await new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [weft, 'local', 'down', '--state-dir', stateDir], (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout + stderr }),
        );
      });
      t.is(down.code, 0, down.stdout);
      t.regex(down.stdout, new RegExp(`removed under prefix ${prefix}: netns ${prefix}tiny\\.one-`));
      await assertNothingLeft(t, prefix, stateDir, 'after weft local down');
      t.false(existsSync(path.join(stateDir, 'mesh.json')));
      // A second down has nothing left to do.
      const again = execFileSync(
        process.execPath,
        [weft, 'local', 'down', '--state-dir', stateDir, '--prefix', prefix],
        {
          encoding: 'utf8',
        },
      );
      t.regex(again, new RegExp(`nothing left under prefix ${prefix}`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

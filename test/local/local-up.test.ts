// `weft local up` on the seed, as a user runs it: a child process in a temp state dir, ports below 1024 moved up
// (the non-root path), everything asserted through the real proxies it starts — HTTPS at the Gateway with the
// seed's certificate, the 90/10 split, the canary header, east–west through a sidecar with `weft local curl`, a
// route edit taking effect, a crashed workload restarted, and Ctrl-C leaving no process behind.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import { parseAllDocuments } from 'yaml';
import type { MeshState } from '../../controlplane/local/state.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const weft = path.join(root, 'bin/weft.ts');
const OFFSET = 10_000;
const EDITS = Number(process.env.WEFT_LOCAL_EDITS ?? 20);

interface Ctx {
  dir: string;
  state: string;
  child: ChildProcess;
  output: string[];
  mesh: MeshState;
  ca: string;
  agent: Agent;
}
const test = anyTest.serial as TestFn<Ctx>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function meshState(state: string): Promise<MeshState> {
  return JSON.parse(await readFile(path.join(state, 'mesh.json'), 'utf8')) as MeshState;
}

test.before(async (t) => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weft-local-'));
  const dir = path.join(tmp, 'seed');
  const state = path.join(tmp, 'state');
  await cp(path.join(root, 'examples/seed'), dir, { recursive: true });
  const infra = parseAllDocuments(await readFile(path.join(dir, 'infra.yaml'), 'utf8')).map((d) => d.toJS());
  const secret = infra.find((d) => d?.kind === 'Secret');
  const ca = Buffer.from(secret.data['tls.crt'], 'base64').toString('utf8');
  const args = [weft, 'local', 'up', dir, '--state-dir', state, '--bind-ports', String(OFFSET)];
  args.push('--push-port', '0', '--ca-port', '0', '--admin-port', '0');
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const l of lines) {
        output.push(l);
        // The banner's last line: the ready line, URLs and curl lines are all in.
        if (l.includes('Ctrl-C stops everything')) resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`weft local up exited (${code}):\n${output.join('\n')}`)));
  });
  await Promise.race([
    ready,
    sleep(40_000).then(() => {
      throw new Error(`no ready line in 40 s:\n${output.join('\n')}`);
    }),
  ]);
  t.context = {
    dir,
    state,
    child,
    output,
    mesh: await meshState(state),
    ca,
    agent: new Agent({ keepAlive: true, maxSockets: 20 }),
  };
});

test.after.always(async (t) => {
  const c = t.context;
  if (!c?.child) return;
  c.agent.destroy();
  if (c.child.exitCode === null) {
    c.child.kill('SIGKILL');
    // Its children end with it (their stdin closes); give them a moment.
    await sleep(500);
  }
  await rm(path.dirname(c.dir), { recursive: true, force: true });
});

interface Reply {
  status: number;
  pod?: string;
  body: string;
}

/** A request to the Gateway's HTTPS listener, with SNI and the seed's certificate as the only root. */
function viaGateway(c: Ctx, host: string, pathname: string, headers: Record<string, string> = {}): Promise<Reply> {
  const gw = c.mesh.gateways[0];
  const https = gw.listeners.find((l) => l.protocol === 'HTTPS')!;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: gw.address!,
        port: https.localPort,
        servername: host,
        ca: c.ca,
        path: pathname,
        headers: { host: `${host}:${https.localPort}`, ...headers },
        agent: c.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let pod: string | undefined;
          try {
            pod = JSON.parse(body).pod;
          } catch {}
          resolve({ status: res.statusCode ?? 0, pod, body });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function localCurl(c: Ctx, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [weft, 'local', 'curl', '--state-dir', c.state, ...args],
      { cwd: root },
      (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const backendOf = (pod = '') => pod.split('-').slice(0, -2).join('-');

async function tallyGateway(c: Ctx, host: string, n: number, headers: Record<string, string> = {}) {
  const counts: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await viaGateway(c, host, '/', headers);
      const key = r.status === 200 ? backendOf(r.pod) : `status ${r.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return counts;
}

test('prints the Gateway URLs, the ready line and curl lines with the shifted ports', (t) => {
  const text = t.context.output.join('\n');
  const gw = t.context.mesh.gateways[0];
  t.regex(text, new RegExp(`https://${(gw.address ?? '').replaceAll('.', '\\.')}:10443`));
  t.regex(text, /^ready: 7 proxies configured, 6 workloads serving/m);
  t.true(text.includes(`curl -k --resolve foo.example.com:10443:${gw.address} https://foo.example.com:10443/login`));
  t.true(text.includes("-H 'env: canary' https://bar.example.com:10443/"));
  t.regex(text, /local curl .*--from \S+ http:\/\/bar\.bar\/ --count 200/);
  t.is(t.context.mesh.portOffset, OFFSET);
  t.deepEqual(gw.listeners.map((l) => [l.port, l.localPort]).sort(), [
    [443, 10443],
    [80, 10080],
  ]);
  t.is(t.context.mesh.pods.length, 6);
  t.true(t.context.mesh.pods.every((p) => p.sidecar?.configured && p.ip.startsWith('127.20.')));
});

test('north–south: foo.example.com over HTTPS (SNI, the seed certificate) routes by path', async (t) => {
  const login = await viaGateway(t.context, 'foo.example.com', '/login');
  t.is(login.status, 200);
  t.is(backendOf(login.pod), 'foo-login');
  t.is(JSON.parse(login.body).namespace, 'foo');
  t.is(backendOf((await viaGateway(t.context, 'foo.example.com', '/home')).pod), 'foo-home');
  t.is(backendOf((await viaGateway(t.context, 'foo.example.com', '/other')).pod), 'foo-site');
});

test('north–south: bar splits 90/10 over 1,000 requests; env: canary goes to bar-v2 only', async (t) => {
  const split = await tallyGateway(t.context, 'bar.example.com', 1000);
  t.log('gateway split', split);
  t.deepEqual(Object.keys(split).sort(), ['bar-v1', 'bar-v2']);
  t.true(Math.abs(split['bar-v1'] / 10 - 90) <= 3, `bar-v1 got ${split['bar-v1'] / 10} %`);
  const canary = await tallyGateway(t.context, 'bar.example.com', 100, { env: 'canary' });
  t.deepEqual(canary, { 'bar-v2': 100 });
});

test('east–west: weft local curl from a foo pod obeys the mesh route on Service bar', async (t) => {
  const split = await localCurl(
    t.context,
    '--from',
    'foo/foo-login',
    'http://bar.bar/',
    '--count',
    '1000',
    '-o',
    'json',
  );
  t.is(split.code, 0, split.stderr);
  const tally = JSON.parse(split.stdout) as { backends: Record<string, number>; statuses: Record<string, number> };
  t.log('mesh split', tally.backends);
  t.deepEqual(tally.statuses, { 200: 1000 });
  t.true(Math.abs(tally.backends['bar-v1'] / 10 - 90) <= 3, `bar-v1 got ${tally.backends['bar-v1'] / 10} %`);
  const canary = await localCurl(
    t.context,
    '--from',
    'foo/foo-login',
    'http://bar.bar/',
    '-H',
    'env: canary',
    '--count',
    '50',
    '-o',
    'json',
  );
  t.deepEqual(JSON.parse(canary.stdout).backends, { 'bar-v2': 50 });
  // One request: status, headers, body, and the backend saw the request come from the foo pod, over mTLS.
  const one = await localCurl(t.context, '--from', 'foo/foo-login', 'http://foo.foo/home');
  t.is(one.code, 0, one.stderr);
  t.regex(one.stdout, /^HTTP\/1\.1 200 OK\n/);
  t.regex(one.stdout, /"pod": "foo-home-/);
  t.regex(one.stdout, /spiffe:\/\/cluster\.local\/ns\/foo\/sa\/foo-login/);
  const missing = await localCurl(t.context, '--from', 'foo/nope', 'http://bar.bar/');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no pod foo\/nope/);
});

test('editing a route file changes routing (latency logged, not asserted)', async (t) => {
  const file = path.join(t.context.dir, 'foo.yaml');
  const original = await readFile(file, 'utf8');
  const at = original.indexOf('name: foo-mesh');
  // foo-route (the Gateway's route) sends /login to foo-home instead of foo-login, and back.
  const edited = original
    .slice(0, at)
    .replace('- name: foo-login\n          port: 80', '- name: foo-home\n          port: 80');
  t.not(edited, original.slice(0, at));
  const states = [edited + original.slice(at), original];
  const latencies: number[] = [];
  for (let i = 0; i < EDITS; i++) {
    const want = i % 2 === 0 ? 'foo-home' : 'foo-login';
    const began = performance.now();
    await writeFile(file, states[i % 2]);
    let seen = '';
    while (performance.now() - began < 5000) {
      seen = backendOf((await viaGateway(t.context, 'foo.example.com', '/login')).pod);
      if (seen === want) break;
      await sleep(10);
    }
    t.is(seen, want, `edit ${i + 1}: /login still goes to ${seen} after 5 s`);
    latencies.push(performance.now() - began);
    if (seen !== want) return;
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)].toFixed(0);
  t.log(`edit → effect over ${EDITS} edits: p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`);
});

test('a workload that dies is restarted and serves again', async (t) => {
  const before = await meshState(t.context.state);
  const pod = before.pods.find((p) => p.name.startsWith('foo-site-'))!;
  const pid = pod.workloads[0].pid!;
  process.kill(pid, 'SIGKILL');
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    await sleep(100);
    const now = (await meshState(t.context.state)).pods.find((p) => p.name === pod.name)!;
    const newPid = now.workloads[0].pid;
    if (newPid !== undefined && newPid !== pid) {
      const r = await viaGateway(t.context, 'foo.example.com', '/');
      ok = r.status === 200 && r.pod === pod.name;
    }
  }
  t.true(ok, 'foo-site was not back within 10 s');
  t.true(t.context.output.some((l) => l.includes(`pod foo/${pod.name} container echo died (signal SIGKILL)`)));
});

test('SIGINT stops every child process group and removes mesh.json', async (t) => {
  const state = await meshState(t.context.state);
  const groups = [
    ...state.pods.flatMap((p) => [...p.workloads.map((w) => w.pid), p.sidecar?.pid]),
    ...state.gateways.map((g) => g.pid),
  ].filter((p): p is number => p !== undefined);
  t.is(groups.length, 13);
  const exited = new Promise<number | null>((r) => t.context.child.once('exit', (code) => r(code)));
  t.context.child.kill('SIGINT');
  t.is(await exited, 0);
  const alive = groups.filter((g) => {
    try {
      process.kill(-g, 0);
      return true;
    } catch {
      return false;
    }
  });
  t.deepEqual(alive, []);
  await t.throwsAsync(readFile(path.join(t.context.state, 'mesh.json')));
  t.true(t.context.output.includes('weft local: stopped'));
});

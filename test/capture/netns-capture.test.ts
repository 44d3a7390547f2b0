// Capture for real: two pod namespaces on a bridge, each with a stand-in for its processes (the proxy's outbound
// 15001, inbound 15006 and admin 15020 listeners, app ports 8080 and 9090) and the rules `weft proxy init-iptables`
// installs. Every connection's reply says which pod and listener took it and the original destination the addon
// read. Needs root; skipped otherwise.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import {
  cleanupAll,
  createPodNamespace,
  execInNamespace,
  type ExecResult,
  isEmpty,
  listLeftovers,
  spawnInNamespace,
} from '../../controlplane/local/netns.ts';
import { originalDstAddon } from '../../sidecar/capture/original-destination.ts';
import { createTestBridge, fixtures, listRules, reapStale, testPrefix, whyNotRunnable } from './helpers.ts';

const why = whyNotRunnable();
const node = process.execPath;
const prefix = testPrefix('a');
const A = `${prefix}a`;
const B = `${prefix}b`;
const HOST_PORT = 18080;
const INIT = [
  'init-iptables',
  '--proxy-uid',
  '1337',
  '--outbound-port',
  '15001',
  '--inbound-port',
  '15006',
  '--exclude-inbound-ports',
  '9090',
  '--exclude-outbound-ports',
  '9091',
];

interface Reply {
  target: string;
  error?: string;
  pod?: string;
  listener?: string;
  orig?: { address: string; port: number; family: string } | null;
  raw?: unknown;
  local?: { address: string; port: number };
}

let v4 = '';
let v6 = '';
const servers: ChildProcess[] = [];
let hostServer: Server | undefined;

async function ok(r: Promise<ExecResult>): Promise<ExecResult> {
  const res = await r;
  if (res.code !== 0) throw new Error(`exit ${res.code ?? res.signal}: ${res.stderr}`);
  return res;
}

/** Through `weft proxy` (sidecar/cli.ts) when `viaProxyCli`, else the capture module alone (faster to start). */
function init(ns: string, extra: string[] = [], viaProxyCli = false): Promise<ExecResult> {
  const argv = viaProxyCli
    ? [join(fixtures, 'weft-proxy.ts'), ...INIT]
    : [join(fixtures, 'init-iptables.ts'), ...INIT.slice(1)];
  return ok(execInNamespace(ns, [node, ...argv, ...extra]));
}

/** Connects from namespace `ns` (as `uid`/`gid`) to each target; one reply each. */
async function connectFrom(ns: string, targets: string[], user: { uid?: number; gid?: number } = {}): Promise<Reply[]> {
  const res = await ok(execInNamespace(ns, [node, join(fixtures, 'client.ts'), ...targets], user));
  return JSON.parse(res.stdout) as Reply[];
}

function startPod(ns: string): Promise<void> {
  const child = spawnInNamespace(
    ns,
    [
      node,
      join(fixtures, 'pod-server.ts'),
      ns,
      'outbound=15001',
      'inbound=15006',
      'admin=15020',
      'app=8080',
      'app9090=9090',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`pod server in ${ns} exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'ready' && resolve());
  });
}

const where = (r: Reply) => (r.error ? `error ${r.error}` : `${r.pod}/${r.listener}`);

if (why !== undefined) {
  test.skip(`capture in network namespaces — skipped: ${why}`, () => {});
} else {
  test.before(async () => {
    await reapStale();
    const made = await createTestBridge(`${prefix}br`);
    v4 = made.v4;
    v6 = made.v6;
    const hosts = [
      { address: `${v4}3`, names: ['b', 'b.default.svc.cluster.local'] },
      { address: '10.96.0.10', names: ['echo', 'echo.default.svc.cluster.local'] },
    ];
    await createPodNamespace({ name: A, ip: `${v4}2`, ip6: `${v6}2`, bridge: made.bridge, hosts });
    await createPodNamespace({ name: B, ip: `${v4}3`, ip6: `${v6}3`, bridge: made.bridge, hosts });
    // Outside both pods, on the bridge's own address: the excluded CIDR's target.
    hostServer = createServer((s) => s.end(`${JSON.stringify({ pod: 'host', listener: 'host' })}\n`));
    await new Promise<void>((resolve) => hostServer!.listen(HOST_PORT, `${v4}1`, resolve));
    const cidrs = ['--exclude-outbound-cidrs', `${v4}1/32,${v6}1/128`];
    await Promise.all([startPod(A), startPod(B), init(A, cidrs, true), init(B, cidrs)]);
  });

  test.after.always(async () => {
    for (const s of servers) s.kill('SIGKILL');
    hostServer?.close();
    await cleanupAll(prefix);
  });

  test.serial('outbound TCP to a ClusterIP (by name too) reaches 15001, which reads where it was going', async (t) => {
    const [byIp, byName, v6Ip] = await connectFrom(A, ['10.96.0.10:80', 'echo:8080', '[fd00:96::10]:443']);
    t.is(where(byIp), `${A}/outbound`);
    t.is(where(byName), `${A}/outbound`);
    t.is(where(v6Ip), `${A}/outbound`);
    if (!originalDstAddon().available) return t.log('weft-orig-dst addon not built: original destinations not checked');
    t.deepEqual(byIp.orig, { address: '10.96.0.10', port: 80, family: 'IPv4' });
    t.deepEqual(byName.orig, { address: '10.96.0.10', port: 8080, family: 'IPv4' });
    t.deepEqual(v6Ip.orig, { address: 'fd00:96::10', port: 443, family: 'IPv6' });
  });

  test.serial('a direct connection to 15001 has no original destination', async (t) => {
    const replies = await connectFrom(A, ['127.0.0.1:15001', '[::1]:15001']);
    for (const r of replies) {
      t.is(where(r), `${A}/outbound`);
      if (!originalDstAddon().available) continue;
      t.is(r.orig, null, r.target);
      // The kernel's answer, when it has one, is the listener's own address: what the wrapper turns into null.
      if (r.raw !== null) t.like(r.raw, { port: 15001 }, r.target);
    }
  });

  test.serial('loopback and the pod’s own addresses are not captured', async (t) => {
    const replies = await connectFrom(A, ['127.0.0.1:8080', '[::1]:8080', `${v4}2:8080`, `[${v6}2]:8080`]);
    t.deepEqual(replies.map(where), Array(4).fill(`${A}/app`));
  });

  test.serial('the proxy uid’s and gid’s own traffic is not captured; another uid’s is', async (t) => {
    const target = [`${v4}3:8080`];
    const [proxyUid] = await connectFrom(A, target, { uid: 1337, gid: 1337 });
    const [proxyGid] = await connectFrom(A, target, { uid: 1000, gid: 1337 });
    const [other] = await connectFrom(A, target, { uid: 1000, gid: 1000 });
    // Not captured at A: it reaches B, whose inbound capture takes it to 15006.
    t.is(where(proxyUid), `${B}/inbound`);
    t.is(where(proxyGid), `${B}/inbound`);
    t.is(where(other), `${A}/outbound`);
    if (originalDstAddon().available) {
      t.deepEqual(proxyUid.orig, { address: `${v4}3`, port: 8080, family: 'IPv4' });
      t.deepEqual(other.orig, { address: `${v4}3`, port: 8080, family: 'IPv4' });
    }
  });

  test.serial('inbound TCP goes to 15006, except the proxy’s ports and excluded inbound ports', async (t) => {
    const targets = [`${v4}3:8080`, `[${v6}3]:8080`, `${v4}3:9090`, `${v4}3:15020`, `${v4}3:15001`];
    const fromPeer = await connectFrom(A, targets, { uid: 1337 });
    t.deepEqual(fromPeer.map(where), [
      `${B}/inbound`,
      `${B}/inbound`,
      `${B}/app9090`,
      `${B}/admin`,
      `${B}/outbound`, // the listener itself, reached directly: never redirected
    ]);
    if (originalDstAddon().available) {
      t.deepEqual(fromPeer[1].orig, { address: `${v6}3`, port: 8080, family: 'IPv6' });
      t.is(fromPeer[4].orig, null);
    }
    // From outside any pod (the host, over the bridge) the same.
    const fromHost = JSON.parse(
      execFileSync(node, [join(fixtures, 'client.ts'), `${v4}3:8080`, `${v4}3:9090`], { encoding: 'utf8' }),
    ) as Reply[];
    t.deepEqual(fromHost.map(where), [`${B}/inbound`, `${B}/app9090`]);
  });

  test.serial('excluded outbound ports and CIDRs leave the pod uncaptured', async (t) => {
    const [port, cidr] = await connectFrom(A, [`${v4}3:9091`, `${v4}1:${HOST_PORT}`]);
    t.is(where(port), `${B}/inbound`, 'port 9091 left A as it was; B captured it inbound');
    if (originalDstAddon().available) t.deepEqual(port.orig, { address: `${v4}3`, port: 9091, family: 'IPv4' });
    t.is(where(cidr), 'host/host');
  });

  test.serial('running init-iptables again replaces the rules: the same set, once', async (t) => {
    const before = listRules('iptables', 'nat', A) + listRules('ip6tables', 'nat', A);
    await init(A, ['--exclude-outbound-cidrs', `${v4}1/32,${v6}1/128`]);
    const after = listRules('iptables', 'nat', A) + listRules('ip6tables', 'nat', A);
    t.is(after, before);
    t.is(after.match(/-A OUTPUT -p tcp -j WEFT_OUTPUT/g)?.length, 2);
    t.is(where((await connectFrom(A, ['10.96.0.10:80']))[0]), `${A}/outbound`);
  });

  test.serial('--cleanup removes every rule and chain; traffic then goes where it was addressed', async (t) => {
    await ok(execInNamespace(A, [node, join(fixtures, 'init-iptables.ts'), '--cleanup']));
    for (const binary of ['iptables', 'ip6tables'] as const) t.notRegex(listRules(binary, 'nat', A), /WEFT/);
    t.is(where((await connectFrom(A, [`${v4}3:8080`]))[0]), `${B}/inbound`);
    // A second cleanup has nothing to do and does not fail.
    await ok(execInNamespace(A, [node, join(fixtures, 'init-iptables.ts'), '--cleanup']));
  });

  test.serial('cleanupAll leaves no namespace, link, chain, hosts file or process', async (t) => {
    t.false(isEmpty(await listLeftovers(prefix)));
    for (const s of servers) s.kill('SIGKILL');
    await cleanupAll(prefix);
    t.true(isEmpty(await listLeftovers(prefix)));
    t.false(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(prefix));
    t.false(execFileSync('ip', ['link', 'show'], { encoding: 'utf8' }).includes(prefix));
    const chain = prefix.toUpperCase().replaceAll('-', '_');
    for (const binary of ['iptables', 'ip6tables'] as const) t.false(listRules(binary, 'filter').includes(chain));
  });
}

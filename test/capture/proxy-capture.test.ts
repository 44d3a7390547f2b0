// The weft proxy itself under capture: `weft proxy --mode sidecar` runs in a pod namespace as uid 1337 behind the
// rules of `weft proxy init-iptables`; the workload's plain HTTP call to a ClusterIP is captured, the proxy reads
// the original destination (SO_ORIGINAL_DST, through the addon) and routes by it even when Host names nothing it
// knows, and its own upstream connection (uid 1337) is not captured again. Needs root; skipped otherwise.
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import { cleanupAll, createPodNamespace, execInNamespace, spawnInNamespace } from '../../controlplane/local/netns.ts';
import { originalDstAddon } from '../../sidecar/capture/original-destination.ts';
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { createTestBridge, fixtures, reapStale, testPrefix, whyNotRunnable } from './helpers.ts';

const why = whyNotRunnable();
const node = process.execPath;
const prefix = testPrefix('p');
const POD = `${prefix}c`;

let echo: EchoServer | undefined;
let proxy: ChildProcess | undefined;
let dir = '';
const proxyOutput: string[] = [];

function config(address: string, port: number): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:ns/client', mode: 'sidecar', namespace: 'ns', name: 'client' },
    trust: { trustDomain: 'cluster.local' },
    admin: { port: 15020 },
    listeners: [
      {
        kind: 'outbound',
        name: 'outbound',
        port: 15001,
        services: [
          {
            service: 'ns/echo',
            hostnames: ['echo', 'echo.ns', 'echo.ns.svc', 'echo.ns.svc.cluster.local'],
            clusterIPs: ['10.96.0.10'],
            ports: [{ port: 80, routeTable: 'ns/echo:80' }],
          },
        ],
      },
    ],
    routeTables: {
      'ns/echo:80': {
        virtualHosts: [
          {
            domains: ['*'],
            routes: [{ route: 'ns/route', rule: 0, match: {}, backends: [{ cluster: 'ns/echo-80', weight: 1 }] }],
          },
        ],
      },
    },
    clusters: {
      'ns/echo-80': {
        service: 'ns/echo',
        port: 80,
        endpoints: [{ address, port, pod: 'ns/echo-0' }],
      },
    },
  };
}

async function get(url: string, host: string): Promise<{ status?: number; error?: string; pod?: string }> {
  const r = await execInNamespace(POD, [node, join(fixtures, 'http-client.ts'), url, host]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

if (why !== undefined) {
  test.skip(`weft proxy under iptables capture — skipped: ${why}`, () => {});
} else {
  test.before(async () => {
    await reapStale();
    const { bridge, v4 } = await createTestBridge(`${prefix}br`);
    await createPodNamespace({ name: POD, ip: `${v4}2`, bridge });
    // The Service's one endpoint, outside the pod on the bridge's address.
    echo = await startEchoServer({ pod: 'echo-0', address: `${v4}1` });
    dir = mkdtempSync(join(tmpdir(), 'weft-capture-'));
    chmodSync(dir, 0o755); // the proxy runs as uid 1337
    const file = join(dir, 'proxy.json');
    writeFileSync(file, JSON.stringify(config(`${v4}1`, echo.port)));
    const init = await execInNamespace(POD, [node, join(fixtures, 'weft-proxy.ts'), 'init-iptables', '--no-ipv6']);
    if (init.code !== 0) throw new Error(init.stderr);
    proxy = spawnInNamespace(POD, [node, join(fixtures, 'weft-proxy.ts'), '--mode', 'sidecar', '--config', file], {
      uid: 1337,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      proxy!.once('exit', (code) => reject(new Error(`proxy exited with ${code}: ${proxyOutput.join('\n')}`)));
      for (const stream of [proxy!.stdout!, proxy!.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          proxyOutput.push(line);
          if (line.includes('weft proxy serving')) resolve();
        });
      }
    });
  });

  test.after.always(async () => {
    proxy?.kill('SIGKILL');
    await echo?.close();
    await cleanupAll(prefix);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test.serial('a captured call is routed by its original destination, whatever its Host says', async (t) => {
    const byName = await get('http://10.96.0.10/', 'echo');
    t.like(byName, { status: 200, pod: 'echo-0' }, 'Host names the Service: routed either way');
    const bogus = await get('http://10.96.0.10/', 'not-a-service.example');
    if (originalDstAddon().available) {
      t.like(bogus, { status: 200, pod: 'echo-0' });
    } else {
      t.like(bogus, { status: 404, error: 'WEFT_ERR_UNKNOWN_SERVICE' });
      t.log('weft-orig-dst addon not built: the proxy fell back to Host');
    }
  });

  test.serial('an original destination the proxy does not know falls back to Host, else passes through', async (t) => {
    t.like(await get('http://10.96.0.99/', 'echo.ns'), { status: 200, pod: 'echo-0' });
    // No Service by address or Host: on to the original destination as it is (plaintext, no route).
    const direct = await get(`http://${echo!.address}:${echo!.port}/`, 'nope.example');
    if (originalDstAddon().available) t.like(direct, { status: 200, pod: 'echo-0' });
    else t.like(direct, { status: 404, error: 'WEFT_ERR_UNKNOWN_SERVICE' });
  });

  test.serial('the proxy says once whether it reads original destinations', (t) => {
    const fallback = proxyOutput.filter((l) => l.includes('SO_ORIGINAL_DST unavailable'));
    t.is(fallback.length, originalDstAddon().available ? 0 : 1);
  });
}

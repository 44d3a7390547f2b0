// The weft proxy under test, as a child of bench/run.ts (pinned to the proxy core). It runs
// what `weft proxy --config FILE` runs — the config file read, startProxy, the file watch —
// with the forwarding engine chosen on the command line (the CLI always takes the default), and
// the workload certificate from files as `--cert/--key/--roots` give it (mTLS sidecars).
// IPC: tells `ready` with its listener addresses; answers `memory` (after forced GCs when
// started with --expose-gc); `profile-start` / `profile-stop` run V8's CPU profiler (the one
// --cpu-prof uses) over just the window asked for, so startup does not crowd the profile;
// `stop` closes the proxy and exits.
//   node bench/proxy-server.ts --engine undici|node-http|http-proxy-3 --config FILE [--cert F --key F --roots F]
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { readConfigFile, watchConfigFile } from '../sidecar/config-file.ts';
import { startProxy } from '../sidecar/proxy.ts';
import { FileIdentitySource } from '../sidecar/upstream/mtls-files.ts';
import type { Forwarder } from '../sidecar/upstream/forwarder.ts';
import { HttpProxy3Forwarder } from '../sidecar/upstream/http-proxy3-forwarder.ts';
import { NodeHttpForwarder } from '../sidecar/upstream/node-http-forwarder.ts';
import { UndiciForwarder } from '../sidecar/upstream/undici-forwarder.ts';
import { reportFailures, tell } from './lib/child.ts';

reportFailures();
const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'node-http' }, // sidecar/proxy.ts's default, what the CLI runs
    config: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    roots: { type: 'string' },
  },
});
const engines: Record<string, () => Forwarder> = {
  undici: () => new UndiciForwarder(),
  'node-http': () => new NodeHttpForwarder(),
  'http-proxy-3': () => new HttpProxy3Forwarder(),
};
const make = engines[values.engine ?? 'node-http'];
if (!make || !values.config) throw new Error(`usage: --engine ${Object.keys(engines).join('|')} --config FILE`);
const file = values.config;
const log = pino({ name: 'weft-proxy', level: 'warn' });
const identity =
  values.cert && values.key && values.roots
    ? await FileIdentitySource.open({ certFile: values.cert, keyFile: values.key, rootsFile: values.roots, log })
    : undefined;
const config = (await readConfigFile(file)) as { proxy?: { mode?: 'sidecar' | 'edge' } };
const proxy = await startProxy({
  config,
  mode: config.proxy?.mode,
  adminPort: 0,
  adminAddress: '127.0.0.1',
  forwarder: make(),
  logger: log,
  identity,
});
const watcher = watchConfigFile(file, proxy, log);

/** Resident set size from the kernel, the figure `ps` and the kubelet see. */
function vmRss(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

let profiler: Session | undefined;
process.on('message', async (m: { type: string }) => {
  if (m.type === 'memory') {
    const gc = (globalThis as { gc?: () => void }).gc;
    // Settle: a few full collections with pauses, so what is left is what the proxy holds.
    for (let i = 0; i < 4; i++) {
      gc?.();
      await sleep(250);
    }
    const u = process.memoryUsage();
    tell({
      type: 'memory',
      rss: vmRss(),
      heapUsed: u.heapUsed,
      heapTotal: u.heapTotal,
      external: u.external,
      gc: !!gc,
    });
  } else if (m.type === 'profile-start') {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 250 });
    await profiler.post('Profiler.start');
    tell({ type: 'profiling' });
  } else if (m.type === 'profile-stop' && profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = undefined;
    writeFileSync(String((m as { file?: string }).file), JSON.stringify(profile));
    tell({ type: 'profiled' });
  } else if (m.type === 'stop') {
    await watcher.close();
    await proxy.close();
    await identity?.close();
    process.exit(0);
  }
});
tell({ type: 'ready', listeners: proxy.addresses.listeners, admin: proxy.addresses.admin.port });

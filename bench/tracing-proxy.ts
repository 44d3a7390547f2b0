// An edge proxy for the tracing benchmark, as a child of bench/tracing.ts (pinned to the proxy core): the bench's
// one-route config, tracing off or exporting to the given collector at the given ratio. IPC: tells `ready` with its
// port; answers `metrics` with its weft_proxy_trace_* lines (spans exported, dropped, failed exports) and `cpu` with
// its CPU time so far; `stop` closes it (queued spans get the usual 2 s) and exits.
//   node bench/tracing-proxy.ts '<config JSON>' [<otlp endpoint> <ratio>]
import { pino } from 'pino';
import { startProxy } from '../sidecar/proxy.ts';
import { reportFailures, tell } from './lib/child.ts';

reportFailures();
const [configJson, endpoint, ratio] = process.argv.slice(2);
const proxy = await startProxy({
  config: JSON.parse(configJson),
  mode: 'edge',
  adminPort: 0,
  adminAddress: '127.0.0.1',
  listenPort: () => 0,
  logger: pino({ name: 'weft-proxy', level: 'warn' }),
  tracing: endpoint ? { endpoint, sampleRatio: Number(ratio), serviceName: 'bench-edge' } : undefined,
});
process.on('message', async (m: { type: string }) => {
  if (m.type === 'metrics') {
    const text = await proxy.metrics.text();
    tell({ type: 'metrics', lines: text.split('\n').filter((l) => l.startsWith('weft_proxy_trace_')) });
  } else if (m.type === 'cpu') {
    // This process's CPU time so far (user + system, µs): per request, what the proxy and its exporter cost.
    const u = process.cpuUsage();
    tell({ type: 'cpu', us: u.user + u.system });
  } else if (m.type === 'stop') {
    await proxy.close();
    process.exit(0);
  }
});
// An orchestrator that dies (Ctrl-C) takes its proxies with it.
process.on('disconnect', () => process.exit(0));
tell({ type: 'ready', port: Object.values(proxy.addresses.listeners)[0].port });

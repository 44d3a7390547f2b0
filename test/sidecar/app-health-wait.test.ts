// `weft proxy wait`, the classic sidecar's postStart hook: it returns once the proxy's /ready says ready (a config
// received) and exits 1 with the reason when the proxy does not get there in time. Against a real proxy's admin port.
import test from 'ava';
import { pino } from 'pino';
import { startProxy } from '../../sidecar/proxy.ts';
import { waitForProxyReady } from '../../sidecar/proxy-wait.ts';
import { closedPort, runWeft } from '../helpers/run-weft.ts';
import { MINIMAL_SIDECAR_CONFIG as CONFIG } from './app-health-support.ts';

/** A proxy started without a config: its admin port answers /ready with 503 until update() gives it one. */
async function unreadyProxy(t: { teardown(f: () => unknown): void }) {
  const proxy = await startProxy({ adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
  t.teardown(() => proxy.close());
  return proxy;
}

const run = (args: string[]) => runWeft(['proxy', 'wait', ...args]);

test('returns only once the proxy has its config', async (t) => {
  const proxy = await unreadyProxy(t);
  const port = proxy.addresses.admin.port;
  let configured = false;
  const waiting = waitForProxyReady({ port, timeoutMs: 60_000, intervalMs: 20 }).then((r) => ({ ...r, configured }));
  // Meanwhile /ready says 503 "no valid config yet"; the answer of a poll decides, never the clock.
  const first = await fetch(`http://127.0.0.1:${port}/ready`);
  t.is(first.status, 503);
  t.is(await first.text(), 'no valid config yet\n');
  configured = true;
  await proxy.update(CONFIG);
  const result = await waiting;
  t.true(result.ready);
  t.true(result.configured, 'did not return before the config arrived');
});

test('weft proxy wait: exit 0 and a line on stdout once ready', async (t) => {
  const proxy = await unreadyProxy(t);
  await proxy.update(CONFIG);
  const r = await run(['--admin-port', String(proxy.addresses.admin.port), '--timeout-seconds', '60']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^proxy ready after \d+\.\d s \(http:\/\/127\.0\.0\.1:\d+\/ready\)\n$/);
});

test('weft proxy wait: exit 1 with the proxy’s own reason when it stays unready past the timeout', async (t) => {
  const proxy = await unreadyProxy(t);
  const r = await run(['--admin-port', String(proxy.addresses.admin.port), '--timeout-seconds', '1']);
  t.is(r.code, 1);
  t.regex(r.stderr, /weft: proxy not ready after 1 s \(http:\/\/127\.0\.0\.1:\d+\/ready\): no valid config yet/);
});

test('weft proxy wait: nothing listening on the admin port is said as such', async (t) => {
  const port = await closedPort();
  const r = await run(['--admin-port', String(port), '--timeout-seconds', '1']);
  t.is(r.code, 1);
  t.regex(r.stderr, /admin port not listening yet \(connection refused\)/);
});

test('weft proxy wait: a bad flag value is a usage error (exit 2)', async (t) => {
  const r = await run(['--timeout-seconds', '0']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--timeout-seconds/);
});

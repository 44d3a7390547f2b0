// `weft proxy wait`: the classic sidecar form's postStart hook (injector/settings.ts proxyWaitCommand). kubelet starts
// a pod's containers in order and runs each postStart hook to completion before starting the next, so with the
// proxy first and this hook on it, the app starts only once the proxy's /ready says ready (a config received and,
// for a sidecar, its workload certificate loaded). On timeout it exits 1, which makes kubelet restart the proxy.
import { request } from 'node:http';
import { Command, InvalidArgumentError } from 'commander';

export const WAIT = 'wait';
export const DEFAULT_ADMIN_PORT = 15020;
export const DEFAULT_READY_TIMEOUT_SECONDS = 120;

export interface WaitOptions {
  /** Default 127.0.0.1: the hook runs in the proxy's own container. */
  host?: string;
  port: number;
  timeoutMs: number;
  /** Between two polls of /ready. Default 250 ms. */
  intervalMs?: number;
}

export interface WaitResult {
  ready: boolean;
  /** Milliseconds waited. */
  waitedMs: number;
  /** Not ready: the last reason, as /ready said it or as the connection failed. */
  reason?: string;
}

/** One GET /ready: undefined when ready, else why not. */
function pollReady(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/ready', method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 1024) body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 ? undefined : body.trim() || `HTTP ${res.statusCode}`));
      res.on('error', (err) => resolve(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ECONNREFUSED' ? 'admin port not listening yet (connection refused)' : err.message),
    );
    req.end();
  });
}

/** Polls the proxy's /ready until it answers 200 or `timeoutMs` passes. */
export async function waitForProxyReady(o: WaitOptions): Promise<WaitResult> {
  const host = o.host ?? '127.0.0.1';
  const interval = o.intervalMs ?? 250;
  const start = performance.now();
  const deadline = start + o.timeoutMs;
  let reason = 'not polled';
  for (;;) {
    const left = deadline - performance.now();
    const why = await pollReady(host, o.port, Math.max(1, Math.min(1000, left)));
    const waitedMs = Math.round(performance.now() - start);
    if (why === undefined) return { ready: true, waitedMs };
    reason = why;
    if (performance.now() + interval >= deadline) return { ready: false, waitedMs, reason };
    await new Promise((r) => setTimeout(r, interval));
  }
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError('not a whole number of seconds, at least 1');
  return n;
}

/** `weft proxy wait [--admin-port P] [--timeout-seconds S]`: resolves once ready, throws (exit 1) on timeout. */
export async function runProxyWaitCli(argv: readonly string[]): Promise<void> {
  const program = new Command(`weft proxy ${WAIT}`)
    .description(
      "wait until the proxy's admin port says ready (config received, certificate loaded); " +
        'exit 1 if it does not within the timeout',
    )
    .option('--admin-port <port>', 'the proxy’s admin port', port, DEFAULT_ADMIN_PORT)
    .option('--admin-host <host>', 'the proxy’s admin address', '127.0.0.1')
    .option('--timeout-seconds <s>', 'how long to wait', seconds, DEFAULT_READY_TIMEOUT_SECONDS)
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{ adminPort: number; adminHost: string; timeoutSeconds: number }>();
  const result = await waitForProxyReady({
    host: opts.adminHost,
    port: opts.adminPort,
    timeoutMs: opts.timeoutSeconds * 1000,
  });
  const where = `http://${opts.adminHost}:${opts.adminPort}/ready`;
  if (!result.ready) {
    throw new Error(`proxy not ready after ${opts.timeoutSeconds} s (${where}): ${result.reason}`);
  }
  process.stdout.write(`proxy ready after ${(result.waitedMs / 1000).toFixed(1)} s (${where})\n`);
}

// `weft proxy --mode sidecar|edge --config FILE [--cert FILE --key FILE --roots FILE]`: the entry the `weft`
// command wires in.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { INIT_IPTABLES, runInitIptablesCli } from './capture/init-iptables-cli.ts';
import { createOriginalDestinationLookup } from './capture/original-destination.ts';
import { readConfigFile, watchConfigFile } from './config-file.ts';
import { type RunningProxy, startProxy } from './proxy.ts';
import { FileIdentitySource } from './upstream/mtls-files.ts';

export interface ProxyCliHandle {
  proxy: RunningProxy;
  /** Stops watching the file and drains the proxy. */
  stop(): Promise<void>;
}

function millis(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a number of milliseconds');
  return n;
}

function ratio(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError('not a ratio between 0 and 1');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

/**
 * Parses `argv` (the arguments after `weft proxy`), starts the proxy on the config file and
 * reloads it on change. SIGTERM, SIGINT and `POST /shutdown` drain it, then the process exits 0; a second
 * signal cuts the drain short. Resolves once it is serving.
 */
export async function runProxyCli(argv: readonly string[]): Promise<ProxyCliHandle> {
  const program = new Command('weft proxy')
    .description('run the weft proxy (sidecar or edge) on a ProxyConfig file, reloaded on change')
    .requiredOption('--mode <mode>', 'sidecar or edge', (v) => {
      if (v !== 'sidecar' && v !== 'edge') throw new InvalidArgumentError('must be sidecar or edge');
      return v;
    })
    .requiredOption('--config <file>', 'ProxyConfig as YAML or JSON')
    .option('--admin-port <port>', 'admin port (default: the config’s admin.port)', port)
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--drain-timeout <ms>', 'how long a drain lets requests in flight finish (default 10000)', millis)
    .option('--cert <file>', 'workload certificate chain (PEM, leaf first) for mTLS; reloaded on change')
    .option('--key <file>', 'private key of --cert (PEM)')
    .option('--roots <file>', 'trust bundle (PEM) that --cert and the peers chain to')
    .option('--otlp-endpoint <url>', 'export spans over OTLP/HTTP to this collector (e.g. http://jaeger:4318)')
    .option('--trace-sample-ratio <ratio>', 'share of new traces recorded, 0–1 (default 1)', ratio)
    .option('--trace-service-name <name>', 'service.name of the spans (default weft-proxy)')
    .addHelpText('after', `\nThe pod's capture init step: weft proxy ${INIT_IPTABLES} --help`)
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{
    mode: 'sidecar' | 'edge';
    config: string;
    adminPort?: number;
    logLevel: string;
    drainTimeout?: number;
    cert?: string;
    key?: string;
    roots?: string;
    otlpEndpoint?: string;
    traceSampleRatio?: number;
    traceServiceName?: string;
  }>();
  const given = [opts.cert, opts.key, opts.roots].filter((f) => f !== undefined).length;
  if (given !== 0 && given !== 3) {
    throw new InvalidArgumentError('--cert, --key and --roots go together');
  }
  const log = pino({ name: 'weft-proxy', level: opts.logLevel });
  const identity =
    opts.cert !== undefined
      ? await FileIdentitySource.open({ certFile: opts.cert, keyFile: opts.key!, rootsFile: opts.roots!, log })
      : undefined;
  let proxy: RunningProxy;
  try {
    proxy = await startProxy({
      config: await readConfigFile(opts.config),
      mode: opts.mode,
      adminPort: opts.adminPort,
      logger: log,
      drainTimeoutMs: opts.drainTimeout,
      identity,
      tracing:
        opts.otlpEndpoint === undefined
          ? undefined
          : { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSampleRatio, serviceName: opts.traceServiceName },
      // Captured outbound connections: SO_ORIGINAL_DST when the native addon is built, else the Host header.
      originalDestination: opts.mode === 'sidecar' ? createOriginalDestinationLookup({ logger: log }) : undefined,
    });
  } catch (err) {
    await identity?.close();
    throw err;
  }
  const watcher = watchConfigFile(opts.config, proxy, log);
  log.info({ mode: opts.mode, addresses: proxy.addresses }, 'weft proxy serving');
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await watcher.close();
      await proxy.drain();
      await identity?.close();
      // Only now: a signal during the drain cuts it short instead of killing the process.
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    })();
    return stopping;
  };
  const onSignal = () => {
    // A second signal while draining: cut what is left.
    if (stopping !== undefined) void proxy.close();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Drained through the admin port's POST /shutdown: exit as after a signal.
  proxy.closed.then(() => {
    if (stopping === undefined) onSignal();
  });
  return { proxy, stop };
}

/**
 * `weft proxy …` as typed: `init-iptables …` runs the pod's capture init step and resolves to undefined once done
 * (a one-shot command); anything else starts the proxy (runProxyCli) and resolves to its handle.
 */
export async function runProxyCommand(argv: readonly string[]): Promise<ProxyCliHandle | undefined> {
  if (argv[0] === INIT_IPTABLES) {
    await runInitIptablesCli(argv.slice(1));
    return undefined;
  }
  return runProxyCli(argv);
}

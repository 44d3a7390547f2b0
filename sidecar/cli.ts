// `weft proxy --mode sidecar|edge --config FILE [--cert FILE --key FILE --roots FILE]`, or with configs from the
// control plane: `--push HOST:PORT --proxy-id ID --roots FILE` and either `--ca-url URL --token-file FILE` (the
// certificate from the mesh CA, rotated) or `--cert/--key`. The entry the `weft` command wires in.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
// Only the capture init step is imported up front: `weft proxy init-iptables` runs once per pod start (the init
// container, and every pod of `weft local up --netns`), so it must not load the proxy, zod, pino, OpenTelemetry,
// nor even node:http. `wait` and the proxy import what they need when they run.
import { INIT_IPTABLES, runInitIptablesCli } from './capture/init-iptables-cli.ts';
import type { AppProbes } from './config/app-probes.ts';
import type { WorkloadIdentity } from './identity/workload-cert.ts';
import type { RunningProxy } from './proxy.ts';
import type { PushClient } from './push/client.ts';
import type { IdentitySource } from './upstream/mtls.ts';

/** Sent in the push hello; `weft proxy-status` shows it. */
const NODE_VERSION = `weft/0.1.0 node/${process.version}`;

export interface ProxyCliHandle {
  proxy: RunningProxy;
  /** Present with `--push`. */
  push?: PushClient;
  /** Present with `--ca-url`. */
  workloadIdentity?: WorkloadIdentity;
  /** Stops watching the file (or the push stream) and drains the proxy. */
  stop(): Promise<void>;
}

/** `HOST:PORT`, `[V6]:PORT` or `HOST` (port `defaultPort`, 15010). */
function hostPort(value: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(value.trim());
  const p = m?.[3] === undefined ? defaultPort : Number(m[3]);
  if (!m || !Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError('not HOST:PORT');
  return { host: m[1] ?? m[2], port: p };
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

/** `parse` as a commander argument parser: what it throws is the option's error. */
function argument<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
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
  const { APP_PROBES_ENV, parseAppProbes } = await import('./config/app-probes.ts');
  const { PROXY_ID, PUSH_DEFAULT_PORT, PUSH_SERVER_NAME } = await import('./config/push-api.ts');
  const { WAIT } = await import('./proxy-wait.ts');
  const program = new Command('weft proxy')
    .description('run the weft proxy (sidecar or edge) on a ProxyConfig file, reloaded on change')
    .requiredOption('--mode <mode>', 'sidecar or edge', (v) => {
      if (v !== 'sidecar' && v !== 'edge') throw new InvalidArgumentError('must be sidecar or edge');
      return v;
    })
    .option('--config <file>', 'ProxyConfig as YAML or JSON, reloaded on change (or --push)')
    .option('--push <host:port>', 'receive configs from the control plane’s config push server (or --config)', (v) =>
      hostPort(v, PUSH_DEFAULT_PORT),
    )
    .option('--push-server-name <name>', `name the push server’s certificate must carry (default ${PUSH_SERVER_NAME})`)
    .option('--proxy-id <id>', 'with --push: this proxy’s id, sidecar:<ns>/<pod> or edge:<ns>/<gateway>')
    .option('--ca-url <url>', 'get the workload certificate from the mesh CA at this https URL (rotated)')
    .option('--ca-server-name <name>', 'name the CA’s certificate must carry (default: the URL’s host)')
    .option('--token-file <file>', 'with --ca-url: the workload token, read again for every request')
    .option('--trust-domain <domain>', 'with --ca-url: the mesh trust domain', 'cluster.local')
    .option(
      '--service-account <name>',
      'with --ca-url: the service account the token is for (default: sidecar "default", edge "<gateway>-weft")',
    )
    .option('--admin-port <port>', 'admin port (default: the config’s admin.port)', port)
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--drain-timeout <ms>', 'how long a drain lets requests in flight finish (default 10000)', millis)
    .option('--cert <file>', 'workload certificate chain (PEM, leaf first) for mTLS; reloaded on change')
    .option('--key <file>', 'private key of --cert (PEM)')
    .option('--roots <file>', 'trust bundle (PEM) that --cert (or the CA’s certificates) and the peers chain to')
    .option('--otlp-endpoint <url>', 'export spans over OTLP/HTTP to this collector (e.g. http://jaeger:4318)')
    .option('--trace-sample-ratio <ratio>', 'share of new traces recorded, 0–1 (default 1)', ratio)
    .option('--trace-service-name <name>', 'service.name of the spans (default weft-proxy)')
    .option('--access-log', 'log one JSON line per request (docs/logging.md); off by default')
    .option('--access-log-sample-ratio <ratio>', 'with --access-log: share of requests logged, 0–1 (default 1)', ratio)
    .addOption(
      new Option('--app-probes <json>', 'the app probes to serve at /app-health/… (the weft.dev/app-probes JSON)')
        .env(APP_PROBES_ENV)
        .argParser(argument(parseAppProbes)),
    )
    .addHelpText(
      'after',
      `\nThe pod's capture init step: weft proxy ${INIT_IPTABLES} --help\n` +
        `The classic sidecar's postStart hook: weft proxy ${WAIT} --help`,
    )
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{
    mode: 'sidecar' | 'edge';
    config?: string;
    push?: { host: string; port: number };
    pushServerName?: string;
    proxyId?: string;
    caUrl?: string;
    caServerName?: string;
    tokenFile?: string;
    trustDomain: string;
    serviceAccount?: string;
    adminPort?: number;
    logLevel: string;
    drainTimeout?: number;
    cert?: string;
    key?: string;
    roots?: string;
    otlpEndpoint?: string;
    traceSampleRatio?: number;
    traceServiceName?: string;
    accessLog?: boolean;
    accessLogSampleRatio?: number;
    appProbes?: AppProbes;
  }>();
  if (opts.config !== undefined && opts.push !== undefined) {
    usageError('--config and --push are mutually exclusive: configs come from a file or from the control plane');
  }
  if (opts.config === undefined && opts.push === undefined) {
    usageError('give --config FILE or --push HOST:PORT');
  }
  if (opts.accessLogSampleRatio !== undefined && opts.accessLog !== true) {
    usageError('--access-log-sample-ratio goes with --access-log');
  }
  // A flag whose partner is missing would be parsed and then do nothing: say so instead.
  const given = (name: string) => program.getOptionValueSource(name) === 'cli';
  const needs = (partner: string, on: boolean, flags: [string, string][]) => {
    for (const [key, flag] of flags) if (!on && given(key)) usageError(`${flag} goes with ${partner}`);
  };
  needs('--otlp-endpoint', opts.otlpEndpoint !== undefined, [
    ['traceSampleRatio', '--trace-sample-ratio'],
    ['traceServiceName', '--trace-service-name'],
  ]);
  needs('--push', opts.push !== undefined, [
    ['pushServerName', '--push-server-name'],
    ['proxyId', '--proxy-id'],
  ]);
  needs('--ca-url', opts.caUrl !== undefined, [
    ['caServerName', '--ca-server-name'],
    ['tokenFile', '--token-file'],
    ['trustDomain', '--trust-domain'],
    ['serviceAccount', '--service-account'],
  ]);
  if (opts.caUrl !== undefined && (opts.cert !== undefined || opts.key !== undefined)) {
    usageError('--ca-url and --cert/--key are mutually exclusive: the certificate comes from one');
  }
  let proxyRef: { namespace: string; name: string } | undefined;
  if (opts.push !== undefined) {
    if (opts.proxyId === undefined || !PROXY_ID.test(opts.proxyId)) {
      usageError('--push needs --proxy-id sidecar:<ns>/<pod> or edge:<ns>/<gateway>');
    }
    if (!opts.proxyId.startsWith(`${opts.mode}:`)) {
      usageError(`--proxy-id ${opts.proxyId} is not a ${opts.mode} proxy`);
    }
    if (opts.caUrl === undefined && opts.cert === undefined) {
      usageError('--push needs a certificate: --ca-url URL --token-file FILE, or --cert/--key');
    }
    const [namespace, name] = opts.proxyId.slice(opts.proxyId.indexOf(':') + 1).split('/');
    proxyRef = { namespace, name };
  }
  if (opts.caUrl !== undefined) {
    if (opts.tokenFile === undefined || opts.roots === undefined || proxyRef === undefined) {
      usageError('--ca-url goes with --token-file, --roots and --push/--proxy-id');
    }
  } else {
    const given = [opts.cert, opts.key, opts.roots].filter((f) => f !== undefined).length;
    if (given !== 0 && given !== 3) {
      usageError('--cert, --key and --roots go together');
    }
  }
  // The proxy's own modules, only now: --help and usage errors answer without loading them.
  const { pino } = await import('pino');
  const { startProxy } = await import('./proxy.ts');
  const log = pino({ name: 'weft-proxy', level: opts.logLevel });
  let workloadIdentity: WorkloadIdentity | undefined;
  let identity: (IdentitySource & { close(): unknown }) | undefined;
  if (opts.caUrl !== undefined && proxyRef !== undefined) {
    const tokenFile = opts.tokenFile!;
    const { WorkloadIdentity } = await import('./identity/workload-cert.ts');
    workloadIdentity = new WorkloadIdentity({
      ca: { url: opts.caUrl, rootsPem: await readFile(opts.roots!, 'utf8'), serverName: opts.caServerName },
      trustDomain: opts.trustDomain,
      namespace: proxyRef.namespace,
      serviceAccount: opts.serviceAccount ?? (opts.mode === 'edge' ? `${proxyRef.name}-weft` : 'default'),
      // Read on every request: a rotated token file is picked up without a restart.
      token: async () => (await readFile(tokenFile, 'utf8')).trim(),
    });
    workloadIdentity.on('change', (c) =>
      log.info({ event: 'identity.issued', spiffeId: c.spiffeId, notAfter: c.notAfter }, 'workload certificate issued'),
    );
    workloadIdentity.on('renewalFailed', (err, f) =>
      log.warn({ event: 'identity.renewal-failed', err, attempt: f.attempt, retryInMs: f.retryInMs }, err.message),
    );
    workloadIdentity.on('expired', (err) => log.error({ event: 'identity.expired', err }, err.message));
    identity = workloadIdentity;
  } else if (opts.cert !== undefined) {
    const { FileIdentitySource } = await import('./upstream/mtls-files.ts');
    identity = await FileIdentitySource.open({ certFile: opts.cert, keyFile: opts.key!, rootsFile: opts.roots!, log });
  }
  const { readConfigFile, watchConfigFile } = await import('./config-file.ts');
  const { createOriginalDestinationLookup } = await import('./capture/original-destination.ts');
  let proxy: RunningProxy;
  try {
    proxy = await startProxy({
      // Without a file the proxy starts with no listeners and is not ready until the first pushed config.
      config: opts.config === undefined ? undefined : await readConfigFile(opts.config),
      mode: opts.mode,
      adminPort: opts.adminPort,
      logger: log,
      drainTimeoutMs: opts.drainTimeout,
      identity,
      tracing:
        opts.otlpEndpoint === undefined
          ? undefined
          : { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSampleRatio, serviceName: opts.traceServiceName },
      accessLog: opts.accessLog ? { sampleRatio: opts.accessLogSampleRatio } : undefined,
      // Captured outbound connections: SO_ORIGINAL_DST when the native addon is built, else the Host header.
      originalDestination: opts.mode === 'sidecar' ? createOriginalDestinationLookup({ logger: log }) : undefined,
      appProbes: opts.appProbes,
    });
  } catch (err) {
    await identity?.close();
    throw err;
  }
  const watcher = opts.config === undefined ? undefined : watchConfigFile(opts.config, proxy, log);
  let push: PushClient | undefined;
  if (opts.push !== undefined) {
    const source = identity!;
    const { PushClient } = await import('./push/client.ts');
    const { configRejectReason } = await import('./metrics.ts');
    push = new PushClient({
      host: opts.push.host,
      port: opts.push.port,
      serverName: opts.pushServerName,
      proxyId: opts.proxyId!,
      nodeVersion: NODE_VERSION,
      credentials: () => source.current(),
      // A config the proxy refuses (validation, compilation, binding) is nacked; the last good one keeps serving.
      apply: (config, version) => proxy.update(config, version),
      onInvalid: (err) => proxy.metrics.configRejected(configRejectReason(err)),
      logger: log,
    });
    push.on('rejected', (version, issues) =>
      log.error(
        { event: 'config.refused', version, issues: issues.slice(0, 5) },
        `config refused: ${issues[0]?.path}: ${issues[0]?.reason}`,
      ),
    );
    const client = push;
    if (workloadIdentity) {
      // Connect once there is a certificate to connect with (the first attempt would only fail and back off).
      workloadIdentity.start().then(
        () => client.start(),
        () => {},
      );
    } else client.start();
  }
  log.info(
    { event: 'proxy.serving', mode: opts.mode, addresses: proxy.addresses, push: opts.push },
    'weft proxy serving',
  );
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await watcher?.close();
      await push?.close();
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
        log.error({ event: 'proxy.shutdown-failed', err }, 'shutdown failed');
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
  return { proxy, push, workloadIdentity, stop };
}

/**
 * `weft proxy …` as typed: `init-iptables …` runs the pod's capture init step and `wait …` waits for the proxy to be
 * ready, each resolving to undefined once done (one-shot commands); anything else starts the proxy (runProxyCli) and
 * resolves to its handle.
 */
export async function runProxyCommand(argv: readonly string[]): Promise<ProxyCliHandle | undefined> {
  if (argv[0] === INIT_IPTABLES) {
    await runInitIptablesCli(argv.slice(1));
    return undefined;
  }
  const { runProxyWaitCli, WAIT } = await import('./proxy-wait.ts');
  if (argv[0] === WAIT) {
    await runProxyWaitCli(argv.slice(1));
    return undefined;
  }
  return runProxyCli(argv);
}

/**
 * A usage error found after parsing (a combination of options): commander prints only the errors it
 * raises itself, so say it here before throwing, or the command would exit 2 in silence.
 */
function usageError(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  throw new InvalidArgumentError(message);
}

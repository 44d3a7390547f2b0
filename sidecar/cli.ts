// `weft proxy --mode sidecar|edge --config FILE`: the entry the `weft` command wires in.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { readConfigFile, watchConfigFile } from './config-file.ts';
import { type RunningProxy, startProxy } from './proxy.ts';

export interface ProxyCliHandle {
  proxy: RunningProxy;
  /** Stops watching the file and closes the proxy. */
  stop(): Promise<void>;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

/**
 * Parses `argv` (the arguments after `weft proxy`), starts the proxy on the config file and
 * reloads it on change; SIGTERM and SIGINT close it. Resolves once it is serving.
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
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{ mode: 'sidecar' | 'edge'; config: string; adminPort?: number; logLevel: string }>();
  const log = pino({ name: 'weft-proxy', level: opts.logLevel });
  const proxy = await startProxy({
    config: await readConfigFile(opts.config),
    mode: opts.mode,
    adminPort: opts.adminPort,
    logger: log,
  });
  const watcher = watchConfigFile(opts.config, proxy, log);
  log.info({ mode: opts.mode, addresses: proxy.addresses }, 'weft proxy serving');
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      await watcher.close();
      await proxy.close();
    })();
    return stopping;
  };
  const onSignal = () => {
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
  return { proxy, stop };
}

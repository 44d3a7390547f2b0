// The file feed: a ProxyConfig read from YAML or JSON (YAML is a superset), applied again
// whenever the file changes. A change that does not parse or validate is logged and refused;
// the proxy keeps serving the config it had.
import { readFile } from 'node:fs/promises';
import { watch } from 'chokidar';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import type { RunningProxy } from './proxy.ts';

export async function readConfigFile(file: string): Promise<unknown> {
  return parseYaml(await readFile(file, 'utf8'));
}

export interface ConfigFileWatch {
  close(): Promise<void>;
}

/** Re-reads `file` on change and hands it to `proxy.update`; `onApplied` is told of each outcome. */
export function watchConfigFile(
  file: string,
  proxy: Pick<RunningProxy, 'update'>,
  log: Logger,
  onApplied?: (err: unknown) => void,
): ConfigFileWatch {
  // Editors and `kubectl cp` replace files by rename: watch for add as well as change, and
  // wait for writes to settle so a half-written file is not read.
  const watcher = watch(file, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 25 } });
  const reload = async () => {
    try {
      await proxy.update(await readConfigFile(file));
      log.info({ event: 'config.reloaded', file }, 'config file reloaded');
      onApplied?.(undefined);
    } catch (err) {
      log.error({ event: 'config.file-refused', err, file }, 'config file refused; keeping the previous config');
      onApplied?.(err);
    }
  };
  watcher.on('change', reload);
  watcher.on('add', reload);
  watcher.on('error', (err) => log.error({ event: 'config.watch-failed', err, file }, 'config file watch failed'));
  return { close: () => watcher.close() };
}

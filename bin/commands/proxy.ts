// `weft proxy --mode sidecar|edge --config FILE …` (the proxy) and `weft proxy init-iptables …` (the pod's capture
// init step). Their options are parsed by sidecar/cli.ts (the proxy owns them), so this command passes everything
// after `proxy` through untouched, `--help` included. Started by `weft local`, the proxy also stops when its parent
// goes away.
import { Command } from 'commander';
import { exitWithParent } from '../../controlplane/local/parent-watch.ts';

export function proxyCommand(): Command {
  return new Command('proxy')
    .summary('run the weft proxy (sidecar or edge); `weft proxy --help` for its options')
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[options...]', 'the proxy options (see weft proxy --help)')
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      const { runProxyCommand } = await import('../../sidecar/cli.ts');
      const handle = await runProxyCommand(cmd.args);
      if (!handle) return; // a one-shot subcommand, done
      exitWithParent(() => {
        handle.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
    });
}

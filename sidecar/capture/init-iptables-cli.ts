// `weft proxy init-iptables …`: the pod's traffic-capture init step (the Kubernetes init container and
// `weft local --netns` run the same thing). Prints each iptables command as it runs it; --dry-run only prints.
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  type CaptureOptions,
  captureOptions,
  DEFAULT_CAPTURE_OPTIONS,
  installCapture,
  removeCapture,
} from './iptables.ts';

export const INIT_IPTABLES = 'init-iptables';

function integer(what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`not a ${what}`);
    return Number(value);
  };
}

/** A comma-separated list, added to what earlier uses of the same option gave. */
function list<T>(parse: (item: string) => T) {
  return (value: string, previous: T[] | undefined): T[] => [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(parse),
  ];
}

export interface InitIptablesCliOptions {
  /** Where command lines go; default stdout. */
  write?: (line: string) => void;
}

/** Parses `argv` (after `init-iptables`) and installs, prints (--dry-run) or removes (--cleanup) the rules. */
export async function runInitIptablesCli(argv: readonly string[], cli: InitIptablesCliOptions = {}): Promise<void> {
  const d = DEFAULT_CAPTURE_OPTIONS;
  const program = new Command(`weft proxy ${INIT_IPTABLES}`)
    .description(
      "install the pod's iptables capture: outbound TCP to the proxy's outbound port, inbound TCP to its inbound " +
        "port, except the proxy's own traffic (uid/gid), loopback and what is excluded; re-running replaces the rules",
    )
    .option('--proxy-uid <uids>', `uids whose traffic is never captured (default ${d.proxyUids})`, list(integer('uid')))
    .option(
      '--proxy-gid <gids>',
      'gids whose traffic is never captured (default: the proxy uids)',
      list(integer('gid')),
    )
    .option('--outbound-port <port>', 'where outbound TCP is redirected', integer('port'), d.outboundPort)
    .option('--inbound-port <port>', 'where inbound TCP is redirected', integer('port'), d.inboundPort)
    .option('--proxy-ports <ports>', 'proxy ports never redirected inbound', list(integer('port')))
    .option('--exclude-inbound-ports <ports>', 'inbound ports (or first:last ranges) left alone', list(String))
    .option('--exclude-outbound-ports <ports>', 'outbound destination ports (or ranges) left alone', list(String))
    .option('--exclude-outbound-cidrs <cidrs>', 'outbound destinations (IPv4/IPv6 CIDRs) left alone', list(String))
    .option('--no-inbound-capture', 'capture outbound traffic only')
    .option('--no-ipv6', 'IPv4 rules only (no ip6tables)')
    .addOption(new Option('--dry-run', 'print the commands, change nothing'))
    .addOption(new Option('--cleanup', 'remove the rules instead of installing them'))
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const opts = program.opts<{
    proxyUid?: number[];
    proxyGid?: number[];
    outboundPort: number;
    inboundPort: number;
    proxyPorts?: number[];
    excludeInboundPorts?: string[];
    excludeOutboundPorts?: string[];
    excludeOutboundCidrs?: string[];
    inboundCapture: boolean;
    ipv6: boolean;
    dryRun?: boolean;
    cleanup?: boolean;
  }>();
  const proxyUids = opts.proxyUid ?? [...d.proxyUids];
  const partial: Partial<CaptureOptions> = {
    proxyUids,
    proxyGids: opts.proxyGid ?? proxyUids,
    outboundPort: opts.outboundPort,
    inboundPort: opts.inboundPort,
    proxyPorts: opts.proxyPorts ?? [...d.proxyPorts],
    excludeInboundPorts: opts.excludeInboundPorts ?? [],
    excludeOutboundPorts: opts.excludeOutboundPorts ?? [],
    excludeOutboundCidrs: opts.excludeOutboundCidrs ?? [],
    captureInbound: opts.inboundCapture,
    ipv6: opts.ipv6,
  };
  const options = captureOptions(partial);
  const print = cli.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const apply = { dryRun: opts.dryRun === true, print };
  if (opts.cleanup) await removeCapture(options, apply);
  else await installCapture(options, apply);
}

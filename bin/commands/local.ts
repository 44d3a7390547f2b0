// `weft local up DIR` (a whole mesh on this machine, see controlplane/local/mesh.ts; with --netns each pod in its
// own network namespace, controlplane/local/pod-network.ts), `weft local curl` (a request from inside one of its
// pods) and `weft local down` (stop it, and remove what a crashed run left). Heavy modules are imported when a
// command runs, so `weft echo` and `weft proxy`, which `weft local` starts many times, do not pay for them.
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('not a non-negative integer');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('not a positive integer');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

function url(value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new InvalidArgumentError('not an http(s) URL');
  }
  return value;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** An IP address or an IPv4 CIDR, collected (the translator's static-address pool). */
function addressOrCidr(value: string, previous: string[] = []): string[] {
  const [ip, bits, extra] = value.split('/');
  const ok =
    extra === undefined &&
    (bits === undefined ? isIP(ip) !== 0 : isIP(ip) === 4 && /^\d{1,2}$/.test(bits) && Number(bits) <= 32);
  if (!ok) throw new InvalidArgumentError('not an IP address or an IPv4 CIDR');
  return [...previous, value];
}

export interface LocalUpOptions {
  stateDir: string;
  bindPorts?: number;
  pushPort: number;
  caPort: number;
  adminPort: number;
  verbose?: boolean;
  jaeger?: string;
  netns?: boolean;
  netnsPrefix: string;
  netnsCidr: string;
  netnsServiceCidr: string;
  usableAddress?: string[];
}

export interface LocalCurlCommandOptions {
  from: string;
  header?: string[];
  request?: string;
  data?: string;
  count?: number;
  concurrency: number;
  output: 'text' | 'json';
  stateDir: string;
}

function upCommand(): Command {
  return new Command('up')
    .summary('run the mesh of a directory of manifests on this machine')
    .description(
      'Start the control plane on the manifests in DIR (watched: an edit changes routing within a second), and for ' +
        'every Pod (one per Deployment replica) a local pod on its own loopback address: the built-in echo server ' +
        'in place of each container image, with a sidecar proxy beside it in namespaces labelled ' +
        "weft.dev/inject=enabled; and an edge proxy on the address of every Gateway of weft's GatewayClass. " +
        'With --netns (root only) each pod gets its own network namespace on a bridge instead, its traffic ' +
        'captured by iptables as in a cluster. Prints the Gateway URLs, a ready line and commands to try. Ctrl-C ' +
        'stops everything; "weft local down" cleans up after a crash.',
    )
    .argument('<dir>', 'directory of Kubernetes and Gateway API manifests')
    .option('--state-dir <dir>', 'where the CA, configs, logs and mesh.json live', '.weft/local')
    .option(
      '--bind-ports <offset>',
      'move ports below 1024 up by this much (default: 10000 when not root, 0 as root)',
      nonNegativeInt,
    )
    .option('--push-port <port>', 'config push port (0: any free port)', port, 15010)
    .option('--ca-port <port>', 'mesh CA port (0: any free port)', port, 15012)
    .option('--admin-port <port>', 'control plane admin port (0: any free port)', port, 15014)
    .option('-v, --verbose', "also print the control plane's JSON log on stderr")
    .option(
      '--jaeger <url>',
      "send every proxy's and the control plane's traces to this OTLP/HTTP collector (Jaeger: http://127.0.0.1:4318)",
      url,
    )
    .option('--netns', 'root only: a network namespace per pod on a bridge, traffic captured by iptables')
    .option('--netns-prefix <prefix>', 'with --netns: name prefix of namespaces, bridge and chains', 'weft-')
    .option(
      '--netns-cidr <cidr>',
      "with --netns: the bridge's private range (pods get its upper half)",
      '10.244.0.0/16',
    )
    .option('--netns-service-cidr <cidr>', 'with --netns: where Service ClusterIPs come from', '10.96.0.0/16')
    .option(
      '--usable-address <ip|cidr>',
      'a static Gateway address (spec.addresses) weft may use, repeatable; others are not programmed (default 127.0.0.0/8: the edge proxies listen on loopback)',
      addressOrCidr,
    )
    .action(async (dir: string, opts: LocalUpOptions) => {
      const { startLocalMesh } = await import('../../controlplane/local/mesh.ts');
      const { canBindPrivileged, DEFAULT_PORT_OFFSET } = await import('../../controlplane/local/localize.ts');
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const mesh = await startLocalMesh({
        dir,
        stateDir: path.resolve(opts.stateDir),
        portOffset: opts.bindPorts ?? (canBindPrivileged() ? 0 : DEFAULT_PORT_OFFSET),
        node: process.execPath,
        weftBin: fileURLToPath(new URL('../weft.ts', import.meta.url)),
        pushPort: opts.pushPort,
        caPort: opts.caPort,
        adminPort: opts.adminPort,
        verbose: opts.verbose,
        tracing: opts.jaeger === undefined ? undefined : { endpoint: opts.jaeger },
        ...(opts.usableAddress ? { usableAddresses: opts.usableAddress } : {}),
        out,
        netns: opts.netns
          ? { prefix: opts.netnsPrefix, cidr: opts.netnsCidr, serviceCidr: opts.netnsServiceCidr }
          : undefined,
      });
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) {
            // A second Ctrl-C: no more waiting for graceful exits.
            out(`weft local: ${signal} again; killing what is left`);
            void mesh.abort().finally(() => process.exit(130));
            return;
          }
          stopping = true;
          out(`\nweft local: ${signal}: stopping proxies, then workloads, then the control plane`);
          mesh.close().then(
            () => {
              out('weft local: stopped');
              resolve();
            },
            (err: unknown) => {
              out(`weft local: stop failed: ${(err as Error).message}`);
              resolve();
            },
          );
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}

function downCommand(): Command {
  return new Command('down')
    .summary('stop weft local up, and remove what a crashed run left')
    .description(
      'Stop the weft local up running from the state dir (as Ctrl-C would), then remove what a run left behind ' +
        'after a crash: its processes, and as root the network namespaces, bridge, veth links, iptables chains and ' +
        '/etc/netns dirs whose names start with the prefix (from mesh.json, else --prefix, else weft-), and mesh.json.',
    )
    .option('--state-dir <dir>', 'state dir of the weft local up', '.weft/local')
    .option('--prefix <prefix>', 'name prefix of what --netns made (default: the one in mesh.json, else weft-)')
    .action(async (opts: { stateDir: string; prefix?: string }) => {
      const { localDown, describeDown } = await import('../../controlplane/local/down.ts');
      const r = await localDown({ stateDir: path.resolve(opts.stateDir), prefix: opts.prefix });
      for (const line of describeDown(r)) process.stdout.write(`weft local down: ${line}\n`);
    });
}

function curlCommand(): Command {
  return new Command('curl')
    .summary('send a request from inside a local pod, as its workload would')
    .description(
      'Send an HTTP request the way the workload of pod NS/POD of the running `weft local up` would: to its ' +
        "sidecar's outbound listener as to an HTTP proxy, from the pod's IP (with --netns: a plain request from " +
        "inside the pod's network namespace, captured by iptables), so the mesh routes apply (the Service's " +
        'HTTPRoutes, weights, header matches). URL names a Service as a pod would: http://bar.bar/path, ' +
        'http://bar.bar.svc.cluster.local, its ClusterIP. POD may be a prefix such as a Deployment name. Prints ' +
        'the status line, headers and body; with --count, a tally of the backend pods that answered.',
    )
    .argument('<url>', 'http:// URL of a Service')
    .requiredOption('--from <ns/pod>', 'the pod the request comes from')
    .option('-H, --header <header>', 'request header "Name: value", repeatable', collect)
    .option('-X, --request <method>', 'request method (default GET, POST with --data)')
    .option('-d, --data <body>', 'request body')
    .option('--count <n>', 'send N requests and tally which backend pod answered', positiveInt)
    .option('--concurrency <n>', 'requests in flight at once with --count', positiveInt, 10)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--state-dir <dir>', 'state dir of the running weft local up', '.weft/local')
    .action(async (url: string, opts: LocalCurlCommandOptions) => {
      const { localCurl, localCurlCount, formatTally } = await import('../../controlplane/local/curl.ts');
      const base = {
        stateDir: path.resolve(opts.stateDir),
        from: opts.from,
        url,
        headers: opts.header,
        method: opts.request,
        data: opts.data,
      };
      if (opts.count !== undefined) {
        const { pod, tally } = await localCurlCount({ ...base, count: opts.count, concurrency: opts.concurrency });
        if (opts.output === 'json')
          process.stdout.write(`${JSON.stringify({ from: `${pod.namespace}/${pod.name}`, ...tally }, null, 2)}\n`);
        else process.stdout.write(`from ${pod.namespace}/${pod.name}: ${formatTally(tally)}`);
        if (tally.errors === tally.requests) process.exitCode = 1;
        return;
      }
      const { pod, response: r } = await localCurl(base);
      if (opts.output === 'json') {
        process.stdout.write(`${JSON.stringify({ from: `${pod.namespace}/${pod.name}`, ...r }, null, 2)}\n`);
        return;
      }
      let text = `HTTP/${r.httpVersion} ${r.status} ${r.statusMessage}\n`;
      for (const [name, value] of r.headers) text += `${name}: ${value}\n`;
      text += `\n${r.body}`;
      if (!text.endsWith('\n')) text += '\n';
      process.stdout.write(text);
    });
}

export function localCommand(): Command {
  return new Command('local')
    .summary('run a mesh on this machine without a cluster (weft local up DIR)')
    .description('Run a whole mesh on this machine from a directory of manifests, and talk to it.')
    .addCommand(upCommand())
    .addCommand(curlCommand())
    .addCommand(downCommand());
}

// `weft echo`: the echo server `weft local` runs in place of container images (controlplane/local/echo-server.ts
// says how it answers). It stops on SIGINT/SIGTERM, and — when started by `weft local` — when its parent goes away.
import { Command, InvalidArgumentError, Option } from 'commander';
import { exitWithParent } from '../../controlplane/local/parent-watch.ts';

function port(value: string, previous: number[] | undefined): number[] {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return [...(previous ?? []), n];
}

export interface EchoCommandOptions {
  port?: number[];
  h2cPort?: number[];
  host: string;
  format: 'json' | 'istio';
}

export function echoCommand(): Command {
  return new Command('echo')
    .summary('run the echo server weft local stands in for workloads with')
    .description(
      'Serve HTTP and answer every request with what was received, as the Gateway API conformance echo servers do: ' +
        'JSON {path, host, method, proto, headers, namespace, ingress, service, pod, httpPort} (echo-basic), or ' +
        "Istio echo-advanced's Key=value lines with --format istio or the request header X-Echo-Format: istio. " +
        'X-Echo-Set-Header: Name:value,... adds response headers, /status/NNN answers NNN, ?delay=1s waits, /ws is ' +
        'a WebSocket echo. The pod and namespace reported come from the env POD_NAME and NAMESPACE. Each echoed ' +
        'request prints "Echoing back request made to <URI> to client (<addr>)".',
    )
    .option('--port <port>', 'HTTP/1.1 port, repeatable (default: env HTTP_PORT, else 3000)', port)
    .option(
      '--h2c-port <port>',
      'cleartext HTTP/2 (prior knowledge) port, repeatable (default: env H2C_PORT, if set)',
      port,
    )
    .option('--host <ip>', 'address to bind', '127.0.0.1')
    .addOption(
      new Option('--format <format>', 'reply format when the request does not ask')
        .choices(['json', 'istio'])
        .default('json'),
    )
    .action(async (opts: EchoCommandOptions) => {
      const { startEchoServer } = await import('../../controlplane/local/echo-server.ts');
      const ports = opts.port ?? [Number(process.env.HTTP_PORT ?? 3000)];
      const h2cPorts = opts.h2cPort ?? (process.env.H2C_PORT ? [Number(process.env.H2C_PORT)] : []);
      const echo = await startEchoServer({ host: opts.host, ports, h2cPorts, format: opts.format });
      for (const a of echo.addresses) {
        const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        process.stdout.write(`weft echo: serving ${a.protocol === 'h2c' ? 'h2c' : 'http'}://${shown}:${a.port}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        exitWithParent(stop);
      });
      await echo.close();
    });
}

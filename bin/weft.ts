#!/usr/bin/env node
// The `weft` command. Each subcommand lives in bin/commands/<name>.ts and exports a function that
// builds its commander Command; this file only assembles them and owns the exit codes: 0 ok,
// 1 failure (bad input, a problem in status, a runtime error), 2 usage error, 3 a bug in weft.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CliError, EXIT } from './errors.ts';

/** weft's version, from package.json (read at run time: the file is the single source of it). */
export function weftVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

function eachCommand(cmd: Command, fn: (c: Command) => void): void {
  fn(cmd);
  for (const sub of cmd.commands) eachCommand(sub, fn);
}

// The subcommands in the order `weft --help` lists them, each module imported only when needed.
const COMMANDS = new Map<string, () => Promise<Command>>([
  ['translate', async () => (await import('./commands/translate.ts')).translateCommand()],
  ['inject', async () => (await import('./commands/inject.ts')).injectCommand(weftVersion())],
  ['proxy', async () => (await import('./commands/proxy.ts')).proxyCommand()],
  ['echo', async () => (await import('./commands/echo.ts')).echoCommand()],
  ['local', async () => (await import('./commands/local.ts')).localCommand()],
  ['proxy-status', async () => (await import('./commands/proxy-status.ts')).proxyStatusCommand()],
  ['check', async () => (await import('./commands/check.ts')).checkCommand()],
  ['controlplane', async () => (await import('./commands/controlplane.ts')).controlplaneCommand(weftVersion())],
]);

/**
 * The program with every subcommand, or, when `argv` starts with a subcommand's name, with that one only:
 * `weft proxy init-iptables` (once per pod start) and `weft echo` (started by `weft local` for every pod) then
 * load neither the translator nor the injector nor the control plane. Anything else (`weft --help`, `weft help x`,
 * a mistyped command that gets a suggestion) gets them all.
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('weft')
    .description('weft: a service mesh configured with the Kubernetes Gateway API')
    .version(weftVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help');
  const only = COMMANDS.get(argv[0] ?? '');
  const builders = only ? [only] : [...COMMANDS.values()];
  for (const command of await Promise.all(builders.map((build) => build()))) program.addCommand(command);
  // Settings .command() would copy to subcommands, applied to all since they are built apart:
  // commander must throw instead of exiting, so usage errors get exit code 2 here.
  eachCommand(program, (c) => {
    c.exitOverride();
    c.showSuggestionAfterError(true);
    c.showHelpAfterError(`(run "${commandPath(c)} --help" for usage)`);
  });
  return program;
}

function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}

/** Runs the command line `argv` (user arguments only) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed the message (or the help, or the version).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      return EXIT.usage;
    }
    if (err instanceof CliError) {
      for (const line of err.details) process.stderr.write(`${line}\n`);
      process.stderr.write(`weft: ${err.message}\n`);
      return err.exitCode;
    }
    const e = err as Error;
    process.stderr.write(`weft: ${e?.message ?? String(err)}\n`);
    if (process.env.WEFT_DEBUG && e?.stack) process.stderr.write(`${e.stack}\n`);
    return EXIT.failure;
  }
}

if (import.meta.main) {
  // exitCode rather than process.exit(): stdout, possibly a pipe, is flushed before the process ends.
  process.exitCode = await main(process.argv.slice(2));
}

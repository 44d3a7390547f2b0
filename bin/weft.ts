#!/usr/bin/env node
// The `weft` command. Each subcommand lives in bin/commands/<name>.ts and exports a function that
// builds its commander Command; this file only assembles them and owns the exit codes: 0 ok,
// 1 failure (bad input, a problem in status, a runtime error), 2 usage error, 3 a bug in weft.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { checkCommand } from './commands/check.ts';
import { controlplaneCommand } from './commands/controlplane.ts';
import { echoCommand } from './commands/echo.ts';
import { injectCommand } from './commands/inject.ts';
import { localCommand } from './commands/local.ts';
import { proxyCommand } from './commands/proxy.ts';
import { proxyStatusCommand } from './commands/proxy-status.ts';
import { translateCommand } from './commands/translate.ts';
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

export function buildProgram(): Command {
  const program = new Command('weft')
    .description('weft: a service mesh configured with the Kubernetes Gateway API')
    .version(weftVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help');
  program.addCommand(translateCommand());
  program.addCommand(injectCommand(weftVersion()));
  program.addCommand(proxyCommand());
  program.addCommand(echoCommand());
  program.addCommand(localCommand());
  program.addCommand(proxyStatusCommand());
  program.addCommand(checkCommand());
  program.addCommand(controlplaneCommand(weftVersion()));
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
  const program = buildProgram();
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

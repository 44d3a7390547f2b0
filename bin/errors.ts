// Errors of the `weft` command. Each carries the process exit code it ends with, so subcommands
// throw and bin/weft.ts alone decides how a failure is shown: `details` lines first (one per
// problem, e.g. `file:line:col: reason`), then `weft <command>: <message>` on one line.

export type CliErrorCode =
  | 'WEFT_ERR_USAGE'
  | 'WEFT_ERR_INPUT'
  | 'WEFT_ERR_STATUS'
  | 'WEFT_ERR_PROXY_NOT_FOUND'
  | 'WEFT_ERR_INVALID_PROXY_CONFIG';

/** Exit codes of every weft command. */
export const EXIT = Object.freeze({
  ok: 0,
  /** Bad input (a manifest that does not load), a problem reported in status, or any runtime failure. */
  failure: 1,
  /** The command line itself is wrong: unknown command or option, missing or malformed argument. */
  usage: 2,
  /** weft produced something its own contract refuses: a bug in weft, never the user's input. */
  bug: 3,
});

export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: number;
  /** Lines printed before the message, one problem each. */
  readonly details: readonly string[];

  constructor(code: CliErrorCode, message: string, opts: { exitCode?: number; details?: readonly string[] } = {}) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    this.exitCode = opts.exitCode ?? (code === 'WEFT_ERR_USAGE' ? EXIT.usage : EXIT.failure);
    this.details = opts.details ?? [];
  }
}

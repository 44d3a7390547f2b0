// One line of `weft check`: a check's name, how it came out, what was found or what is wrong, and how to fix it.

/**
 * ok: healthy. warn: works now, needs attention soon (a root CA near expiry, configs not yet acknowledged); does not
 * fail the run. fail: broken. skip: could not be checked because something it needs failed or is not given.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** Stable, for people and scripts: `Kubernetes API`, `root CA certificate`, … */
  name: string;
  status: CheckStatus;
  /** ok: what was found; otherwise what is wrong (or why it was skipped). */
  message: string;
  /** warn and fail: what to do about it. */
  fix?: string;
}

export const ok = (name: string, message: string): CheckResult => ({ name, status: 'ok', message });
export const warn = (name: string, message: string, fix: string): CheckResult => ({
  name,
  status: 'warn',
  message,
  fix,
});
export const fail = (name: string, message: string, fix: string): CheckResult => ({
  name,
  status: 'fail',
  message,
  fix,
});
export const skip = (name: string, message: string): CheckResult => ({ name, status: 'skip', message });

// When to renew and how long to wait after a failure. Pure functions plus the Clock the renewal loop runs on, so
// tests drive time by hand instead of sleeping.

/** Renew after this fraction of the certificate's lifetime. */
export const ROTATE_FRACTION = 2 / 3;

export interface BackoffOptions {
  /** First retry after about this long. */
  initialMs: number;
  /** Retries never wait longer than this. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { initialMs: 1000, maxMs: 60_000 };
/** Even close to expiry, retries are at least this far apart. */
export const MIN_RETRY_MS = 250;

/**
 * Milliseconds from `receivedAt` until renewal: two thirds of the lifetime counted from when the certificate
 * became usable here (its notBefore, or its arrival when later — the CA backdates notBefore by a minute, which
 * must not make a short-lived leaf look two-thirds spent on arrival). A fresh 24 h leaf renews after 16 h.
 */
export function rotationDelay(o: {
  receivedAt: number;
  notBefore: number;
  notAfter: number;
  fraction?: number;
}): number {
  const start = Math.max(o.notBefore, o.receivedAt);
  const at = start + (o.fraction ?? ROTATE_FRACTION) * (o.notAfter - start);
  return Math.max(0, Math.round(at - o.receivedAt));
}

/**
 * Delay before retry number `attempt` (1 for the first retry): exponential, with "equal jitter" (between half and
 * all of the step, so proxies that failed together do not retry together), and — while a certificate is still
 * valid — at most half of its remaining life, so a renewal gets several more chances before it lapses.
 */
export function retryDelay(
  attempt: number,
  random: () => number,
  backoff: BackoffOptions = DEFAULT_BACKOFF,
  remainingMs?: number,
): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  let delay = step / 2 + random() * (step / 2);
  if (remainingMs !== undefined && remainingMs > 0) delay = Math.min(delay, remainingMs / 2);
  return Math.max(MIN_RETRY_MS, Math.round(delay));
}

/** Time and timers. The system clock's timers are unref'd: a pending renewal never keeps a process alive. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** setTimeout's largest delay (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

// Draining a listening server: stop accepting, let the requests in flight finish, close each
// connection as soon as it has nothing in flight, cut whatever is left after a timeout. The
// request path adds `Connection: close` to every response written while draining (see
// listener-server.ts and exchange.ts), so clients learn to reconnect elsewhere.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Default time a drain gives requests in flight before cutting them. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/**
 * How often connections that went idle are closed. Node closes idle keep-alive connections once,
 * when close() is called; a response already under way then (headers sent without
 * `Connection: close`) leaves its connection idle later, and this sweep closes it.
 */
const IDLE_SWEEP_MS = 50;

/**
 * Drains `server`; `sockets` are all its connections (upgraded ones included, which Node no longer
 * tracks), destroyed when the time is up or `cut` is aborted. Resolves with the number of
 * connections that had to be cut.
 */
export function drainServer(
  server: Server,
  sockets: ReadonlySet<Socket> | undefined,
  timeoutMs: number,
  cut?: AbortSignal,
): Promise<number> {
  return new Promise((resolve) => {
    let done = false;
    let sweep: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (count: number) => {
      if (done) return;
      done = true;
      clearInterval(sweep);
      clearTimeout(timer);
      cut?.removeEventListener('abort', cutNow);
      resolve(count);
    };
    const cutNow = () => {
      const count = sockets?.size ?? 0;
      server.closeAllConnections();
      for (const socket of sockets ?? []) socket.destroy();
      finish(count);
    };
    // The callback runs once the last connection is gone.
    server.close(() => finish(0));
    if (cut?.aborted) {
      cutNow();
      return;
    }
    sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    timer = setTimeout(cutNow, timeoutMs);
    cut?.addEventListener('abort', cutNow, { once: true });
  });
}

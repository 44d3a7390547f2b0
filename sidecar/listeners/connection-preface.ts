// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3) opens with a fixed preface that no
// HTTP/1 request line can start like, so the first bytes of a plain connection say which server
// gets it. Only as many bytes as tell the two apart are awaited: one or two for an HTTP/1
// request (the preface starts with "PR"), the whole preface for HTTP/2. What a connection costs
// for it is kept small — one shared listener, no timer of its own — as every HTTP/1.1 connection
// of a Gateway port pays it.
import type { Socket } from 'node:net';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface PrefaceRoutes {
  /** An HTTP/2 preface: `socket` is paused, every byte read so far put back into it. */
  http2(socket: Socket): void;
  /** Anything else: `first` holds the bytes read so far, which the callee must feed to its parser. */
  http1(socket: Socket, first: Buffer): void;
}

/**
 * Returns the 'connection' handler of a plain listener: it reads each new connection's first
 * bytes and hands it to `routes`. A connection that has not shown which protocol it speaks
 * after `timeoutMs()` (the header timeout: no slowloris here either), or that fails first, is
 * destroyed without a call.
 */
export function prefaceSniffer(timeoutMs: () => number, routes: PrefaceRoutes): (socket: Socket) => void {
  /** Connections not yet decided, with their deadlines (performance.now()). */
  const waiting = new Map<Socket, number>();
  /** Bytes of a preface that arrived in pieces. */
  const partial = new Map<Socket, Buffer>();
  let sweep: NodeJS.Timeout | undefined;
  const forget = (socket: Socket) => {
    waiting.delete(socket);
    partial.delete(socket);
    socket.off('data', onData);
    socket.off('error', onError);
  };
  // A sweep rather than a timer per connection; it stops once nothing waits.
  const expire = () => {
    const now = performance.now();
    for (const [socket, deadline] of waiting) {
      if (deadline > now) continue;
      forget(socket);
      socket.destroy();
    }
    if (waiting.size === 0) {
      clearInterval(sweep);
      sweep = undefined;
    }
  };
  function onError(this: Socket) {
    forget(this);
    this.destroy();
  }
  function onData(this: Socket, chunk: Buffer) {
    const before = partial.get(this);
    const seen = before === undefined ? chunk : Buffer.concat([before, chunk]);
    const n = Math.min(seen.length, HTTP2_PREFACE.length);
    const http2 = seen.compare(HTTP2_PREFACE, 0, n, 0, n) === 0;
    if (http2 && n < HTTP2_PREFACE.length) {
      partial.set(this, seen);
      return;
    }
    forget(this);
    if (!http2) {
      routes.http1(this, seen);
      return;
    }
    this.pause();
    this.unshift(seen);
    routes.http2(this);
  }
  return (socket) => {
    const timeout = timeoutMs();
    waiting.set(socket, performance.now() + timeout);
    socket.on('data', onData);
    socket.on('error', onError);
    if (sweep === undefined) {
      sweep = setInterval(expire, Math.min(1_000, Math.max(50, timeout / 2)));
      sweep.unref();
    }
  };
}

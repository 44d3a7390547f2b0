// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3) opens with a fixed preface that no
// HTTP/1 request line can start like, so the first bytes of a plain connection say which server
// gets it. Only as many bytes as tell the two apart are awaited: one for almost every HTTP/1
// request (the preface starts with "PR"), the whole preface for HTTP/2.
import type { Socket } from 'node:net';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Reads the first bytes of `socket`, puts them back, and calls `route(true)` for an HTTP/2
 * preface, `route(false)` for anything else; the socket is paused with those bytes unread. A
 * connection that decides nothing within `timeoutMs` (the header timeout: no slowloris here
 * either), ends or fails first is destroyed without a call.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, route: (http2: boolean) => void): void {
  let seen: Buffer | undefined;
  const timer = setTimeout(() => {
    stop();
    socket.destroy();
  }, timeoutMs);
  timer.unref();
  const stop = () => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onEnd);
  };
  const onEnd = () => {
    stop();
    socket.destroy();
  };
  const onData = (chunk: Buffer) => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, HTTP2_PREFACE.length);
    const http2 = seen.compare(HTTP2_PREFACE, 0, n, 0, n) === 0;
    if (http2 && n < HTTP2_PREFACE.length) return;
    stop();
    socket.pause();
    socket.unshift(seen);
    route(http2);
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onEnd);
}

// Answers the proxy gives itself: always with the error code in `x-weft-error` so a client,
// a log reader or a test can tell a proxy answer from a backend's.
import type { ServerResponse } from 'node:http';
import type { ProxyError } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';

export function reply(res: ServerResponse, status: number, body: string, headers?: HeaderMap): void {
  if (res.headersSent) {
    // Too late for a status: cut the response so the client cannot take it for complete.
    res.destroy();
    return;
  }
  const out: HeaderMap = headers ? { ...headers } : {};
  if (status === 204 || status === 304) {
    // These statuses carry no body (RFC 9110 §15.3.5, §15.4.5).
    res.writeHead(status, out);
    res.end();
    return;
  }
  const payload = Buffer.from(body);
  out['content-type'] ??= 'text/plain; charset=utf-8';
  out['content-length'] = String(payload.length);
  res.writeHead(status, out);
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

export function replyError(res: ServerResponse, err: ProxyError, headers?: HeaderMap): void {
  reply(res, err.status, `${err.code}: ${err.message}\n`, { ...headers, 'x-weft-error': err.code });
}

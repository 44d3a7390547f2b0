// The forwarding engine behind a small interface, so engines can be compared on one bench
// (issue 3 §7) and swapped without touching routing or filters.
import type { Readable } from 'node:stream';
import type { HeaderMap } from '../filters/header-modifier.ts';
import type { EndpointState } from './endpoint-state.ts';

export interface UpstreamRequest {
  /** Where to: always the chosen endpoint, never anything taken from the request line. */
  endpoint: EndpointState;
  method: string;
  /** Normalised (and possibly rewritten) path with its query string. */
  path: string;
  /** Includes `host`; hop-by-hop headers already removed. */
  headers: HeaderMap;
  /** null: no body. A Buffer can be sent again (retries, mirrors); a stream only once. */
  body: Buffer | Readable | null;
  /** Aborting it aborts the upstream request (client gone, timeout). */
  signal: AbortSignal;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  /** Must be consumed or destroyed; destroying it aborts the upstream exchange. */
  body: Readable;
}

export interface Forwarder {
  request(r: UpstreamRequest): Promise<UpstreamResponse>;
  /** The endpoint left the config: close its connections once their requests are done. */
  retire(endpoint: EndpointState): void;
  /** Closes every connection, cutting exchanges still running. */
  close(): Promise<void>;
}

/** Error codes meaning no connection could be made: the endpoint is ejected for a while. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
  // mTLS: the peer proxy's chain or identity is not the one the config expects.
  'WEFT_ERR_UPSTREAM_TLS',
  'WEFT_ERR_UPSTREAM_IDENTITY',
]);

export function isConnectFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECT_CODES.has(code);
}

function ignore(): void {}

/** Drops a response body; destroying a body with no error listener would throw its AbortError. */
export function discardBody(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}

/** Reads a response body to its end and drops it, so its keep-alive connection can serve again. */
export function drainBody(body: Readable): void {
  body.on('error', ignore);
  body.resume();
}

/** Whether bytes an HTTP/1.1 parser refused open an HTTP/2 frame on stream 0 (the server's SETTINGS or GOAWAY). */
function looksLikeHttp2(raw: unknown): boolean {
  if (!Buffer.isBuffer(raw) || raw.length < 9) return false;
  return (raw[3] === 0x04 || raw[3] === 0x07) && (raw.readUInt32BE(5) & 0x7fffffff) === 0;
}

/**
 * An HTTP/1.1 exchange failed: if the endpoint answered with HTTP/2 frames (an h2c-only server behind a port without
 * appProtocol `kubernetes.io/h2c`), the error says so; it keeps its code, so metrics count it as before.
 */
export function explainProtocolMismatch(err: unknown, endpoint: EndpointState): unknown {
  const e = err as { code?: string; rawPacket?: unknown } | null;
  if (e?.code !== 'HPE_INVALID_CONSTANT' || !looksLikeHttp2(e.rawPacket)) return err;
  const message =
    `${endpoint.origin} answered HTTP/1.1 with HTTP/2 frames: it speaks h2c only, so its Service port needs ` +
    'appProtocol kubernetes.io/h2c';
  return Object.assign(new Error(message, { cause: err }), { code: e.code });
}

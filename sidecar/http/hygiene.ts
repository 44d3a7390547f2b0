// Header hygiene shared by every listener: what is never forwarded in either direction, and
// the checks a request must pass before the proxy looks at its route.
import type { IncomingMessage } from 'node:http';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';
import { isValidHost } from '../router/host.ts';
import { headerCount } from '../router/request-facts.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus those a proxy must not pass on: `expect` is
 * answered here, `http2-settings` only means something with `Upgrade: h2c`, `host` is set
 * explicitly for the upstream.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

/** Response headers that are hop-by-hop; the response is re-framed by Node. */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Header names listed in a Connection header: the sender marks them hop-by-hop. */
function connectionNames(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  const value = Array.isArray(connection) ? connection.join(',') : connection;
  let names: Set<string> | undefined;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive') continue;
    names ??= new Set();
    names.add(name);
  }
  return names;
}

/**
 * The request headers to send upstream: everything but hop-by-hop headers, those named in
 * Connection, and Host (the caller sets it). `te: trailers` survives for HTTP/2 upstreams (gRPC).
 */
export function upstreamRequestHeaders(
  req: Pick<IncomingMessage, 'headers' | 'rawHeaders' | 'headersDistinct'>,
  keepTeTrailers: boolean,
): HeaderMap {
  const headers = req.headers;
  const named = connectionNames(headers.connection);
  const out: HeaderMap = {};
  // Node joins repeated header lines with ", "; an intermediary must pass them on as it got them (RFC 9110 §5.3),
  // so a header sent twice stays two lines (values added by a header modifier upstream included).
  let distinct: NodeJS.Dict<string[]> | undefined;
  let keys = 0;
  for (const _ in headers) keys++;
  if (req.rawHeaders.length / 2 > keys) distinct = req.headersDistinct;
  for (const name in headers) {
    if (name === 'host' || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    const lines = distinct?.[name];
    out[name] = lines && lines.length > 1 ? lines : headers[name];
  }
  const te = headers.te;
  if (keepTeTrailers && typeof te === 'string' && te.toLowerCase() === 'trailers' && !named?.has('te'))
    out.te = 'trailers';
  return out;
}

/** The upstream response's headers to send to the client, hop-by-hop ones removed. */
export function downstreamResponseHeaders(headers: Record<string, string | string[] | undefined>): HeaderMap {
  const named = connectionNames(headers.connection);
  const out: HeaderMap = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || RESPONSE_HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface RequestLimits {
  /** Most request headers accepted; more → 431. Node's own maxHeaderSize bounds their bytes. */
  maxHeadersCount: number;
  /** Most body bytes; a larger Content-Length → 413 before anything is forwarded. 0 = no limit. */
  maxBodyBytes: number;
}

/** Whether an Upgrade header asks for h2c. */
export function asksH2c(upgrade: string | undefined): boolean {
  if (upgrade === undefined) return false;
  for (const token of upgrade.split(',')) if (token.trim().toLowerCase() === 'h2c') return true;
  return false;
}

/**
 * Checks every listener applies before routing; returns the error to answer with, or
 * undefined. Node's strict parser has already refused malformed framing.
 */
export function requestProblem(req: IncomingMessage, limits: RequestLimits): ProxyError | undefined {
  if (req.rawHeaders.length / 2 > limits.maxHeadersCount) {
    return new ProxyError(ProxyErrorCode.HeadersTooLarge, 431, `more than ${limits.maxHeadersCount} request headers`);
  }
  if (limits.maxBodyBytes > 0) {
    // Node's strict parser has checked it is one run of digits; a chunked body is counted as it streams.
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > limits.maxBodyBytes) {
      return new ProxyError(ProxyErrorCode.BodyTooLarge, 413, `request body longer than ${limits.maxBodyBytes} bytes`);
    }
  }
  if (asksH2c(req.headers.upgrade)) {
    return new ProxyError(ProxyErrorCode.H2cUpgradeRefused, 400, 'Upgrade: h2c is not accepted');
  }
  if (req.method === 'CONNECT') {
    return new ProxyError(ProxyErrorCode.BadRequest, 405, 'CONNECT is not supported');
  }
  // Node keeps the first of several Host headers; a proxy that disagrees with its backend on
  // which one counts can be steered, so several are refused.
  if (headerCount(req.rawHeaders, 'host') > 1) {
    return new ProxyError(ProxyErrorCode.BadRequest, 400, 'more than one Host header');
  }
  const host = req.headers.host;
  if (host !== undefined && !isValidHost(host)) {
    return new ProxyError(ProxyErrorCode.BadRequest, 400, 'malformed Host header');
  }
  return undefined;
}

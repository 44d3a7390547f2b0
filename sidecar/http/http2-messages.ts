// HTTP/2 requests and responses (node:http2's compatibility API) shaped like HTTP/1.1 ones, so
// the listeners' one request path serves both (RFC 9113 §8.3.1: an intermediary turns
// `:authority` into Host). A request's headers never include pseudo-headers, so nothing the
// proxy forwards can carry one; a response drops the connection-specific fields HTTP/2 forbids
// (§8.2.2) instead of failing on them. `Connection: close` has nothing to do there: a stream
// ends on its own, and a draining listener sends GOAWAY (http2-server.ts).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import {
  constants,
  Http2ServerRequest,
  Http2ServerResponse,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { ReadableOptions } from 'node:stream';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import { type RequestLimits, requestProblem } from './hygiene.ts';

/** Response fields with no meaning in HTTP/2 (RFC 9113 §8.2.2); node:http2 refuses to send them. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** An HTTP/2 request as an HTTP/1.1 request would look: the fields below shadow the compatibility API's. */
export class Http2Request extends Http2ServerRequest {
  /** Without pseudo-headers; `host` from `:authority`; `transfer-encoding: chunked` for a body of unknown length. */
  override readonly headers: IncomingHttpHeaders;
  /** As received, without pseudo-headers, `host` first. */
  override readonly rawHeaders: string[];
  /** Every line of each header, as IncomingMessage#headersDistinct (cookie crumbs joined again, §8.2.3). */
  readonly headersDistinct: NodeJS.Dict<string[]>;
  /** Why the request is malformed beyond what nghttp2 checks, if it is. */
  readonly problem: ProxyError | undefined;
  /** Octets of header names and values, pseudo-headers included (HTTP/1.1 counts the request line). */
  readonly headerBytes: number;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: ReadableOptions, raw: string[]) {
    super(stream, headers, options, raw);
    const out = Object.create(null) as IncomingHttpHeaders;
    const distinct = Object.create(null) as NodeJS.Dict<string[]>;
    const rest: string[] = [];
    let authority: string | undefined;
    let hosts: string[] | undefined;
    let bytes = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      const value = raw[i + 1];
      bytes += name.length + value.length;
      if (name.charCodeAt(0) === 58 /* : */) {
        if (name === ':authority') authority = value;
        continue;
      }
      if (name === 'host') {
        hosts ??= [];
        hosts.push(value);
        continue;
      }
      rest.push(name, value);
      const lines = distinct[name];
      if (lines === undefined) {
        distinct[name] = [value];
        out[name] = name === 'set-cookie' ? [value] : value;
      } else if (name === 'cookie') {
        // Split cookies are one field again for an HTTP/1.1 hop (RFC 9113 §8.2.3).
        lines[0] = `${lines[0]}; ${value}`;
        out.cookie = lines[0];
      } else {
        lines.push(value);
        const joined = out[name];
        out[name] = Array.isArray(joined) ? [...joined, value] : `${joined}, ${value}`;
      }
    }
    let problem: ProxyError | undefined;
    let host = authority;
    if (authority === undefined) {
      // No :authority: Host stands in (RFC 9113 §8.3.1), several of them are refused by the common checks.
      if (hosts !== undefined) {
        host = hosts[0];
        rest.unshift(...hosts.flatMap((h) => ['host', h]));
      }
    } else {
      if (hosts?.some((h) => h.toLowerCase() !== authority.toLowerCase())) {
        problem = new ProxyError(ProxyErrorCode.BadRequest, 400, 'Host differs from :authority');
      }
      rest.unshift('host', authority);
    }
    if (host !== undefined) {
      out.host = host;
      distinct.host = [host];
    }
    // A body without Content-Length whose end is not yet known: forwarded as HTTP/1.1 would carry it.
    if (!stream.endAfterHeaders && out['content-length'] === undefined) out['transfer-encoding'] = 'chunked';
    this.headers = out;
    this.rawHeaders = rest;
    this.headersDistinct = distinct;
    this.problem = problem;
    this.headerBytes = bytes;
  }
}

/** An HTTP/2 response that takes what the listeners write to an HTTP/1.1 one. */
export class Http2Response extends Http2ServerResponse<Http2Request> {
  override setHeader(name: string, value: number | string | readonly string[]): this {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) super.setHeader(name, value);
    return this;
  }

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(
    statusCode: number,
    statusMessage: string,
    headers?: OutgoingHttpHeaders | readonly string[],
  ): this;
  override writeHead(
    statusCode: number,
    a?: string | OutgoingHttpHeaders | readonly string[],
    b?: OutgoingHttpHeaders | readonly string[],
  ): this {
    // HTTP/2 has no reason phrase; the proxy only ever passes headers as an object.
    const headers = typeof a === 'string' ? b : a;
    if (headers === undefined || Array.isArray(headers)) return super.writeHead(statusCode, headers);
    let kept: OutgoingHttpHeaders | undefined;
    for (const name in headers as OutgoingHttpHeaders) {
      if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) continue;
      kept ??= { ...(headers as OutgoingHttpHeaders) };
      delete kept[name];
    }
    return super.writeHead(statusCode, kept ?? (headers as OutgoingHttpHeaders));
  }
}

// node:http2 reports a response finished once its stream is gone, even when the client reset it
// before the end: the exchange would take a client that left for one that got its answer, and
// leave the backend request running. Finished here means ended by the proxy and not reset in error.
Object.defineProperty(Http2Response.prototype, 'writableFinished', {
  get(this: Http2Response): boolean {
    const stream = this.stream;
    const code = stream.rstCode;
    return this.writableEnded && stream.writableFinished && (code === undefined || code === constants.NGHTTP2_NO_ERROR);
  },
});

export interface Http2RequestLimits extends RequestLimits {
  /** Most header octets; more → 431 (HTTP/1.1's maxHeaderSize). */
  readonly maxHeaderSize: number;
}

/** requestProblem for an HTTP/2 request (an Http2Request handed on as an IncomingMessage): its own checks first. */
export function http2RequestProblem(req: IncomingMessage, limits: Http2RequestLimits): ProxyError | undefined {
  const h2 = req as unknown as Http2Request;
  if (h2.problem !== undefined) return h2.problem;
  // SETTINGS_MAX_HEADER_LIST_SIZE binds nghttp2 only once the client has acknowledged it, which the
  // first requests of a connection do not wait for.
  if (h2.headerBytes > limits.maxHeaderSize) {
    return new ProxyError(
      ProxyErrorCode.HeadersTooLarge,
      431,
      `request headers larger than ${limits.maxHeaderSize} bytes`,
    );
  }
  return requestProblem(req, limits);
}

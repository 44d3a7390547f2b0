// The forwarding half of a request, shared by every listener: body handling, mirrors, the
// request timeout, the backend exchange, and streaming the response back with its filters.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import type { Logger } from 'pino';
import type { AccessLog } from '../access-log.ts';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { CompiledMirror } from '../filters/compiled-filters.ts';
import { addCorsResponseHeaders, type CompiledCors } from '../filters/cors.ts';
import { applyHeaderModifier, type CompiledHeaderModifier, type HeaderMap } from '../filters/header-modifier.ts';
import { mirrorChosen, sendMirror } from '../filters/mirror.ts';
import { errorReason, errorReasonOf, type ListenerStats, type ProxyMetrics, type RequestSeries } from '../metrics.ts';
import type { RequestTrace, Tracing } from '../tracing.ts';
import type { CompiledRetry } from '../router/route-table.ts';
import type { CompiledCluster, CompiledEndpoint } from '../upstream/cluster.ts';
import { AbortReason, dispatch } from '../upstream/dispatch.ts';
import { discardBody, type Forwarder } from '../upstream/forwarder.ts';
import { downstreamResponseHeaders } from './hygiene.ts';
import { replyError } from './local-reply.ts';

export interface Runtime {
  readonly forwarder: Forwarder;
  readonly log: Logger;
  readonly metrics?: ProxyMetrics;
  /** `maxBodyBytes`: a chunked body longer than this is cut and answered 413 (0 = no limit). */
  readonly limits?: { readonly maxBodyBytes: number };
  /** Set when the proxy drains: every response still to be written closes its connection. */
  draining?: boolean;
  /** Present when tracing is configured. */
  readonly tracing?: Tracing;
  /** Present with `--access-log`. */
  readonly accessLog?: AccessLog;
}

export interface ExchangePlan {
  readonly kind: 'forward';
  cluster: CompiledCluster;
  /** Path with query string, as sent upstream. */
  path: string;
  /** Upstream request headers, `host` included. */
  headers: HeaderMap;
  retry: CompiledRetry | undefined;
  requestTimeoutMs: number;
  backendTimeoutMs: number;
  mirrors: readonly CompiledMirror[];
  /** Applied to the response in order (rule level, then backend level). */
  responseHeaders: CompiledHeaderModifier | undefined;
  backendResponseHeaders: CompiledHeaderModifier | undefined;
  cors: CompiledCors | undefined;
}

/**
 * Bodies up to this size are read into memory when a retry or a mirror needs to send them
 * again; larger or unsized bodies are streamed once (no retry, mirror gets headers only).
 */
export const MAX_REPLAY_BODY = 64 * 1024;

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    // The client went away mid-body: there is nobody to answer.
    req.once('error', () => resolve(null));
    req.once('close', () => {
      if (!req.complete) resolve(null);
    });
  });
}

function tooLarge(rt: Runtime, res: ServerResponse, max: number): ProxyError {
  const err = new ProxyError(ProxyErrorCode.BodyTooLarge, 413, `request body longer than ${max} bytes`);
  rt.metrics?.localReply(err.status, err.code);
  // The rest of the body is not read: the connection cannot carry another request.
  replyError(res, err, { connection: 'close' });
  return err;
}

const CLIENT_ABORT = errorReason('client_abort');
const UPSTREAM_RESET = errorReason('upstream_reset');
const UPSTREAM_PROTOCOL = errorReason('upstream_protocol');
const BODY_TOO_LARGE = errorReason('body_too_large');
const REQUEST_TIMEOUT = errorReason('request_timeout');

/**
 * Forwards one request by `plan`. `series` and `listener` (with `start`, a performance.now()
 * taken when the request arrived) count it in the metrics when the response ends. `trace`: the spans of a
 * sampled request, finished with the response.
 */
export async function exchange(
  rt: Runtime,
  req: IncomingMessage,
  res: ServerResponse,
  plan: ExchangePlan,
  series?: RequestSeries,
  listener?: ListenerStats,
  start = 0,
  trace?: RequestTrace,
) {
  const abort = new AbortController();
  let streaming: Readable | undefined;
  /** The ERROR_REASONS index this request failed with, -1 while it has not. */
  let failure = -1;
  let endpoint: CompiledEndpoint | undefined;
  let errorCode: string | undefined;
  const wroteBefore = rt.accessLog === undefined ? 0 : req.socket.bytesWritten;
  if (listener !== undefined) listener.inFlight++;
  if (series !== undefined) series.inFlight++;
  const onClose = () => {
    if (listener !== undefined) listener.inFlight--;
    const finished = res.writableFinished;
    // Not finished and no failure of the proxy's or the upstream's: the client left (or a drain cut it).
    if (!finished && failure < 0) failure = CLIENT_ABORT;
    if (series !== undefined) {
      series.inFlight--;
      series.record(res.headersSent ? res.statusCode : 0, (performance.now() - start) / 1000);
      if (failure >= 0) series.error(failure);
      if (rt.accessLog !== undefined) {
        const { traceparent } = plan.headers;
        rt.accessLog.record(req, res, series, start, wroteBefore, endpoint?.state, errorCode, failure, traceparent);
      }
    }
    trace?.finish(res.headersSent ? res.statusCode : 0);
    if (finished) return;
    // The client left: abort the exchange, or cut the response body already flowing.
    abort.abort(AbortReason.Client);
    if (streaming !== undefined) discardBody(streaming);
  };
  res.once('close', onClose);
  const requestTimer =
    plan.requestTimeoutMs > 0
      ? setTimeout(() => abort.abort(AbortReason.RequestTimeout), plan.requestTimeoutMs)
      : undefined;

  let body: Buffer | Readable | null = null;
  if (hasBody(req)) {
    const length = Number(req.headers['content-length']);
    const replay = plan.retry !== undefined || plan.mirrors.length > 0;
    if (replay && req.headers['transfer-encoding'] === undefined && length <= MAX_REPLAY_BODY) {
      body = await readBody(req);
      if (body === null) {
        clearTimeout(requestTimer);
        return;
      }
    } else body = req;
  }
  // A body of unknown length (chunked) is counted as it streams, through a Transform that never
  // passes on the chunk crossing the limit; a Content-Length was checked before routing.
  const maxBody = rt.limits?.maxBodyBytes ?? 0;
  let overLimit = false;
  if (body === req && maxBody > 0 && req.headers['content-length'] === undefined) {
    let received = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received <= maxBody) {
          callback(null, chunk);
          return;
        }
        callback();
        if (overLimit) return;
        overLimit = true;
        failure = BODY_TOO_LARGE;
        req.unpipe(counted);
        // The response has started: it cannot become a 413, so the client's stream is reset.
        if (res.headersSent) res.destroy();
        else abort.abort(AbortReason.Client);
      },
    });
    req.pipe(counted);
    body = counted;
  }

  const method = req.method!;
  for (let i = 0; i < plan.mirrors.length; i++) {
    const m = plan.mirrors[i];
    if (mirrorChosen(m))
      sendMirror(rt.forwarder, m, method, plan.path, plan.headers, Buffer.isBuffer(body) ? body : null, trace);
  }

  const result = await dispatch(rt.forwarder, {
    cluster: plan.cluster,
    method,
    path: plan.path,
    headers: plan.headers,
    body,
    retry: plan.retry,
    backendTimeoutMs: plan.backendTimeoutMs,
    signal: abort.signal,
    stats: rt.metrics,
    trace,
  });
  clearTimeout(requestTimer);
  if (overLimit) {
    if (result.ok) discardBody(result.response.body);
    if (!res.destroyed) errorCode = tooLarge(rt, res, maxBody).code;
    return;
  }
  if (!result.ok) {
    const err = result.error;
    if (err === undefined) return; // the client left
    if (err.code !== ProxyErrorCode.UpstreamTimeout) rt.log.debug({ event: 'upstream.failed', err }, 'upstream failed');
    // A body the upstream never read would keep the connection busy: drop it with the answer.
    if (body !== null && !Buffer.isBuffer(body) && !req.complete) res.setHeader('connection', 'close');
    rt.metrics?.localReply(err.status, err.code);
    failure = abort.signal.reason === AbortReason.RequestTimeout ? REQUEST_TIMEOUT : errorReasonOf(err);
    errorCode = err.code;
    trace?.error(err.code);
    replyError(res, err);
    return;
  }
  endpoint = result.endpoint;
  const upstream = result.response;
  if (abort.signal.aborted) {
    discardBody(upstream.body);
    return;
  }
  if (rt.draining) res.setHeader('connection', 'close');
  const headers = downstreamResponseHeaders(upstream.headers);
  if (plan.responseHeaders) applyHeaderModifier(headers, plan.responseHeaders);
  if (plan.backendResponseHeaders) applyHeaderModifier(headers, plan.backendResponseHeaders);
  const origin = req.headers.origin;
  if (plan.cors && origin !== undefined) addCorsResponseHeaders(plan.cors, origin, headers);
  try {
    res.writeHead(upstream.statusCode, headers as Record<string, string | string[]>);
  } catch (err) {
    discardBody(upstream.body);
    failure = UPSTREAM_PROTOCOL;
    errorCode = ProxyErrorCode.UpstreamConnect;
    replyError(
      res,
      new ProxyError(ProxyErrorCode.UpstreamConnect, 502, `invalid upstream response: ${(err as Error).message}`),
    );
    return;
  }
  // pipe() rather than pipeline(): pipeline allocates and aborts an AbortController (and a
  // DOMException) per call, a measurable share of a proxied request; the two ends are tied by hand.
  streaming = upstream.body;
  upstream.body.once('error', (err) => {
    rt.log.debug({ event: 'upstream.failed', err }, 'upstream response body failed');
    if (failure < 0) failure = UPSTREAM_RESET;
    res.destroy(err);
  });
  upstream.body.pipe(res);
}

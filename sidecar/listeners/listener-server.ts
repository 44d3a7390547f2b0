// One listening socket of the proxy, with the hygiene every listener shares: Node's strict
// parser, bounded header bytes and count (431), explicit header/request/keep-alive timeouts
// (no slowloris), and no upgrade unless it is a WebSocket one the proxy forwards itself. The
// server looks up its compiled listener in the current config on every request, so a config
// swap changes what it serves without touching its connections. Gateway listeners also speak
// HTTP/2 (http2-server.ts), whose requests take the same handler after their own checks.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import type { CompiledListener } from '../compiled-config.ts';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import { exchange, type Runtime } from '../http/exchange.ts';
import { requestProblem } from '../http/hygiene.ts';
import { http2RequestProblem } from '../http/http2-messages.ts';
import { reply, replyError } from '../http/local-reply.ts';
import { type Decision, type DecisionLabels, decideRouted } from '../http/routed-request.ts';
import { forwardWebSocket, isWebSocketUpgrade, rawReply, rawReplyError } from '../http/websocket.ts';
import { errorReasonOf, type ListenerStats, NONE, type ProxyMetrics } from '../metrics.ts';
import type { RequestTrace, TraceStart } from '../tracing.ts';
import { PEER_IDENTITY_HEADER } from '../upstream/mtls.ts';
import { resolveGateway, sniContext } from './gateway.ts';
import { applyHttp2Limits, attachHttp2, HTTP2_ALPN } from './http2-server.ts';
import { resolveInbound } from './inbound.ts';
import { resolveMesh } from './mesh.ts';
import { type OriginalDestinationLookup, resolveOutbound } from './outbound.ts';

export interface ServerLimits {
  /** Bytes of request line plus headers; more → 431 (Node answers it). */
  maxHeaderSize: number;
  /** Request headers; more → 431. */
  maxHeadersCount: number;
  /** Time for a client to send the whole header section. */
  headersTimeoutMs: number;
  /** Time for a client to send the whole request, body included. */
  requestTimeoutMs: number;
  /** Idle time before a keep-alive client connection is closed. */
  keepAliveTimeoutMs: number;
  /** Bytes of a request body; more → 413. 0 = no limit. */
  maxBodyBytes: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxHeaderSize: 16 * 1024,
  maxHeadersCount: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
  maxBodyBytes: 0,
};

export interface ListenerContext {
  readonly runtime: Runtime;
  /** The listener compiled in the config serving now, or undefined once it left the config. */
  current(key: string): CompiledListener | undefined;
  readonly originalDestination: OriginalDestinationLookup | undefined;
  /** Read per request (header count, body size) and per new connection (header bytes); updated on config apply. */
  readonly limits: ServerLimits;
  readonly metrics: ProxyMetrics;
}

/** Applies header limits changed by a config to a bound server: its next connections get them. */
export function applyServerLimits(server: Server, limits: ServerLimits): void {
  // Node reads it from the server for each connection it accepts (not in @types/node).
  (server as Server & { maxHeaderSize: number }).maxHeaderSize = limits.maxHeaderSize;
  server.maxHeadersCount = limits.maxHeadersCount + 1; // one more than allowed, so an excess is seen
  applyHttp2Limits(server, limits);
}

const CLOSE = { connection: 'close' } as const;

/** What to do with a request that passed the hygiene checks; `out` gets the metric labels of the route taken. */
function decide(ctx: ListenerContext, listener: CompiledListener, req: IncomingMessage, out: DecisionLabels): Decision {
  if (listener.kind === 'inbound') return resolveInbound(listener, req);
  if (listener.kind === 'mesh') return resolveMesh(listener, req);
  const routed =
    listener.kind === 'gateway'
      ? resolveGateway(listener, req)
      : resolveOutbound(listener, ctx.originalDestination, req);
  return routed instanceof ProxyError ? routed : decideRouted(req, routed, out);
}

/** The checks a request passes before routing: requestProblem, or http2RequestProblem for HTTP/2. */
type ProblemCheck = (req: IncomingMessage, limits: ServerLimits) => ProxyError | undefined;

function decideChecked(
  ctx: ListenerContext,
  listener: CompiledListener | undefined,
  req: IncomingMessage,
  out: DecisionLabels,
  problem: ProblemCheck,
): Decision {
  if (listener === undefined) return new ProxyError(ProxyErrorCode.NoRoute, 503, 'listener is being removed');
  return problem(req, ctx.limits) ?? decide(ctx, listener, req, out);
}

/** Node's answers to requests its parser refused, with the proxy's error code (and counted). */
function clientErrorReply(err: NodeJS.ErrnoException): ProxyError | undefined {
  const code = err.code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW')
    return new ProxyError(ProxyErrorCode.HeadersTooLarge, 431, 'request header too large');
  if (code.startsWith('HPE_')) return new ProxyError(ProxyErrorCode.BadRequest, 400, 'malformed request');
  return undefined;
}

/**
 * `tlsOptions`: extra server options for a TLS listener (the mesh listener's client-certificate policy).
 * `http2`: serve HTTP/2 beside HTTP/1.1 (ALPN h2 with TLS, prior knowledge without), through the same handler.
 */
export function createListenerServer(
  key: string,
  tls: boolean,
  ctx: ListenerContext,
  tlsOptions?: TlsOptions,
  http2 = false,
): Server {
  const { limits } = ctx;
  const options = {
    insecureHTTPParser: false,
    maxHeaderSize: limits.maxHeaderSize,
    requireHostHeader: true,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks the two timeouts above; its 30 s default would let them overrun.
    connectionsCheckingInterval: 1_000,
    // Only WebSocket upgrades leave the HTTP parser; every other Upgrade (h2c included) stays a
    // plain request, where it is refused or has the header stripped.
    shouldUpgradeCallback: isWebSocketUpgrade,
  };
  const { metrics } = ctx;
  // The listener's metric label, looked up again only when a config swap replaces the compiled listener.
  let seen: CompiledListener | undefined;
  let stats!: ListenerStats;
  const current = (): CompiledListener | undefined => {
    const listener = ctx.current(key);
    if (listener !== seen && listener !== undefined) {
      seen = listener;
      stats = metrics.listener(listener.name);
    }
    // A request before the listener's config is swapped in (or after it left): no name to count it under.
    stats ??= metrics.listener(NONE);
    return listener;
  };
  // Reused by every request: deciding is synchronous, so one request's labels never meet another's.
  const out: DecisionLabels = { labels: undefined };
  // What spans say about this listener; updated with the listener's name on a config swap.
  const traceStart: TraceStart = { listener: NONE, kind: NONE, scheme: tls ? 'https' : 'http' };
  const handle = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean, problem: ProblemCheck) => {
    const start = performance.now();
    // The connection's bytes so far, for the access log's count of this response's.
    const wrote = ctx.runtime.accessLog === undefined ? 0 : req.socket.bytesWritten;
    const listener = current();
    const tracing = ctx.runtime.tracing;
    let trace: RequestTrace | undefined;
    if (tracing !== undefined) {
      traceStart.listener = stats.name;
      traceStart.kind = listener?.kind ?? NONE;
      trace = tracing.begin(req, traceStart);
    }
    // Draining: each answer tells the client to go elsewhere for its next request.
    if (ctx.runtime.draining) res.setHeader('connection', 'close');
    try {
      out.labels = undefined;
      out.parent = undefined;
      const decision = decideChecked(ctx, listener, req, out, problem);
      if (decision instanceof ProxyError) {
        metrics.localReply(decision.status, decision.code);
        // After a hygiene refusal the connection's state is not worth keeping; after a 413 the
        // body was not read.
        const s = decision.status;
        replyError(res, decision, s === 431 || s === 400 || s === 413 ? CLOSE : undefined);
        const series = (out.labels ?? metrics.none).series(stats);
        series.failed(decision, (performance.now() - start) / 1000);
        const accessLog = ctx.runtime.accessLog;
        if (accessLog !== undefined) {
          const reason = errorReasonOf(decision);
          accessLog.record(req, res, series, start, wrote, undefined, decision.code, reason, req.headers.traceparent);
        }
        if (trace !== undefined) {
          trace.route(out.labels, req.method!, out.parent);
          trace.error(decision.code);
          trace.finish(s);
        }
      } else if (decision.kind === 'local') {
        reply(res, decision.status, decision.body, decision.headers);
        const series = (out.labels ?? metrics.none).series(stats);
        series.record(decision.status, (performance.now() - start) / 1000);
        ctx.runtime.accessLog?.record(
          req,
          res,
          series,
          start,
          wrote,
          undefined,
          undefined,
          -1,
          req.headers.traceparent,
        );
        if (trace !== undefined) {
          trace.route(out.labels, req.method!, out.parent);
          trace.finish(decision.status);
        }
      } else {
        if (expectsContinue) res.writeContinue();
        const labels = out.labels ?? decision.cluster.labels ?? metrics.none;
        const series = labels.series(stats);
        if (tracing !== undefined) {
          tracing.propagate(decision.headers, trace);
          if (trace !== undefined) {
            trace.route(labels, req.method!, out.parent);
            const peer = listener?.kind === 'mesh' ? decision.headers[PEER_IDENTITY_HEADER] : undefined;
            if (typeof peer === 'string') trace.peer(peer);
          }
        }
        exchange(ctx.runtime, req, res, decision, series, stats, start, trace).catch((err: unknown) => {
          ctx.runtime.log.error({ event: 'request.failed', err }, 'exchange failed');
          if (!res.headersSent) replyError(res, new ProxyError(ProxyErrorCode.UpstreamConnect, 502, 'proxy error'));
          else res.destroy();
        });
      }
    } catch (err) {
      ctx.runtime.log.error({ event: 'request.failed', err }, 'request handler failed');
      if (!res.headersSent) replyError(res, new ProxyError(ProxyErrorCode.BadRequest, 500, 'internal proxy error'));
      else res.destroy();
    }
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => handle(req, res, false, requestProblem);
  // `Expect: 100-continue`: the client waits for a go-ahead, given only to requests that will be
  // forwarded, so a refused one (413 on its Content-Length) never sends its body.
  const onCheckContinue = (req: IncomingMessage, res: ServerResponse) => handle(req, res, true, requestProblem);
  const server: Server = tls
    ? (createHttpsServer({
        ...options,
        ...tlsOptions,
        ...(http2 ? { ALPNProtocols: HTTP2_ALPN } : undefined),
        SNICallback: (servername, cb) => {
          const l = ctx.current(key);
          cb(null, l?.kind === 'gateway' ? sniContext(l, servername) : undefined);
        },
      }) as unknown as Server)
    : createHttpServer(options);
  if (http2) {
    attachHttp2(server, tls, limits, {
      request: (req, res) => handle(req, res, false, http2RequestProblem),
      checkContinue: (req, res) => handle(req, res, true, http2RequestProblem),
      log: ctx.runtime.log,
    });
  }
  applyServerLimits(server, limits);
  server.on('request', onRequest);
  server.on('checkContinue', onCheckContinue);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: answer only when no response has started on the connection (the
    // response in progress is Node's `_httpMessage`), then close.
    const inProgress = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (socket.writable && !inProgress?.headersSent) {
      socket.once('finish', () => socket.destroy());
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        rawReply(socket, 408, '');
        return;
      }
      const answer = clientErrorReply(err);
      if (answer !== undefined) {
        metrics.localReply(answer.status, answer.code);
        rawReplyError(socket, answer);
        return;
      }
    }
    socket.destroy();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const start = performance.now();
    try {
      out.labels = undefined;
      const decision = decideChecked(ctx, current(), req, out, requestProblem);
      // Counted only when the proxy answers the upgrade itself; a tunnel handed to a backend is not (yet).
      if (decision instanceof ProxyError) {
        metrics.localReply(decision.status, decision.code);
        rawReplyError(socket, decision);
        (out.labels ?? metrics.none).series(stats).failed(decision, (performance.now() - start) / 1000);
      } else if (decision.kind === 'local') {
        rawReply(socket, decision.status, decision.body, decision.headers);
        (out.labels ?? metrics.none).series(stats).record(decision.status, (performance.now() - start) / 1000);
      } else forwardWebSocket(ctx.runtime, req, socket, head, decision);
    } catch (err) {
      ctx.runtime.log.error({ event: 'request.failed', err }, 'upgrade handler failed');
      socket.destroy();
    }
  });
  return server;
}

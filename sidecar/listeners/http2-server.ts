// HTTP/2 on a listener's port beside HTTP/1.1: the listening server stays the node:http(s) one,
// and each connection it accepts goes to a node:http2 server (never listening itself) when it
// speaks HTTP/2 — on TLS by ALPN (`h2`), in cleartext by its preface — or to the HTTP/1.1
// parser as before. HTTP/1.1 connections pay for that once, when they open; their requests do
// not. HTTP/2 requests reach the listener's one request handler as Http2Request/Http2Response.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { constants, createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Http2Request, Http2Response } from '../http/http2-messages.ts';
import { prefaceSniffer } from './connection-preface.ts';
import type { ServerLimits } from './listener-server.ts';

/** Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CONCURRENT_STREAMS = 128;

/** ALPN of an HTTPS listener that speaks HTTP/2: h2 preferred, HTTP/1.1 for everyone else. */
export const HTTP2_ALPN = ['h2', 'http/1.1'];

export interface Http2Handlers {
  readonly request: (req: IncomingMessage, res: ServerResponse) => void;
  /** `Expect: 100-continue` requests. */
  readonly checkContinue: (req: IncomingMessage, res: ServerResponse) => void;
  readonly log: Logger;
}

/** Header limits as HTTP/2 takes them, to tell when a config changed them. */
interface Http2Limits {
  readonly pairs: number;
  readonly bytes: number;
}

function http2Limits(limits: ServerLimits): Http2Limits {
  // The four pseudo-headers count too; one more than allowed, so an excess is answered 431 by
  // requestProblem rather than reset by nghttp2 (as the HTTP/1.1 side does).
  return { pairs: limits.maxHeadersCount + 5, bytes: limits.maxHeaderSize };
}

const limitUpdaters = new WeakMap<Server, (limits: ServerLimits) => void>();

/** Header limits changed by a config: the HTTP/2 connections a server accepts next get them. */
export function applyHttp2Limits(server: Server, limits: ServerLimits): void {
  limitUpdaters.get(server)?.(limits);
}

/** How often unfinished bodies are checked: node:http's connectionsCheckingInterval for HTTP/1.1 (listener-server.ts). */
const BODY_CHECK_INTERVAL_MS = 1_000;

/**
 * Times out a request whose body has not all arrived after its deadline, as HTTP/1.1's requestTimeout does: 408
 * written on the stream itself (not through the response, which stays unfinished so the exchange under way is
 * aborted like one whose client left), then the stream reset. One sweep per server, as node:http checks its
 * connections, instead of a timer and listeners per request.
 */
class BodyDeadlines {
  readonly #pending = new Map<Http2Request, number>();
  #timer: NodeJS.Timeout | undefined;

  add(req: Http2Request, ms: number): void {
    this.#pending.set(req, performance.now() + ms);
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#sweep, BODY_CHECK_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  readonly #sweep = (): void => {
    const now = performance.now();
    for (const [req, deadline] of this.#pending) {
      const stream = req.stream;
      if (req.readableEnded || stream.destroyed) this.#pending.delete(req);
      else if (now >= deadline) {
        this.#pending.delete(req);
        if (!stream.headersSent) stream.respond({ ':status': 408, 'content-length': '0' }, { endStream: true });
        stream.close(constants.NGHTTP2_CANCEL);
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  };
}

/** Makes `server` (node:http or node:https, not yet listening) serve HTTP/2 connections too. */
export function attachHttp2(server: Server, tls: boolean, limits: ServerLimits, handlers: Http2Handlers): void {
  const sessions = new Set<ServerHttp2Session>();
  const deadlines = new BodyDeadlines();
  const onSession = (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // Keep-alive: a connection with no stream open for this long is closed (GOAWAY). The timer
    // restarts on every frame, so it fires again once the last stream has finished.
    let open = 0;
    const closed = () => {
      open--;
    };
    session.on('stream', (stream) => {
      open++;
      stream.on('close', closed);
    });
    session.setTimeout(limits.keepAliveTimeoutMs, () => {
      if (open === 0) session.close();
    });
  };
  const onRequest = (req: Http2Request, res: Http2Response) => {
    if (!req.stream.endAfterHeaders) deadlines.add(req, limits.requestTimeoutMs);
    handlers.request(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  };
  const onCheckContinue = (req: Http2Request, res: Http2Response) => {
    if (!req.stream.endAfterHeaders) deadlines.add(req, limits.requestTimeoutMs);
    handlers.checkContinue(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  };
  type Server2 = Http2Server<typeof IncomingMessage, typeof ServerResponse, typeof Http2Request, typeof Http2Response>;
  const make = (l: Http2Limits): Server2 => {
    const h2 = createServer({
      Http2ServerRequest: Http2Request,
      Http2ServerResponse: Http2Response,
      maxHeaderListPairs: l.pairs,
      settings: { maxHeaderListSize: l.bytes, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    });
    h2.on('session', onSession);
    h2.on('request', onRequest);
    h2.on('checkContinue', onCheckContinue);
    // CONNECT gets the proxy's own refusal (405, counted), not node:http2's bare one.
    h2.on('connect', onRequest);
    h2.on('sessionError', (err) => handlers.log.debug({ event: 'http2.session-error', err }, 'HTTP/2 session error'));
    return h2;
  };
  let made = http2Limits(limits);
  let h2 = make(made);
  // Limits are options of the node:http2 server: a change makes a new one for the next
  // connections, while the ones open stay on the old server and its limits.
  limitUpdaters.set(server, (next) => {
    const l = http2Limits(next);
    if (l.pairs === made.pairs && l.bytes === made.bytes) return;
    made = l;
    h2 = make(l);
  });

  const toHttp2 = (socket: Socket) => {
    // node:http(s) accepts half-open connections; an HTTP/2 session only learns that its client
    // left when the socket closes, so a client's FIN must close it (else streams and the backend
    // requests behind them outlive the client).
    socket.allowHalfOpen = false;
    h2.emit('connection', socket);
  };
  if (tls) {
    // node:https parses HTTP/1.1 from 'secureConnection'; ALPN has chosen the protocol by then.
    const [http1] = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
    server.removeListener('secureConnection', http1);
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') toHttp2(socket);
      else http1.call(server, socket);
    });
  } else {
    const [http1] = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeListener('connection', http1);
    server.on(
      'connection',
      prefaceSniffer(() => limits.headersTimeoutMs, {
        // node:http2 reads the bytes already taken off the socket before any new ones.
        http2: toHttp2,
        http1: (socket, first) => {
          // The HTTP/1.1 parser now reads the socket's handle itself; the bytes already taken off
          // it go to the parser first, through its 'data' listener, before any new ones arrive.
          http1.call(server, socket);
          socket.emit('data', first);
        },
      }),
    );
  }

  // Closing (a drain, a listener leaving the config): node:http only knows its HTTP/1.1
  // connections. An HTTP/2 one is told GOAWAY and closes once its streams finish — the HTTP/2
  // way of closing a connection when idle — or is cut with the others.
  const closeIdle = server.closeIdleConnections;
  server.closeIdleConnections = function (this: Server) {
    closeIdle.call(this);
    for (const session of sessions) if (!session.closed) session.close();
  };
  const closeAll = server.closeAllConnections;
  server.closeAllConnections = function (this: Server) {
    closeAll.call(this);
    for (const session of sessions) session.destroy();
  };
}

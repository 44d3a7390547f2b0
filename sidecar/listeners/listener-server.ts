// One listening socket of the proxy, with the hygiene every listener shares: Node's strict
// parser, bounded header bytes and count (431), explicit header/request/keep-alive timeouts
// (no slowloris), and no upgrade unless it is a WebSocket one the proxy forwards itself. The
// server looks up its compiled listener in the current config on every request, so a config
// swap changes what it serves without touching its connections.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import type { CompiledListener } from '../compiled-config.ts';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import { exchange, type Runtime } from '../http/exchange.ts';
import { requestProblem } from '../http/hygiene.ts';
import { reply, replyError } from '../http/local-reply.ts';
import { type Decision, decideRouted } from '../http/routed-request.ts';
import { forwardWebSocket, isWebSocketUpgrade, rawReply, rawReplyError } from '../http/websocket.ts';
import { resolveGateway, sniContext } from './gateway.ts';
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
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxHeaderSize: 16 * 1024,
  maxHeadersCount: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
};

export interface ListenerContext {
  readonly runtime: Runtime;
  /** The listener compiled in the config serving now, or undefined once it left the config. */
  current(key: string): CompiledListener | undefined;
  readonly originalDestination: OriginalDestinationLookup | undefined;
  readonly limits: ServerLimits;
}

/** What to do with a request that passed the hygiene checks. */
function decide(ctx: ListenerContext, listener: CompiledListener, req: IncomingMessage): Decision {
  if (listener.kind === 'inbound') return resolveInbound(listener, req);
  if (listener.kind === 'mesh') return resolveMesh(listener, req);
  const routed =
    listener.kind === 'gateway'
      ? resolveGateway(listener, req)
      : resolveOutbound(listener, ctx.originalDestination, req);
  return routed instanceof ProxyError ? routed : decideRouted(req, routed);
}

function decideChecked(ctx: ListenerContext, key: string, req: IncomingMessage): Decision {
  const listener = ctx.current(key);
  if (listener === undefined) return new ProxyError(ProxyErrorCode.NoRoute, 503, 'listener is being removed');
  return requestProblem(req, ctx.limits) ?? decide(ctx, listener, req);
}

/** `tlsOptions`: extra server options for a TLS listener (the mesh listener's client-certificate policy). */
export function createListenerServer(key: string, tls: boolean, ctx: ListenerContext, tlsOptions?: TlsOptions): Server {
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
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    try {
      const decision = decideChecked(ctx, key, req);
      if (decision instanceof ProxyError) {
        // After a hygiene refusal the connection's state is not worth keeping.
        replyError(
          res,
          decision,
          decision.status === 431 || decision.status === 400 ? { connection: 'close' } : undefined,
        );
      } else if (decision.kind === 'local') reply(res, decision.status, decision.body, decision.headers);
      else {
        exchange(ctx.runtime, req, res, decision).catch((err: unknown) => {
          ctx.runtime.log.error({ err }, 'exchange failed');
          if (!res.headersSent) replyError(res, new ProxyError(ProxyErrorCode.UpstreamConnect, 502, 'proxy error'));
          else res.destroy();
        });
      }
    } catch (err) {
      ctx.runtime.log.error({ err }, 'request handler failed');
      if (!res.headersSent) replyError(res, new ProxyError(ProxyErrorCode.BadRequest, 500, 'internal proxy error'));
      else res.destroy();
    }
  };
  const server: Server = tls
    ? (createHttpsServer({
        ...options,
        ...tlsOptions,
        SNICallback: (servername, cb) => {
          const l = ctx.current(key);
          cb(null, l?.kind === 'gateway' ? sniContext(l, servername) : undefined);
        },
      }) as unknown as Server)
    : createHttpServer(options);
  server.maxHeadersCount = limits.maxHeadersCount + 1; // one more than allowed, so an excess is seen
  server.on('request', onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      const decision = decideChecked(ctx, key, req);
      if (decision instanceof ProxyError) rawReplyError(socket, decision);
      else if (decision.kind === 'local') rawReply(socket, decision.status, decision.body, decision.headers);
      else forwardWebSocket(ctx.runtime, req, socket, head, decision);
    } catch (err) {
      ctx.runtime.log.error({ err }, 'upgrade handler failed');
      socket.destroy();
    }
  });
  return server;
}

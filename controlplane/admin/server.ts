// The control plane's admin HTTP endpoint (default 127.0.0.1:15014: it tells who is connected and why configs were
// refused, which is for operators on the machine or behind `kubectl port-forward`, not for the network):
//   GET /ready     200 {"ready":true} once the control plane serves proxies, else 503 with the reasons
//   GET /readyz    the same (the kubelet's readiness probe in a cluster)
//   GET /healthz   200 {"ok":true} while the process answers (the kubelet's liveness probe)
//   GET /proxies   {"time":"…","proxies":[ProxyRecord…]}  the push server's record of every proxy (weft proxy-status)
//   GET /statuses  {"statuses":[StatusOut…]}              the statuses the translator computed
//   GET /runners   {"runners":[RunnerStatus…]}            the supervisor's view of each stage (when given)
//   GET /metrics   Prometheus text                         (when a registry is given)
// Every answer is JSON (but /metrics); anything else is 404, a method other than GET/HEAD 405.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, pino } from 'pino';
import type { ProxyRecord } from '../push/server.ts';
import type { RunnerStatus } from '../runtime/runner.ts';
import type { StatusOut } from '../translate/types.ts';

export const ADMIN_DEFAULT_PORT = 15014;

export interface Readiness {
  ready: boolean;
  /** Why not, one line each. */
  reasons?: string[];
}

export interface AdminServerOptions {
  /** Default 15014; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  ready: () => Readiness;
  proxies: () => ProxyRecord[];
  statuses: () => StatusOut[];
  runners?: () => RunnerStatus[];
  /** A prom-client Registry (or anything with its two members). */
  metrics?: { contentType: string; metrics(): Promise<string> };
  logger?: Logger;
  now?: () => number;
}

export interface AdminServer {
  readonly port: number;
  readonly host: string;
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : text);
}

export async function startAdminServer(o: AdminServerOptions): Promise<AdminServer> {
  const log = (o.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'admin' });
  const now = o.now ?? Date.now;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { code: 'WEFT_ERR_METHOD_NOT_ALLOWED', message: `${req.method} is not allowed` }, head);
      return;
    }
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    switch (path) {
      case '/healthz':
        sendJson(res, 200, { ok: true }, head);
        return;
      case '/ready':
      case '/readyz': {
        const r = o.ready();
        sendJson(
          res,
          r.ready ? 200 : 503,
          r.ready ? { ready: true } : { ready: false, reasons: r.reasons ?? [] },
          head,
        );
        return;
      }
      case '/proxies':
        sendJson(res, 200, { time: new Date(now()).toISOString(), proxies: o.proxies() }, head);
        return;
      case '/statuses':
        sendJson(res, 200, { statuses: o.statuses() }, head);
        return;
      case '/runners':
        if (o.runners) {
          sendJson(res, 200, { runners: o.runners() }, head);
          return;
        }
        break;
      case '/metrics':
        if (o.metrics) {
          const text = await o.metrics.metrics();
          res.writeHead(200, { 'content-type': o.metrics.contentType, 'cache-control': 'no-store' });
          res.end(head ? undefined : text);
          return;
        }
        break;
    }
    sendJson(res, 404, { code: 'WEFT_ERR_NOT_FOUND', message: `no admin endpoint ${path}` }, head);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ event: 'admin.failed', err, path: req.url }, 'admin request failed');
      if (!res.headersSent) sendJson(res, 500, { code: 'WEFT_ERR_INTERNAL', message: 'internal error' }, false);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? ADMIN_DEFAULT_PORT, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  log.info({ event: 'admin.listening', url }, `control plane admin on ${url}`);
  return {
    port: address.port,
    host,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// The admin port: liveness, readiness, Prometheus metrics, a dump of the config being served,
// `POST /shutdown`, which drains the proxy (it answers at once; the drain runs on), and the app's probes that
// kubelet sends through the proxy (`/app-health/<container>/<probe>`, performed by app-health.ts).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ProbeOutcome } from './app-health.ts';
import { APP_HEALTH_PREFIX } from './config/app-probes.ts';
import type { ProxyConfig } from './config/proxy-config.ts';

export interface AdminSource {
  /** The config being served, or undefined before the first valid one. */
  config(): ProxyConfig | undefined;
  /** With a config: why the proxy is still not ready (a sidecar without a workload certificate), else undefined. */
  notReady?(): string | undefined;
  /** True once a drain has started: /ready answers 503 from then on. */
  draining?(): boolean;
  /** The Prometheus exposition text for /metrics. */
  metrics?(): Promise<string>;
  metricsContentType?: string;
  /** Starts a drain (POST /shutdown). */
  shutdown?(): void;
  /** Performs the app probe behind an `/app-health/…` path; undefined when there is none at that path. */
  appHealth?(path: string, userAgent: string | undefined): Promise<ProbeOutcome> | undefined;
}

const TEXT = 'text/plain; charset=utf-8';

const REDACTED = '[redacted]';

/** The config with every private key replaced, safe to show to whoever reaches the admin port. */
export function redactConfig(config: ProxyConfig): ProxyConfig {
  const tlsCertificates: ProxyConfig['tlsCertificates'] = {};
  for (const [key, cert] of Object.entries(config.tlsCertificates)) {
    tlsCertificates[key] = { certChain: cert.certChain, privateKey: REDACTED };
  }
  return { ...config, tlsCertificates };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

export function createAdminServer(source: AdminSource): Server {
  return createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000 },
    (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/shutdown') {
        // A state change: POST only, so a crawler or a probe pointed at the wrong path cannot drain the proxy.
        if (req.method !== 'POST' || source.shutdown === undefined) {
          res.setHeader('allow', 'POST');
          send(res, 405, TEXT, 'method not allowed: POST /shutdown\n');
          return;
        }
        source.shutdown();
        send(res, 200, TEXT, 'draining\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, TEXT, 'method not allowed\n');
        return;
      }
      if (path.startsWith(APP_HEALTH_PREFIX)) {
        const outcome = source.appHealth?.(path, req.headers['user-agent']);
        if (outcome === undefined) send(res, 404, TEXT, `no app probe at ${path}\n`);
        // 503, not 500: kubelet counts any status of 400 and above as a failed probe, and 503 says "not healthy".
        else outcome.then((o) => send(res, o.ok ? 200 : 503, TEXT, `${o.message}\n`));
        return;
      }
      const config = source.config();
      switch (path) {
        case '/live':
          send(res, 200, TEXT, 'live\n');
          return;
        case '/metrics':
          if (source.metrics === undefined) break;
          source.metrics().then(
            (text) => send(res, 200, source.metricsContentType ?? TEXT, text),
            (err: unknown) => send(res, 500, TEXT, `metrics failed: ${(err as Error).message}\n`),
          );
          return;
        case '/ready': {
          const blocker = source.draining?.() ? 'draining' : config ? source.notReady?.() : 'no valid config yet';
          if (blocker === undefined) send(res, 200, 'text/plain; charset=utf-8', 'ready\n');
          else send(res, 503, 'text/plain; charset=utf-8', `${blocker}\n`);
          return;
        }
        case '/config_dump':
          if (config) send(res, 200, 'application/json', `${JSON.stringify(redactConfig(config), null, 2)}\n`);
          else send(res, 503, 'text/plain; charset=utf-8', 'no valid config yet\n');
          return;
      }
      send(res, 404, TEXT, 'not found\n');
    },
  );
}

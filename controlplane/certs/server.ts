// The mesh CA's endpoint: `POST /v1/certificates` over server-authenticated TLS (the proxy has no certificate yet;
// it proves itself with its token). The serving certificate is issued by the CA itself and renewed at two thirds
// of its lifetime. Every answer is JSON; failures carry a stable code and never a stack trace. One log line per
// issuance and per refusal, with the reason code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import {
  CA_CERTIFICATES_PATH,
  CA_DEFAULT_PORT,
  CA_ERROR_STATUS,
  CA_MAX_REQUEST_BYTES,
  type CaErrorCode,
  type CertificateResponse,
  CertificateRequestSchema,
} from '../../sidecar/config/ca-api.ts';
import { DEFAULT_LEAF_LIFETIME_MS, type MeshCA } from './ca.ts';
import { CertRequestError } from './errors.ts';
import { identityKey, spiffeIdOf, type WorkloadIdentity } from './identity.ts';
import { DEFAULT_RATE_LIMIT, type RateLimitOptions, RateLimiter } from './rate-limit.ts';
import type { TokenVerifier } from './tokens.ts';

/** Names the serving certificate always carries; `serverNames` adds to them (e.g. the in-cluster Service name). */
export const CA_SERVER_DNS_NAMES = ['weft-ca', 'localhost'];
export const CA_SERVER_IPS = ['127.0.0.1'];
const SERVING_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** What the CA endpoint reports to the control plane's metrics (ControlPlaneMetrics implements it). */
export interface CaMetrics {
  /** One certificate request: issued, refused (`reason` its WEFT_ERR code) or failed (WEFT_ERR_INTERNAL). */
  certificateRequest(result: 'issued' | 'refused' | 'failed', reason?: string): void;
}

export interface CAServerOptions {
  ca: MeshCA;
  verifier: TokenVerifier;
  /** Default 15012; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1; a cluster deployment passes 0.0.0.0 or `::`. */
  host?: string;
  /** Extra names for the serving certificate. */
  serverNames?: { dnsNames?: string[]; ips?: string[] };
  /** Lifetime of workload leaves (default 24 h). */
  leafLifetimeMs?: number;
  /** Per-identity limit; default 100 at once, 10 per second. */
  rateLimit?: Omit<RateLimitOptions, 'now'>;
  logger?: Logger;
  now?: () => number;
  metrics?: CaMetrics;
}

export interface CAServer {
  readonly port: number;
  readonly host: string;
  /** `https://<host>:<port>`, for clients on this machine. */
  readonly url: string;
  /** The trust bundle a client needs to authenticate this server (the CA's roots). */
  readonly rootCAsPem: string;
  close(): Promise<void>;
}

class HttpRefusal extends CertRequestError {}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Reads at most CA_MAX_REQUEST_BYTES; more is a 413 refusal (the connection is closed afterwards). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > CA_MAX_REQUEST_BYTES) {
    return Promise.reject(
      new HttpRefusal('WEFT_ERR_BODY_TOO_LARGE', `request body over ${CA_MAX_REQUEST_BYTES} bytes`, { declared }),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > CA_MAX_REQUEST_BYTES) {
        req.off('data', onData);
        reject(new HttpRefusal('WEFT_ERR_BODY_TOO_LARGE', `request body over ${CA_MAX_REQUEST_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Discards the rest of a request body, up to DRAIN_MAX_BYTES or DRAIN_MAX_MS, whichever comes first. */
const DRAIN_MAX_BYTES = 1024 * 1024;
const DRAIN_MAX_MS = 1000;
function drain(req: IncomingMessage): Promise<void> {
  if (req.complete) return Promise.resolve();
  return new Promise((resolve) => {
    let size = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_MAX_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MAX_MS);
    req.on('data', onData);
    req.on('end', done);
    req.on('error', done);
    req.resume();
  });
}

const mediaType = (header: string | undefined) => (header ?? '').split(';')[0].trim().toLowerCase();

/** Starts the CA endpoint; resolves once it listens. */
export async function startCAServer(options: CAServerOptions): Promise<CAServer> {
  const { ca, verifier } = options;
  const now = options.now ?? Date.now;
  const log = (options.logger ?? pino({ name: 'weft-ca' })).child({ component: 'ca' });
  const limiter = new RateLimiter({ ...DEFAULT_RATE_LIMIT, ...options.rateLimit, now });
  const leafLifetimeMs = options.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS;
  const names = {
    dnsNames: [...new Set([...CA_SERVER_DNS_NAMES, ...(options.serverNames?.dnsNames ?? [])])],
    ips: [...new Set([...CA_SERVER_IPS, ...(options.serverNames?.ips ?? [])])],
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, remote: string) => {
    let identity: WorkloadIdentity | undefined;
    try {
      const path = (req.url ?? '').split('?')[0];
      if (path !== CA_CERTIFICATES_PATH)
        throw new HttpRefusal('WEFT_ERR_NOT_FOUND', `no such endpoint; use POST ${CA_CERTIFICATES_PATH}`);
      if (req.method !== 'POST') throw new HttpRefusal('WEFT_ERR_METHOD_NOT_ALLOWED', 'use POST');
      if (mediaType(req.headers['content-type']) !== 'application/json') {
        throw new HttpRefusal('WEFT_ERR_UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json');
      }
      const body = await readBody(req);
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        throw new HttpRefusal('WEFT_ERR_REQUEST_INVALID', 'body is not JSON');
      }
      const parsed = CertificateRequestSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.length ? issue.path.join('.') : '(body)';
        throw new HttpRefusal('WEFT_ERR_REQUEST_INVALID', `${where}: ${issue?.message ?? 'invalid'}`);
      }
      identity = await verifier.verify(parsed.data.token);
      const waitMs = limiter.take(identityKey(identity));
      if (waitMs > 0) {
        throw new HttpRefusal('WEFT_ERR_RATE_LIMITED', 'too many certificate requests for this identity', {
          retryAfterMs: waitMs,
        });
      }
      const issued = ca.issue({ csrPem: parsed.data.csr, identity, lifetimeMs: leafLifetimeMs });
      log.info(
        {
          event: 'certificate.issued',
          identity: issued.spiffeId,
          pod: identity.pod,
          serial: issued.serialNumber,
          notAfter: issued.notAfter.toISOString(),
          keyBits: issued.keyBits,
          ...(issued.ignoredExtensions.length > 0 ? { ignoredExtensions: issued.ignoredExtensions } : {}),
          remote,
        },
        'certificate issued',
      );
      options.metrics?.certificateRequest('issued');
      const response: CertificateResponse = {
        certChain: issued.certChainPem,
        rootCAs: issued.rootCAsPem,
        notAfter: issued.notAfter.toISOString(),
      };
      send(res, 200, response);
    } catch (err) {
      if (err instanceof CertRequestError) {
        log.warn(
          {
            event: 'certificate.refused',
            code: err.code,
            status: err.status,
            reason: err.message,
            ...(identity ? { identity: spiffeIdOf(ca.trustDomain, identity), pod: identity.pod } : {}),
            ...err.details,
            remote,
          },
          'certificate request refused',
        );
        options.metrics?.certificateRequest('refused', err.code);
        const headers: Record<string, string> = {};
        if (err.code === 'WEFT_ERR_RATE_LIMITED') {
          headers['retry-after'] = String(Math.max(1, Math.ceil(Number(err.details.retryAfterMs) / 1000)));
        }
        if (err.code === 'WEFT_ERR_METHOD_NOT_ALLOWED') headers.allow = 'POST';
        if (err.code === 'WEFT_ERR_BODY_TOO_LARGE') {
          // Do not keep the connection; but read (and drop) a little more of the body first, so the client is
          // not reset while still sending and gets to read this answer.
          headers.connection = 'close';
          await drain(req);
        }
        send(res, err.status, { code: err.code, message: err.message }, headers);
        return;
      }
      // A bug or a broken dependency: the details go to the log only.
      const code: CaErrorCode = 'WEFT_ERR_INTERNAL';
      options.metrics?.certificateRequest('failed', code);
      log.error(
        { event: 'certificate.refused', code, status: CA_ERROR_STATUS[code], err, remote },
        'certificate request failed',
      );
      if (!res.headersSent) send(res, CA_ERROR_STATUS[code], { code, message: 'internal error in the mesh CA' });
    }
  };

  let serving = ca.issueServing(names, SERVING_LIFETIME_MS);
  const server: Server = createServer({
    key: serving.keyPem,
    cert: serving.certChainPem,
    minVersion: 'TLSv1.2',
    requestTimeout: 10_000,
    headersTimeout: 5_000,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    handle(req, res, remote).catch((err) => {
      log.error({ err }, 'CA request handler failed');
      res.destroy();
    });
  });
  server.on('tlsClientError', (err) => log.debug({ event: 'tls.error', err: err.message }, 'TLS handshake failed'));

  // Renew the serving certificate at two thirds of its lifetime; open connections keep the old one.
  let renewTimer: NodeJS.Timeout | undefined;
  const scheduleRenewal = () => {
    const delay = Math.max(1000, ((serving.notAfter.getTime() - now()) * 2) / 3);
    renewTimer = setTimeout(() => {
      try {
        serving = ca.issueServing(names, SERVING_LIFETIME_MS);
        server.setSecureContext({ key: serving.keyPem, cert: serving.certChainPem });
        log.info({ event: 'serving-certificate.renewed', notAfter: serving.notAfter.toISOString() }, 'renewed');
      } catch (err) {
        log.error({ err }, 'renewing the CA serving certificate failed; retrying');
      }
      scheduleRenewal();
    }, delay);
    renewTimer.unref();
  };
  scheduleRenewal();

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? CA_DEFAULT_PORT, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  // A wildcard bind is reached on loopback from this machine.
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  log.info({ event: 'ca.listening', host, port, trustDomain: ca.trustDomain }, 'mesh CA listening');

  return {
    port,
    host,
    url: `https://${urlHost}:${port}`,
    rootCAsPem: ca.rootCAsPem,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(renewTimer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

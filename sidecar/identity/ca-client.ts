// One certificate request to the mesh CA over server-authenticated TLS: the CA's certificate must chain to the
// roots this proxy was given (nothing else: not the system store) and name the host asked for.
import { request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import {
  CA_CERTIFICATES_PATH,
  CaErrorBodySchema,
  type CertificateRequest,
  type CertificateResponse,
  CertificateResponseSchema,
} from '../config/ca-api.ts';
import { IdentityError } from './errors.ts';

/** Largest answer read (a chain and a bundle are a few KiB). */
const MAX_RESPONSE_BYTES = 256 * 1024;

export interface CaClientOptions {
  /** `https://host:port` of the CA. */
  url: string;
  /** PEM roots that authenticate the CA's serving certificate. */
  trustedRootsPem: string;
  /** Name to check the CA's certificate against (and send as SNI) instead of the URL's host. */
  serverName?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export function requestCertificate(options: CaClientOptions, body: CertificateRequest): Promise<CertificateResponse> {
  const base = new URL(options.url);
  if (base.protocol !== 'https:') throw new TypeError(`CA URL must be https: ${options.url}`);
  const host = base.hostname.replace(/^\[|\]$/g, '');
  const expectedName = options.serverName ?? host;
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        protocol: 'https:',
        host,
        port: base.port || 443,
        path: CA_CERTIFICATES_PATH,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        ca: options.trustedRootsPem,
        rejectUnauthorized: true,
        // SNI cannot carry an IP address.
        ...(isIP(expectedName) ? {} : { servername: expectedName }),
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(expectedName, cert),
        timeout: options.timeoutMs ?? 10_000,
        signal: options.signal,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            res.destroy();
            reject(
              new IdentityError('WEFT_ERR_CA_RESPONSE_INVALID', `CA answer larger than ${MAX_RESPONSE_BYTES} bytes`),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => reject(new IdentityError('WEFT_ERR_CA_UNREACHABLE', err.message, { cause: err })));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          if (status === 200) {
            const parsed = CertificateResponseSchema.safeParse(json);
            if (parsed.success) resolve(parsed.data);
            else reject(new IdentityError('WEFT_ERR_CA_RESPONSE_INVALID', 'CA answer is not a CertificateResponse'));
            return;
          }
          const error = CaErrorBodySchema.safeParse(json);
          const retryAfter = Number(res.headers['retry-after']);
          reject(
            new IdentityError(
              'WEFT_ERR_CA_REFUSED',
              error.success
                ? `CA refused (${status} ${error.data.code}): ${error.data.message}`
                : `CA answered ${status}`,
              {
                status,
                ...(error.success ? { caCode: error.data.code } : {}),
                ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
              },
            ),
          );
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the CA within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', (err) =>
      reject(new IdentityError('WEFT_ERR_CA_UNREACHABLE', `CA request failed: ${err.message}`, { cause: err })),
    );
    req.end(payload);
  });
}

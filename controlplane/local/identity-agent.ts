// Workload certificates for the proxies of `weft local`. `weft proxy` reads its mTLS credentials from files
// (`--cert --key --roots`, reloaded on change); in a cluster something mounts them, here this agent does what a
// node agent does for each proxy: makes a fresh RSA key, builds a CSR for the proxy's SPIFFE ID, sends it with the
// proxy's bootstrap token to the mesh CA's HTTPS endpoint (so the CA checks the token and derives the identity from
// it, as for any proxy), writes the three files, and renews at two thirds of the lifetime, retrying failures with a
// doubling backoff. The private key never leaves this machine's state directory (0600).
import { generateKeyPair, type KeyObject, sign } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { Logger } from 'pino';
import {
  CA_CERTIFICATES_PATH,
  CertificateResponseSchema,
  workloadCommonName,
  workloadSpiffeId,
} from '../../sidecar/config/ca-api.ts';
import { localFileName } from './file-name.ts';

const generateKeyPairAsync = promisify(generateKeyPair);
const pki = forge.pki as typeof forge.pki & {
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};

export interface IdentityFiles {
  cert: string;
  key: string;
  roots: string;
}

export interface AgentOptions {
  /** `https://host:port` of the mesh CA. */
  caUrl: string;
  /** PEM roots that authenticate the CA. */
  caRootsPem: string;
  trustDomain: string;
  /** Directory the credential files go under (one subdirectory per proxy). */
  dir: string;
  log: Logger;
  /** Renew at this fraction of the lifetime. Default 2/3. */
  renewAt?: number;
}

interface Held {
  files: IdentityFiles;
  token: () => string;
  timer: NodeJS.Timeout | undefined;
  failures: number;
  notAfter: Date | undefined;
  spiffeId: string;
  commonName: string;
}

/** A PKCS#10 CSR (PEM) for `spiffeId`, signed by `privateKey` with node:crypto. */
export function buildWorkloadCsr(
  keys: { privateKey: KeyObject; publicKey: KeyObject },
  spiffeId: string,
  cn: string,
): string {
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.publicKeyFromPem(keys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject([{ shortName: 'CN', value: cn }]);
  csr.setAttributes([
    { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] },
  ]);
  csr.signatureOid = csr.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption;
  csr.certificationRequestInfo = pki.getCertificationRequestInfo(csr);
  const info = Buffer.from(forge.asn1.toDer(csr.certificationRequestInfo).getBytes(), 'binary');
  csr.signature = sign('sha256', info, keys.privateKey).toString('binary');
  return pki.certificationRequestToPem(csr);
}

async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, file);
}

function post(url: URL, body: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca,
        // The CA's serving certificate names weft-ca, localhost and the address it listens on.
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the CA did not answer within 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

export class IdentityAgent {
  readonly #o: AgentOptions;
  readonly #held = new Map<string, Held>();
  #closed = false;

  constructor(o: AgentOptions) {
    this.#o = o;
  }

  /**
   * Issues (once) and keeps renewing the credentials of proxy `id`, running as `workload` as proven by `token()`;
   * resolves with the file paths once they hold a certificate.
   */
  async ensure(
    id: string,
    workload: { namespace: string; serviceAccount: string },
    token: () => string,
  ): Promise<IdentityFiles> {
    const spiffeId = workloadSpiffeId(this.#o.trustDomain, workload.namespace, workload.serviceAccount);
    const commonName = workloadCommonName(workload.namespace, workload.serviceAccount);
    const existing = this.#held.get(id);
    if (existing && existing.spiffeId === spiffeId) return existing.files;
    if (existing) this.release(id);
    const dir = path.join(this.#o.dir, localFileName(id));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = {
      cert: path.join(dir, 'cert.pem'),
      key: path.join(dir, 'key.pem'),
      roots: path.join(dir, 'roots.pem'),
    };
    const held: Held = { files, token, timer: undefined, failures: 0, notAfter: undefined, spiffeId, commonName };
    this.#held.set(id, held);
    await this.#issue(id, held);
    return files;
  }

  /** When the current certificate of `id` expires. */
  notAfter(id: string): Date | undefined {
    return this.#held.get(id)?.notAfter;
  }

  /** Stops renewing `id` (its files stay until the state dir is cleaned). */
  release(id: string): void {
    const h = this.#held.get(id);
    if (h) clearTimeout(h.timer);
    this.#held.delete(id);
  }

  close(): void {
    this.#closed = true;
    for (const h of this.#held.values()) clearTimeout(h.timer);
    this.#held.clear();
  }

  /** Renews `id` now (tests: rotation under load). */
  async renew(id: string): Promise<void> {
    const h = this.#held.get(id);
    if (h) await this.#issue(id, h);
  }

  async #issue(id: string, h: Held): Promise<void> {
    const keys = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
    const csr = buildWorkloadCsr(keys, h.spiffeId, h.commonName);
    const res = await post(
      new URL(CA_CERTIFICATES_PATH, this.#o.caUrl),
      JSON.stringify({ csr, token: h.token() }),
      this.#o.caRootsPem,
    );
    if (res.status !== 200) {
      let why = res.text;
      try {
        const e = JSON.parse(res.text) as { code?: string; message?: string };
        why = `${e.code}: ${e.message}`;
      } catch {}
      throw new Error(`the CA refused the certificate of ${id} (HTTP ${res.status}): ${why}`);
    }
    const answer = CertificateResponseSchema.parse(JSON.parse(res.text));
    // Roots, then key, then cert: the proxy reloads on the cert's change and checks the three fit together.
    await writeAtomic(h.files.roots, answer.rootCAs, 0o644);
    await writeAtomic(h.files.key, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    await writeAtomic(h.files.cert, answer.certChain, 0o644);
    h.notAfter = new Date(answer.notAfter);
    h.failures = 0;
    this.#o.log.info(
      { event: 'local.cert-issued', proxyId: id, notAfter: answer.notAfter },
      'workload certificate issued',
    );
    this.#schedule(id, h, (h.notAfter.getTime() - Date.now()) * (this.#o.renewAt ?? 2 / 3));
  }

  #schedule(id: string, h: Held, inMs: number): void {
    if (this.#closed || this.#held.get(id) !== h) return;
    clearTimeout(h.timer);
    // setTimeout holds at most ~24.8 days; a 24 h leaf renews well within that.
    h.timer = setTimeout(
      () => {
        this.#issue(id, h).catch((err: unknown) => {
          h.failures++;
          const retry = Math.min(60_000, 1000 * 2 ** (h.failures - 1));
          this.#o.log.warn({ event: 'local.cert-renew-failed', proxyId: id, err, retryInMs: retry }, 'renewal failed');
          this.#schedule(id, h, retry);
        });
      },
      Math.max(1000, Math.min(inMs, 2 ** 31 - 1)),
    );
    h.timer.unref();
  }
}

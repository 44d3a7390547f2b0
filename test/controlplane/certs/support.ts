// Shared by the CA and workload-identity tests: keys, hand-built CSRs (including the abusive ones), a fake clock
// and a log capture. Not a test file (no `.test.ts`).
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { Writable } from 'node:stream';
import forge from 'node-forge';
import { pino, type Logger } from 'pino';
import type { Clock } from '../../../sidecar/identity/rotation.ts';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const keyCache = new Map<string, KeyPair>();
/** An RSA key pair, made once per size per test file (keygen is the slow part of these tests). */
export function rsaKeys(bits = 2048, fresh = false): KeyPair {
  const cached = keyCache.get(String(bits));
  if (cached && !fresh) return cached;
  const pair = generateKeyPairSync('rsa', { modulusLength: bits });
  if (!fresh) keyCache.set(String(bits), pair);
  return pair;
}

const pem = (k: KeyObject, type: 'spki' | 'pkcs8') => k.export({ type, format: 'pem' }).toString();
export const forgePublic = (k: KeyPair) => forge.pki.publicKeyFromPem(pem(k.publicKey, 'spki'));
export const forgePrivate = (k: KeyPair) => forge.pki.privateKeyFromPem(pem(k.privateKey, 'pkcs8'));

export interface CsrSpec {
  keys?: KeyPair;
  /** Subject CN; omitted when undefined. */
  cn?: string;
  /** forge altNames, e.g. `{ type: 6, value: 'spiffe://…' }`, `{ type: 2, value: 'a.example' }`. */
  altNames?: object[];
  /** Further requested extensions (forge form). */
  extensions?: object[];
  /** Digest for the signature; default sha256. */
  md?: 'sha1' | 'sha256';
  /** Sign with this key instead of `keys` (a CSR whose signature does not match its public key). */
  signWith?: KeyPair;
}

/** A CSR built and signed with node-forge, as an arbitrary (possibly hostile) client could. */
export function makeCsr(spec: CsrSpec = {}): string {
  const keys = spec.keys ?? rsaKeys();
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forgePublic(keys);
  csr.setSubject(spec.cn === undefined ? [] : [{ shortName: 'CN', value: spec.cn }]);
  const extensions = [
    ...(spec.altNames ? [{ name: 'subjectAltName', altNames: spec.altNames }] : []),
    ...(spec.extensions ?? []),
  ];
  if (extensions.length > 0) csr.setAttributes([{ name: 'extensionRequest', extensions }]);
  const md = spec.md === 'sha1' ? forge.md.sha1.create() : forge.md.sha256.create();
  csr.sign(forgePrivate(spec.signWith ?? keys), md);
  return forge.pki.certificationRequestToPem(csr);
}

// --- a little DER, to build what forge cannot (EC CSRs) ----------------------------------------------------------
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
export const tlv = (tag: number, ...contents: Buffer[]) => {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
};
const OID_ECDSA_SHA256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/** A valid PKCS#10 CSR for an EC key (P-256 by default), signed ecdsa-with-SHA256 by node:crypto. */
export function makeEcCsr(curve = 'P-256'): string {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const info = tlv(0x30, tlv(0x02, Buffer.from([0])), tlv(0x30), spki, tlv(0xa0));
  const signature = sign('sha256', info, privateKey);
  const der = tlv(0x30, info, tlv(0x30, tlv(0x06, OID_ECDSA_SHA256)), tlv(0x03, Buffer.from([0]), signature));
  return toPem('CERTIFICATE REQUEST', der);
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function pemToDer(text: string): Buffer {
  return Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** An intermediate CA certificate and key issued by `root` (built with forge in the test, as an operator's PKI would). */
export function makeIntermediate(root: { certPem: string; keyPem: string }, now = Date.now()) {
  const keys = rsaKeys(2048, true);
  const rootCert = forge.pki.certificateFromPem(root.certPem);
  const cert = forge.pki.createCertificate();
  cert.serialNumber = '0badc0ffee';
  cert.publicKey = forgePublic(keys);
  cert.validity.notBefore = new Date(now - 3600_000);
  cert.validity.notAfter = new Date(now + 365 * 86400_000);
  cert.setSubject([{ shortName: 'CN', value: 'weft test intermediate' }]);
  cert.setIssuer(rootCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(
    forge.pki.privateKeyFromPem(createPrivateKey(root.keyPem).export({ type: 'pkcs8', format: 'pem' }).toString()),
    forge.md.sha256.create(),
  );
  return { certPem: forge.pki.certificateToPem(cert), keyPem: pem(keys.privateKey, 'pkcs8') };
}

/** A clock whose time moves only when the test says so; timers fire in order during advance(). */
export class FakeClock implements Clock {
  #t: number;
  #timers: { id: number; at: number; fn: () => void }[] = [];
  #nextId = 1;

  constructor(start = Date.now()) {
    this.#t = start;
  }

  now = (): number => this.#t;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.#t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Times at which timers are pending, earliest first. */
  pending(): number[] {
    return this.#timers.map((t) => t.at).sort((a, b) => a - b);
  }

  advance(ms: number): void {
    const target = this.#t + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#t = Math.max(this.#t, due.at);
      due.fn();
    }
    this.#t = target;
  }

  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.#t));
  }
}

/** A pino logger whose lines (parsed) land in `lines`. */
export function captureLogs(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

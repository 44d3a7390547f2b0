// The mesh CA: one root (generated at first start into a directory, or supplied as PEM) that signs 24 h workload
// leaves whose only identity is the SPIFFE URI SAN derived from the token. The private key never leaves this object.
//
// Keys are RSA-2048, made by node:crypto (forge's pure-JS key generation takes seconds). node-forge builds the
// certificate structures, and it can only encode RSA subject keys and RSA signature OIDs, which is why both the
// root and the leaves are RSA. The signature itself is computed by node:crypto over forge's TBSCertificate DER
// (same bytes forge would sign, a fraction of the time); every check of a certificate uses node:crypto.
import { generateKeyPairSync, type KeyObject, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { type CheckedCsr, checkCsr } from './csr.ts';
import { pemBlocks, toPem } from './der.ts';
import { CaSetupError } from './errors.ts';
import { checkPrivateMode, exists, writeNew } from './files.ts';
import { commonNameOf, identityProblem, isTrustDomain, spiffeIdOf, type WorkloadIdentity } from './identity.ts';

export const DEFAULT_LEAF_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** The longest leaf issue() agrees to (a caller asking for more gets a CaSetupError: it is a bug, not a request). */
export const DEFAULT_MAX_LEAF_LIFETIME_MS = 7 * DEFAULT_LEAF_LIFETIME_MS;
/** A generated root is valid this long; rotating the root is an operator task (docs/identity.md). */
export const ROOT_LIFETIME_MS = 10 * 365 * DEFAULT_LEAF_LIFETIME_MS;
/** notBefore lies this far in the past, so a peer whose clock is a little behind accepts a fresh leaf. */
export const CLOCK_SKEW_MS = 60 * 1000;
/** File names inside the CA directory. */
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

const RSA_BITS = 2048;
const pki = forge.pki as typeof forge.pki & {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
};

export interface MeshCAOptions {
  /** SPIFFE trust domain, e.g. `cluster.local`. */
  trustDomain: string;
  /** Milliseconds since the epoch; injectable so tests can move time. */
  now?: () => number;
  maxLifetimeMs?: number;
}

export interface IssueRequest {
  csrPem: string;
  /** The identity the token proved. The leaf's identity comes from here only. */
  identity: WorkloadIdentity;
  lifetimeMs?: number;
}

export interface IssuedCertificate {
  /** The leaf alone. */
  certPem: string;
  /** Leaf, then the issuing CA and any intermediates (not the root unless it issued the leaf itself). */
  certChainPem: string;
  rootCAsPem: string;
  spiffeId: string;
  /** Hex, lowercase, as `X509Certificate.serialNumber` prints it (uppercase) compares case-insensitively. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  keyBits: number;
  ignoredExtensions: string[];
}

export interface ServingCertificate {
  keyPem: string;
  certChainPem: string;
  notAfter: Date;
}

/** The PEMs of a supplied CA. */
export interface CaMaterial {
  /** The signing CA's certificate (a root, or an intermediate when `chainPem` is given). */
  certPem: string;
  /** Its private key, unencrypted PKCS#8 or PKCS#1 PEM. */
  keyPem: string;
  /** For an intermediate: its issuers, in order, ending with the self-signed root. */
  chainPem?: string;
}

/** A random positive 128-bit serial, as minimal DER INTEGER hex (RFC 5280 §4.1.2.2: at most 20 octets). */
function randomSerialHex(): string {
  let bytes = randomBytes(16);
  // A zero first octet would make the encoding non-minimal; redraw (probability 1/256).
  while (bytes[0] === 0) bytes = randomBytes(16);
  const hex = bytes.toString('hex');
  // A set top bit would read as negative: prefix a zero octet.
  return bytes[0] >= 0x80 ? `00${hex}` : hex;
}

/** Whole seconds: X.509 times have no fractions, and callers compare with what the certificate says. */
const toSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

function certificatesOf(pem: string, what: string): X509Certificate[] {
  let blocks: { label: string; der: Buffer }[];
  try {
    blocks = pemBlocks(pem);
  } catch (err) {
    throw new CaSetupError('WEFT_ERR_CA_INVALID', `${what}: ${(err as Error).message}`);
  }
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) throw new CaSetupError('WEFT_ERR_CA_INVALID', `${what}: no PEM CERTIFICATE block`);
  try {
    return certs.map((b) => new X509Certificate(b.der));
  } catch (err) {
    throw new CaSetupError('WEFT_ERR_CA_INVALID', `${what}: unreadable certificate: ${(err as Error).message}`);
  }
}

const selfSigned = (c: X509Certificate) => c.checkIssued(c) && c.verify(c.publicKey);

export class MeshCA {
  readonly trustDomain: string;
  /** The CA's own certificate (PEM). */
  readonly certPem: string;
  /** Trust bundle proxies get: the root(s). */
  readonly rootCAsPem: string;
  readonly notAfter: Date;
  readonly #key: KeyObject;
  readonly #cert: forge.pki.Certificate;
  /** PEM of the CA cert and its intermediates: appended to every leaf. */
  readonly #issuerChainPem: string;
  readonly #keyId: string | undefined;
  readonly #now: () => number;
  readonly #maxLifetimeMs: number;

  private constructor(material: { cert: X509Certificate; key: KeyObject; chain: X509Certificate[] }, o: MeshCAOptions) {
    this.trustDomain = o.trustDomain;
    this.#now = o.now ?? Date.now;
    this.#maxLifetimeMs = o.maxLifetimeMs ?? DEFAULT_MAX_LEAF_LIFETIME_MS;
    this.#key = material.key;
    this.certPem = material.cert.toString();
    this.notAfter = material.cert.validToDate;
    const root = material.chain.at(-1) ?? material.cert;
    this.rootCAsPem = root.toString();
    const intermediates = material.chain.slice(0, -1);
    this.#issuerChainPem = [material.cert, ...intermediates].map((c) => c.toString()).join('');
    try {
      this.#cert = pki.certificateFromPem(this.certPem);
    } catch (err) {
      throw new CaSetupError('WEFT_ERR_CA_INVALID', `CA certificate: node-forge cannot read it (RSA only)`, {
        cause: err,
      });
    }
    const ski = this.#cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    this.#keyId = ski?.subjectKeyIdentifier ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : undefined;
  }

  /**
   * A CA from supplied PEMs, validated: a CA certificate (basicConstraints CA:true, keyCertSign when keyUsage is
   * present), currently valid, an RSA key of at least 2048 bits that matches it, and for an intermediate a chain
   * whose every link verifies up to a self-signed root.
   */
  static fromPem(material: CaMaterial, options: MeshCAOptions): MeshCA {
    if (!isTrustDomain(options.trustDomain)) {
      throw new CaSetupError(
        'WEFT_ERR_CA_ISSUE_INVALID',
        `trust domain ${JSON.stringify(options.trustDomain)} is invalid`,
      );
    }
    const now = (options.now ?? Date.now)();
    const [cert] = certificatesOf(material.certPem, 'CA certificate');
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: material.keyPem, format: 'pem' });
    } catch (err) {
      throw new CaSetupError('WEFT_ERR_CA_INVALID', `CA key: unreadable (${(err as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < RSA_BITS) {
      throw new CaSetupError(
        'WEFT_ERR_CA_INVALID',
        `CA key must be RSA of at least ${RSA_BITS} bits (node-forge signs RSA only)`,
      );
    }
    if (!cert.ca)
      throw new CaSetupError('WEFT_ERR_CA_INVALID', `CA certificate ${cert.subject} is not a CA (CA:false)`);
    if (!cert.checkPrivateKey(key)) {
      throw new CaSetupError('WEFT_ERR_CA_INVALID', 'CA key does not match the CA certificate');
    }
    const checkValid = (c: X509Certificate, what: string) => {
      if (c.validToDate.getTime() <= now) {
        throw new CaSetupError('WEFT_ERR_CA_INVALID', `${what} expired at ${c.validToDate.toISOString()}`);
      }
      if (c.validFromDate.getTime() > now + CLOCK_SKEW_MS) {
        throw new CaSetupError('WEFT_ERR_CA_INVALID', `${what} is not valid before ${c.validFromDate.toISOString()}`);
      }
    };
    checkValid(cert, 'CA certificate');
    const usage = pemKeyUsage(cert);
    if (usage !== undefined && !usage.keyCertSign) {
      throw new CaSetupError('WEFT_ERR_CA_INVALID', 'CA certificate keyUsage lacks keyCertSign');
    }

    let chain: X509Certificate[] = [];
    if (selfSigned(cert)) {
      if (material.chainPem) chain = [cert];
    } else {
      if (!material.chainPem) {
        throw new CaSetupError(
          'WEFT_ERR_CA_INVALID',
          'CA certificate is not self-signed; supply chainPem up to the root',
        );
      }
      chain = certificatesOf(material.chainPem, 'CA chain');
      let child = cert;
      for (const [i, issuer] of chain.entries()) {
        if (!issuer.ca || !child.checkIssued(issuer) || !child.verify(issuer.publicKey)) {
          throw new CaSetupError('WEFT_ERR_CA_INVALID', `CA chain: certificate ${i} did not issue ${child.subject}`);
        }
        checkValid(issuer, `CA chain certificate ${i}`);
        child = issuer;
      }
      if (!selfSigned(child))
        throw new CaSetupError('WEFT_ERR_CA_INVALID', 'CA chain does not end at a self-signed root');
    }
    return new MeshCA({ cert, key, chain }, options);
  }

  /**
   * The CA stored in `dir` (`ca.crt`, `ca.key`), generated there on first start: the directory is created 0700,
   * the key written 0600 and refused later if group or others can read it. Both files are created without
   * overwriting anything, so two control planes starting at once cannot end up with different roots.
   */
  static async loadOrCreate(dir: string, options: MeshCAOptions): Promise<MeshCA> {
    const certPath = join(dir, CA_CERT_FILE);
    const keyPath = join(dir, CA_KEY_FILE);
    let [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
    if (!hasCert && !hasKey) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const generated = generateRoot(options.trustDomain, (options.now ?? Date.now)());
      try {
        // Key first: a crash in between leaves "key without cert", which loading reports instead of guessing.
        await writeNew(keyPath, generated.keyPem, 0o600);
        await writeNew(certPath, generated.certPem, 0o644);
      } catch (err) {
        // Another control plane won the race: use its root.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
    }
    if (hasCert !== hasKey) {
      throw new CaSetupError(
        'WEFT_ERR_CA_STORE_INCOMPLETE',
        `${dir} holds ${hasCert ? CA_CERT_FILE : CA_KEY_FILE} but not ${hasCert ? CA_KEY_FILE : CA_CERT_FILE}; ` +
          'restore the missing file or remove both to generate a new root (every proxy must then get new certificates)',
      );
    }
    await checkPrivateMode(keyPath);
    const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return MeshCA.fromPem({ certPem, keyPem }, options);
  }

  /**
   * Issues a workload leaf for `identity` on the key of `csrPem` after the CSR policy (csr.ts) accepts it.
   * Throws CsrError for a refused CSR, CaSetupError for an invalid identity or lifetime (a caller bug).
   */
  issue(request: IssueRequest): IssuedCertificate {
    const problem = identityProblem(request.identity);
    if (problem) throw new CaSetupError('WEFT_ERR_CA_ISSUE_INVALID', problem);
    const lifetimeMs = request.lifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS;
    if (!Number.isFinite(lifetimeMs) || lifetimeMs < 1000 || lifetimeMs > this.#maxLifetimeMs) {
      throw new CaSetupError(
        'WEFT_ERR_CA_ISSUE_INVALID',
        `leaf lifetime ${lifetimeMs} ms is outside 1 s..${this.#maxLifetimeMs} ms`,
      );
    }
    const spiffeId = spiffeIdOf(this.trustDomain, request.identity);
    const commonName = commonNameOf(request.identity);
    const checked: CheckedCsr = checkCsr(request.csrPem, { spiffeId, commonName });
    const signed = this.#sign({
      publicKey: checked.forgePublicKey,
      commonName,
      altNames: [{ type: 6, value: spiffeId }],
      extKeyUsage: { serverAuth: true, clientAuth: true },
      lifetimeMs,
    });
    return {
      certPem: signed.certPem,
      certChainPem: signed.certPem + this.#issuerChainPem,
      rootCAsPem: this.rootCAsPem,
      spiffeId,
      serialNumber: signed.serialNumber,
      notBefore: signed.notBefore,
      notAfter: signed.notAfter,
      keyBits: checked.keyBits,
      ignoredExtensions: checked.ignoredExtensions,
    };
  }

  /** A serving certificate for the CA's own HTTPS endpoint (serverAuth only), on a fresh key. */
  issueServing(
    names: { dnsNames: string[]; ips: string[] },
    lifetimeMs = DEFAULT_LEAF_LIFETIME_MS,
  ): ServingCertificate {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
    const signed = this.#sign({
      publicKey: pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
      commonName: names.dnsNames[0] ?? 'weft-ca',
      altNames: [...names.dnsNames.map((value) => ({ type: 2, value })), ...names.ips.map((ip) => ({ type: 7, ip }))],
      extKeyUsage: { serverAuth: true, clientAuth: false },
      lifetimeMs: Math.min(lifetimeMs, this.#maxLifetimeMs),
    });
    return {
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certChainPem: signed.certPem + this.#issuerChainPem,
      notAfter: signed.notAfter,
    };
  }

  #sign(o: {
    publicKey: forge.pki.rsa.PublicKey;
    commonName: string;
    altNames: { type: number; value?: string; ip?: string }[];
    extKeyUsage: { serverAuth: boolean; clientAuth: boolean };
    lifetimeMs: number;
  }): { certPem: string; serialNumber: string; notBefore: Date; notAfter: Date } {
    const now = this.#now();
    const notBefore = toSecond(now - CLOCK_SKEW_MS);
    // A leaf cannot outlive its issuer: cut it to the CA's notAfter.
    const notAfter = toSecond(Math.min(now + o.lifetimeMs, this.notAfter.getTime()));
    const cert = pki.createCertificate();
    cert.serialNumber = randomSerialHex();
    cert.publicKey = o.publicKey;
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = notAfter;
    cert.setSubject([{ shortName: 'CN', value: o.commonName }]);
    cert.setIssuer(this.#cert.subject.attributes);
    const extensions: object[] = [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', ...o.extKeyUsage },
      { name: 'subjectAltName', altNames: o.altNames },
      { name: 'subjectKeyIdentifier' },
    ];
    if (this.#keyId !== undefined) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: this.#keyId });
    cert.setExtensions(extensions);
    const certPem = signWithNode(cert, this.#key);
    return { certPem, serialNumber: cert.serialNumber.replace(/^00/, ''), notBefore, notAfter };
  }
}

/** Signs forge's TBSCertificate with node:crypto (sha256WithRSAEncryption) and returns the certificate PEM. */
function signWithNode(cert: forge.pki.Certificate, key: KeyObject): string {
  cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption;
  cert.tbsCertificate = pki.getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = sign('sha256', tbs, key).toString('binary');
  const der = Buffer.from(forge.asn1.toDer(pki.certificateToAsn1(cert)).getBytes(), 'binary');
  return toPem('CERTIFICATE', der);
}

/** keyUsage of a CA certificate as forge reads it, or undefined when the extension is absent. */
function pemKeyUsage(cert: X509Certificate): { keyCertSign: boolean } | undefined {
  try {
    const parsed = pki.certificateFromPem(cert.toString());
    const ku = parsed.getExtension('keyUsage') as { keyCertSign?: boolean } | undefined;
    return ku ? { keyCertSign: ku.keyCertSign === true } : undefined;
  } catch {
    // forge cannot read non-RSA certificates; the key-type check has already refused those.
    return undefined;
  }
}

/** A new self-signed root: RSA-2048, CA:true (critical, pathLen 0: it signs leaves only), keyCertSign+cRLSign. */
export function generateRoot(trustDomain: string, now: number): { certPem: string; keyPem: string } {
  if (!isTrustDomain(trustDomain)) {
    throw new CaSetupError('WEFT_ERR_CA_ISSUE_INVALID', `trust domain ${JSON.stringify(trustDomain)} is invalid`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
  const cert = pki.createCertificate();
  cert.serialNumber = randomSerialHex();
  cert.publicKey = pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.validity.notBefore = toSecond(now - CLOCK_SKEW_MS);
  cert.validity.notAfter = toSecond(now + ROOT_LIFETIME_MS);
  const subject = [
    { shortName: 'O', value: 'weft' },
    { shortName: 'CN', value: `weft mesh root CA (${trustDomain})`.slice(0, 64) },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  return {
    certPem: signWithNode(cert, privateKey),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

// The CSR policy: what a workload may ask the mesh CA for. The identity of the issued certificate comes from the
// token, never from the CSR, so the CSR only contributes its public key. Anything else the CSR asks for is either
// harmless and not copied (other subject attributes, keyUsage/extKeyUsage wishes) or a sign of a confused or
// malicious client and refused with its own code rather than silently dropped: other SANs, another identity, CA
// powers. Each refusal says which part of the CSR caused it.
//
// Verification is node:crypto's on the exact bytes the client signed; node-forge parses the attributes and checks
// the signature a second time on its own parse, so a parser disagreement refuses the CSR instead of passing it.
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import forge from 'node-forge';
import { CA_MAX_CSR_DER_BYTES } from '../../sidecar/config/ca-api.ts';
import { DerTag, oidToString, pemBlocks, readChildren, readOnly } from './der.ts';
import { CsrError } from './errors.ts';

/** Smallest RSA modulus accepted. */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus accepted: bigger keys only cost the CA verification time. */
export const MAX_RSA_BITS = 8192;

/** CSR signature algorithms accepted, by OID: RSA PKCS#1 v1.5 with SHA-2 (what forge and OpenSSL produce). */
const SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};
const SIGNATURE_ALGORITHM_NAMES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.113549.1.1.14': 'sha224WithRSAEncryption',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.3.101.112': 'Ed25519',
};
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_NAME_CONSTRAINTS = '2.5.29.30';
const OID_COMMON_NAME = '2.5.4.3';
/** GeneralName tags (RFC 5280 §4.2.1.6), for messages. */
const GENERAL_NAME_KINDS: Record<number, string> = {
  0: 'otherName',
  1: 'email',
  2: 'DNS',
  3: 'x400Address',
  4: 'directoryName',
  5: 'ediPartyName',
  6: 'URI',
  7: 'IP',
  8: 'registeredID',
};
/** How many refused names a message spells out (all of them go to the log details). */
const MESSAGE_NAMES = 5;

/** What the CSR is checked against: the identity the token proved. */
export interface CsrExpectation {
  /** `spiffe://<td>/ns/<ns>/sa/<sa>`, derived from the token. */
  spiffeId: string;
  /** The subject CN the leaf will carry; a CSR may name it (or the SPIFFE ID) as its CN, nothing else. */
  commonName: string;
}

/** A CSR that passed the policy: only its key is used. */
export interface CheckedCsr {
  publicKey: KeyObject;
  /** The same key as node-forge needs it to build the leaf. */
  forgePublicKey: forge.pki.rsa.PublicKey;
  keyBits: number;
  /** Requested extensions that are not copied into the leaf (the leaf profile is fixed), for the log. */
  ignoredExtensions: string[];
}

const shown = (values: string[]) => {
  const cut = values.slice(0, MESSAGE_NAMES).map((v) => JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}…` : v));
  return cut.join(', ') + (values.length > MESSAGE_NAMES ? ` and ${values.length - MESSAGE_NAMES} more` : '');
};

/** Decodes the one CSR PEM block of `csrPem` and checks its size before anything parses it. */
function decodeCsrPem(csrPem: string): Buffer {
  let blocks: { label: string; der: Buffer }[];
  try {
    blocks = pemBlocks(csrPem);
  } catch (err) {
    throw new CsrError('WEFT_ERR_CSR_MALFORMED', `CSR is not valid PEM: ${(err as Error).message}`);
  }
  const csrs = blocks.filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
  if (csrs.length !== 1 || blocks.length !== 1) {
    throw new CsrError(
      'WEFT_ERR_CSR_MALFORMED',
      `expected exactly one PEM block "CERTIFICATE REQUEST", found ${blocks.length === 0 ? 'none' : blocks.map((b) => b.label).join(', ')}`,
    );
  }
  const der = csrs[0].der;
  if (der.length > CA_MAX_CSR_DER_BYTES) {
    throw new CsrError(
      'WEFT_ERR_CSR_TOO_LARGE',
      `CSR is ${der.length} bytes (DER); the limit is ${CA_MAX_CSR_DER_BYTES}`,
      { derBytes: der.length },
    );
  }
  return der;
}

interface CsrParts {
  /** CertificationRequestInfo exactly as signed. */
  info: Buffer;
  spki: Buffer;
  signatureOid: string;
  signatureParams: Buffer | undefined;
  signature: Buffer;
}

/** Slices the DER of a PKCS#10 CertificationRequest (RFC 2986 §4) without re-encoding anything. */
function splitCsr(der: Buffer): CsrParts {
  try {
    const outer = readChildren(readOnly(der, DerTag.SEQUENCE).contents);
    if (outer.length !== 3) throw new Error('a CertificationRequest has three elements');
    const [info, algorithm, signatureBits] = outer;
    if (info.tag !== DerTag.SEQUENCE || algorithm.tag !== DerTag.SEQUENCE || signatureBits.tag !== DerTag.BIT_STRING) {
      throw new Error('not a CertificationRequest');
    }
    const fields = readChildren(info.contents);
    if (fields.length !== 4) throw new Error('a CertificationRequestInfo has four elements');
    const [version, subject, spki, attributes] = fields;
    if (version.tag !== DerTag.INTEGER || version.contents.length !== 1 || version.contents[0] !== 0) {
      throw new Error('CertificationRequestInfo version must be 0 (v1)');
    }
    if (subject.tag !== DerTag.SEQUENCE || spki.tag !== DerTag.SEQUENCE || attributes.tag !== DerTag.CONTEXT_0) {
      throw new Error('not a CertificationRequestInfo');
    }
    const algo = readChildren(algorithm.contents);
    if (algo.length < 1 || algo.length > 2 || algo[0].tag !== DerTag.OID) throw new Error('bad AlgorithmIdentifier');
    if (signatureBits.contents.length < 2 || signatureBits.contents[0] !== 0)
      throw new Error('bad signature BIT STRING');
    return {
      info: info.raw,
      spki: spki.raw,
      signatureOid: oidToString(algo[0].contents),
      signatureParams: algo[1]?.raw,
      signature: signatureBits.contents.subarray(1),
    };
  } catch (err) {
    throw new CsrError(
      'WEFT_ERR_CSR_MALFORMED',
      `CSR is not a PKCS#10 certification request: ${(err as Error).message}`,
    );
  }
}

/** Key strength and type: RSA ≥ 2048 bits with an odd exponent ≥ 65537. Returns the modulus size. */
function checkKey(publicKey: KeyObject): number {
  const type = publicKey.asymmetricKeyType;
  const details = publicKey.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    const exponent = details.publicExponent ?? 0n;
    if (bits < MIN_RSA_BITS) {
      throw new CsrError('WEFT_ERR_CSR_KEY_WEAK', `RSA key of ${bits} bits; at least ${MIN_RSA_BITS} required`, {
        keyType: type,
        keyBits: bits,
      });
    }
    if (exponent < 65537n || exponent % 2n === 0n) {
      throw new CsrError('WEFT_ERR_CSR_KEY_WEAK', `RSA public exponent ${exponent} (must be odd and at least 65537)`, {
        keyType: type,
      });
    }
    if (bits > MAX_RSA_BITS) {
      throw new CsrError('WEFT_ERR_CSR_KEY_UNSUPPORTED', `RSA key of ${bits} bits; at most ${MAX_RSA_BITS} accepted`, {
        keyType: type,
        keyBits: bits,
      });
    }
    return bits;
  }
  if (type === 'ec') {
    const curve = details.namedCurve ?? 'unknown';
    // A curve below 256 bits is weak whatever the builder; P-256 and up would be strong enough, but node-forge
    // (which builds the leaf) can only encode RSA subject keys.
    if (['prime192v1', 'secp192k1', 'secp224r1', 'secp224k1', 'secp160r1', 'secp160k1'].includes(curve)) {
      throw new CsrError('WEFT_ERR_CSR_KEY_WEAK', `EC key on ${curve}; at least P-256 required`, {
        keyType: type,
        curve,
      });
    }
    throw new CsrError(
      'WEFT_ERR_CSR_KEY_UNSUPPORTED',
      `EC key on ${curve}: this CA issues RSA leaves only (RSA-${MIN_RSA_BITS} or larger)`,
      { keyType: type, curve },
    );
  }
  throw new CsrError(
    'WEFT_ERR_CSR_KEY_UNSUPPORTED',
    `${type ?? 'unknown'} key: this CA issues RSA leaves only (RSA-${MIN_RSA_BITS} or larger)`,
    { keyType: type },
  );
}

interface ForgeExtension {
  id: string;
  name?: string;
  cA?: boolean;
  keyCertSign?: boolean;
  cRLSign?: boolean;
  altNames?: { type: number; value: unknown; ip?: string }[];
}

function describeAltName(n: { type: number; value: unknown; ip?: string }): string {
  const kind = GENERAL_NAME_KINDS[n.type] ?? `[${n.type}]`;
  const value = n.ip ?? (typeof n.value === 'string' ? n.value : '(structured)');
  return `${kind}:${value}`;
}

/**
 * Checks `csrPem` against the CSR policy and the identity the token proved; returns the key to certify.
 * Throws CsrError with the code of the first rule broken, in this order: size, syntax, key, signature algorithm,
 * signature, requested identity, requested SANs, requested CA powers.
 */
export function checkCsr(csrPem: string, expected: CsrExpectation): CheckedCsr {
  const der = decodeCsrPem(csrPem);
  const parts = splitCsr(der);

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: parts.spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError('WEFT_ERR_CSR_MALFORMED', `CSR public key is unreadable: ${(err as Error).message}`);
  }
  const keyBits = checkKey(publicKey);

  const hash = SIGNATURE_ALGORITHMS[parts.signatureOid];
  const nullParams = parts.signatureParams === undefined || parts.signatureParams.equals(Buffer.from([5, 0]));
  if (hash === undefined || !nullParams) {
    const name = SIGNATURE_ALGORITHM_NAMES[parts.signatureOid] ?? parts.signatureOid;
    throw new CsrError(
      'WEFT_ERR_CSR_SIGNATURE_ALGORITHM',
      `CSR signed with ${name}; accepted: sha256/384/512WithRSAEncryption`,
      { signatureAlgorithm: name },
    );
  }
  if (!verify(hash, parts.info, publicKey, parts.signature)) {
    throw new CsrError('WEFT_ERR_CSR_SIGNATURE', 'CSR signature does not verify with the public key it carries');
  }

  // forge's view of the same CSR: its parse must agree on the key, and its own signature check must pass.
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromAsn1(forge.asn1.fromDer(der.toString('binary'), true), true);
  } catch (err) {
    throw new CsrError('WEFT_ERR_CSR_MALFORMED', `CSR cannot be parsed: ${(err as Error).message}`);
  }
  const forgePublicKey = csr.publicKey as forge.pki.rsa.PublicKey;
  const forgeSpki = Buffer.from(forge.asn1.toDer(forge.pki.publicKeyToAsn1(forgePublicKey)).getBytes(), 'binary');
  if (!forgeSpki.equals(publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CsrError('WEFT_ERR_CSR_MALFORMED', 'CSR public key parses differently in node:crypto and node-forge');
  }
  let forgeVerified = false;
  try {
    forgeVerified = csr.verify();
  } catch {
    forgeVerified = false;
  }
  if (!forgeVerified) {
    throw new CsrError('WEFT_ERR_CSR_SIGNATURE', 'CSR signature does not verify over its parsed content');
  }

  // Subject: only the CN can name an identity; it must be this workload's (other attributes are not copied).
  const foreignNames: string[] = [];
  for (const attr of csr.subject.attributes) {
    if (attr.type !== OID_COMMON_NAME) continue;
    const cn = String(attr.value);
    if (cn !== expected.commonName && cn !== expected.spiffeId) foreignNames.push(`CN=${cn}`);
  }

  // Requested extensions (all extensionRequest attributes: a CSR may carry several).
  const otherSans: string[] = [];
  const caPowers: string[] = [];
  const ignoredExtensions: string[] = [];
  let ownSpiffe = 0;
  for (const attr of csr.attributes) {
    if (attr.type !== OID_EXTENSION_REQUEST) continue;
    for (const ext of (attr.extensions ?? []) as ForgeExtension[]) {
      const name = ext.name ?? ext.id;
      if (name === 'basicConstraints') {
        if (ext.cA) caPowers.push('basicConstraints CA:true');
      } else if (name === 'keyUsage') {
        if (ext.keyCertSign) caPowers.push('keyUsage keyCertSign');
        if (ext.cRLSign) caPowers.push('keyUsage cRLSign');
        if (!ext.keyCertSign && !ext.cRLSign) ignoredExtensions.push(name);
      } else if (ext.id === OID_NAME_CONSTRAINTS) {
        caPowers.push('nameConstraints');
      } else if (name === 'subjectAltName') {
        for (const alt of ext.altNames ?? []) {
          if (alt.type === 6 && typeof alt.value === 'string') {
            if (alt.value === expected.spiffeId) ownSpiffe++;
            else if (/^spiffe:/i.test(alt.value)) foreignNames.push(`URI:${alt.value}`);
            else otherSans.push(describeAltName(alt));
          } else {
            otherSans.push(describeAltName(alt));
          }
        }
      } else {
        ignoredExtensions.push(name);
      }
    }
  }
  if (ownSpiffe > 1) otherSans.push(`URI:${expected.spiffeId} (repeated)`);

  if (foreignNames.length > 0) {
    throw new CsrError(
      'WEFT_ERR_CSR_IDENTITY_MISMATCH',
      `CSR names ${shown(foreignNames)}, but the token proves ${expected.spiffeId}`,
      { requested: foreignNames, identity: expected.spiffeId },
    );
  }
  if (otherSans.length > 0) {
    throw new CsrError(
      'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
      `CSR requests subject alternative names other than ${expected.spiffeId}: ${shown(otherSans)}`,
      { refusedSans: otherSans },
    );
  }
  if (caPowers.length > 0) {
    throw new CsrError('WEFT_ERR_CSR_CA_REQUESTED', `CSR requests CA powers: ${caPowers.join(', ')}`, {
      requested: caPowers,
    });
  }
  return { publicKey, forgePublicKey, keyBits, ignoredExtensions };
}

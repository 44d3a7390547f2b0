// Checks of what the CA returned, all with node:crypto's X509Certificate: the chain verifies link by link up to a
// root this proxy was told to trust (and that root is in the bundle the CA hands out, so peers accept us too),
// the leaf is a workload leaf (CA:false, serverAuth+clientAuth) for exactly the expected SPIFFE ID and this
// proxy's key, and it is valid now.
import { type KeyObject, X509Certificate } from 'node:crypto';
import { IdentityError } from './errors.ts';
import { parseSubjectAltName } from './peer.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** A leaf whose notBefore is at most this far ahead of our clock is accepted (the CA backdates by 1 min anyway). */
export const ACCEPTED_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** The X509Certificates of every CERTIFICATE block in `pem`, in order. */
export function certificatesOf(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

export interface VerifiedLeaf {
  leaf: X509Certificate;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
}

const invalid = (message: string) => new IdentityError('WEFT_ERR_CERT_CHAIN_INVALID', message);

export function verifyWorkloadCertificate(o: {
  certChainPem: string;
  /** The CA's bundle from the same answer. */
  rootCAsPem: string;
  /** The roots this proxy was configured to trust. */
  trustAnchorsPem: string;
  privateKey: KeyObject;
  spiffeId: string;
  now: number;
}): VerifiedLeaf {
  let chain: X509Certificate[];
  let bundle: X509Certificate[];
  let anchors: X509Certificate[];
  try {
    chain = certificatesOf(o.certChainPem);
    bundle = certificatesOf(o.rootCAsPem);
    anchors = certificatesOf(o.trustAnchorsPem);
  } catch (err) {
    throw invalid(`unreadable certificate: ${(err as Error).message}`);
  }
  if (chain.length === 0) throw invalid('certChain holds no certificate');
  if (bundle.length === 0) throw invalid('rootCAs holds no certificate');
  if (anchors.length === 0) throw invalid('no trusted root configured');

  const leaf = chain[0];
  if (leaf.ca) throw invalid('leaf is a CA certificate');
  const eku = leaf.keyUsage ?? [];
  if (!eku.includes(SERVER_AUTH) || !eku.includes(CLIENT_AUTH)) throw invalid('leaf lacks serverAuth+clientAuth');
  const sans = parseSubjectAltName(leaf.subjectAltName);
  if (sans.length !== 1 || sans[0].type !== 'URI' || sans[0].value !== o.spiffeId) {
    throw new IdentityError(
      'WEFT_ERR_CERT_IDENTITY_MISMATCH',
      `leaf names ${leaf.subjectAltName ?? 'nothing'}, expected exactly URI:${o.spiffeId}`,
    );
  }
  if (!leaf.checkPrivateKey(o.privateKey)) {
    throw new IdentityError('WEFT_ERR_CERT_IDENTITY_MISMATCH', 'leaf is not for this proxy’s key');
  }

  const validNow = (c: X509Certificate, what: string) => {
    if (c.validFromDate.getTime() > o.now + ACCEPTED_CLOCK_SKEW_MS) {
      throw invalid(`${what} not valid before ${c.validFromDate.toISOString()}`);
    }
    if (c.validToDate.getTime() <= o.now) throw invalid(`${what} expired at ${c.validToDate.toISOString()}`);
  };
  validNow(leaf, 'leaf');

  // Walk up: each certificate must be issued (name and signature) by the next, until a trusted root issued one.
  const issuedBy = (child: X509Certificate, parent: X509Certificate) =>
    child.checkIssued(parent) && child.verify(parent.publicKey);
  let anchor: X509Certificate | undefined;
  for (let i = 0; i < chain.length && anchor === undefined; i++) {
    const cert = chain[i];
    if (i > 0) {
      if (!cert.ca) throw invalid(`chain certificate ${i} is not a CA`);
      validNow(cert, `chain certificate ${i}`);
    }
    anchor =
      anchors.find((a) => a.fingerprint256 === cert.fingerprint256 && i > 0) ?? anchors.find((a) => issuedBy(cert, a));
    if (anchor === undefined) {
      const next = chain[i + 1];
      if (next === undefined || !issuedBy(cert, next)) {
        throw invalid(`chain certificate ${i} (${cert.subject}) is not issued by the next one or by a trusted root`);
      }
    }
  }
  if (anchor === undefined) throw invalid('chain does not lead to a trusted root');
  validNow(anchor, 'root');
  const found = anchor;
  if (!bundle.some((b) => b.fingerprint256 === found.fingerprint256)) {
    throw invalid('the CA’s rootCAs bundle does not hold the root that issued this certificate');
  }
  return { leaf, notBefore: leaf.validFromDate, notAfter: leaf.validToDate, serialNumber: leaf.serialNumber };
}

// The proxy's certificate request: node-forge builds the PKCS#10 structure (subject CN and the SPIFFE URI SAN the
// proxy expects), node:crypto signs it with the proxy's key (which therefore never has to be imported into forge).
// The CA derives the identity from the token regardless; putting it in the CSR lets the CA refuse a mismatch
// loudly (a pod with the wrong token) instead of certifying something the proxy will then reject.
import { type KeyObject, sign } from 'node:crypto';
import forge from 'node-forge';

const pki = forge.pki as typeof forge.pki & {
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};

export interface CsrSubject {
  spiffeId: string;
  commonName: string;
}

/** A PEM CSR for an RSA key pair, signed sha256WithRSAEncryption. */
export function buildCsr(keys: { privateKey: KeyObject; publicKey: KeyObject }, subject: CsrSubject): string {
  if (keys.privateKey.asymmetricKeyType !== 'rsa') throw new TypeError('the mesh CA certifies RSA keys only');
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.publicKeyFromPem(keys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject([{ shortName: 'CN', value: subject.commonName }]);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: subject.spiffeId }] }],
    },
  ]);
  // What csr.sign(forgeKey, sha256) does, with the signature from node:crypto.
  csr.signatureOid = csr.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption;
  csr.certificationRequestInfo = pki.getCertificationRequestInfo(csr);
  const info = Buffer.from(forge.asn1.toDer(csr.certificationRequestInfo).getBytes(), 'binary');
  csr.signature = sign('sha256', info, keys.privateKey).toString('binary');
  return pki.certificationRequestToPem(csr);
}

// Certificates as `weft check` reads them: PEM bundles parsed and verified by Node's own X509Certificate, validity
// in days, and whether one bundle holds a given certificate.
import { X509Certificate } from 'node:crypto';

const DAY_MS = 24 * 60 * 60 * 1000;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, in order; throws when there is none or one does not parse. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error(`${what} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

/** `CN=weft mesh root CA (cluster.local)`, or the whole subject when it has no CN. */
export function subjectName(cert: X509Certificate): string {
  const lines = cert.subject.split('\n');
  return lines.find((l) => l.startsWith('CN=')) ?? lines.join(', ');
}

/** `CN=…, SHA-256 AB:CD:EF:01…`: enough to tell two certificates apart in a message. */
export function identify(cert: X509Certificate): string {
  return `${subjectName(cert)}, SHA-256 ${cert.fingerprint256.slice(0, 23)}…`;
}

export const isoDate = (d: Date): string => d.toISOString().slice(0, 10);

export type Validity =
  | { state: 'valid'; daysLeft: number; notAfter: Date }
  | { state: 'expired'; daysAgo: number; notAfter: Date }
  | { state: 'not-yet-valid'; notBefore: Date };

export function validity(cert: X509Certificate, now: number): Validity {
  const notBefore = cert.validFromDate;
  const notAfter = cert.validToDate;
  if (now < notBefore.getTime()) return { state: 'not-yet-valid', notBefore };
  if (now > notAfter.getTime())
    return { state: 'expired', daysAgo: Math.floor((now - notAfter.getTime()) / DAY_MS), notAfter };
  return { state: 'valid', daysLeft: Math.floor((notAfter.getTime() - now) / DAY_MS), notAfter };
}

/** Whether `bundle` holds `cert` (the same DER, compared by SHA-256 fingerprint). */
export function holds(bundle: readonly X509Certificate[], cert: X509Certificate): boolean {
  return bundle.some((c) => c.fingerprint256 === cert.fingerprint256);
}

// SPIFFE identities of TLS peers, read from what node:tls reports (`subjectaltname`), and the TLS options for
// proxy-to-proxy mTLS built from a workload's credentials.
import type { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import { IdentityError } from './errors.ts';

export interface SubjectAltName {
  /** `URI`, `DNS`, `IP Address`, `email`, … as Node prints them. */
  type: string;
  value: string;
}

/**
 * Parses Node's `subjectaltname` string (`URI:spiffe://…, DNS:a, IP Address:1.2.3.4`). Since Node 17 a value with
 * a comma, quote or other special character is printed as a JSON string; those are decoded, so a crafted name
 * such as `DNS:"a, URI:spiffe://x"` stays one DNS name.
 */
export function parseSubjectAltName(text: string | undefined): SubjectAltName[] {
  const names: SubjectAltName[] = [];
  if (!text) return names;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) throw new Error(`unparseable subjectaltname near ${JSON.stringify(text.slice(i, i + 40))}`);
    const type = text.slice(i, colon);
    let value: string;
    i = colon + 1;
    if (text[i] === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(i, end + 1)) as string;
      i = end + 1;
    } else {
      const end = text.indexOf(', ', i);
      value = text.slice(i, end === -1 ? text.length : end);
      i = end === -1 ? text.length : end;
    }
    names.push({ type, value });
    if (text.startsWith(', ', i)) i += 2;
    else if (i < text.length)
      throw new Error(`unparseable subjectaltname near ${JSON.stringify(text.slice(i, i + 40))}`);
  }
  return names;
}

/** The certificate's SPIFFE ID: its one `spiffe://` URI SAN. Undefined when it has none or more than one. */
export function spiffeIdOf(
  cert: Pick<PeerCertificate, 'subjectaltname'> | X509Certificate | undefined,
): string | undefined {
  if (cert === undefined) return undefined;
  const text = 'subjectAltName' in cert ? cert.subjectAltName : cert.subjectaltname;
  let names: SubjectAltName[];
  try {
    names = parseSubjectAltName(text);
  } catch {
    return undefined;
  }
  const ids = names.filter((n) => n.type === 'URI' && n.value.startsWith('spiffe://')).map((n) => n.value);
  return ids.length === 1 ? ids[0] : undefined;
}

/** Which peer identities are acceptable: one, a set, or a predicate. */
export type PeerPolicy = string | ReadonlySet<string> | ((spiffeId: string) => boolean);

const allows = (policy: PeerPolicy, id: string) =>
  typeof policy === 'string' ? policy === id : typeof policy === 'function' ? policy(id) : policy.has(id);

/** An IdentityError when the (already chain-verified) peer certificate is not an allowed identity. */
export function checkPeerSpiffeId(
  cert: Pick<PeerCertificate, 'subjectaltname'> | undefined,
  policy: PeerPolicy,
): IdentityError | undefined {
  const id = spiffeIdOf(cert);
  if (id === undefined)
    return new IdentityError('WEFT_ERR_PEER_IDENTITY', 'peer certificate carries no single SPIFFE ID');
  if (!allows(policy, id)) return new IdentityError('WEFT_ERR_PEER_IDENTITY', `peer identity ${id} is not allowed`);
  return undefined;
}

/** The SPIFFE ID of an mTLS socket's peer, only if the chain was verified. */
export function peerSpiffeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return spiffeIdOf(socket.getPeerCertificate());
}

/** What TLS needs from a workload's credentials (see WorkloadCredentials). */
export interface TlsCredentials {
  key: string;
  certChain: string;
  rootCAs: string;
}

/** A mesh listener: requires a client certificate chaining to the mesh roots; check `peerSpiffeId` per connection. */
export function mtlsServerOptions(creds: TlsCredentials): TlsOptions {
  return {
    key: creds.key,
    cert: creds.certChain,
    ca: creds.rootCAs,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  };
}

/** A connection to a peer proxy: mesh roots only, and the peer must be `peer` (instead of a hostname check). */
export function mtlsClientOptions(creds: TlsCredentials, peer: PeerPolicy): ConnectionOptions {
  return {
    key: creds.key,
    cert: creds.certChain,
    ca: creds.rootCAs,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    checkServerIdentity: (_host, cert) => checkPeerSpiffeId(cert, peer),
  };
}

// The public surface of the proxy's workload identity: what the proxy's listeners and upstream code import.
export { type CaClientOptions, requestCertificate } from './ca-client.ts';
export { buildCsr, type CsrSubject } from './csr.ts';
export * from './errors.ts';
export {
  checkPeerSpiffeId,
  mtlsClientOptions,
  mtlsServerOptions,
  type PeerPolicy,
  parseSubjectAltName,
  peerSpiffeId,
  type SubjectAltName,
  spiffeIdOf,
  type TlsCredentials,
} from './peer.ts';
export {
  type BackoffOptions,
  type Clock,
  DEFAULT_BACKOFF,
  MIN_RETRY_MS,
  ROTATE_FRACTION,
  retryDelay,
  rotationDelay,
  systemClock,
} from './rotation.ts';
export { ACCEPTED_CLOCK_SKEW_MS, certificatesOf, type VerifiedLeaf, verifyWorkloadCertificate } from './verify.ts';
export {
  type RenewalFailure,
  type WorkloadCredentials,
  WorkloadIdentity,
  type WorkloadIdentityOptions,
} from './workload-cert.ts';

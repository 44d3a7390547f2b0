// The public surface of the mesh CA: what bin/ (the `weft` command) and `weft local` import.
export {
  CA_CERT_FILE,
  CA_KEY_FILE,
  type CaMaterial,
  CLOCK_SKEW_MS,
  DEFAULT_LEAF_LIFETIME_MS,
  DEFAULT_MAX_LEAF_LIFETIME_MS,
  generateRoot,
  type IssuedCertificate,
  type IssueRequest,
  MeshCA,
  type MeshCAOptions,
  ROOT_LIFETIME_MS,
  type ServingCertificate,
} from './ca.ts';
export { type CheckedCsr, type CsrExpectation, checkCsr, MAX_RSA_BITS, MIN_RSA_BITS } from './csr.ts';
export * from './errors.ts';
export { identityKey, spiffeIdOf, type WorkloadIdentity } from './identity.ts';
export { DEFAULT_RATE_LIMIT, type RateLimitOptions, RateLimiter } from './rate-limit.ts';
export { CA_SERVER_DNS_NAMES, CA_SERVER_IPS, type CAServer, type CAServerOptions, startCAServer } from './server.ts';
export {
  BOOTSTRAP_TOKEN_KEY_FILE,
  type BootstrapTokenClaims,
  BootstrapTokens,
  type BootstrapTokensOptions,
  DEFAULT_BOOTSTRAP_TOKEN_TTL_MS,
  DEFAULT_TOKEN_LEEWAY_MS,
  type MintOptions,
  mintBootstrapToken,
  type TokenVerifier,
} from './tokens.ts';

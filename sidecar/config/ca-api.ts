// The wire contract between a weft proxy and the mesh CA (controlplane/certs). The proxy is the consumer, so the
// contract lives here; the CA server imports it. One versioned endpoint:
//
//   POST /v1/certificates   Content-Type: application/json
//   { "csr": "<PEM CERTIFICATE REQUEST>", "token": "<workload token>" }
//   200 → { "certChain": "<PEM leaf + issuing CA>", "rootCAs": "<PEM roots>", "notAfter": "<RFC 3339>" }
//   4xx → { "code": "WEFT_ERR_…", "message": "…" }
//
// Bump CA_API_VERSION (and so the path) on any incompatible change; old proxies keep talking to the old path.
import { z } from 'zod';

export const CA_API_VERSION = 'v1';
export const CA_CERTIFICATES_PATH = `/${CA_API_VERSION}/certificates`;
/** Port the CA listens on unless told otherwise (server-authenticated TLS). */
export const CA_DEFAULT_PORT = 15012;
/** Largest request body the CA reads; more is answered 413 without reading on. */
export const CA_MAX_REQUEST_BYTES = 64 * 1024;
/** Largest CSR (DER bytes) the CA parses. */
export const CA_MAX_CSR_DER_BYTES = 16 * 1024;
/** Largest token accepted (a projected ServiceAccount token is ~1 KiB). */
export const CA_MAX_TOKEN_CHARS = 8 * 1024;
/** Audience a workload token must carry. */
export const CA_TOKEN_AUDIENCE = 'weft';

const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]+-----[\s\S]+?-----END [A-Z0-9 ]+-----/;
const Pem = z.string().regex(PEM_BLOCK, 'not PEM');

/** Body of `POST /v1/certificates`. Unknown fields are refused (a typo must not be silently ignored). */
export const CertificateRequestSchema = z.strictObject({
  /** PKCS#10 CSR, PEM (`-----BEGIN CERTIFICATE REQUEST-----`). Its size is checked by the CA, not here. */
  csr: z.string().min(1),
  /** Workload token: a projected ServiceAccount token in cluster, a bootstrap token in `weft local`. */
  token: z.string().min(1).max(CA_MAX_TOKEN_CHARS),
});
export type CertificateRequest = z.infer<typeof CertificateRequestSchema>;

/** A successful answer. Extra fields are tolerated so a newer CA can add some without breaking older proxies. */
export const CertificateResponseSchema = z.object({
  /** The leaf first, then the issuing CA (and any intermediates up to, not including, the root). */
  certChain: Pem,
  /** The trust bundle: every root a proxy should accept peers from. */
  rootCAs: Pem,
  /** The leaf's notAfter, RFC 3339 (UTC). */
  notAfter: z.iso.datetime({ offset: true }),
});
export type CertificateResponse = z.infer<typeof CertificateResponseSchema>;

/** Every error code the CA answers with, and its HTTP status. Codes are stable; messages are for people. */
export const CA_ERROR_STATUS = {
  /** Body is not JSON or does not match CertificateRequestSchema. */
  WEFT_ERR_REQUEST_INVALID: 400,
  /** The CSR is not one parseable PKCS#10 PEM block. */
  WEFT_ERR_CSR_MALFORMED: 400,
  /** The CSR's signature does not verify with the key it carries. */
  WEFT_ERR_CSR_SIGNATURE: 400,
  /** The CSR is signed with an algorithm the CA does not accept (only RSA PKCS#1 v1.5 with SHA-256/384/512). */
  WEFT_ERR_CSR_SIGNATURE_ALGORITHM: 400,
  /** The key is weaker than RSA-2048 (or has a weak public exponent). */
  WEFT_ERR_CSR_KEY_WEAK: 400,
  /** The key type is not one the CA issues for (RSA only: node-forge cannot encode other keys), or too large. */
  WEFT_ERR_CSR_KEY_UNSUPPORTED: 400,
  /** The token is not a well-formed token of the kind the CA verifies. */
  WEFT_ERR_TOKEN_MALFORMED: 401,
  /** The token's signature does not verify (tampered, or signed by someone else). */
  WEFT_ERR_TOKEN_SIGNATURE: 401,
  /** The token is not for audience `weft`. */
  WEFT_ERR_TOKEN_AUDIENCE: 401,
  /** The token's `exp` has passed. */
  WEFT_ERR_TOKEN_EXPIRED: 401,
  /** The token's `iat`/`nbf` lies in the future. */
  WEFT_ERR_TOKEN_NOT_YET_VALID: 401,
  /** The token's claims do not name a valid namespace and service account. */
  WEFT_ERR_TOKEN_CLAIMS: 401,
  /** The token verifier (e.g. Kubernetes TokenReview) rejected the token for another reason. */
  WEFT_ERR_TOKEN_REJECTED: 401,
  /** The CSR asks for CA powers (basicConstraints CA:true, keyCertSign/cRLSign, nameConstraints). */
  WEFT_ERR_CSR_CA_REQUESTED: 403,
  /** The CSR asks for a subject alternative name other than the workload's SPIFFE ID (DNS, IP, email, URI…). */
  WEFT_ERR_CSR_SAN_NOT_ALLOWED: 403,
  /** The CSR names an identity (SPIFFE ID or common name) other than the one the token proves. */
  WEFT_ERR_CSR_IDENTITY_MISMATCH: 403,
  /** Wrong path. */
  WEFT_ERR_NOT_FOUND: 404,
  /** Wrong method. */
  WEFT_ERR_METHOD_NOT_ALLOWED: 405,
  /** Request body larger than CA_MAX_REQUEST_BYTES. */
  WEFT_ERR_BODY_TOO_LARGE: 413,
  /** CSR larger than CA_MAX_CSR_DER_BYTES. */
  WEFT_ERR_CSR_TOO_LARGE: 413,
  /** Content-Type is not application/json. */
  WEFT_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  /** Too many requests for this identity; retry after the `retry-after` header's seconds. */
  WEFT_ERR_RATE_LIMITED: 429,
  /** The CA failed; nothing about the request. */
  WEFT_ERR_INTERNAL: 500,
  /** A dependency of the CA (e.g. the token verifier's API server) is unreachable; retry later. */
  WEFT_ERR_UNAVAILABLE: 503,
} as const;

export type CaErrorCode = keyof typeof CA_ERROR_STATUS;
export const CA_ERROR_CODES = Object.keys(CA_ERROR_STATUS) as [CaErrorCode, ...CaErrorCode[]];

/** Body of every non-2xx answer. An unknown code (a newer CA) still parses, so a proxy can log it. */
export const CaErrorBodySchema = z.object({
  code: z.string().regex(/^WEFT_ERR_[A-Z0-9_]+$/),
  message: z.string(),
});
export type CaErrorBody = z.infer<typeof CaErrorBodySchema>;

/** Codes after which retrying the same request cannot succeed (a proxy should alert, then retry slowly). */
export const CA_PERMANENT_ERRORS: ReadonlySet<string> = new Set<CaErrorCode>([
  'WEFT_ERR_CSR_CA_REQUESTED',
  'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
  'WEFT_ERR_CSR_IDENTITY_MISMATCH',
  'WEFT_ERR_CSR_KEY_WEAK',
  'WEFT_ERR_CSR_KEY_UNSUPPORTED',
  'WEFT_ERR_CSR_SIGNATURE_ALGORITHM',
]);

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`: the one identity form weft issues. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Upper bound of a subject common name (X.520 ub-common-name). */
const MAX_COMMON_NAME = 64;

/**
 * The subject CN of a workload leaf: `<serviceAccount>.<namespace>`, cut to 64 characters. Informational only —
 * peers authenticate by the SPIFFE URI SAN. A CSR may carry this CN or the SPIFFE ID as its CN, or none.
 */
export function workloadCommonName(namespace: string, serviceAccount: string): string {
  return `${serviceAccount}.${namespace}`.slice(0, MAX_COMMON_NAME);
}

// Errors of the proxy's workload identity (key, CSR, CA call, certificate checks). Codes are stable: the proxy
// logs them, reports them on its admin endpoint and metrics, and tests match them. (sidecar/errors.ts holds the
// data plane's codes; these concern obtaining the certificate the data plane's mTLS needs.)

export type IdentityErrorCode =
  /** The CA could not be reached, or the TLS connection to it failed (e.g. its certificate is not trusted). */
  | 'WEFT_ERR_CA_UNREACHABLE'
  /** The CA answered with an error; `caCode` and `status` say which. */
  | 'WEFT_ERR_CA_REFUSED'
  /** The CA's answer is not a CertificateResponse. */
  | 'WEFT_ERR_CA_RESPONSE_INVALID'
  /** The returned chain does not verify up to a trusted root, or is not a valid workload leaf. */
  | 'WEFT_ERR_CERT_CHAIN_INVALID'
  /** The returned leaf is not for the identity this proxy expects, or not for its key. */
  | 'WEFT_ERR_CERT_IDENTITY_MISMATCH'
  /** The certificate expired before a renewal succeeded; it has been dropped (mesh traffic now fails with 503). */
  | 'WEFT_ERR_CERT_EXPIRED'
  /** The token could not be read. */
  | 'WEFT_ERR_TOKEN_UNAVAILABLE'
  /** The peer's certificate carries no SPIFFE ID, or not an allowed one. */
  | 'WEFT_ERR_PEER_IDENTITY';

export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  /** The CA's `WEFT_ERR_…` code, for WEFT_ERR_CA_REFUSED. */
  readonly caCode?: string;
  /** HTTP status of the CA's answer, for WEFT_ERR_CA_REFUSED. */
  readonly status?: number;
  /** From the CA's `retry-after`, when it sent one. */
  readonly retryAfterMs?: number;

  constructor(
    code: IdentityErrorCode,
    message: string,
    extra: { caCode?: string; status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'IdentityError';
    this.code = code;
    if (extra.caCode !== undefined) this.caCode = extra.caCode;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

// Errors of the mesh CA. Codes are stable: the CA server answers with them (see sidecar/config/ca-api.ts for the
// wire codes and their HTTP statuses), logs them, and tests match them. Messages are for people and never carry
// secrets (no token text, no key material) — they may be sent to the requesting proxy.
import type { CaErrorCode } from '../../sidecar/config/ca-api.ts';
import { CA_ERROR_STATUS } from '../../sidecar/config/ca-api.ts';

/** Wire codes about the CSR. */
export type CsrErrorCode = Extract<CaErrorCode, `WEFT_ERR_CSR_${string}`>;
/** Wire codes about the token. */
export type TokenErrorCode = Extract<CaErrorCode, `WEFT_ERR_TOKEN_${string}`> | 'WEFT_ERR_UNAVAILABLE';

/** A request the CA refuses; `code` and `status` go on the wire, `details` only into the log. */
export class CertRequestError extends Error {
  readonly code: CaErrorCode;
  readonly status: number;
  /** Facts for the log line (e.g. the refused SANs); never sent to the client. */
  readonly details: Record<string, unknown>;

  constructor(code: CaErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'CertRequestError';
    this.code = code;
    this.status = CA_ERROR_STATUS[code];
    this.details = details;
  }
}

/** The CSR breaks the CSR policy (csr.ts). */
export class CsrError extends CertRequestError {
  declare readonly code: CsrErrorCode;

  constructor(code: CsrErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'CsrError';
  }
}

/** The workload token does not prove an identity (tokens.ts, or a TokenReview-backed verifier). */
export class TokenError extends CertRequestError {
  declare readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'TokenError';
  }
}

/** Codes of CA set-up problems: these stop the control plane from starting the CA, they never reach a proxy. */
export type CaSetupErrorCode =
  /** Supplied or stored root is not usable: not a CA, key does not match, expired, not RSA, unreadable. */
  | 'WEFT_ERR_CA_INVALID'
  /** The stored root key is readable by group or others. */
  | 'WEFT_ERR_CA_KEY_PERMISSIONS'
  /** The CA directory holds the certificate or the key but not both (an interrupted first start?). */
  | 'WEFT_ERR_CA_STORE_INCOMPLETE'
  /** issue() was called with an identity, trust domain or lifetime that is not valid (a caller bug). */
  | 'WEFT_ERR_CA_ISSUE_INVALID';

export class CaSetupError extends Error {
  readonly code: CaSetupErrorCode;

  constructor(code: CaSetupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaSetupError';
    this.code = code;
  }
}

// Errors of weft's Kubernetes client side (informers, status write-back, leader election). Codes are stable: logs
// and tests match them.

export type KubeErrorCode =
  /** The API server answered with an error status (see `statusCode` and `reason`). */
  | 'WEFT_ERR_K8S_API'
  /** The API server could not be reached, or the connection broke mid-request. */
  | 'WEFT_ERR_K8S_UNREACHABLE'
  /** No usable kubeconfig (no current cluster, unreadable file). */
  | 'WEFT_ERR_K8S_CONFIG'
  /** The provider, writer or elector was closed while the operation waited. */
  | 'WEFT_ERR_K8S_CLOSED';

export class KubeError extends Error {
  readonly code: KubeErrorCode;

  constructor(code: KubeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubeError';
    this.code = code;
  }
}

/** The `Status` object the API server sends with an error. */
export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; causes?: unknown[] };
}

/** An error status from the API server: 404 NotFound, 409 Conflict, 410 Expired, 422 Invalid, 5xx… */
export class KubeApiError extends KubeError {
  declare readonly code: 'WEFT_ERR_K8S_API';
  /** HTTP status (client-node's informer reads `statusCode` to recognise 410 Gone). */
  readonly statusCode: number;
  /** The Status `reason` (`NotFound`, `Conflict`, `Expired`, …), or the HTTP status text. */
  readonly reason: string;
  readonly method: string;
  readonly path: string;
  readonly status: KubeStatus | undefined;

  constructor(method: string, path: string, statusCode: number, reason: string, message: string, status?: KubeStatus) {
    super('WEFT_ERR_K8S_API', `${method} ${path}: ${statusCode} ${reason}: ${message}`);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.reason = reason;
    this.method = method;
    this.path = path;
    this.status = status;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.statusCode === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.statusCode === 409;

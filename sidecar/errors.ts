// Errors of the proxy's data plane. Each code is stable: it is sent to clients in the
// `x-weft-error` response header of answers the proxy gives itself, logged, and matched by tests.

export const ProxyErrorCode = {
  /** The request path cannot be normalised safely (escapes the root, NUL, control chars, bad escape). */
  BadPath: 'WEFT_ERR_BAD_PATH',
  /** The request is malformed in a way Node's parser lets through (duplicate Host, absolute-form https…). */
  BadRequest: 'WEFT_ERR_BAD_REQUEST',
  /** Too many request headers, or more header bytes than allowed (`limits`). */
  HeadersTooLarge: 'WEFT_ERR_HEADERS_TOO_LARGE',
  /** A request body longer than `limits.maxRequestBodyBytes` (413). */
  BodyTooLarge: 'WEFT_ERR_BODY_TOO_LARGE',
  /** `Upgrade: h2c` is never honoured: it would let a client smuggle HTTP/2 past the proxy's checks. */
  H2cUpgradeRefused: 'WEFT_ERR_H2C_UPGRADE_REFUSED',
  /** No virtual host or no route matched. */
  NoRoute: 'WEFT_ERR_NO_ROUTE',
  /** The outbound destination is not a Service this proxy knows. */
  UnknownService: 'WEFT_ERR_UNKNOWN_SERVICE',
  /** A backendRef did not resolve (cluster null), or a rule has no backend with weight. */
  BackendUnresolved: 'WEFT_ERR_BACKEND_UNRESOLVED',
  /** A cluster has no ready endpoint. */
  NoEndpoint: 'WEFT_ERR_NO_ENDPOINT',
  /** The chosen endpoint requires mTLS (identity/meshPort) and this proxy was started without a workload identity. */
  MtlsUnavailable: 'WEFT_ERR_MTLS_UNAVAILABLE',
  /** The upstream refused, reset or failed the connection. */
  UpstreamConnect: 'WEFT_ERR_UPSTREAM_CONNECT',
  /** The chosen endpoint requires mTLS and this proxy has no valid certificate (none yet, or expired). */
  NoCertificate: 'WEFT_ERR_NO_CERTIFICATE',
  /** The mTLS handshake with a peer proxy failed (its chain does not verify against the trust bundle…). */
  UpstreamTls: 'WEFT_ERR_UPSTREAM_TLS',
  /** The peer proxy's certificate carries another SPIFFE ID than the endpoint's `identity`. */
  UpstreamIdentity: 'WEFT_ERR_UPSTREAM_IDENTITY',
  /** Mesh listener: the caller's verified certificate has no SPIFFE ID in the trust domain. */
  PeerIdentity: 'WEFT_ERR_PEER_IDENTITY',
  /** Mesh listener: `x-weft-target-port` is missing, malformed or not one of the app's ports. */
  TargetPort: 'WEFT_ERR_TARGET_PORT',
  /** The request or backendRequest timeout expired before the response headers arrived. */
  UpstreamTimeout: 'WEFT_ERR_UPSTREAM_TIMEOUT',
  /** An HTTPS request's Host selects another listener host than its SNI did. */
  Misdirected: 'WEFT_ERR_MISDIRECTED',
  /** The inbound listener has no app port to hand the request to. */
  NoAppPort: 'WEFT_ERR_NO_APP_PORT',
  /** The inbound listener refuses plaintext from unmeshed clients. */
  PlaintextRefused: 'WEFT_ERR_PLAINTEXT_REFUSED',
  /** A WebSocket upgrade to a cluster that cannot carry one. */
  UpgradeUnsupported: 'WEFT_ERR_UPGRADE_UNSUPPORTED',
  /** A configuration could not be compiled into lookup tables; the previous one keeps serving. */
  ConfigCompile: 'WEFT_ERR_CONFIG_COMPILE',
  /** A listener could not be bound. */
  ListenFailed: 'WEFT_ERR_LISTEN',
} as const;

export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  /** The HTTP status this error is answered with when it happens while serving a request. */
  readonly status: number;

  constructor(code: ProxyErrorCode, status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.status = status;
  }
}

/** A configuration that cannot be compiled (a regex the dialect refuses, a dangling reference…). */
export class ConfigCompileError extends ProxyError {
  constructor(message: string, options?: ErrorOptions) {
    super(ProxyErrorCode.ConfigCompile, 500, message, options);
    this.name = 'ConfigCompileError';
  }
}

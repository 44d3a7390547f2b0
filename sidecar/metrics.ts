// The proxy's Prometheus metrics, one prom-client Registry per proxy (several proxies in one
// process must not share series). Request-path metrics are plain numbers in objects the
// compiled config holds: a request adds to its series with an increment and a bucket
// increment, no label object, no hash, no closure. prom-client's own children rebuild a label
// hash (and, for histograms, a closure and an object) on every call, about 1.5 µs a request;
// here the samples are built only when /metrics is scraped, by collectors registered in the
// same Registry. Every label value comes from the config or a fixed list, never from a request.
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { Counter, Gauge, type Metric, Registry } from 'prom-client';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import { spiffeIdOf } from './identity/peer.ts';
import { certificatesOf } from './identity/verify.ts';

/** Upper bounds (seconds) of the duration histogram: 100 µs to 10 s. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * `code_class` values, by index: `none` when the client left before a status was sent,
 * `other` for a status outside 100–599 (an upstream may send one).
 */
export const CODE_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** The route / rule / backend label of requests no route took. */
export const NONE = 'none';

/**
 * `reason` values of weft_proxy_request_errors_total, by index: a fixed list, each tied to the WEFT_ERR code the
 * proxy answers with (docs/metrics.md has the table). Counted once per request, for its final outcome.
 */
export const ERROR_REASONS = [
  'connect_refused',
  'connect_timeout',
  'connect_failed',
  'upstream_reset',
  'upstream_protocol',
  'upstream_tls',
  'upstream_identity',
  'request_timeout',
  'backend_timeout',
  'no_healthy_endpoint',
  'no_route',
  'unknown_service',
  'backend_unresolved',
  'no_certificate',
  'mtls_unavailable',
  'peer_identity',
  'target_port',
  'no_app_port',
  'plaintext_refused',
  'misdirected',
  'malformed_request',
  'headers_too_large',
  'body_too_large',
  'client_abort',
  'internal',
] as const;

export type ErrorReason = (typeof ERROR_REASONS)[number];

/** The index of `reason` in ERROR_REASONS, what RequestSeries#error takes. */
export const errorReason = (reason: ErrorReason): number => ERROR_REASONS.indexOf(reason);

const BY_CODE = new Map<string, number>([
  [ProxyErrorCode.BadPath, errorReason('malformed_request')],
  [ProxyErrorCode.BadRequest, errorReason('malformed_request')],
  [ProxyErrorCode.H2cUpgradeRefused, errorReason('malformed_request')],
  [ProxyErrorCode.HeadersTooLarge, errorReason('headers_too_large')],
  [ProxyErrorCode.BodyTooLarge, errorReason('body_too_large')],
  [ProxyErrorCode.NoRoute, errorReason('no_route')],
  [ProxyErrorCode.UnknownService, errorReason('unknown_service')],
  [ProxyErrorCode.BackendUnresolved, errorReason('backend_unresolved')],
  [ProxyErrorCode.NoEndpoint, errorReason('no_healthy_endpoint')],
  [ProxyErrorCode.MtlsUnavailable, errorReason('mtls_unavailable')],
  [ProxyErrorCode.NoCertificate, errorReason('no_certificate')],
  [ProxyErrorCode.UpstreamTls, errorReason('upstream_tls')],
  [ProxyErrorCode.UpstreamIdentity, errorReason('upstream_identity')],
  [ProxyErrorCode.PeerIdentity, errorReason('peer_identity')],
  [ProxyErrorCode.TargetPort, errorReason('target_port')],
  // The request timeout is told apart by the exchange, which knows which timer fired.
  [ProxyErrorCode.UpstreamTimeout, errorReason('backend_timeout')],
  [ProxyErrorCode.Misdirected, errorReason('misdirected')],
  [ProxyErrorCode.NoAppPort, errorReason('no_app_port')],
  [ProxyErrorCode.PlaintextRefused, errorReason('plaintext_refused')],
]);

/** WEFT_ERR_UPSTREAM_CONNECT split by the socket error behind it. */
const CONNECT_CAUSES = new Map<string, number>([
  ['ECONNREFUSED', errorReason('connect_refused')],
  ['ETIMEDOUT', errorReason('connect_timeout')],
  ['UND_ERR_CONNECT_TIMEOUT', errorReason('connect_timeout')],
  ['ECONNRESET', errorReason('upstream_reset')],
  ['EPIPE', errorReason('upstream_reset')],
  ['ECONNABORTED', errorReason('upstream_reset')],
  ['UND_ERR_SOCKET', errorReason('upstream_reset')],
  ['UND_ERR_CLOSED', errorReason('upstream_reset')],
  ['HPE_INVALID_CONSTANT', errorReason('upstream_protocol')],
  ['UND_ERR_INFO', errorReason('upstream_protocol')],
]);

/** The ERROR_REASONS index of an answer the proxy gave itself (or of the failure behind it). */
export function errorReasonOf(err: ProxyError): number {
  if (err.code === ProxyErrorCode.UpstreamConnect) {
    const cause = (err.cause as { code?: unknown } | undefined)?.code;
    return (typeof cause === 'string' ? CONNECT_CAUSES.get(cause) : undefined) ?? errorReason('connect_failed');
  }
  return BY_CODE.get(err.code) ?? errorReason('internal');
}

function codeClassIndex(status: number): number {
  const c = (status / 100) | 0;
  if (c >= 1 && c <= 5) return c;
  return status === 0 ? 0 : 6;
}

function bucketIndex(seconds: number): number {
  const b = DURATION_BUCKETS;
  for (let i = 0; i < b.length; i++) if (seconds <= b[i]) return i;
  return b.length;
}

/** Count, sum and per-bucket counts (not cumulative) of one full label set. */
class ClassSeries {
  count = 0;
  sum = 0;
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
}

/** The requests of one listener × route × rule × backend, by code class. */
export class RequestSeries {
  readonly listener: string;
  readonly route: string;
  readonly rule: string;
  readonly backend: string;
  readonly byClass: (ClassSeries | undefined)[] = [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  /** Requests of this label set being forwarded now. */
  inFlight = 0;
  /** Failed requests by ERROR_REASONS index; made on the first failure. */
  errors: Float64Array | undefined;

  constructor(listener: string, route: string, rule: string, backend: string) {
    this.listener = listener;
    this.route = route;
    this.rule = rule;
    this.backend = backend;
  }

  /** One finished request: `status` 0 when no status was sent. */
  record(status: number, seconds: number): void {
    const c = codeClassIndex(status);
    let s = this.byClass[c];
    if (s === undefined) {
      s = new ClassSeries();
      this.byClass[c] = s;
    }
    s.count++;
    s.sum += seconds;
    s.buckets[bucketIndex(seconds)]++;
  }

  /** One failed request, `reason` an ERROR_REASONS index (errorReason, errorReasonOf). */
  error(reason: number): void {
    this.errors ??= new Float64Array(ERROR_REASONS.length);
    this.errors[reason]++;
  }

  /** An answer the proxy gave itself: counted as a request with its status and as an error with its reason. */
  failed(err: ProxyError, seconds: number): void {
    this.record(err.status, seconds);
    this.error(errorReasonOf(err));
  }
}

/** Per-listener state the request path reads: its slot, name and in-flight count. */
export class ListenerStats {
  readonly name: string;
  /** Index into RouteLabels' per-listener caches; stable for the proxy's lifetime. */
  readonly slot: number;
  inFlight = 0;
  readonly metrics: ProxyMetrics;

  constructor(metrics: ProxyMetrics, name: string, slot: number) {
    this.metrics = metrics;
    this.name = name;
    this.slot = slot;
  }
}

/**
 * The route, rule and backend labels of one compiled route or backend, made when the config
 * is compiled; its series per listener are bound on first use and kept here.
 */
export class RouteLabels {
  readonly route: string;
  readonly rule: string;
  readonly backend: string;
  readonly #series: (RequestSeries | undefined)[] = [];

  constructor(route: string, rule: string, backend: string) {
    this.route = route;
    this.rule = rule;
    this.backend = backend;
  }

  series(listener: ListenerStats): RequestSeries {
    let s = this.#series[listener.slot];
    if (s === undefined) {
      s = listener.metrics.requestSeries(listener.name, this.route, this.rule, this.backend);
      this.#series[listener.slot] = s;
    }
    return s;
  }
}

function seriesLabels(s: RequestSeries): Record<string, string> {
  return { listener: s.listener, route: s.route, rule: s.rule, backend: s.backend };
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A counter or gauge whose sample is a plain number, read at scrape time. */
interface CountedSample extends Sample {
  value: number;
}

/**
 * A metric in a prom-client Registry whose samples are produced at scrape time: the shape
 * Registry reads (`name`, `help`, `type`, `aggregator`, `get()`), which prom-client's own
 * classes share.
 */
class ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum';
  readonly #samples: () => Sample[];

  constructor(name: string, help: string, type: ScrapedMetric['type'], samples: () => Sample[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.#samples = samples;
  }

  async get() {
    return { name: this.name, help: this.help, type: this.type, values: this.#samples(), aggregator: this.aggregator };
  }

  /** Registry#resetMetrics: these are cumulative process counters, kept. */
  reset(): void {}
}

export type ConfigUpdateResult = 'applied' | 'rejected';

/** `reason` values of weft_proxy_config_rejections_total. */
export const CONFIG_REJECT_REASONS = [
  'invalid',
  'unsupported_version',
  'wrong_proxy',
  'wrong_mode',
  'compile',
  'listen',
  'other',
] as const;

export type ConfigRejectReason = (typeof CONFIG_REJECT_REASONS)[number];

/** Why a config was refused, from the error its validation, compilation or binding threw. */
export function configRejectReason(err: unknown): ConfigRejectReason {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'WEFT_ERR_CONFIG_INVALID': {
      const path = (err as { issues?: { path: string }[] }).issues?.[0]?.path;
      return path === 'proxy.id' ? 'wrong_proxy' : path === 'proxy.mode' ? 'wrong_mode' : 'invalid';
    }
    case 'WEFT_ERR_CONFIG_VERSION':
      return 'unsupported_version';
    case ProxyErrorCode.ConfigCompile:
    case 'WEFT_ERR_REGEX':
      return 'compile';
    case ProxyErrorCode.ListenFailed:
      return 'listen';
    default:
      return 'other';
  }
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly #listeners = new Map<string, ListenerStats>();
  readonly #series = new Map<string, RequestSeries>();
  /** reason → status → sample. */
  readonly #localReplies = new Map<string, Map<number, CountedSample>>();
  readonly #connectErrors = new Map<string, CountedSample>();
  readonly #configVersion: Gauge<'version'>;
  readonly #configUpdates: Counter<'result'>;
  readonly #configRejections: Counter<'reason'>;
  /** mTLS connections of the mesh listener and to peer proxies. */
  readonly mtls: MtlsMetrics;
  /** The workload certificate and trust bundle. */
  readonly certificates: CertificateMetrics;
  /** Labels of requests answered before any route was chosen. */
  readonly none = new RouteLabels(NONE, NONE, NONE);

  constructor() {
    const register = (m: ScrapedMetric) => this.registry.registerMetric(m as unknown as Metric);
    register(
      new ScrapedMetric(
        'weft_proxy_requests_total',
        'Requests served, by listener, route, rule, backend and status class',
        'counter',
        () => this.#requestSamples(false),
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_request_duration_seconds',
        'Time from request headers received to response end (or client gone), seconds',
        'histogram',
        () => this.#requestSamples(true),
      ),
    );
    register(
      new ScrapedMetric('weft_proxy_requests_in_flight', 'Requests being forwarded, by listener', 'gauge', () =>
        [...this.#listeners.values()].map((l) => ({ labels: { listener: l.name }, value: l.inFlight })),
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_request_errors_total',
        'Requests that failed, by listener, route, rule, backend and reason (a fixed list tied to WEFT_ERR codes)',
        'counter',
        () => this.#errorSamples(),
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_route_requests_in_flight',
        'Requests being forwarded, by listener, route, rule and backend',
        'gauge',
        () => [...this.#series.values()].map((s) => ({ labels: seriesLabels(s), value: s.inFlight })),
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_local_replies_total',
        'Error answers the proxy gave itself, by status code and WEFT_ERR reason',
        'counter',
        () => {
          const out: Sample[] = [];
          for (const byStatus of this.#localReplies.values()) for (const s of byStatus.values()) out.push(s);
          return out;
        },
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_upstream_connect_errors_total',
        'Upstream attempts that failed to connect or were reset before a response, by cluster',
        'counter',
        () => [...this.#connectErrors.values()],
      ),
    );
    this.#configVersion = new Gauge({
      name: 'weft_proxy_config_version_info',
      help: 'The version of the config being served (value 1)',
      labelNames: ['version'],
      registers: [this.registry],
    });
    this.#configUpdates = new Counter({
      name: 'weft_proxy_config_updates_total',
      help: 'Config updates, by result',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.#configUpdates.inc({ result: 'applied' }, 0);
    this.#configUpdates.inc({ result: 'rejected' }, 0);
    this.#configRejections = new Counter({
      name: 'weft_proxy_config_rejections_total',
      help: 'Configs refused whole (the previous one keeps serving), by reason',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    for (const reason of CONFIG_REJECT_REASONS) this.#configRejections.inc({ reason }, 0);
    this.mtls = new MtlsMetrics(this.registry);
    this.certificates = new CertificateMetrics(this.registry);
  }

  /** The stats of a listener by name (its label); the same object for the proxy's lifetime. */
  listener(name: string): ListenerStats {
    let l = this.#listeners.get(name);
    if (l === undefined) {
      l = new ListenerStats(this, name, this.#listeners.size);
      this.#listeners.set(name, l);
    }
    return l;
  }

  /** One series per label set, shared by every config that has it, so counts survive config swaps. */
  requestSeries(listener: string, route: string, rule: string, backend: string): RequestSeries {
    const key = `${listener}\0${route}\0${rule}\0${backend}`;
    let s = this.#series.get(key);
    if (s === undefined) {
      s = new RequestSeries(listener, route, rule, backend);
      this.#series.set(key, s);
    }
    return s;
  }

  /** An error answer the proxy gave itself; `reason` is its WEFT_ERR code. */
  localReply(status: number, reason: string): void {
    let byStatus = this.#localReplies.get(reason);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#localReplies.set(reason, byStatus);
    }
    let s = byStatus.get(status);
    if (s === undefined) {
      s = { labels: { code: String(status), reason }, value: 0 };
      byStatus.set(status, s);
    }
    s.value++;
  }

  /** An upstream attempt to `cluster` (its config key) failed to connect or was reset. */
  upstreamConnectError(cluster: string): void {
    let s = this.#connectErrors.get(cluster);
    if (s === undefined) {
      s = { labels: { cluster }, value: 0 };
      this.#connectErrors.set(cluster, s);
    }
    s.value++;
  }

  configApplied(version: string): void {
    this.#configVersion.reset();
    this.#configVersion.set({ version }, 1);
    this.#configUpdates.inc({ result: 'applied' });
  }

  /** A config refused whole; `reason` from configRejectReason. */
  configRejected(reason: ConfigRejectReason = 'other'): void {
    this.#configUpdates.inc({ result: 'rejected' });
    this.#configRejections.inc({ reason });
  }

  /** The exposition text for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #errorSamples(): Sample[] {
    const out: Sample[] = [];
    for (const s of this.#series.values()) {
      const errors = s.errors;
      if (errors === undefined) continue;
      for (let r = 0; r < errors.length; r++) {
        if (errors[r] === 0) continue;
        out.push({ labels: { ...seriesLabels(s), reason: ERROR_REASONS[r] }, value: errors[r] });
      }
    }
    return out;
  }

  #requestSamples(histogram: boolean): Sample[] {
    const out: Sample[] = [];
    for (const s of this.#series.values()) {
      for (let c = 0; c < s.byClass.length; c++) {
        const cs = s.byClass[c];
        if (cs === undefined) continue;
        const labels = { ...seriesLabels(s), code_class: CODE_CLASSES[c] };
        if (!histogram) {
          out.push({ labels, value: cs.count });
          continue;
        }
        let cumulative = 0;
        for (let b = 0; b < DURATION_BUCKETS.length; b++) {
          cumulative += cs.buckets[b];
          out.push({
            metricName: 'weft_proxy_request_duration_seconds_bucket',
            labels: { ...labels, le: DURATION_BUCKETS[b] },
            value: cumulative,
          });
        }
        out.push({
          metricName: 'weft_proxy_request_duration_seconds_bucket',
          labels: { ...labels, le: '+Inf' },
          value: cs.count,
        });
        out.push({ metricName: 'weft_proxy_request_duration_seconds_sum', labels, value: cs.sum });
        out.push({ metricName: 'weft_proxy_request_duration_seconds_count', labels, value: cs.count });
      }
    }
    return out;
  }
}

// mTLS connections and the workload certificate: events per connection or per certificate, not per request, so
// prom-client's own labelled children are cheap enough here except for the open-connection count, which a socket's
// `close` lowers through one function per label set (no closure per connection).

/** `result` values of weft_proxy_mtls_connections_total: `ok`, or why the handshake failed. */
export const MTLS_RESULTS = [
  'ok',
  'no_certificate',
  'no_local_certificate',
  'untrusted_certificate',
  'certificate_expired',
  'identity_mismatch',
  'peer_alert',
  'protocol',
  'timeout',
  'connect_failed',
  'peer_closed',
  'handshake_failed',
] as const;

export type MtlsResult = (typeof MTLS_RESULTS)[number];
export type MtlsDirection = 'inbound' | 'outbound';

/** The `peer_identity` of a connection whose peer was not verified: never a name from an unverified certificate. */
export const UNKNOWN_PEER = 'unknown';

const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD']);
/** OpenSSL's verify results (X509_V_ERR_*) as Node names them, but for the two above. */
const UNTRUSTED = /^(UNABLE_TO_|CERT_|SELF_SIGNED_|DEPTH_ZERO_|INVALID_CA|PATH_LENGTH|INVALID_PURPOSE|ERROR_IN_CERT)/;
const PROTOCOL = /PROTOCOL|WRONG_VERSION|HTTP_REQUEST|NO_SHARED_CIPHER|UNSUPPORTED/;
const CLOSED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/**
 * Why an mTLS handshake failed. `verifyError`: the socket's `authorizationError` (a server learns why a client's
 * chain was refused only there).
 */
export function mtlsFailure(err: unknown, verifyError?: unknown): MtlsResult {
  if (err instanceof ProxyError) {
    if (err.code === ProxyErrorCode.UpstreamIdentity) return 'identity_mismatch';
    if (err.code === ProxyErrorCode.NoCertificate || err.code === ProxyErrorCode.MtlsUnavailable) {
      return 'no_local_certificate';
    }
    if (err.cause !== undefined) return mtlsFailure(err.cause);
  }
  const verify = typeof verifyError === 'string' ? verifyError : (verifyError as { code?: unknown } | null)?.code;
  const raw = (err as { code?: unknown } | null)?.code;
  const code = typeof verify === 'string' ? verify : typeof raw === 'string' ? raw : '';
  if (EXPIRED.has(code)) return 'certificate_expired';
  if (UNTRUSTED.test(code)) return 'untrusted_certificate';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_certificate';
  if (PROTOCOL.test(code)) return 'protocol';
  if (code.includes('ALERT')) return 'peer_alert';
  if (code === 'ETIMEDOUT' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (CLOSED.has(code)) return 'peer_closed';
  if (UNREACHABLE.has(code)) return 'connect_failed';
  return 'handshake_failed';
}

/** The connections of one direction × peer identity × result; `open` only moves for `ok`. */
class MtlsSeries {
  readonly labels: { direction: MtlsDirection; peer_identity: string; result: MtlsResult };
  count = 0;
  open = 0;
  /** A socket's `close` listener, shared by every connection of this label set. */
  readonly closed = (): void => {
    this.open--;
  };

  constructor(direction: MtlsDirection, peer: string, result: MtlsResult) {
    this.labels = { direction, peer_identity: peer, result };
  }
}

export class MtlsMetrics {
  readonly #series = new Map<string, MtlsSeries>();

  constructor(registry: Registry) {
    const register = (m: ScrapedMetric) => registry.registerMetric(m as unknown as Metric);
    register(
      new ScrapedMetric(
        'weft_proxy_mtls_connections_total',
        'mTLS connections, by direction, peer SPIFFE ID (verified only) and result (ok, or why the handshake failed)',
        'counter',
        () => [...this.#series.values()].map((s) => ({ labels: s.labels, value: s.count })),
      ),
    );
    register(
      new ScrapedMetric(
        'weft_proxy_mtls_connections_open',
        'mTLS connections open now, by direction and peer SPIFFE ID',
        'gauge',
        () => {
          const out: Sample[] = [];
          for (const s of this.#series.values()) {
            if (s.labels.result !== 'ok') continue;
            out.push({
              labels: { direction: s.labels.direction, peer_identity: s.labels.peer_identity },
              value: s.open,
            });
          }
          return out;
        },
      ),
    );
  }

  /** One connection attempt; with `socket` (a connection that is up) it counts as open until the socket closes. */
  connection(direction: MtlsDirection, peer: string, result: MtlsResult, socket?: Socket): void {
    const key = `${direction}\0${peer}\0${result}`;
    let s = this.#series.get(key);
    if (s === undefined) {
      s = new MtlsSeries(direction, peer, result);
      this.#series.set(key, s);
    }
    s.count++;
    if (socket === undefined || socket.destroyed) return;
    s.open++;
    socket.once('close', s.closed);
  }

  /**
   * Counts the connections of a mesh listener: handshakes that passed (by the caller's SPIFFE ID, `none` when its
   * certificate has no single one) and those that failed (`unknown` peer: its certificate was not verified).
   */
  serve(server: TlsServer): void {
    server.on('secureConnection', (socket: TLSSocket) => {
      const peer = socket.authorized ? (spiffeIdOf(socket.getPeerCertificate()) ?? NONE) : UNKNOWN_PEER;
      this.connection('inbound', peer, 'ok', socket);
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.connection('inbound', UNKNOWN_PEER, mtlsFailure(err, socket.authorizationError));
    });
  }

  /** An outbound connection to a peer proxy that should be `peerIdentity`: up (`socket`) or failed (`err`). */
  outbound(peerIdentity: string, err: Error | null, socket?: TLSSocket): void {
    if (err === null) this.connection('outbound', peerIdentity, 'ok', socket);
    else this.connection('outbound', peerIdentity, mtlsFailure(err));
  }
}

/** The credentials CertificateMetrics reads: an IdentitySource's (sidecar/upstream/mtls.ts). */
interface CertificateSource {
  current(): { certChain: string; rootCAs: string } | undefined;
  on(event: 'change' | 'expired', listener: () => void): unknown;
}

interface CertificateFacts {
  kind: 'leaf' | 'chain' | 'root';
  serial: string;
  notAfterSeconds: number;
}

/** The expiry of each certificate in `pem`: the first is `first`, the rest `rest`; nothing for unparsable PEM. */
function certificateFacts(pem: string, first: CertificateFacts['kind'], rest: CertificateFacts['kind']) {
  try {
    return certificatesOf(pem).map(
      (c, i): CertificateFacts => ({
        kind: i === 0 ? first : rest,
        serial: c.serialNumber,
        notAfterSeconds: c.validToDate.getTime() / 1000,
      }),
    );
  } catch {
    return [];
  }
}

export class CertificateMetrics {
  #source: CertificateSource | undefined;
  #roots: () => string | undefined = () => undefined;
  /** The last certificate set seen, parsed once; kept after the source drops an expired one. */
  #chain = '';
  #bundle = '';
  #facts: CertificateFacts[] = [];
  #hadCertificate = false;
  readonly #rotations: Counter;
  readonly #renewalFailures: Counter<'reason'>;

  constructor(registry: Registry) {
    registry.registerMetric(
      new ScrapedMetric(
        'weft_proxy_certificate_expiry_timestamp_seconds',
        'notAfter of the workload certificate (leaf), the CA certificates sent with it (chain) and the trust bundle (root)',
        'gauge',
        () => this.#samples(),
      ) as unknown as Metric,
    );
    this.#rotations = new Counter({
      name: 'weft_proxy_certificate_rotations_total',
      help: 'Workload certificates that replaced a previous one',
      registers: [registry],
    });
    this.#renewalFailures = new Counter({
      name: 'weft_proxy_certificate_renewal_failures_total',
      help: 'Failed attempts to get a workload certificate from the mesh CA, by WEFT_ERR reason',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  /**
   * Follows the proxy's identity source: rotations as they happen, expiries read at scrape time. `roots`: the trust
   * bundle of the config being served, which takes precedence over the source's.
   */
  watch(source: CertificateSource, roots: () => string | undefined): void {
    this.#source = source;
    this.#roots = roots;
    this.#hadCertificate = source.current() !== undefined;
    source.on('change', () => {
      if (this.#hadCertificate) this.#rotations.inc();
      this.#hadCertificate = true;
    });
    // A WorkloadIdentity says when a renewal failed; other sources never emit it.
    (source as unknown as EventEmitter).on('renewalFailed', (err: { code?: unknown }) => {
      this.#renewalFailures.inc({ reason: typeof err?.code === 'string' ? err.code : 'WEFT_ERR_CA_UNREACHABLE' });
    });
  }

  #samples(): Sample[] {
    const creds = this.#source?.current();
    if (creds !== undefined) {
      const bundle = this.#roots() ?? creds.rootCAs;
      if (creds.certChain !== this.#chain || bundle !== this.#bundle) {
        this.#chain = creds.certChain;
        this.#bundle = bundle;
        this.#facts = [
          ...certificateFacts(creds.certChain, 'leaf', 'chain'),
          ...certificateFacts(bundle, 'root', 'root'),
        ];
      }
    }
    return this.#facts.map((f) => ({ labels: { kind: f.kind, serial_number: f.serial }, value: f.notAfterSeconds }));
  }
}

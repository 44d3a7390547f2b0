// The proxy's Prometheus metrics, one prom-client Registry per proxy (several proxies in one
// process must not share series). Request-path metrics are plain numbers in objects the
// compiled config holds: a request adds to its series with an increment and a bucket
// increment, no label object, no hash, no closure. prom-client's own children rebuild a label
// hash (and, for histograms, a closure and an object) on every call, about 1.5 µs a request;
// here the samples are built only when /metrics is scraped, by collectors registered in the
// same Registry. Every label value comes from the config or a fixed list, never from a request.
import { Counter, Gauge, type Metric, Registry } from 'prom-client';
import { type ProxyError, ProxyErrorCode } from './errors.ts';

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
  'upgrade_unsupported',
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
  [ProxyErrorCode.UpgradeUnsupported, errorReason('upgrade_unsupported')],
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

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly #listeners = new Map<string, ListenerStats>();
  readonly #series = new Map<string, RequestSeries>();
  /** reason → status → sample. */
  readonly #localReplies = new Map<string, Map<number, CountedSample>>();
  readonly #connectErrors = new Map<string, CountedSample>();
  readonly #clusterLabels = new WeakMap<object, RouteLabels>();
  readonly #configVersion: Gauge<'version'>;
  readonly #configUpdates: Counter<'result'>;
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

  /** Labels for plans that carry none (inbound, mesh): no route, the cluster as backend. */
  clusterLabels(cluster: { readonly key: string }): RouteLabels {
    let l = this.#clusterLabels.get(cluster);
    if (l === undefined) {
      l = new RouteLabels(NONE, NONE, cluster.key);
      this.#clusterLabels.set(cluster, l);
    }
    return l;
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

  configRejected(): void {
    this.#configUpdates.inc({ result: 'rejected' });
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

// The proxy's Prometheus metrics, one prom-client Registry per proxy (several proxies in one
// process must not share series). Request-path metrics are plain numbers in objects the
// compiled config holds: a request adds to its series with an increment and a bucket
// increment, no label object, no hash, no closure. prom-client's own children rebuild a label
// hash (and, for histograms, a closure and an object) on every call, about 1.5 µs a request;
// here the samples are built only when /metrics is scraped, by collectors registered in the
// same Registry. Every label value comes from the config or a fixed list, never from a request.
import { Counter, Gauge, type Metric, Registry } from 'prom-client';

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

  #requestSamples(histogram: boolean): Sample[] {
    const out: Sample[] = [];
    for (const s of this.#series.values()) {
      for (let c = 0; c < s.byClass.length; c++) {
        const cs = s.byClass[c];
        if (cs === undefined) continue;
        const labels = {
          listener: s.listener,
          route: s.route,
          rule: s.rule,
          backend: s.backend,
          code_class: CODE_CLASSES[c],
        };
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

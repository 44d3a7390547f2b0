// The control plane's Prometheus metrics, served at GET /metrics of the admin endpoint (15014): one prom-client
// Registry per control plane, so several in one process (tests, `weft local`) never share series. The push server
// and the CA report events through the narrow interfaces they declare (PushMetrics, CaMetrics), which this class
// implements; the pipeline, the status writer and the CA's certificates are read when /metrics is scraped. Every
// label value comes from a fixed list or from the control plane's own certificates — never from a proxy's input.
import { X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CaMetrics } from '../certs/server.ts';
import type { PushMetrics, PushOutcome } from '../push/server.ts';

/** Upper bounds (seconds) of the push and translation histograms: 1 ms to 30 s. */
export const CONTROLPLANE_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export const PUSH_OUTCOMES: readonly PushOutcome[] = ['ack', 'nack', 'error'];

/** `result` of weft_controlplane_status_writes_total, from StatusWriterStats. */
const STATUS_RESULTS = [
  ['written', 'writes'],
  ['unchanged', 'unchanged'],
  ['conflict', 'conflicts'],
  ['failed', 'failures'],
] as const;

/** What the status writer exposes (StatusWriter#stats has this shape). */
export interface StatusWriterStatsSource {
  readonly stats: { writes: number; unchanged: number; conflicts: number; failures: number; pending: number };
}

/** What the pipeline tells of each translation (Pipeline#onTranslation). */
export interface TranslationSource {
  onTranslation(listener: (e: { ok: boolean; durationMs: number; proxies: number }) => void): () => void;
}

/** The CA's certificates (MeshCA has this shape): the one that signs, and the roots proxies trust. */
export interface CaCertificates {
  readonly certPem: string;
  readonly rootCAsPem: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export class ControlPlaneMetrics implements PushMetrics, CaMetrics {
  readonly registry = new Registry();
  readonly #connected: Gauge;
  readonly #configsSent: Counter;
  readonly #pushes: Counter<'result'>;
  readonly #pushDuration: Histogram;
  readonly #refusals: Counter<'reason'>;
  readonly #translations: Histogram<'result'>;
  readonly #proxyConfigs: Gauge;
  readonly #certificates: Counter<'result' | 'reason'>;
  readonly #caExpiry: Gauge<'kind' | 'serial_number'>;
  readonly #statusWrites: Counter<'result'>;
  /** The writer's counts as last exported: the counter moves by the difference. */
  readonly #statusSeen = new Map<string, number>();
  readonly #statusPending: Gauge;
  #ca: CaCertificates | undefined;
  #caSeen: CaCertificates | undefined;
  #writer: StatusWriterStatsSource | undefined;

  constructor() {
    const registers = [this.registry];
    this.#connected = new Gauge({
      name: 'weft_controlplane_connected_proxies',
      help: 'Proxies with an accepted config push connection',
      registers,
    });
    this.#configsSent = new Counter({
      name: 'weft_controlplane_configs_sent_total',
      help: 'Configs written to proxies over config push',
      registers,
    });
    this.#pushes = new Counter({
      name: 'weft_controlplane_pushes_total',
      help: 'Pushed configs by outcome: acked, nacked (refused by the proxy), or lost with their connection',
      labelNames: ['result'],
      registers,
    });
    for (const result of PUSH_OUTCOMES) this.#pushes.inc({ result }, 0);
    this.#pushDuration = new Histogram({
      name: 'weft_controlplane_push_duration_seconds',
      help: 'Time from writing a config to a proxy to its ack',
      buckets: [...CONTROLPLANE_BUCKETS],
      registers,
    });
    this.#refusals = new Counter({
      name: 'weft_controlplane_push_refusals_total',
      help: 'Push connections refused or closed by the control plane, by WEFT_ERR_PUSH code (tls: handshake failed)',
      labelNames: ['reason'],
      registers,
    });
    this.#translations = new Histogram({
      name: 'weft_controlplane_translate_duration_seconds',
      help: 'Time to translate a resource snapshot into proxy configs and statuses, by result',
      labelNames: ['result'],
      buckets: [...CONTROLPLANE_BUCKETS],
      registers,
    });
    this.#proxyConfigs = new Gauge({
      name: 'weft_controlplane_proxy_configs',
      help: 'Proxy configs the last successful translation produced',
      registers,
    });
    this.#certificates = new Counter({
      name: 'weft_controlplane_certificates_issued_total',
      help: 'Workload certificate requests by result (issued, refused, failed) and WEFT_ERR reason (none when issued)',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.#caExpiry = new Gauge({
      name: 'weft_controlplane_ca_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the CA certificate that signs (issuer) and of the roots proxies trust (root)',
      labelNames: ['kind', 'serial_number'],
      registers,
      collect: () => this.#collectCa(),
    });
    this.#statusWrites = new Counter({
      name: 'weft_controlplane_status_writes_total',
      help: 'Status reconciles by result since start (written, unchanged, conflict, failed)',
      labelNames: ['result'],
      registers,
      collect: () => this.#collectStatus(),
    });
    this.#statusPending = new Gauge({
      name: 'weft_controlplane_status_writes_pending',
      help: 'Status keys waiting, being written or waiting for a retry',
      registers,
    });
  }

  // PushMetrics

  connectedProxies(count: number): void {
    this.#connected.set(count);
  }

  configSent(): void {
    this.#configsSent.inc();
  }

  pushFinished(result: PushOutcome, seconds?: number): void {
    this.#pushes.inc({ result });
    if (result === 'ack' && seconds !== undefined) this.#pushDuration.observe(seconds);
  }

  pushRefused(reason: string): void {
    this.#refusals.inc({ reason });
  }

  // CaMetrics

  certificateRequest(result: 'issued' | 'refused' | 'failed', reason?: string): void {
    this.#certificates.inc({ result, reason: reason ?? 'none' });
  }

  // Sources read at scrape time, or followed

  /** Times every translation of `pipeline`; returns the unsubscribe. */
  watchPipeline(pipeline: TranslationSource): () => void {
    return pipeline.onTranslation((e) => {
      this.#translations.observe({ result: e.ok ? 'ok' : 'error' }, e.durationMs / 1000);
      if (e.ok) this.#proxyConfigs.set(e.proxies);
    });
  }

  /** The CA whose certificates' expiry is exported. */
  watchCa(ca: CaCertificates): void {
    this.#ca = ca;
  }

  /** The status writer whose counts are exported (the leader's writes; a follower's stay at 0). */
  watchStatusWriter(writer: StatusWriterStatsSource): void {
    this.#writer = writer;
    for (const [result] of STATUS_RESULTS) this.#statusWrites.inc({ result }, 0);
  }

  #collectCa(): void {
    const ca = this.#ca;
    if (ca === undefined || ca === this.#caSeen) return;
    this.#caSeen = ca;
    this.#caExpiry.reset();
    const set = (kind: string, pem: string) => {
      for (const block of pem.match(PEM_BLOCK) ?? []) {
        const cert = new X509Certificate(block);
        this.#caExpiry.set({ kind, serial_number: cert.serialNumber }, cert.validToDate.getTime() / 1000);
      }
    };
    set('issuer', ca.certPem);
    set('root', ca.rootCAsPem);
  }

  #collectStatus(): void {
    const stats = this.#writer?.stats;
    if (stats === undefined) return;
    for (const [result, key] of STATUS_RESULTS) {
      const delta = stats[key] - (this.#statusSeen.get(result) ?? 0);
      if (delta > 0) this.#statusWrites.inc({ result }, delta);
      this.#statusSeen.set(result, stats[key]);
    }
    this.#statusPending.set(stats.pending);
  }

  /** The exposition text for /metrics (the admin server takes the registry itself). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

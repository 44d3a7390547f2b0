// Control-plane tracing (OpenTelemetry, OTLP/HTTP JSON in batches): one span per translate cycle of the pipeline
// and one per config push to a proxy, ended by its ack or nack. A push span is a child of the translate cycle that
// made the version it carries, so one trace shows a change going from the snapshot to every proxy it reached.
//
// Nothing here runs unless tracing is started: callers import this module only when an OTLP endpoint is configured
// (`await import(...)`), so without one neither the SDK is loaded nor any listener attached. Spans are made from the
// pipeline's and the push server's events after the fact (start times from the durations they report), so neither
// the translator nor the push path waits on tracing; exports run off those paths and a collector that is away only
// costs dropped spans, counted when a registry is given.
import { type Context, ROOT_CONTEXT, type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { Counter, type Registry } from 'prom-client';
import type { PushServer } from '../push/server.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { TranslationEvent, VersionedConfig } from '../runtime/pipeline.ts';
import type { ConditionOut, StatusOut } from '../translate/types.ts';

export interface ControlPlaneTracingOptions {
  /** OTLP/HTTP collector: a base URL (`http://jaeger:4318`; `/v1/traces` is appended) or the full traces URL. */
  endpoint: string;
  /** Share of translate cycles traced, 0–1 (pushes follow their cycle); default 1. */
  sampleRatio?: number;
  /** `service.name` of the spans; default `weft-controlplane`. */
  serviceName?: string;
  /** Where `weft_controlplane_trace_*` counters go (the admin endpoint's /metrics registry). */
  registry?: Registry;
  /** Longest wait before a partial batch is sent, ms; default 1000. */
  scheduledDelayMs?: number;
  /** Spans held while the collector is slow or away; default 4096 (a push to every proxy is one span each). */
  maxQueueSize?: number;
  /** Per export request, ms; default 10000. */
  exportTimeoutMs?: number;
}

/** What of the pipeline is traced (controlplane/runtime/pipeline.ts's Pipeline has it). */
export interface TraceablePipeline {
  onTranslation(listener: (e: TranslationEvent) => void): () => void;
  readonly snapshot: ResourceSnapshot | undefined;
  readonly statuses: { entries(): [string, StatusOut][] };
  readonly proxies: { entries(): [string, VersionedConfig][] };
}

/** What of the push server is traced. */
export type TraceablePush = Pick<PushServer, 'on' | 'off'>;

/** The traces URL for an endpoint option. */
function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith('/v1/traces')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

// Conditions whose healthy status is True, and those whose healthy status is False (as `weft translate` reads them).
const POSITIVE = new Set(['Accepted', 'ResolvedRefs', 'Programmed', 'SupportedVersion']);
const NEGATIVE = new Set(['Conflicted', 'PartiallyInvalid']);

const isProblem = (c: ConditionOut) =>
  POSITIVE.has(c.type) ? c.status !== 'True' : NEGATIVE.has(c.type) && c.status === 'True';

/** Conditions that say something is wrong, over every status the translator wrote. */
export function countStatusProblems(statuses: Iterable<StatusOut>): number {
  let n = 0;
  for (const s of statuses) {
    if (s.kind === 'GatewayClass') for (const c of s.status.conditions) n += isProblem(c) ? 1 : 0;
    else if (s.kind === 'Gateway') {
      for (const c of s.status.conditions) n += isProblem(c) ? 1 : 0;
      for (const l of s.status.listeners) for (const c of l.conditions) n += isProblem(c) ? 1 : 0;
    } else for (const p of s.status.parents) for (const c of p.conditions) n += isProblem(c) ? 1 : 0;
  }
  return n;
}

/** Objects per kind in a snapshot. */
function kindCounts(snapshot: ResourceSnapshot): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of snapshot.all()) out.set(r.kind, (out.get(r.kind) ?? 0) + 1);
  return out;
}

/** Per proxy: the newest version the pipeline made for it, the cycle that made it, and when. */
interface Origin {
  version: string;
  context: Context;
  readyAt: number;
}

export class ControlPlaneTracing {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #origins = new Map<string, Origin>();
  /** When each proxy last said hello: a config is sent at the latest then. */
  readonly #hellos = new Map<string, number>();
  readonly #detach: (() => void)[] = [];

  constructor(options: ControlPlaneTracingOptions) {
    const ratio = options.sampleRatio ?? 1;
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`sampleRatio must be between 0 and 1, not ${ratio}`);
    const registry = options.registry;
    const failures =
      registry &&
      new Counter({
        name: 'weft_controlplane_trace_export_failures_total',
        help: 'Export requests to the collector that failed (unreachable, refused, timed out, rejected)',
        registers: [registry],
      });
    const dropped =
      registry &&
      new Counter({
        name: 'weft_controlplane_trace_spans_dropped_total',
        help: 'Control-plane spans lost in failed exports',
        registers: [registry],
      });
    const otlp = new OTLPTraceExporter({
      url: tracesUrl(options.endpoint),
      timeoutMillis: options.exportTimeoutMs ?? 10_000,
    });
    const exporter: SpanExporter = {
      export: (spans, done) =>
        otlp.export(spans, (result) => {
          if (result.code !== ExportResultCode.SUCCESS) {
            failures?.inc();
            dropped?.inc(spans.length);
          }
          done(result);
        }),
      shutdown: () => otlp.shutdown(),
      forceFlush: () => otlp.forceFlush(),
    };
    const maxQueueSize = options.maxQueueSize ?? 4096;
    this.#provider = new TracerProvider({
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          maxQueueSize,
          maxExportBatchSize: Math.min(512, maxQueueSize),
          scheduledDelayMillis: options.scheduledDelayMs ?? 1000,
          exportTimeoutMillis: options.exportTimeoutMs ?? 10_000,
        }),
      ],
      resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'weft-controlplane' }),
    });
    this.#tracer = this.#provider.getTracer('weft-controlplane');
  }

  /** A span per translate cycle of `pipeline`; returns the function that stops it. */
  tracePipeline(pipeline: TraceablePipeline): () => void {
    const off = pipeline.onTranslation((e) => this.#translated(pipeline, e));
    this.#detach.push(off);
    return off;
  }

  /** A span per config push of `push`, from sending to the ack or nack; returns the function that stops it. */
  tracePush(push: TraceablePush): () => void {
    const hello = (id: string) => this.#hellos.set(id, Date.now());
    const ack = (id: string, version: string) => this.#pushed(id, version, undefined);
    const nack = (id: string, version: string, reason: string) => this.#pushed(id, version, reason);
    const gone = (id: string) => this.#hellos.delete(id);
    push.on('hello', hello);
    push.on('ack', ack);
    push.on('nack', nack);
    push.on('disconnect', gone);
    const off = () => {
      push.off('hello', hello);
      push.off('ack', ack);
      push.off('nack', nack);
      push.off('disconnect', gone);
    };
    this.#detach.push(off);
    return off;
  }

  #translated(pipeline: TraceablePipeline, e: TranslationEvent): void {
    const end = Date.now();
    const span = this.#tracer.startSpan('translate', { startTime: end - e.durationMs }, ROOT_CONTEXT);
    if (span.isRecording()) {
      const snapshot = pipeline.snapshot;
      span.setAttribute('weft.translate.duration_ms', Math.round(e.durationMs * 1000) / 1000);
      span.setAttribute('weft.proxies', e.proxies);
      span.setAttribute('weft.proxies.changed', e.proxiesChanged);
      span.setAttribute('weft.statuses.changed', e.statusesChanged);
      if (snapshot !== undefined) {
        span.setAttribute('weft.snapshot.resources', snapshot.size);
        for (const [kind, n] of kindCounts(snapshot)) span.setAttribute(`weft.snapshot.${kind}`, n);
      }
      if (e.ok) {
        const problems = countStatusProblems(pipeline.statuses.entries().map(([, s]) => s));
        span.setAttribute('weft.status.problems', problems);
      } else {
        span.recordException(e.error ?? new Error('translation failed'));
        span.setStatus({ code: SpanStatusCode.ERROR, message: e.error?.message });
      }
    }
    span.end(end);
    if (!e.ok || e.proxiesChanged === 0) return;
    // The proxies whose config this cycle changed: their pushes are its children.
    const ctx = trace.setSpan(ROOT_CONTEXT, span);
    const seen = new Set<string>();
    for (const [id, vc] of pipeline.proxies.entries()) {
      seen.add(id);
      if (this.#origins.get(id)?.version !== vc.version)
        this.#origins.set(id, { version: vc.version, context: ctx, readyAt: end });
    }
    for (const id of this.#origins.keys()) if (!seen.has(id)) this.#origins.delete(id);
  }

  #pushed(proxyId: string, version: string, nack: string | undefined): void {
    const now = Date.now();
    const origin = this.#origins.get(proxyId);
    const mine = origin?.version === version ? origin : undefined;
    // Sent when the config was ready, or when the proxy connected if that was later.
    const hello = this.#hellos.get(proxyId);
    const sent = Math.max(mine?.readyAt ?? hello ?? now, hello ?? 0);
    const span: Span = this.#tracer.startSpan(
      'push',
      {
        startTime: Math.min(sent, now),
        attributes: {
          'weft.proxy.id': proxyId,
          'weft.config.version': version,
          'weft.push.result': nack === undefined ? 'ack' : 'nack',
          'weft.push.latency_ms': Math.max(0, now - sent),
        },
      },
      mine?.context ?? ROOT_CONTEXT,
    );
    if (nack !== undefined) {
      span.setAttribute('weft.push.nack_reason', nack);
      span.setStatus({ code: SpanStatusCode.ERROR, message: nack });
    }
    span.end(now);
  }

  /** Exports the spans queued now (tests). */
  flush(): Promise<void> {
    return this.#provider.forceFlush().catch(() => {});
  }

  /** Detaches from what it traces, sends what is queued (bounded by `timeoutMs`), then stops. */
  async shutdown(timeoutMs = 2_000): Promise<void> {
    for (const off of this.#detach.splice(0)) off();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#provider.shutdown().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}

/**
 * Starts control-plane tracing and attaches it to what is given (more can be attached later with tracePipeline and
 * tracePush, e.g. a push server that is restarted). Import this module only when an endpoint is configured.
 */
export function startControlPlaneTracing(
  options: ControlPlaneTracingOptions,
  targets: { pipeline?: TraceablePipeline; push?: TraceablePush } = {},
): ControlPlaneTracing {
  const tracing = new ControlPlaneTracing(options);
  if (targets.pipeline) tracing.tracePipeline(targets.pipeline);
  if (targets.push) tracing.tracePush(targets.push);
  return tracing;
}

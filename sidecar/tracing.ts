// Distributed tracing in the proxy (OpenTelemetry, exported over OTLP/HTTP JSON in batches). The sampling decision
// is taken once per request, before any span exists: parent-based (W3C traceparent, then B3 single or multi), else a
// ratio. An unsampled request creates no span and no OTel object at all — the proxy only makes sure the upstream
// carries a context that says "not sampled", so the next hops skip it too. A sampled request gets one server span
// and one client span per upstream attempt (retries and mirrors included, marked), made by the proxy as the
// SDK's ReadableSpans and handed to the SDK's BatchSpanProcessor and OTLP exporter. The exporter runs off the
// request path: the queue is bounded, a full queue or a failed export drops spans and counts them, and for a second
// after that sampled requests are not recorded at all (shed, counted), so a collector that is away costs next to
// nothing.
import type { IncomingMessage } from 'node:http';
import {
  type Attributes,
  type Counter as OtelCounter,
  createNoopMeter,
  type HrTime,
  type Link,
  type Meter,
  type MeterProvider,
  type SpanContext,
  SpanKind,
  type SpanStatus,
  SpanStatusCode,
  TraceFlags,
} from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
  type TimedEvent,
} from '@opentelemetry/sdk-trace';
import { Counter, type Registry } from 'prom-client';
import type { HeaderMap } from './filters/header-modifier.ts';
import type { RouteLabels } from './metrics.ts';
import type { CompiledCluster, CompiledEndpoint } from './upstream/cluster.ts';

export interface TracingOptions {
  /** OTLP/HTTP collector: a base URL (`http://jaeger:4318`, `/v1/traces` is appended) or the full traces URL. */
  endpoint: string;
  /** Share of traces started here (no sampled/unsampled parent) that are recorded, 0–1; default 1. */
  sampleRatio?: number;
  /** `service.name` of the spans; default `weft-proxy`. */
  serviceName?: string;
  /** Spans held while the collector is slow or away; more are dropped (counted). Default 2048. */
  maxQueueSize?: number;
  /** Longest wait before a partial batch is sent, ms; default 1000. */
  scheduledDelayMs?: number;
  /** Per export request, ms; default 10000. */
  exportTimeoutMs?: number;
}

export const TRACEPARENT = 'traceparent';
const B3 = 'b3';
const B3_HEADERS = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'] as const;

/** The traces URL for an endpoint option. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith('/v1/traces')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

/**
 * The incoming context of the request being decided. One per Tracing, reused: deciding is synchronous, so one
 * request's parent never meets another's.
 */
interface Parent {
  /** 32 lowercase hex digits, or '' when the request carried no usable ids. */
  traceId: string;
  spanId: string;
  /** true / false when the caller decided; undefined when it left it to us. */
  sampled: boolean | undefined;
  /** The context came as W3C traceparent (then it is forwarded untouched when unsampled). */
  w3c: boolean;
  /** The context came as B3: those headers are replaced by traceparent upstream. */
  b3: boolean;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '00000000000000000000000000000000';
const ZERO16 = '0000000000000000';

function clear(p: Parent): void {
  p.traceId = '';
  p.spanId = '';
  p.sampled = undefined;
  p.w3c = false;
  p.b3 = false;
}

/** W3C Trace Context level 1: `version-traceid-parentid-flags`; a higher version is read by its first four fields. */
function readTraceparent(value: string, p: Parent): boolean {
  if (value.length < 55) return false;
  const v = value.toLowerCase();
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return false;
  const version = v.slice(0, 2);
  if (version === 'ff' || !/^[0-9a-f]{2}$/.test(version) || (version === '00' && v.length !== 55)) return false;
  if (v.length > 55 && v[55] !== '-') return false;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX32.test(traceId) || !HEX16.test(spanId) || !/^[0-9a-f]{2}$/.test(flags)) return false;
  if (traceId === ZERO32 || spanId === ZERO16) return false;
  p.traceId = traceId;
  p.spanId = spanId;
  p.sampled = (Number.parseInt(flags, 16) & 1) === 1;
  p.w3c = true;
  return true;
}

/** A B3 trace id may have 16 hex digits: it is the low half of a 128-bit id. */
function b3TraceId(id: string): string | undefined {
  const v = id.toLowerCase();
  if (HEX32.test(v)) return v === ZERO32 ? undefined : v;
  if (HEX16.test(v)) return v === ZERO16 ? undefined : ZERO16 + v;
  return undefined;
}

function b3Sampled(flag: string | undefined): boolean | undefined {
  if (flag === '1' || flag === 'd' || flag === 'true') return true;
  if (flag === '0' || flag === 'false') return false;
  return undefined;
}

/** B3 single header: `{traceId}-{spanId}[-{sampled}[-{parentSpanId}]]`, or only a sampling state (`0`, `1`, `d`). */
function readB3Single(value: string, p: Parent): boolean {
  const parts = value.trim().split('-');
  if (parts.length === 1) {
    p.sampled = b3Sampled(parts[0]);
    p.b3 = p.sampled !== undefined;
    return p.b3;
  }
  const traceId = b3TraceId(parts[0]);
  const spanId = parts[1].toLowerCase();
  if (traceId === undefined || !HEX16.test(spanId) || spanId === ZERO16) return false;
  p.traceId = traceId;
  p.spanId = spanId;
  p.sampled = b3Sampled(parts[2]);
  p.b3 = true;
  return true;
}

function one(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** B3 multiple headers: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags (1 = debug, sampled). */
function readB3Multi(h: IncomingMessage['headers'], p: Parent): boolean {
  const flags = one(h['x-b3-flags']);
  const sampled = flags === '1' ? true : b3Sampled(one(h['x-b3-sampled']));
  const tid = one(h['x-b3-traceid']);
  const sid = one(h['x-b3-spanid']);
  const traceId = tid === undefined ? undefined : b3TraceId(tid);
  const spanId = sid?.toLowerCase();
  if (traceId !== undefined && spanId !== undefined && HEX16.test(spanId) && spanId !== ZERO16) {
    p.traceId = traceId;
    p.spanId = spanId;
  }
  p.sampled = sampled;
  p.b3 = p.traceId !== '' || sampled !== undefined;
  return p.b3;
}

/** Reads the request's trace context into `p`: W3C first, then B3 single, then B3 multi. */
export function readParent(h: IncomingMessage['headers'], p: Parent): void {
  clear(p);
  const tp = one(h[TRACEPARENT]);
  if (tp !== undefined && readTraceparent(tp, p)) return;
  clear(p);
  const b3 = one(h[B3]);
  if (b3 !== undefined && readB3Single(b3, p)) return;
  clear(p);
  if (h['x-b3-traceid'] !== undefined || h['x-b3-sampled'] !== undefined || h['x-b3-flags'] !== undefined) {
    if (readB3Multi(h, p)) return;
    clear(p);
  }
}

/** Two hex digits per byte value. */
const BYTE_HEX: string[] = [];
for (let i = 0; i < 256; i++) BYTE_HEX.push(i.toString(16).padStart(2, '0'));

/** Random hex ids for contexts the proxy starts without recording them (Math.random: ids, not secrets). */
function randomHex(bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i += 4) {
    const r = (Math.random() * 0x100000000) >>> 0;
    s += BYTE_HEX[r & 0xff] + BYTE_HEX[(r >>> 8) & 0xff] + BYTE_HEX[(r >>> 16) & 0xff] + BYTE_HEX[r >>> 24];
  }
  return s;
}

function removeB3(headers: HeaderMap): void {
  delete headers[B3];
  for (const name of B3_HEADERS) delete headers[name];
}

/** Wall-clock time now as an OTel HrTime (seconds, nanoseconds), read from the monotonic clock. */
function hrNow(): HrTime {
  const ms = performance.timeOrigin + performance.now();
  const s = Math.floor(ms / 1000);
  return [s, Math.min(999_999_999, Math.round((ms - s * 1000) * 1e6))];
}

const SCOPE = { name: 'weft-proxy' };
const NO_LINKS: Link[] = [];
const NO_EVENTS: TimedEvent[] = [];
const UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const ERROR: SpanStatus = { code: SpanStatusCode.ERROR };

/**
 * A span of the proxy, exactly what the OTLP exporter reads (the SDK's ReadableSpan), made without the SDK's
 * tracer: the proxy decides sampling itself and writes only attributes it knows are valid, so the tracer's
 * context objects, sampler calls and attribute checks would be spent for nothing on every sampled request.
 */
class ProxySpan implements ReadableSpan {
  name: string;
  readonly kind: SpanKind;
  readonly #context: SpanContext;
  readonly parentSpanContext: SpanContext | undefined;
  readonly startTime: HrTime = hrNow();
  endTime: HrTime = this.startTime;
  duration: HrTime = [0, 0];
  status: SpanStatus = UNSET;
  readonly attributes: Attributes;
  readonly links = NO_LINKS;
  readonly events = NO_EVENTS;
  ended = false;
  readonly resource: Resource;
  readonly instrumentationScope = SCOPE;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly #processor: SpanProcessor;

  constructor(
    tracing: { resource: Resource; processor: SpanProcessor },
    name: string,
    kind: SpanKind,
    attributes: Attributes,
    traceId: string,
    parent: SpanContext | undefined,
  ) {
    this.name = name;
    this.kind = kind;
    this.attributes = attributes;
    this.#context = { traceId, spanId: randomHex(8), traceFlags: TraceFlags.SAMPLED };
    this.parentSpanContext = parent;
    this.resource = tracing.resource;
    this.#processor = tracing.processor;
  }

  spanContext(): SpanContext {
    return this.#context;
  }

  /** `traceparent` naming this span as the parent of what it sends. */
  get traceparent(): string {
    return `00-${this.#context.traceId}-${this.#context.spanId}-01`;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    const end = hrNow();
    this.endTime = end;
    let ns = end[1] - this.startTime[1];
    let sec = end[0] - this.startTime[0];
    if (ns < 0) {
      sec -= 1;
      ns += 1e9;
    }
    this.duration = [sec, ns];
    this.#processor.onEnd(this);
  }
}

/** An opaque client span, as `attempt` returns it. */
export type AttemptSpan = ProxySpan;

/** What a listener tells the tracer about a request when it begins. */
export interface TraceStart {
  /** Listener name (the metrics label). */
  listener: string;
  /** gateway, outbound, inbound or mesh. */
  kind: string;
  scheme: 'http' | 'https';
}

/** The spans of one sampled request. Made only for sampled requests. */
export class RequestTrace {
  readonly #tracing: Tracing;
  readonly server: ProxySpan;
  /** The client span of the attempt whose response is being streamed back; ended with the server span. */
  #open: ProxySpan | undefined;
  #labels: RouteLabels | undefined;
  #ended = false;

  constructor(tracing: Tracing, server: ProxySpan) {
    this.#tracing = tracing;
    this.server = server;
  }

  get traceId(): string {
    return this.server.spanContext().traceId;
  }

  /**
   * The route, rule and backend the router chose (names the span after the route), and what the route is attached
   * through: `parent` is the Gateway listener (`ns/gateway/listener`) on a Gateway port, the Service on outbound.
   */
  route(labels: RouteLabels | undefined, method: string, parent?: string): void {
    const s = this.server;
    const a = s.attributes;
    if (parent !== undefined) {
      const slash = parent.lastIndexOf('/');
      if (parent.indexOf('/') !== slash) {
        a['weft.gateway'] = parent.slice(0, slash);
        a['weft.gateway.listener'] = parent.slice(slash + 1);
      } else a['weft.service'] = parent;
    }
    if (labels === undefined) return;
    this.#labels = labels;
    if (labels.route !== 'none') {
      a['weft.route'] = labels.route;
      a['weft.rule'] = labels.rule;
      s.name = `${method} ${labels.route}`;
    }
    a['weft.backend'] = labels.backend;
  }

  /** The caller's SPIFFE ID, verified by the mesh listener. */
  peer(identity: string): void {
    this.server.attributes['weft.peer.identity'] = identity;
  }

  /** The proxy answered the request itself with this error code. */
  error(code: string): void {
    this.server.attributes['weft.error.code'] = code;
  }

  /**
   * A client span for one upstream attempt (`attempt` from 1) or a mirror copy to an endpoint of `cluster`; writes
   * its traceparent into `headers`, which must be the headers that attempt sends.
   */
  attempt(
    endpoint: CompiledEndpoint,
    cluster: CompiledCluster,
    method: string,
    path: string,
    headers: HeaderMap,
    attempt: number,
    mirror: boolean,
  ): AttemptSpan {
    const state = endpoint.state;
    const attributes: Attributes = {
      'http.request.method': method,
      'server.address': state.address,
      'server.port': state.port,
      'url.full': state.origin + path,
      'weft.endpoint': `${state.address}:${state.port}`,
      'weft.backend': cluster.key,
      'weft.backend.service': cluster.service,
      'weft.proxy.id': this.#tracing.proxyId,
    };
    if (endpoint.pod !== undefined) attributes['weft.endpoint.pod'] = endpoint.pod;
    const labels = this.#labels;
    if (labels !== undefined && labels.route !== 'none') {
      attributes['weft.route'] = labels.route;
      attributes['weft.rule'] = labels.rule;
    }
    if (state.mesh !== undefined) attributes['weft.peer.identity'] = state.mesh.identity;
    if (attempt > 1) {
      attributes['http.request.resend_count'] = attempt - 1;
      attributes['weft.retry'] = true;
    }
    if (mirror) attributes['weft.mirror'] = true;
    const server = this.server.spanContext();
    const span = new ProxySpan(
      this.#tracing,
      mirror ? `${method} mirror` : method,
      SpanKind.CLIENT,
      attributes,
      server.traceId,
      server,
    );
    headers[TRACEPARENT] = span.traceparent;
    return span;
  }

  /** The attempt got a response (status) or failed (status 0, error code). `keep`: its body is being streamed. */
  attemptEnded(span: AttemptSpan, status: number, errorCode?: string, keep = false): void {
    if (status > 0) {
      span.attributes['http.response.status_code'] = status;
      if (status >= 500) span.status = ERROR;
    } else {
      span.attributes['error.type'] = errorCode ?? 'unknown';
      span.status = ERROR;
    }
    if (keep) this.#open = span;
    else span.end();
  }

  /** The response ended (or the client left: status 0). Idempotent. */
  finish(status: number): void {
    if (this.#ended) return;
    this.#ended = true;
    const s = this.server;
    if (status > 0) {
      s.attributes['http.response.status_code'] = status;
      if (status >= 500) s.status = ERROR;
    } else {
      s.attributes['error.type'] = 'client_closed';
    }
    this.#open?.end();
    s.end();
  }
}

/**
 * How long sampled requests go unrecorded after spans were lost (a failed export, a full queue): a collector that
 * is away then costs next to nothing, and a few spans a second find out whether it is back.
 */
const SHED_MS = 1_000;
const SHED_QUEUE_FULL_MS = 100;

/** The tracer of one proxy: sampling, propagation, span export and its drop counters. */
export class Tracing {
  readonly ratio: number;
  /** `weft.proxy.id` of the spans: the config's `proxy.id`, set when a config is applied. */
  proxyId = '';
  /** `service.name` of every span. */
  readonly resource: Resource;
  /** Where ended spans go: the batching export. */
  readonly processor: SpanProcessor;
  readonly #parent: Parent = { traceId: '', spanId: '', sampled: undefined, w3c: false, b3: false };
  readonly #dropped: Counter<'reason'>;
  readonly #exported: Counter;
  readonly #shed: Counter;
  /** Until then (ms since epoch) sampled requests are not recorded: the last export failed or the queue was full. */
  #shedUntil = 0;
  readonly #exportFailures: Counter;

  constructor(options: TracingOptions, registry: Registry) {
    const ratio = options.sampleRatio ?? 1;
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`sampleRatio must be between 0 and 1, not ${ratio}`);
    this.ratio = ratio;
    this.#dropped = new Counter({
      name: 'weft_proxy_trace_spans_dropped_total',
      help: 'Spans not delivered to the collector, by reason (queue_full, export_failed)',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.#dropped.inc({ reason: 'queue_full' }, 0);
    this.#dropped.inc({ reason: 'export_failed' }, 0);
    this.#shed = new Counter({
      name: 'weft_proxy_trace_requests_shed_total',
      help: 'Sampled requests not recorded because the collector was failing or the export queue full',
      registers: [registry],
    });
    this.#exported = new Counter({
      name: 'weft_proxy_trace_spans_exported_total',
      help: 'Spans the collector accepted',
      registers: [registry],
    });
    this.#exportFailures = new Counter({
      name: 'weft_proxy_trace_export_failures_total',
      help: 'Export requests to the collector that failed (unreachable, refused, timed out, rejected)',
      registers: [registry],
    });
    const otlp = new OTLPTraceExporter({
      url: tracesUrl(options.endpoint),
      timeoutMillis: options.exportTimeoutMs ?? 10_000,
    });
    // The OTLP exporter reports a failed request only to its caller: counted here, per request.
    const exporter: SpanExporter = {
      export: (spans, done) =>
        otlp.export(spans, (result) => {
          if (result.code !== ExportResultCode.SUCCESS) this.#exportFailures.inc();
          done(result);
        }),
      shutdown: () => otlp.shutdown(),
      forceFlush: () => otlp.forceFlush(),
    };
    this.processor = new BatchSpanProcessor({
      exporter,
      maxQueueSize: options.maxQueueSize ?? 2048,
      maxExportBatchSize: Math.min(512, options.maxQueueSize ?? 2048),
      scheduledDelayMillis: options.scheduledDelayMs ?? 1000,
      exportTimeoutMillis: options.exportTimeoutMs ?? 10_000,
      // The processor reports queue-full drops and export results only through these self-observability
      // counters: they feed the proxy's Prometheus metrics.
      selfObsMeterProvider: this.#meterProvider(),
    });
    this.resource = resourceFromAttributes({ 'service.name': options.serviceName ?? 'weft-proxy' });
  }

  #meterProvider(): MeterProvider {
    const noop = createNoopMeter();
    const processed: Pick<OtelCounter, 'add'> = {
      add: (value, attributes) => {
        const error = attributes?.['error.type'];
        if (error === undefined) this.#exported.inc(value);
        else {
          this.#dropped.inc({ reason: error === 'queue_full' ? 'queue_full' : 'export_failed' }, value);
          // Spans made now would be lost too: for a while, sampled requests are not recorded at all — a second
          // after a failed export, a moment after a full queue (the next export empties it).
          this.#shedUntil = Date.now() + (error === 'queue_full' ? SHED_QUEUE_FULL_MS : SHED_MS);
        }
      },
    };
    const meter = Object.create(noop) as Meter;
    meter.createCounter = () => processed as OtelCounter;
    return { getMeter: () => meter };
  }

  /**
   * Decides whether the request is traced. Sampled: its server span, started now. Unsampled: undefined, and
   * `propagate` must be called with the upstream headers before the next request begins.
   */
  begin(req: IncomingMessage, start: TraceStart): RequestTrace | undefined {
    const p = this.#parent;
    readParent(req.headers, p);
    const sampled = p.sampled ?? (this.ratio >= 1 || (this.ratio > 0 && Math.random() < this.ratio));
    if (!sampled) return undefined;
    if (this.#shedUntil !== 0) {
      if (Date.now() < this.#shedUntil) {
        this.#shed.inc();
        return undefined;
      }
      this.#shedUntil = 0;
    }
    const method = req.method ?? 'GET';
    let url = req.url ?? '/';
    // Absolute form (a request to a proxy): the path starts after the authority.
    if (url.charCodeAt(0) !== 47 /* / */) {
      const slash = url.indexOf('/', url.indexOf('//') + 2);
      url = slash < 0 ? '/' : url.slice(slash);
    }
    const q = url.indexOf('?');
    const host = req.headers.host ?? '';
    const colon = host.lastIndexOf(':');
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': q < 0 ? url : url.slice(0, q),
      'url.scheme': start.scheme,
      'server.address': colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host,
      'network.protocol.version': req.httpVersion,
      'client.address': req.socket.remoteAddress ?? '',
      'weft.listener': start.listener,
      'weft.listener.kind': start.kind,
      'weft.proxy.id': this.proxyId,
    };
    if (colon > 0 && !host.endsWith(']')) attributes['server.port'] = Number(host.slice(colon + 1));
    const ua = req.headers['user-agent'];
    if (ua !== undefined) attributes['user_agent.original'] = ua;
    const parent: SpanContext | undefined =
      p.traceId === ''
        ? undefined
        : { traceId: p.traceId, spanId: p.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
    const traceId = p.traceId === '' ? randomHex(16) : p.traceId;
    return new RequestTrace(this, new ProxySpan(this, method, SpanKind.SERVER, attributes, traceId, parent));
  }

  /**
   * Upstream headers of the request just begun, sampled or not: B3 input is replaced by traceparent; an unsampled
   * request without W3C context gets one flagged "not sampled" so later hops skip it too.
   */
  propagate(headers: HeaderMap, sampled: RequestTrace | undefined): void {
    const p = this.#parent;
    if (p.b3) removeB3(headers);
    if (sampled !== undefined || p.w3c) return;
    const traceId = p.traceId === '' ? randomHex(16) : p.traceId;
    const spanId = p.spanId === '' ? randomHex(8) : p.spanId;
    headers[TRACEPARENT] = `00-${traceId}-${spanId}-00`;
  }

  /** Sends the spans still queued (bounded by `timeoutMs`), then stops exporting. */
  async shutdown(timeoutMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.processor.shutdown().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Exports the spans queued now (tests, admin). */
  flush(): Promise<void> {
    return this.processor.forceFlush().catch(() => {});
  }
}

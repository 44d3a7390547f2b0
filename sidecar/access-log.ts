// The optional access log (`weft proxy --access-log`): one JSON line per request, sampled by a ratio, through pino
// like every other log line. Off by default; with it off the request path pays one undefined check. A line is built
// only for a request that is sampled, from what the request path already holds — no per-request closure or timer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ERROR_REASONS, type RequestSeries } from './metrics.ts';
import type { EndpointState } from './upstream/endpoint-state.ts';

export interface AccessLogOptions {
  /** Share of requests logged, 0–1; default 1. */
  sampleRatio?: number;
  /** Where lines go; default the proxy's logger. Lines are written at `info` whatever that logger's level. */
  logger?: Logger;
}

/** `00-<trace id>-<span id>-<flags>`: the trace id of a W3C traceparent value. */
function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string' || traceparent.length < 55 || traceparent[2] !== '-') return undefined;
  return traceparent.slice(3, 35);
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export class AccessLog {
  readonly #log: Logger;
  readonly sampleRatio: number;

  constructor(logger: Logger, sampleRatio = 1) {
    if (!(sampleRatio >= 0 && sampleRatio <= 1)) throw new RangeError(`access log sample ratio ${sampleRatio}`);
    // Its own level: `--log-level warn` quiets events, not an access log that was asked for.
    this.#log = logger.child({ component: 'access' }, { level: 'info' });
    this.sampleRatio = sampleRatio;
  }

  /**
   * One finished request, if sampled. `start`: performance.now() when it arrived; `wroteBefore`: the connection's
   * bytesWritten then; `upstream`: the endpoint that answered; `error`: the WEFT_ERR code of an answer the proxy
   * gave itself; `reason`: the ERROR_REASONS index the request failed with, or -1; `traceparent`: the W3C context
   * the request carried upstream (or arrived with).
   */
  record(
    req: IncomingMessage,
    res: ServerResponse,
    series: RequestSeries,
    start: number,
    wroteBefore: number,
    upstream: EndpointState | undefined,
    error: string | undefined,
    reason: number,
    traceparent: unknown,
  ): void {
    const ratio = this.sampleRatio;
    if (ratio < 1 && !(Math.random() < ratio)) return;
    this.#log.info(
      {
        event: 'access',
        listener: series.listener,
        method: req.method,
        authority: req.headers.host,
        path: req.url,
        status: res.headersSent ? res.statusCode : 0,
        durationMs: round(performance.now() - start),
        route: series.route,
        rule: series.rule,
        backend: series.backend,
        upstream: upstream?.origin,
        traceId: traceIdOf(traceparent),
        bytesSent: (req.socket?.bytesWritten ?? wroteBefore) - wroteBefore,
        error,
        reason: reason < 0 ? undefined : ERROR_REASONS[reason],
      },
      'access',
    );
  }
}

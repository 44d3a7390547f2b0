// One backend exchange with the rule's retry policy and backendRequest timeout: picks an
// endpoint per attempt, keeps its in-flight count and latency, ejects endpoints that refuse
// connections, and turns failures into the status the client gets.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';
import type { CompiledRetry } from '../router/route-table.ts';
import type { RequestTrace } from '../tracing.ts';
import { pickEndpoint } from './balancer.ts';
import type { CompiledCluster, CompiledEndpoint } from './cluster.ts';
import { drainBody, type Forwarder, isConnectFailure, type UpstreamResponse } from './forwarder.ts';

/** Reasons an exchange is aborted, told apart by identity. */
export const AbortReason = {
  Client: new Error('client went away'),
  RequestTimeout: new Error('request timeout'),
  BackendTimeout: new Error('backendRequest timeout'),
} as const;

export interface DispatchInput {
  cluster: CompiledCluster;
  method: string;
  path: string;
  headers: HeaderMap;
  body: Buffer | Readable | null;
  retry: CompiledRetry | undefined;
  /** Per attempt, until response headers; 0 = none. */
  backendTimeoutMs: number;
  /** Aborted when the client leaves or the request timeout fires. */
  signal: AbortSignal;
  /** Told of each attempt that failed without a response (not a timeout or abort): metrics. */
  stats?: { upstreamConnectError(cluster: string): void };
  /** A sampled request: one client span per attempt, its traceparent written into `headers`. */
  trace?: RequestTrace;
}

export type DispatchResult =
  | { ok: true; response: UpstreamResponse; endpoint: CompiledEndpoint }
  | { ok: false; error: ProxyError | undefined };

/** Cap on the exponential growth of the pause between retries, as a multiple of the minimum. */
const MAX_BACKOFF_FACTOR = 10;

function abortError(reason: unknown): ProxyError | undefined {
  if (reason === AbortReason.Client) return undefined;
  const which = reason === AbortReason.BackendTimeout ? 'backendRequest' : 'request';
  return new ProxyError(ProxyErrorCode.UpstreamTimeout, 504, `${which} timeout expired`);
}

/** `error.type` of a failed attempt: the error's code (ECONNREFUSED…) or its class. */
function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : ((err as Error | null)?.name ?? 'Error');
}

function endInFlight(endpoint: CompiledEndpoint): void {
  endpoint.state.inFlight--;
}

export async function dispatch(forwarder: Forwarder, input: DispatchInput): Promise<DispatchResult> {
  const { cluster, retry, signal } = input;
  // A stream body can be sent once; only buffered (or absent) bodies are retried.
  const replayable = input.body === null || Buffer.isBuffer(input.body);
  const maxAttempts = retry && replayable ? retry.attempts + 1 : 1;
  let previous: CompiledEndpoint | undefined;
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) return { ok: false, error: abortError(signal.reason) };
    const endpoint = pickEndpoint(cluster.endpoints, Date.now(), previous);
    if (endpoint === undefined) {
      return {
        ok: false,
        error: new ProxyError(ProxyErrorCode.NoEndpoint, 503, `no ready endpoint in cluster ${cluster.key}`),
      };
    }
    // A meshed endpoint without a certificate to present: refused here, never sent plaintext.
    const unmeshable = endpoint.state.mesh?.transport.unavailable();
    if (unmeshable !== undefined) return { ok: false, error: unmeshable };
    previous = endpoint;
    const last = attempt >= maxAttempts;
    const attemptAbort = new AbortController();
    const onAbort = () => attemptAbort.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const timer =
      input.backendTimeoutMs > 0
        ? setTimeout(() => attemptAbort.abort(AbortReason.BackendTimeout), input.backendTimeoutMs)
        : undefined;
    const state = endpoint.state;
    state.inFlight++;
    const span = input.trace?.attempt(endpoint, cluster, input.method, input.path, input.headers, attempt, false);
    const started = performance.now();
    let response: UpstreamResponse | undefined;
    let error: ProxyError | undefined;
    try {
      response = await forwarder.request({
        endpoint: state,
        method: input.method,
        path: input.path,
        headers: input.headers,
        body: input.body,
        signal: attemptAbort.signal,
      });
    } catch (err) {
      state.inFlight--;
      if (span !== undefined) input.trace!.attemptEnded(span, 0, err instanceof ProxyError ? err.code : errorType(err));
      if (signal.aborted) return { ok: false, error: abortError(signal.reason) };
      if (attemptAbort.signal.aborted) error = abortError(attemptAbort.signal.reason);
      else {
        input.stats?.upstreamConnectError(cluster.key);
        if (isConnectFailure(err)) state.recordConnectFailure(Date.now());
        // The forwarder's own verdicts (mTLS: no certificate, wrong peer identity…) keep their code.
        error =
          err instanceof ProxyError
            ? err
            : new ProxyError(
                ProxyErrorCode.UpstreamConnect,
                503,
                `upstream ${state.origin} failed: ${(err as Error).message}`,
                {
                  cause: err,
                },
              );
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    if (response !== undefined) {
      state.recordLatency(performance.now() - started, Date.now());
      state.recordSuccess();
      if (last || !retry?.codes.has(response.statusCode)) {
        if (span !== undefined) input.trace!.attemptEnded(span, response.statusCode, undefined, true);
        response.body.once('close', () => endInFlight(endpoint));
        return { ok: true, response, endpoint };
      }
      // A retriable status: drop this answer and try again.
      if (span !== undefined) input.trace!.attemptEnded(span, response.statusCode);
      drainBody(response.body);
      state.inFlight--;
    } else if (last) return { ok: false, error };
    const minimum = retry!.backoffMs;
    const pause = Math.min(minimum * 2 ** (attempt - 1), minimum * MAX_BACKOFF_FACTOR);
    try {
      await sleep(pause, undefined, { signal });
    } catch {
      return { ok: false, error: abortError(signal.reason) };
    }
  }
}

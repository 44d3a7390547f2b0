// RequestMirror: a copy of the request goes to the mirror cluster and its answer is thrown
// away. Fire-and-forget: nothing here is awaited by the real request, and every failure is
// swallowed. Bodies are mirrored when the proxy holds them in memory (see exchange.ts);
// otherwise the mirror gets the headers with an empty body.
import type { RequestTrace } from '../tracing.ts';
import { pickEndpoint } from '../upstream/balancer.ts';
import type { Forwarder } from '../upstream/forwarder.ts';
import type { CompiledMirror } from './compiled-filters.ts';
import type { HeaderMap } from './header-modifier.ts';

/** A mirror that hangs is cut after this long, so it cannot pile up sockets. */
const MIRROR_TIMEOUT_MS = 30_000;

function ignore(): void {}

export function sendMirror(
  forwarder: Forwarder,
  mirror: CompiledMirror,
  method: string,
  path: string,
  headers: HeaderMap,
  body: Buffer | null,
  trace?: RequestTrace,
): void {
  const endpoint = pickEndpoint(mirror.cluster.endpoints, Date.now());
  // A meshed endpoint goes over mTLS like the real request; without a certificate the forwarder refuses it.
  if (endpoint === undefined) return;
  const state = endpoint.state;
  let copy = headers;
  if (body === null && (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined)) {
    copy = { ...headers };
    delete copy['content-length'];
    delete copy['transfer-encoding'];
  }
  // A sampled request's mirror gets its own client span, and its own traceparent on a copy of the headers.
  if (trace !== undefined && copy === headers) copy = { ...headers };
  const span = trace?.attempt(endpoint, mirror.cluster, method, path, copy, 1, true);
  state.inFlight++;
  forwarder
    .request({ endpoint: state, method, path, headers: copy, body, signal: AbortSignal.timeout(MIRROR_TIMEOUT_MS) })
    .then(
      (res) => {
        if (span !== undefined) trace!.attemptEnded(span, res.statusCode);
        res.body.once('close', () => state.inFlight--);
        res.body.on('error', ignore);
        res.body.resume();
      },
      (err: unknown) => {
        state.inFlight--;
        if (span !== undefined) trace!.attemptEnded(span, 0, (err as { code?: string } | null)?.code ?? 'Error');
      },
    );
}

/** Whether this request is one of the `percent` % that are mirrored. */
export function mirrorChosen(mirror: CompiledMirror): boolean {
  return mirror.percent >= 100 || Math.random() * 100 < mirror.percent;
}

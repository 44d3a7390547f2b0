// Backend and endpoint choice: weighted random over a rule's backends, then power of two
// choices over the cluster's endpoints by (in-flight + 1) × EWMA latency, decayed with idle time.
import type { CompiledEndpoint } from './cluster.ts';

export interface Weighted {
  readonly weight: number;
}

/** Running sums of weights, built once per rule. */
export function cumulativeWeights(items: readonly Weighted[]): number[] {
  const sums: number[] = [];
  let total = 0;
  for (const item of items) {
    total += item.weight;
    sums.push(total);
  }
  return sums;
}

/** Index of a weighted random choice, or -1 when every weight is 0. A weight of 0 is never chosen. */
export function pickWeighted(cumulative: readonly number[], random: number): number {
  const total = cumulative.length === 0 ? 0 : cumulative[cumulative.length - 1];
  if (total <= 0) return -1;
  const r = random * total;
  for (let i = 0; i < cumulative.length; i++) if (r < cumulative[i]) return i;
  return cumulative.length - 1;
}

/**
 * Share of choices the costlier of two candidates still gets, however much costlier. With two
 * endpoints P2C compares the same pair every time; a strict "cheaper wins" then never measures
 * the loser again, and one slow first answer (a cold connection) starves it for good.
 */
const PROBE_SHARE = 0.03;

/** Added to every latency: differences far below a millisecond are jitter, and must not skew the split. */
const LATENCY_FLOOR_MS = 1;

/**
 * One of two candidates, at random in inverse proportion to their costs (equal costs: a coin toss;
 * a costlier one still gets `PROBE_SHARE`). An endpoint never sampled is priced like the other
 * (neutral); two never sampled compare by in-flight count alone.
 */
function cheaper(a: CompiledEndpoint, b: CompiledEndpoint, now: number): CompiledEndpoint {
  const sa = a.state;
  const sb = b.state;
  let la = sa.latencyMs(now);
  let lb = sb.latencyMs(now);
  if (la === 0) la = lb === 0 ? 1 : lb;
  if (lb === 0) lb = la;
  const costA = (sa.inFlight + 1) * (la + LATENCY_FLOOR_MS);
  const costB = (sb.inFlight + 1) * (lb + LATENCY_FLOOR_MS);
  let chanceA = costB / (costA + costB);
  if (chanceA < PROBE_SHARE) chanceA = PROBE_SHARE;
  else if (chanceA > 1 - PROBE_SHARE) chanceA = 1 - PROBE_SHARE;
  return Math.random() < chanceA ? a : b;
}

function usable(e: CompiledEndpoint, now: number, exclude: CompiledEndpoint | undefined): boolean {
  return e !== exclude && e.state.ejectedUntil <= now;
}

/**
 * Two random endpoints, the cheaper likelier (see `cheaper`); ejected endpoints (and `exclude`, the one a retry
 * just failed on) are passed over while another is usable. When none is, the cheaper of the
 * two is used anyway: trying a possibly recovered endpoint beats failing without trying.
 */
export function pickEndpoint(
  endpoints: readonly CompiledEndpoint[],
  now: number,
  exclude?: CompiledEndpoint,
): CompiledEndpoint | undefined {
  const n = endpoints.length;
  if (n === 0) return undefined;
  if (n === 1) return endpoints[0];
  const i = Math.floor(Math.random() * n);
  let j = Math.floor(Math.random() * (n - 1));
  if (j >= i) j++;
  const a = endpoints[i];
  const b = endpoints[j];
  const okA = usable(a, now, exclude);
  const okB = usable(b, now, exclude);
  if (okA && okB) return cheaper(a, b, now);
  if (okA) return a;
  if (okB) return b;
  for (let k = 0; k < n; k++) if (usable(endpoints[k], now, exclude)) return endpoints[k];
  return cheaper(a, b, now);
}

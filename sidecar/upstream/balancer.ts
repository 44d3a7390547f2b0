// Backend and endpoint choice: weighted random over a rule's backends, then power of two
// choices over the cluster's endpoints by in-flight count × EWMA latency.
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

function usable(e: CompiledEndpoint, now: number, exclude: CompiledEndpoint | undefined): boolean {
  return e !== exclude && e.state.ejectedUntil <= now;
}

/**
 * Two random endpoints, the cheaper wins; ejected endpoints (and `exclude`, the one a retry
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
  if (okA && okB) return a.state.cost() <= b.state.cost() ? a : b;
  if (okA) return a;
  if (okB) return b;
  for (let k = 0; k < n; k++) if (usable(endpoints[k], now, exclude)) return endpoints[k];
  return a.state.cost() <= b.state.cost() ? a : b;
}

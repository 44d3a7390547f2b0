// Gateway API Duration (GEP-2257): one to four `<number><unit>` groups, units h, m, s, ms,
// numbers of at most five digits, e.g. "1h", "500ms", "1m30s". Returns milliseconds, or
// undefined for anything else (including Go-only forms such as "1.5s" or "1us").
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const PART = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

export function parseDuration(value: string): number | undefined {
  if (!DURATION.test(value)) return undefined;
  let total = 0;
  for (const m of value.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return total;
}

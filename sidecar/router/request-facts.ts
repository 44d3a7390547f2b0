// What the router looks at in a request, and how it reads headers and query parameters
// without building per-request maps it does not need.

export interface RequestFacts {
  method: string;
  /** Normalised path (see path.ts). */
  path: string;
  /** The raw query string without its `?` ('' when none). */
  query: string;
  /** Node's `rawHeaders`: name, value, name, value… with the names as sent. */
  rawHeaders: readonly string[];
}

/** ASCII case-insensitive comparison of a header name with an already lowercased one. */
function nameEquals(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The value of a request header (name lowercased), a repeated header's values joined with
 * `,` (RFC 9110 §5.3), or undefined. One occurrence returns the string Node already holds.
 */
export function headerValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!nameEquals(rawHeaders[i], lowerName)) continue;
    value = value === undefined ? rawHeaders[i + 1] : `${value},${rawHeaders[i + 1]}`;
  }
  return value;
}

/** How many times a header (name lowercased) occurs. */
export function headerCount(rawHeaders: readonly string[], lowerName: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (nameEquals(rawHeaders[i], lowerName)) count++;
  return count;
}

function decodeComponent(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    // A malformed escape is compared as sent rather than failing the request.
    return s;
  }
}

/**
 * The first value of each query parameter, names and values %-decoded (`+` is a space, as
 * in HTML forms and Go's url.ParseQuery). Names are case-sensitive.
 */
export function parseQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  if (query === '') return params;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (end > start) {
      const eq = query.indexOf('=', start);
      const hasValue = eq >= 0 && eq < end;
      const name = decodeComponent(query.slice(start, hasValue ? eq : end));
      if (!params.has(name)) params.set(name, hasValue ? decodeComponent(query.slice(eq + 1, end)) : '');
    }
    start = end + 1;
  }
  return params;
}

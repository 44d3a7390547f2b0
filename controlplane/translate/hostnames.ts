// Hostname rules of the Gateway API (Listener.hostname, HTTPRoute.hostnames): a `*.` prefix is a
// suffix match on one or more labels; `*.example.com` matches `a.example.com` and `a.b.example.com`
// but not `example.com`.

export function isWildcard(h: string): boolean {
  return h.startsWith('*.');
}

/** Whether `pattern` (exact or `*.` wildcard) matches the concrete host `host`. */
export function hostMatches(pattern: string, host: string): boolean {
  if (!isWildcard(pattern)) return pattern === host;
  const suffix = pattern.slice(1); // ".example.com"
  return host.length > suffix.length && host.endsWith(suffix);
}

/**
 * The intersection of a listener hostname and a route hostname, or undefined when they do
 * not intersect. Both may be wildcards; the result is the more specific of the two.
 */
export function intersectHostnames(listener: string | undefined, route: string): string | undefined {
  if (listener === undefined) return route;
  if (listener === route) return route;
  const lw = isWildcard(listener);
  const rw = isWildcard(route);
  if (!lw && !rw) return undefined;
  if (lw && !rw) return hostMatches(listener, route) ? route : undefined;
  if (!lw && rw) return hostMatches(route, listener) ? listener : undefined;
  // Both wildcards: the longer one is within the shorter one if its suffix ends with the other's.
  const ls = listener.slice(1);
  const rs = route.slice(1);
  if (rs.endsWith(ls)) return route;
  if (ls.endsWith(rs)) return listener;
  return undefined;
}

/**
 * Effective hostnames of a route under a listener: the intersections, deduplicated and in
 * input order; `[]` means no intersection (the route cannot attach); `undefined` means the
 * route matches any host the listener serves.
 */
export function effectiveHostnames(
  listener: string | undefined,
  route: readonly string[] | undefined,
): string[] | undefined {
  if (!route || route.length === 0) return listener === undefined ? undefined : [listener];
  const out: string[] = [];
  for (const h of route) {
    const x = intersectHostnames(listener, h.toLowerCase());
    if (x !== undefined && !out.includes(x)) out.push(x);
  }
  return out;
}

/** Whether a route hostname `pattern` serves every request that domain `domain` would (for virtual-host membership). */
export function covers(pattern: string, domain: string): boolean {
  if (pattern === domain) return true;
  if (!isWildcard(pattern)) return false;
  if (isWildcard(domain)) return domain.slice(1).endsWith(pattern.slice(1)) && domain.length > pattern.length;
  return hostMatches(pattern, domain);
}

// Gateway API Hostname (apis/v1/shared_types.go): RFC 1123, lower case, an optional leading `*.` label.
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `h` is not a Gateway API Hostname, or undefined. */
export function hostnameProblem(h: string): string | undefined {
  if (h.length === 0 || h.length > 253) return `hostname "${h}" must be 1 to 253 characters`;
  if (!HOSTNAME.test(h))
    return `hostname "${h}" is not a valid lower-case RFC 1123 hostname (with an optional leading "*.")`;
  return undefined;
}

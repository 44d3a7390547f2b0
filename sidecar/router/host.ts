// Host header handling shared by the router and the listeners: the name is compared lowercased,
// without port and without a trailing dot; IPv6 literals keep their brackets.

/** Index of the `:` that starts the port in a Host value, or -1. */
function portColon(host: string): number {
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    return close >= 0 && host.charCodeAt(close + 1) === 58 ? close + 1 : -1;
  }
  return host.lastIndexOf(':');
}

/** The host name of a Host header value, lowercased, without port or trailing dot. */
export function hostName(host: string): string {
  const colon = portColon(host);
  let name = colon >= 0 ? host.slice(0, colon) : host;
  if (name.charCodeAt(name.length - 1) === 46) name = name.slice(0, -1);
  // toLowerCase returns the same string when nothing changes, so the common case does not copy.
  return name.toLowerCase();
}

/** The port of a Host header value, or undefined when absent or not a valid port. */
export function hostPort(host: string): number | undefined {
  const colon = portColon(host);
  if (colon < 0) return undefined;
  const digits = host.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(digits)) return undefined;
  const port = Number(digits);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Whether a Host header value is syntactically acceptable (reg-name or IP literal, optional port). */
export function isValidHost(host: string): boolean {
  return /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(:[0-9]{1,5})?$/.test(host);
}

/** The name without brackets, for comparing an IPv6 literal with an address from the config. */
export function unbracket(name: string): string {
  return name.charCodeAt(0) === 91 && name.charCodeAt(name.length - 1) === 93 ? name.slice(1, -1) : name;
}

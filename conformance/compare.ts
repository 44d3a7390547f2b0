// The two harnesses' comparisons, as README §4.4 (utils/http CompareRoundTrip) and §6.3 (utils/echo
// compareRequest) state them: each returns the first mismatch, or undefined when the exchange matches.
import type { CaseRequest, TrafficCase } from './case-file.ts';

/** What the gateway harness captured of one round trip (roundtripper.CapturedRequest / CapturedResponse). */
export interface GatewayExchange {
  status: number;
  /** Response headers, names lower-cased, values in order. */
  headers: Map<string, string[]>;
  /** The echo JSON when Content-Type is exactly application/json; otherwise only `method` (the method sent). */
  echo: EchoJson;
  /** The request URL as sent (`scheme://authority/path?query`), for redirect defaults. */
  url: URL;
}

export interface EchoJson {
  path?: string;
  host?: string;
  method?: string;
  namespace?: string;
  pod?: string;
  headers?: Record<string, string[]>;
}

const lowerKeys = (h: Record<string, string[]> | undefined) =>
  new Map(Object.entries(h ?? {}).map(([k, v]) => [k.toLowerCase(), v]));

const isTimeout = (s: number) => s === 408 || s === 504;
export const isRedirect = (s: number) => s >= 300 && s <= 308;

/** The status codes a case accepts (default [200]). */
export function expectedStatuses(c: TrafficCase): number[] {
  const codes = c.response?.statusCodes ?? [];
  return codes.length > 0 ? codes : [200];
}

/**
 * CompareRoundTrip. `request` is the request as sent (uuid substituted) and `expectedPath` the expected path with
 * the same substitutions.
 */
export function compareGateway(
  c: TrafficCase,
  sent: CaseRequest,
  x: GatewayExchange,
  expectedPath?: string,
): string | undefined {
  const codes = expectedStatuses(c);
  if (isTimeout(x.status) && codes.some(isTimeout)) return undefined;
  if (!codes.includes(x.status)) return `expected status code to be one of [${codes.join(' ')}], got ${x.status}`;
  const res = c.response ?? {};
  if (x.status === 200 || x.status === 204) {
    const exp = c.expectedRequest ?? {
      host: sent.host,
      path: sent.path,
      method: sent.method,
      headers: sent.headers,
    };
    const method = exp.method || 'GET';
    const echo = x.echo;
    if (exp.host && exp.host !== echo.host) return `expected host to be ${exp.host}, got ${echo.host ?? ''}`;
    const path = expectedPath ?? exp.path ?? '';
    if (path !== (echo.path ?? '')) return `expected path to be ${path}, got ${echo.path ?? ''}`;
    if (method !== echo.method) return `expected method to be ${method}, got ${echo.method ?? ''}`;
    if ((c.namespace ?? '') !== (echo.namespace ?? ''))
      return `expected namespace to be ${c.namespace ?? ''}, got ${echo.namespace ?? ''}`;
    const got = lowerKeys(echo.headers);
    if (exp.headers) {
      if (!echo.headers) return `no headers captured, expected ${Object.keys(exp.headers).length}`;
      for (const [name, want] of Object.entries(exp.headers)) {
        const v = got.get(name.toLowerCase());
        if (!v) return `expected ${name} header to be set, actual headers: ${JSON.stringify(echo.headers)}`;
        if (v.join(',') !== want) return `expected ${name} header to be set to ${want}, got ${v.join(',')}`;
      }
    }
    const strip = (s: string) => (res.ignoreWhitespace ? s.replaceAll(' ', '') : s);
    for (const [name, valid] of Object.entries(res.validHeaderValues ?? {})) {
      const v = x.headers.get(name.toLowerCase());
      if (!v) return `expected ${name} header to be set, actual headers: ${fmtHeaders(x.headers)}`;
      const actual = strip(v.join(','));
      if (!valid.map(strip).includes(actual))
        return `expected ${name} header to be set to one of [${valid.join(' ')}], got ${actual}`;
    }
    for (const [name, want] of Object.entries(res.headers ?? {})) {
      const v = x.headers.get(name.toLowerCase());
      if (!v) return `expected ${name} header to be set, actual headers: ${fmtHeaders(x.headers)}`;
      if (strip(v.join(',')) !== strip(want)) return `expected ${name} header to be set to ${want}, got ${v.join(',')}`;
    }
    for (const name of res.absentHeaders ?? []) {
      const v = x.headers.get(name.toLowerCase());
      if (v) return `expected ${name} header to not be set, got ${v.join(',')}`;
    }
    for (const name of exp.absentHeaders ?? []) {
      const v = got.get(name.toLowerCase());
      if (v) return `expected ${name} header to not be set, got ${v.join(',')}`;
    }
    if (!(echo.pod ?? '').startsWith(c.backend ?? ''))
      return `expected pod name to start with ${c.backend}, got ${echo.pod ?? ''}`;
  } else if (isRedirect(x.status) && c.redirect) {
    const location = x.headers.get('location')?.[0];
    if (location === undefined) return `redirect ${x.status} without a Location header`;
    let to: URL;
    try {
      to = new URL(location, x.url);
    } catch {
      return `Location ${JSON.stringify(location)} is not a URL`;
    }
    const gotScheme = to.protocol.slice(0, -1);
    const gotHost = to.hostname.replace(/^\[(.*)\]$/, '$1');
    const gotPort = to.port || explicitDefaultPort(location, gotScheme);
    const want = c.redirect;
    const host = want.host || gotHost;
    if (host !== gotHost) return `expected redirected hostname to be "${host}", got "${gotHost}"`;
    if (want.port === undefined) {
      if (gotScheme.toLowerCase() === 'http' && gotPort !== '80' && gotPort !== '')
        return `for http scheme, expected redirected port to be 80 or not set, got "${gotPort}"`;
      if (gotScheme.toLowerCase() === 'https' && gotPort !== '443' && gotPort !== '')
        return `for https scheme, expected redirected port to be 443 or not set, got "${gotPort}"`;
    } else if (String(want.port) !== gotPort) return `expected redirected port to be "${want.port}", got "${gotPort}"`;
    const scheme = want.scheme || x.url.protocol.slice(0, -1);
    if (scheme !== gotScheme) return `expected redirected scheme to be "${scheme}", got "${gotScheme}"`;
    const path = want.path || x.url.pathname;
    if (path !== to.pathname) return `expected redirected path to be "${path}", got "${to.pathname}"`;
  }
  return undefined;
}

/** WHATWG URL drops a port equal to the scheme's default; Go's URL.Port() keeps what the Location spelled. */
function explicitDefaultPort(location: string, scheme: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d*))?/i.exec(location);
  if (!m?.[2]) return '';
  const def = scheme === 'http' ? '80' : scheme === 'https' ? '443' : '';
  return m[2] === def ? m[2] : '';
}

function fmtHeaders(h: Map<string, string[]>): string {
  return JSON.stringify(Object.fromEntries(h));
}

/** What the mesh client (Istio's echo `client`) parses of one response. */
export interface MeshExchange {
  status: number;
  /** Response headers as the client saw them, names lower-cased. */
  responseHeaders: Map<string, string[]>;
  /** `RequestHeader=Name:value` lines of the echo reply. */
  requestHeaders: Map<string, string[]> | undefined;
  /** `Hostname=` of the echo reply ('' when none). */
  hostname: string;
}

/** Parses the echo server's text reply (Istio echo format) the way the client does. */
export function parseEchoText(body: string): Pick<MeshExchange, 'requestHeaders' | 'hostname'> {
  let requestHeaders: Map<string, string[]> | undefined;
  let hostname = '';
  for (const line of body.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).replace(/\r$/, '');
    if (key === 'Hostname') hostname = value;
    else if (key === 'RequestHeader') {
      const colon = value.indexOf(':');
      if (colon < 0) continue;
      requestHeaders ??= new Map();
      const name = value.slice(0, colon).toLowerCase();
      requestHeaders.set(name, [...(requestHeaders.get(name) ?? []), value.slice(colon + 1)]);
    }
  }
  return { requestHeaders, hostname };
}

/** compareRequest of utils/echo: status, echoed request headers, response headers, backend prefix. */
export function compareMesh(c: TrafficCase, x: MeshExchange): string | undefined {
  const codes = expectedStatuses(c);
  if (!codes.includes(x.status)) return `wanted status code to be one of [${codes.join(' ')}], got ${x.status}`;
  const want = c.expectedRequest ?? {};
  if (want.headers) {
    if (!x.requestHeaders) return `no headers captured, expected ${Object.keys(want.headers).length}`;
    for (const [name, value] of Object.entries(want.headers)) {
      const v = x.requestHeaders.get(name.toLowerCase());
      if (!v)
        return `expected ${name} header to be set, actual headers: ${JSON.stringify(Object.fromEntries(x.requestHeaders))}`;
      if (v.join(',') !== value) return `expected ${name} header to be set to ${value}, got ${v.join(',')}`;
    }
  }
  for (const name of want.absentHeaders ?? []) {
    const v = x.requestHeaders?.get(name.toLowerCase());
    if (v) return `expected ${name} header to not be set, got ${v.join(',')}`;
  }
  for (const name of c.response?.absentHeaders ?? []) {
    const v = x.responseHeaders.get(name.toLowerCase());
    if (v && v.length > 0) return `expected no header "${name}", got [${v.join(' ')}]`;
  }
  for (const [name, value] of Object.entries(c.response?.headers ?? {})) {
    const got = x.responseHeaders.get(name.toLowerCase())?.[0] ?? '';
    if (got !== value) return `expected header ${name}=${value}, got ${got}`;
  }
  if (!x.hostname.startsWith(c.backend ?? '')) return `expected pod name to start with ${c.backend}, got ${x.hostname}`;
  return undefined;
}

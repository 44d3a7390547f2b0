// CORS (Gateway API HTTPCORSFilter): preflights are answered by the proxy and never forwarded;
// actual cross-origin requests get the response headers added.
import type { Cors } from '../config/proxy-config.ts';
import type { HeaderMap } from './header-modifier.ts';

export interface CompiledCors {
  /** Origins as full-match patterns (host `*` greedy to the left), default ports removed. */
  readonly origins: readonly RegExp[];
  readonly anyOrigin: boolean;
  readonly allowCredentials: boolean;
  readonly allowMethods: string;
  readonly anyMethod: boolean;
  readonly allowHeaders: string;
  readonly anyHeader: boolean;
  readonly exposeHeaders: string;
  readonly maxAge: string;
}

/** Drops the default port of an origin so `https://a` and `https://a:443` compare equal. */
function withoutDefaultPort(origin: string): string {
  if (origin.startsWith('http://') && origin.endsWith(':80')) return origin.slice(0, -3);
  if (origin.startsWith('https://') && origin.endsWith(':443')) return origin.slice(0, -4);
  return origin;
}

function originPattern(origin: string): RegExp {
  const escaped = withoutDefaultPort(origin.toLowerCase())
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

export function compileCors(c: Cors | undefined): CompiledCors | undefined {
  if (!c) return undefined;
  const anyOrigin = c.allowOrigins.includes('*');
  return {
    origins: c.allowOrigins.filter((o) => o !== '*').map(originPattern),
    anyOrigin,
    allowCredentials: c.allowCredentials,
    allowMethods: c.allowMethods.filter((m) => m !== '*').join(', '),
    anyMethod: c.allowMethods.includes('*'),
    allowHeaders: c.allowHeaders.filter((h) => h !== '*').join(', '),
    anyHeader: c.allowHeaders.includes('*'),
    // With credentials a `*` may not be sent; without, it means "all".
    exposeHeaders: c.exposeHeaders.filter((h) => h !== '*' || !c.allowCredentials).join(', '),
    maxAge: String(c.maxAge),
  };
}

export function originAllowed(cors: CompiledCors, origin: string): boolean {
  if (cors.anyOrigin) return true;
  const o = withoutDefaultPort(origin.toLowerCase());
  for (let i = 0; i < cors.origins.length; i++) if (cors.origins[i].test(o)) return true;
  return false;
}

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(method: string, origin: string | undefined, requestMethod: string | undefined): boolean {
  return method === 'OPTIONS' && origin !== undefined && requestMethod !== undefined;
}

/**
 * Headers of the proxy's answer to a preflight. An origin that is not allowed gets none of
 * them (the browser then blocks the request); the status stays 204 either way.
 */
export function preflightHeaders(
  cors: CompiledCors,
  origin: string,
  requestMethod: string,
  requestHeaders: string | undefined,
): HeaderMap {
  const h: HeaderMap = { vary: 'Origin' };
  if (!originAllowed(cors, origin)) return h;
  // Echoing the Origin is always allowed, and the only choice with credentials.
  h['access-control-allow-origin'] = origin;
  if (cors.allowCredentials) h['access-control-allow-credentials'] = 'true';
  const methods = cors.anyMethod ? requestMethod : cors.allowMethods;
  if (methods) h['access-control-allow-methods'] = methods;
  const headers = cors.anyHeader ? requestHeaders : cors.allowHeaders;
  if (headers) h['access-control-allow-headers'] = headers;
  if (cors.exposeHeaders) h['access-control-expose-headers'] = cors.exposeHeaders;
  h['access-control-max-age'] = cors.maxAge;
  return h;
}

/** Adds the headers of an actual cross-origin request's response. */
export function addCorsResponseHeaders(cors: CompiledCors, origin: string, headers: HeaderMap): void {
  if (!originAllowed(cors, origin)) return;
  headers['access-control-allow-origin'] = origin;
  if (cors.allowCredentials) headers['access-control-allow-credentials'] = 'true';
  if (cors.exposeHeaders) headers['access-control-expose-headers'] = cors.exposeHeaders;
  const vary = headers.vary;
  headers.vary = vary === undefined ? 'Origin' : `${Array.isArray(vary) ? vary.join(', ') : vary}, Origin`;
}

// RequestRedirect: builds the Location of a redirect the proxy answers itself.
import type { Redirect } from '../config/proxy-config.ts';
import { modifyPath } from './path-modifier.ts';

export interface RedirectInput {
  /** Scheme the request arrived with. */
  scheme: 'http' | 'https';
  /** Request host name, lowercased, without port (IPv6 literals bracketed). */
  host: string;
  /** The port of the listener (edge) or of the destination Service (mesh) the request arrived on. */
  listenerPort: number;
  /** Normalised request path. */
  path: string;
  /** Query string including its `?`, or ''. */
  query: string;
  /** The route's PathPrefix, trimmed of trailing slashes, when it has one. */
  prefix: string | undefined;
}

/**
 * The Location per the Gateway API: absent scheme keeps the request's; absent port is the
 * well-known port of an explicit scheme, else the listener port; :80 for http and :443 for
 * https are omitted; the query string is kept.
 */
export function redirectLocation(r: Redirect, req: RedirectInput): string {
  const scheme = r.scheme ?? req.scheme;
  const port = r.port ?? (r.scheme !== undefined ? (r.scheme === 'https' ? 443 : 80) : req.listenerPort);
  const host = r.hostname ?? req.host;
  const path = r.path ? modifyPath(r.path, req.path, req.prefix) : req.path;
  const omitPort = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  return `${scheme}://${host}${omitPort ? '' : `:${port}`}${path}${req.query}`;
}

// The request target of the request line: origin-form (`/p?q`) everywhere, absolute-form
// (`http://host/p?q`) as an HTTP proxy must accept it. The target never chooses where the
// request goes: only its authority stands in for Host (RFC 9112 §3.2.2), then routing decides.

export interface RequestTarget {
  /** Authority of an absolute-form target; it replaces the Host header. */
  authority: string | undefined;
  /** Raw path, not yet normalised. */
  path: string;
  /** Query string without its `?`. */
  query: string;
}

const ABSOLUTE = /^http:\/\/([^/?#@]+)([/?].*)?$/i;

/** undefined for targets the proxy refuses: asterisk-form, https absolute-form, userinfo, garbage. */
export function parseTarget(url: string): RequestTarget | undefined {
  let authority: string | undefined;
  let rest = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const m = ABSOLUTE.exec(url);
    if (!m) return undefined;
    authority = m[1];
    rest = m[2] ?? '/';
    if (rest.charCodeAt(0) === 63 /* ? */) rest = `/${rest}`;
  }
  const q = rest.indexOf('?');
  return q < 0 ? { authority, path: rest, query: '' } : { authority, path: rest.slice(0, q), query: rest.slice(q + 1) };
}

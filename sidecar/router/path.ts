// The one path normalisation of the proxy, used both to match routes and to build the path
// sent upstream, so a path can never match one route and reach the backend as another.
//
// - %-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded (RFC 3986 §6.2.2.2);
//   every other escape is kept, with its hex digits uppercased. `%2F` and `%5C` therefore stay
//   encoded and never act as separators.
// - `.` and `..` segments are resolved after that decoding (so `%2e%2e` is `..`); `//` collapses.
// - Refused (null → 400): no leading `/`, a `..` that would climb above the root, raw
//   backslash, NUL (raw or `%00`), control characters, spaces, non-ASCII bytes, `#`, a malformed
//   escape.

const SLASH = 47;
const DOT = 46;
const PERCENT = 37;

/** 1 for bytes that are RFC 3986 unreserved. */
const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

const HEX = '0123456789ABCDEF';

/**
 * Normalises the path part of a request target (no query string). Returns the input string
 * itself when it is already normal (no allocation), the normal form otherwise, or null when the
 * path must be refused.
 */
export function normalizePath(raw: string): string | null {
  const n = raw.length;
  if (n === 0 || raw.charCodeAt(0) !== SLASH) return null;
  let work = false;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    // Visible ASCII only: rules out NUL, controls, space, DEL and raw non-ASCII.
    if (c < 0x21 || c > 0x7e || c === 92 /* \ */ || c === 35 /* # */) return null;
    if (c === PERCENT) work = true;
    else if (c === SLASH && i + 1 < n) {
      const next = raw.charCodeAt(i + 1);
      if (next === SLASH || next === DOT) work = true;
    }
  }
  return work ? normalizeSlow(raw) : raw;
}

function normalizeSlow(raw: string): string | null {
  // Pass 1: escapes.
  let decoded = '';
  const n = raw.length;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c !== PERCENT) {
      decoded += raw[i];
      continue;
    }
    if (i + 2 >= n) return null;
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    if (byte === 0) return null;
    if (byte < 128 && UNRESERVED[byte] === 1) decoded += String.fromCharCode(byte);
    else decoded += `%${HEX[hi]}${HEX[lo]}`;
    i += 2;
  }
  // Pass 2: dot segments and empty segments.
  const parts = decoded.split('/');
  const out: string[] = [];
  const last = parts[parts.length - 1];
  // `/a/` , `/a/.` and `/a/b/..` all denote a directory: keep the trailing slash.
  const trailingSlash = parts.length > 1 && (last === '' || last === '.' || last === '..');
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i];
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(p);
  }
  if (out.length === 0) return '/';
  return trailingSlash ? `/${out.join('/')}/` : `/${out.join('/')}`;
}

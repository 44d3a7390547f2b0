// Canonical JSON and content hashes: the version of a pushed config is the sha256 of its canonical JSON, so two
// control planes (or two runs) that compute the same config give it the same version, whatever order its object
// keys were built in.
import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted (by UTF-16 code units), no whitespace, `undefined` members left out as
 * JSON.stringify does. `cache` memoizes the text of objects by reference: the translator shares route tables and
 * clusters between the sidecars of a namespace, so one cache over all of a translation's configs serializes each
 * shared piece once. Objects must not change while a cache holding them is in use (snapshots are frozen).
 */
export function canonicalJson(value: unknown, cache?: WeakMap<object, string>): string {
  return write(value, cache) ?? 'null';
}

function write(value: unknown, cache: WeakMap<object, string> | undefined): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('canonicalJson: BigInt cannot be serialized');
    case 'object':
      break;
    default:
      return undefined; // undefined, functions, symbols: left out (as JSON.stringify does)
  }
  const obj = value as object;
  const hit = cache?.get(obj);
  if (hit !== undefined) return hit;
  let text: string;
  const toJSON = (obj as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    text = write((obj as { toJSON: () => unknown }).toJSON(), cache) ?? 'null';
  } else if (Array.isArray(obj)) {
    text = `[${obj.map((v) => write(v, cache) ?? 'null').join(',')}]`;
  } else {
    const keys = Object.keys(obj).sort();
    const parts: string[] = [];
    for (const k of keys) {
      const v = write((obj as Record<string, unknown>)[k], cache);
      if (v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
    }
    text = `{${parts.join(',')}}`;
  }
  cache?.set(obj, text);
  return text;
}

/** Lowercase hex sha256 of the canonical JSON of `value`. */
export function contentHash(value: unknown, cache?: WeakMap<object, string>): string {
  return createHash('sha256').update(canonicalJson(value, cache)).digest('hex');
}

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

/**
 * Canonical JSON as a list of UTF-8 chunks, for values too big to copy per use: the versions and pushes of a
 * translation's configs. Objects shared between configs (the tables of a namespace's sidecars) are serialized
 * once into a cached Buffer and then only referenced, so hashing a config and writing it to a socket cost no
 * per-config serialization or copy of the shared parts.
 */
export interface CanonicalJson {
  readonly chunks: readonly Buffer[];
  readonly byteLength: number;
}

/**
 * A cache for canonicalChunks: one per batch of values that share objects (e.g. one translation). A small object
 * maps to its text; a big one to its chunks, which are referenced (never copied) wherever the object recurs.
 */
export type ChunkCache = WeakMap<object, string | readonly Buffer[]>;

/** Serialized objects at least this long are kept as chunks (and referenced); shorter ones as text. */
const CHUNK_THRESHOLD = 8192;
/** Pending text is turned into a chunk once this long. */
const TEXT_FLUSH = 64 * 1024;

class ChunkWriter {
  readonly chunks: Buffer[] = [];
  text = '';
  length = 0;

  str(s: string): void {
    this.text += s;
    if (this.text.length >= TEXT_FLUSH) this.flush();
  }

  bufs(bs: readonly Buffer[]): void {
    this.flush();
    for (const b of bs) {
      this.chunks.push(b);
      this.length += b.length;
    }
  }

  flush(): void {
    if (this.text.length === 0) return;
    const b = Buffer.from(this.text, 'utf8');
    this.chunks.push(b);
    this.length += b.length;
    this.text = '';
  }
}

function writeChunks(value: unknown, w: ChunkWriter, cache: ChunkCache): boolean {
  if (value === null || typeof value !== 'object') {
    const text = write(value, undefined);
    if (text === undefined) return false;
    w.str(text);
    return true;
  }
  const obj = value as object;
  const hit = cache.get(obj);
  if (hit !== undefined) {
    if (typeof hit === 'string') w.str(hit);
    else w.bufs(hit);
    return true;
  }
  const sub = new ChunkWriter();
  const toJSON = (obj as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    if (!writeChunks((obj as { toJSON: () => unknown }).toJSON(), sub, cache)) sub.str('null');
  } else if (Array.isArray(obj)) {
    sub.str('[');
    obj.forEach((v, i) => {
      if (i > 0) sub.str(',');
      if (!writeChunks(v, sub, cache)) sub.str('null');
    });
    sub.str(']');
  } else {
    sub.str('{');
    let first = true;
    for (const k of Object.keys(obj).sort()) {
      const v = (obj as Record<string, unknown>)[k];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      sub.str(first ? `${JSON.stringify(k)}:` : `,${JSON.stringify(k)}:`);
      first = false;
      writeChunks(v, sub, cache);
    }
    sub.str('}');
  }
  if (sub.chunks.length === 0 && sub.text.length < CHUNK_THRESHOLD) {
    cache.set(obj, sub.text);
    w.str(sub.text);
  } else {
    sub.flush();
    cache.set(obj, sub.chunks);
    w.bufs(sub.chunks);
  }
  return true;
}

/** canonicalJson(value) as UTF-8 chunks (same bytes), sharing cached chunks of objects seen before. */
export function canonicalChunks(value: unknown, cache: ChunkCache = new WeakMap()): CanonicalJson {
  const w = new ChunkWriter();
  if (!writeChunks(value, w, cache)) w.str('null');
  w.flush();
  return { chunks: w.chunks, byteLength: w.length };
}

/** Lowercase hex sha256 of chunks: equal to contentHash of the value they were made from. */
export function hashChunks(json: CanonicalJson): string {
  const h = createHash('sha256');
  for (const c of json.chunks) h.update(c);
  return h.digest('hex');
}

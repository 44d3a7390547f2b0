// The two patch formats the test API server applies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902,
// with JSON pointers of RFC 6901). Both work on plain JSON values and never mutate their inputs.

export class PatchError extends Error {}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v);

const clone = <T>(v: T): T => (v === undefined ? v : structuredClone(v));

/** RFC 7386: objects merge recursively, `null` removes a member, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function parsePointer(p: unknown): string[] {
  if (typeof p !== 'string') throw new PatchError('path must be a string');
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`invalid JSON pointer "${p}"`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr: unknown[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`invalid array index "${token}"`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new PatchError(`array index ${i} out of bounds`);
  return i;
}

function parentOf(doc: unknown, tokens: string[]): { parent: unknown; last: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw new PatchError(`path /${tokens.join('/')} does not exist`);
  }
  return { parent: cur, last: tokens[tokens.length - 1] };
}

function getAt(doc: unknown, tokens: string[]): unknown {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw new PatchError(`path /${tokens.join('/')} does not exist`);
  }
  return cur;
}

function removeAt(doc: unknown, tokens: string[]): unknown {
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, false), 1)[0];
  if (isObject(parent) && Object.hasOwn(parent, last)) {
    const v = parent[last];
    delete parent[last];
    return v;
  }
  throw new PatchError(`path /${tokens.join('/')} does not exist`);
}

function addAt(doc: unknown, tokens: string[], value: unknown): unknown {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true), 0, value);
  else if (isObject(parent)) (parent as Record<string, unknown>)[last] = value;
  else throw new PatchError(`path /${tokens.join('/')}: parent is not a container`);
  return doc;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** RFC 6902: applies every operation in order, or throws PatchError (the document is then unchanged). */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations');
  let doc = clone(target);
  for (const raw of ops as Operation[]) {
    if (!isObject(raw)) throw new PatchError('an operation must be an object');
    const path = parsePointer(raw.path);
    switch (raw.op) {
      case 'add':
        if (!('value' in raw)) throw new PatchError('add: missing value');
        doc = addAt(doc, path, clone(raw.value));
        break;
      case 'remove':
        removeAt(doc, path);
        break;
      case 'replace':
        if (!('value' in raw)) throw new PatchError('replace: missing value');
        if (path.length === 0) doc = clone(raw.value);
        else {
          removeAt(doc, path);
          doc = addAt(doc, path, clone(raw.value));
        }
        break;
      case 'move': {
        const from = parsePointer(raw.from);
        const v = removeAt(doc, from);
        doc = addAt(doc, path, v);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, clone(getAt(doc, parsePointer(raw.from))));
        break;
      case 'test':
        if (!deepEqual(getAt(doc, path), raw.value)) throw new PatchError(`test failed at ${raw.path}`);
        break;
      default:
        throw new PatchError(`unknown operation ${JSON.stringify(raw.op)}`);
    }
  }
  return doc;
}

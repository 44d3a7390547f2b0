// The injection as a JSON Patch (RFC 6902), what a mutating webhook answers with. The diff is fast-json-patch's:
// a hand-written diff would be one more thing to get wrong (escaping `/` in annotation keys as `~1`, arrays).
import fastJsonPatch from 'fast-json-patch';
import { injectPod } from './inject.ts';
import type { InjectSettings } from './settings.ts';
import type { Pod } from './types.ts';

/** One RFC 6902 operation. */
export interface PatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
  from?: string;
}

/** The operations that turn `original` into `changed`; `[]` when they are equal. */
export function diff(original: object, changed: object): PatchOperation[] {
  return fastJsonPatch.compare(original, changed) as PatchOperation[];
}

/** The patch that injects `pod`: `[]` for a pod already injected. */
export function injectionPatch(pod: Pod, settings: InjectSettings): PatchOperation[] {
  return diff(pod, injectPod(pod, settings));
}

/** `patch` applied to a copy of `doc` (for tests and `weft inject`'s self-check); throws on an inapplicable patch. */
export function applyPatch<T extends object>(doc: T, patch: readonly PatchOperation[]): T {
  return fastJsonPatch.applyPatch(structuredClone(doc), patch as fastJsonPatch.Operation[], true, true)
    .newDocument as T;
}

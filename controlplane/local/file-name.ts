// File names `weft local` derives from object names (a proxy's token, config and log, a container's log, a proxy's
// identity directory). Kubernetes names run to 253 characters and a proxy id adds its mode and namespace, while a
// file name may have 255 bytes: long names are cut and made unique again with a hash of the whole name.
import { createHash } from 'node:crypto';

/** Longest name kept as it is; suffixes (`.token`, `.json`, `.<container>.log`, `.<pid>.tmp`) must still fit. */
export const MAX_KEPT_NAME = 160;
/** Hex digits of SHA-256 appended to a cut name. */
const HASH_DIGITS = 16;

/**
 * `name` as a file name: `:` and `/` become `_` (`edge:infra/gw` → `edge_infra_gw`, as the docs show); a result
 * longer than MAX_KEPT_NAME becomes its first MAX_KEPT_NAME characters, `-` and a hash of the whole name — always
 * longer than any kept name, so a cut name never equals a kept one, and two cut names differ with their hashes.
 */
export function localFileName(name: string): string {
  const safe = name.replace(/[:/]/g, '_');
  if (safe.length <= MAX_KEPT_NAME) return safe;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, HASH_DIGITS);
  return `${safe.slice(0, MAX_KEPT_NAME)}-${hash}`;
}

/** The log file (under `<state dir>/logs`) of container `container` of pod `namespace/pod`. */
export function containerLogName(namespace: string, pod: string, container: string): string {
  return `${localFileName(`${namespace}/${pod}.${container}`)}.log`;
}

// ReplaceFullPath / ReplacePrefixMatch, shared by URL rewrites and redirects.
import type { PathModifier } from '../config/proxy-config.ts';

/** A path prefix without its trailing slashes: `/foo/` and `/foo` are the same prefix, `/` is ''. */
export function trimPrefix(prefix: string): string {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 47) end--;
  return prefix.slice(0, end);
}

/**
 * Replaces the element-wise matched `prefix` (already trimmed) of `path` by `replacement`,
 * following the table in the Gateway API's HTTPPathModifier: a trailing slash of the
 * replacement is not significant and an empty result is `/`.
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const rest = path.slice(prefix.length);
  const result = trimPrefix(replacement) + rest;
  if (result === '') return '/';
  return result.charCodeAt(0) === 47 ? result : `/${result}`;
}

/** The path after a modifier; `prefix` is the route's trimmed PathPrefix (ReplacePrefixMatch needs one). */
export function modifyPath(modifier: PathModifier, path: string, prefix: string | undefined): string {
  if (modifier.type === 'ReplaceFullPath') return modifier.value;
  // Without a PathPrefix match the validator refuses ReplacePrefixMatch; treat the whole path as matched by '/'.
  return replacePrefix(path, prefix ?? '', modifier.value);
}

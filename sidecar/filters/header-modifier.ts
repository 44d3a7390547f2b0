// Request/response header modifiers (Gateway API HTTPHeaderFilter): compiled once with
// lowercased names, applied to the plain header objects the proxy sends on.
import type { HeaderModifier } from '../config/proxy-config.ts';

/** Lowercased name → value(s): the shape both node:http and undici accept. */
export type HeaderMap = Record<string, string | string[] | undefined>;

export interface CompiledHeaderModifier {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/** Undefined when the modifier does nothing, so the request path can skip it with one test. */
export function compileHeaderModifier(m: HeaderModifier | undefined): CompiledHeaderModifier | undefined {
  if (!m || (m.set.length === 0 && m.add.length === 0 && m.remove.length === 0)) return undefined;
  return {
    set: m.set.map((h) => [h.name.toLowerCase(), h.value] as const),
    add: m.add.map((h) => [h.name.toLowerCase(), h.value] as const),
    remove: m.remove.map((n) => n.toLowerCase()),
  };
}

/**
 * Applies set, then add, then remove, as the Gateway API orders them. `add` appends a further
 * value (a separate header line), keeping what was there.
 */
export function applyHeaderModifier(headers: HeaderMap, m: CompiledHeaderModifier): void {
  for (let i = 0; i < m.set.length; i++) headers[m.set[i][0]] = m.set[i][1];
  for (let i = 0; i < m.add.length; i++) {
    const [name, value] = m.add[i];
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) headers[name] = [...prev, value];
    else headers[name] = [prev, value];
  }
  for (let i = 0; i < m.remove.length; i++) delete headers[m.remove[i]];
}

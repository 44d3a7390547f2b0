// A rule's (or backendRef's) filters in the form the request path uses.
import type { Filters, Redirect, Rewrite } from '../config/proxy-config.ts';
import { ConfigCompileError } from '../errors.ts';
import type { CompiledCluster } from '../upstream/cluster.ts';
import { type CompiledCors, compileCors } from './cors.ts';
import { type CompiledHeaderModifier, compileHeaderModifier } from './header-modifier.ts';

export interface CompiledMirror {
  readonly cluster: CompiledCluster;
  /** 0–100. */
  readonly percent: number;
}

export interface CompiledFilters {
  readonly requestHeaders: CompiledHeaderModifier | undefined;
  readonly responseHeaders: CompiledHeaderModifier | undefined;
  readonly redirect: Redirect | undefined;
  readonly rewrite: Rewrite | undefined;
  readonly mirrors: readonly CompiledMirror[];
  readonly cors: CompiledCors | undefined;
}

export function compileFilters(
  filters: Filters | undefined,
  clusters: ReadonlyMap<string, CompiledCluster>,
  where: string,
): CompiledFilters | undefined {
  if (!filters) return undefined;
  const mirrors = filters.mirrors.map((m) => {
    const cluster = clusters.get(m.cluster);
    if (!cluster) throw new ConfigCompileError(`${where}: mirror cluster ${JSON.stringify(m.cluster)} does not exist`);
    return { cluster, percent: m.percent };
  });
  const compiled: CompiledFilters = {
    requestHeaders: compileHeaderModifier(filters.requestHeaders),
    responseHeaders: compileHeaderModifier(filters.responseHeaders),
    redirect: filters.redirect,
    rewrite: filters.rewrite,
    mirrors: mirrors.filter((m) => m.percent > 0),
    cors: compileCors(filters.cors),
  };
  const empty =
    !compiled.requestHeaders &&
    !compiled.responseHeaders &&
    !compiled.redirect &&
    !compiled.rewrite &&
    compiled.mirrors.length === 0 &&
    !compiled.cors;
  return empty ? undefined : compiled;
}

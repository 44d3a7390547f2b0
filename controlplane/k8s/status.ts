// What weft writes into an object's `status`, given what the object holds now and what the translator says
// (pure; the status writer does the I/O):
//
// - HTTPRoute/GRPCRoute: only weft's own `status.parents` entries (controllerName = weft's) are replaced; other
//   controllers' entries are kept as they are, in their order. No desired status (the route no longer names a
//   parent of weft's) removes weft's entries.
// - Gateway/GatewayClass of weft's class: the status is weft's; fields weft does not produce are kept.
// - Compared ignoring lastTransitionTime and the order of parents (by parentRef), conditions (by type) and
//   listeners (by name): when nothing else differs, nothing is written.
// - lastTransitionTime: the current one when a condition of that type (same parent, same listener) exists with the
//   same status; `now` when the condition is new or its status changed.
import type { Condition } from '../resources/types.ts';
import { canonicalJson as canonical } from '../runtime/canonical.ts';
import type { ConditionOut, RouteParentStatusOut, StatusOut } from '../translate/types.ts';
import type { KubeObject } from './client.ts';

type Obj = Record<string, unknown>;

/** metav1.Time: RFC 3339 in UTC, whole seconds. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const asArray = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

/** A parentRef with the API's defaults filled in, as a comparison key. */
export function parentRefKey(ref: Obj, routeNamespace: string): string {
  return canonical({
    group: ref.group ?? 'gateway.networking.k8s.io',
    kind: ref.kind ?? 'Gateway',
    namespace: ref.namespace ?? routeNamespace,
    name: ref.name,
    sectionName: ref.sectionName ?? '',
    port: ref.port ?? 0,
  });
}

/** Conditions as a comparison key: sorted by type, without lastTransitionTime. */
function conditionsKey(cs: unknown): string {
  return canonical(
    asArray<Obj>(cs)
      .map(({ lastTransitionTime: _t, ...rest }) => rest)
      .sort((a, b) => String(a.type).localeCompare(String(b.type))),
  );
}

/** The desired conditions with lastTransitionTime kept from `current` where the status did not change. */
export function stampConditions(desired: readonly ConditionOut[], current: unknown, now: string): Condition[] {
  const byType = new Map(asArray<Condition>(current).map((c) => [c.type, c]));
  return desired.map((c) => {
    const cur = byType.get(c.type);
    const lastTransitionTime = cur && cur.status === c.status && cur.lastTransitionTime ? cur.lastTransitionTime : now;
    return { ...c, lastTransitionTime };
  });
}

function routeParentsKey(parents: readonly Obj[], ns: string): string {
  return canonical(
    parents
      .map((p) => ({
        ref: parentRefKey((p.parentRef ?? {}) as Obj, ns),
        controllerName: p.controllerName,
        conditions: conditionsKey(p.conditions),
      }))
      .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0)),
  );
}

function mergeRoute(obj: KubeObject, desired: readonly RouteParentStatusOut[], controllerName: string, now: string) {
  const ns = obj.metadata?.namespace ?? 'default';
  const status = (obj.status ?? {}) as Obj;
  const parents = asArray<Obj>(status.parents);
  const others = parents.filter((p) => p.controllerName !== controllerName);
  const mine = parents.filter((p) => p.controllerName === controllerName);
  if (routeParentsKey(mine, ns) === routeParentsKey(desired as unknown as Obj[], ns)) return undefined;
  const currentByRef = new Map(mine.map((p) => [parentRefKey((p.parentRef ?? {}) as Obj, ns), p]));
  const next = desired.map((p) => ({
    parentRef: p.parentRef,
    controllerName: p.controllerName,
    conditions: stampConditions(
      p.conditions,
      currentByRef.get(parentRefKey(p.parentRef as unknown as Obj, ns))?.conditions,
      now,
    ),
  }));
  return { ...status, parents: [...others, ...next] };
}

function listenersKey(ls: unknown): string {
  return canonical(
    asArray<Obj>(ls)
      .map((l): Obj => ({ ...l, conditions: conditionsKey(l.conditions) }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
  );
}

/**
 * The status to write to `obj` for the translator's `desired` (null: weft has no status for it any more), or
 * undefined when the object's status already says that (no write).
 */
export function nextStatus(
  obj: KubeObject,
  desired: StatusOut | null,
  controllerName: string,
  now: string,
): Obj | undefined {
  const kind = obj.kind;
  const current = (obj.status ?? {}) as Obj;
  if (kind === 'HTTPRoute' || kind === 'GRPCRoute') {
    const parents = desired && 'parents' in desired.status ? desired.status.parents : [];
    return mergeRoute(obj, parents, controllerName, now);
  }
  if (!desired) return undefined;
  if (desired.kind === 'GatewayClass') {
    const same =
      conditionsKey(current.conditions) === conditionsKey(desired.status.conditions) &&
      canonical(current.supportedFeatures ?? []) === canonical(desired.status.supportedFeatures);
    if (same) return undefined;
    return {
      ...current,
      conditions: stampConditions(desired.status.conditions, current.conditions, now),
      supportedFeatures: desired.status.supportedFeatures,
    };
  }
  if (desired.kind === 'Gateway') {
    const same =
      conditionsKey(current.conditions) === conditionsKey(desired.status.conditions) &&
      listenersKey(current.listeners) === listenersKey(desired.status.listeners) &&
      canonical(current.addresses ?? []) === canonical(desired.status.addresses);
    if (same) return undefined;
    const currentListeners = new Map(asArray<Obj>(current.listeners).map((l) => [l.name, l]));
    return {
      ...current,
      addresses: desired.status.addresses,
      conditions: stampConditions(desired.status.conditions, current.conditions, now),
      listeners: desired.status.listeners.map((l) => ({
        ...l,
        conditions: stampConditions(l.conditions, currentListeners.get(l.name)?.conditions, now),
      })),
    };
  }
  return undefined;
}

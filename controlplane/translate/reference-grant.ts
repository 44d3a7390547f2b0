import type { ResourceSnapshot } from '../resources/snapshot.ts';

export interface RefFrom {
  group: string;
  kind: string;
  namespace: string;
}

export interface RefTo {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

/**
 * Whether a reference from an object in one namespace to an object in another is permitted:
 * same-namespace references always are; cross-namespace ones need a ReferenceGrant in the
 * target's namespace whose `from` names the referrer's group/kind/namespace and whose `to`
 * names the target's group/kind and (if set) name.
 */
export function referenceAllowed(snapshot: ResourceSnapshot, from: RefFrom, to: RefTo): boolean {
  if (from.namespace === to.namespace) return true;
  for (const grant of snapshot.inNamespace('ReferenceGrant', to.namespace)) {
    const fromOk = grant.spec.from?.some(
      (f) => (f.group ?? '') === from.group && f.kind === from.kind && f.namespace === from.namespace,
    );
    if (!fromOk) continue;
    const toOk = grant.spec.to?.some(
      (t) =>
        (t.group ?? '') === to.group &&
        t.kind === to.kind &&
        (t.name === undefined || t.name === '' || t.name === to.name),
    );
    if (toOk) return true;
  }
  return false;
}

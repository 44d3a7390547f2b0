import { CLUSTER_SCOPED, type Resource, type ResourceKind } from './types.ts';

type ByKind = { [K in ResourceKind]: Extract<Resource, { kind: K }> };

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones. */
export function resourceKey(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return CLUSTER_SCOPED.has(r.kind) ? r.metadata.name : `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

/**
 * One immutable view of every object weft reads. Built once per change by a provider
 * (files or Kubernetes informers) and handed to the pure translator; nothing mutates it
 * afterwards (objects are frozen deeply), so the translator can share pieces of it freely.
 */
export class ResourceSnapshot {
  readonly #byKind: Map<ResourceKind, Map<string, Resource>>;
  readonly #byNamespace = new Map<string, Resource[]>();

  private constructor(byKind: Map<ResourceKind, Map<string, Resource>>) {
    this.#byKind = byKind;
  }

  /**
   * Builds a snapshot. Objects without `metadata.namespace` get `default` (what kubectl does);
   * a later object with the same kind and key replaces an earlier one (what `kubectl apply` does).
   */
  static from(resources: Iterable<Resource>): ResourceSnapshot {
    const byKind = new Map<ResourceKind, Map<string, Resource>>();
    for (const input of resources) {
      const r =
        CLUSTER_SCOPED.has(input.kind) || input.metadata.namespace
          ? input
          : ({ ...input, metadata: { ...input.metadata, namespace: 'default' } } as Resource);
      let m = byKind.get(r.kind);
      if (!m) {
        m = new Map();
        byKind.set(r.kind, m);
      }
      m.set(resourceKey(r), deepFreeze(r));
    }
    // Deterministic iteration order regardless of input order: sorted by key.
    for (const [kind, m] of byKind) byKind.set(kind, new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    return new ResourceSnapshot(byKind);
  }

  static empty(): ResourceSnapshot {
    return ResourceSnapshot.from([]);
  }

  get<K extends ResourceKind>(kind: K, key: string): ByKind[K] | undefined {
    return this.#byKind.get(kind)?.get(key) as ByKind[K] | undefined;
  }

  /** Every object of a kind, sorted by key. */
  list<K extends ResourceKind>(kind: K): readonly ByKind[K][] {
    const m = this.#byKind.get(kind);
    return m ? ([...m.values()] as ByKind[K][]) : [];
  }

  /** Objects of a kind in one namespace, sorted by key. */
  inNamespace<K extends ResourceKind>(kind: K, namespace: string): readonly ByKind[K][] {
    const cacheKey = `${kind}\u0000${namespace}`;
    let hit = this.#byNamespace.get(cacheKey);
    if (!hit) {
      hit = this.list(kind).filter((r) => r.metadata.namespace === namespace);
      this.#byNamespace.set(cacheKey, hit);
    }
    return hit as ByKind[K][];
  }

  /** All objects, kinds in a fixed order, each kind sorted by key. */
  all(): Resource[] {
    const out: Resource[] = [];
    for (const kind of [...this.#byKind.keys()].sort()) out.push(...this.#byKind.get(kind)!.values());
    return out;
  }

  get size(): number {
    let n = 0;
    for (const m of this.#byKind.values()) n += m.size;
    return n;
  }

  /** A new snapshot with `changes` applied (objects replaced by kind+key; `null` deletes). */
  with(changes: Iterable<Resource>, deletions: Iterable<{ kind: ResourceKind; key: string }> = []): ResourceSnapshot {
    const all = new Map<string, Resource>();
    for (const r of this.all()) all.set(`${r.kind}\u0000${resourceKey(r)}`, r);
    for (const d of deletions) all.delete(`${d.kind}\u0000${d.key}`);
    for (const r of changes) all.set(`${r.kind}\u0000${resourceKey(r)}`, r);
    return ResourceSnapshot.from(all.values());
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

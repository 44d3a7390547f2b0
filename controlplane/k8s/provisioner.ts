// Gateway provisioning: for every Gateway weft runs a proxy for (gateway-objects.ts decides which, and what), the
// leader makes the cluster hold exactly those objects — a ServiceAccount, a Deployment and a Service `<gw>-weft` —
// and nothing else of its own. Driven by the pipeline's snapshots: a Gateway whose desired objects changed is
// reconciled; so is one whose Deployment or Service changed in the informer cache in a way that departs from what
// weft wants (someone scaled it by hand), and all of them on becoming leader and every resync. A reconcile creates
// what is missing, patches what drifted (a merge patch of weft's fields only; defaults the API server added and
// foreign labels are left alone; keys weft copied from a Gateway or ProxySettings and no longer wants are
// removed), and deletes the objects of Gateways that are gone or no longer weft's. The objects carry
// ownerReferences to their Gateway, so a cluster's garbage collector removes them too; deleting explicitly also
// covers class changes and clusters (or tests) without one. An object of the same name weft does not control is
// left alone and logged. The Gateway's `status.addresses` follow from the Service: the translator reads it from the
// snapshot, and the status writer writes it.
import { type Logger, pino } from 'pino';
import { gatewayServiceName } from '../resources/materialize.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { WatchableMap } from '../runtime/watchable.ts';
import { parseQuantity } from '../translate/proxy-settings.ts';
import type { KubeClient, KubeObject, ResourceRef } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';
import {
  APPLIED_ANNOTATION,
  COMPONENT,
  COMPONENT_LABEL,
  desiredGatewayObjects,
  type GatewayObjectOptions,
  type GatewayObjects,
} from './gateway-objects.ts';
import { resourcePath } from './kinds.ts';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF } from './provider.ts';
import type { Leadership, ObjectCache } from './status-writer.ts';

type Obj = Record<string, unknown>;
type Part = 'serviceAccount' | 'deployment' | 'service';
type OwnedKind = 'ServiceAccount' | 'Deployment' | 'Service';

interface KindRef extends ResourceRef {
  kind: OwnedKind;
  version: string;
  part: Part;
  /** Watched by the provider: readable from the cache. */
  cached: boolean;
}

/** In creation order: the Deployment's pods need the ServiceAccount. */
const OWNED: readonly KindRef[] = [
  {
    kind: 'ServiceAccount',
    group: '',
    plural: 'serviceaccounts',
    namespaced: true,
    version: 'v1',
    part: 'serviceAccount',
    cached: false,
  },
  {
    kind: 'Deployment',
    group: 'apps',
    plural: 'deployments',
    namespaced: true,
    version: 'v1',
    part: 'deployment',
    cached: true,
  },
  { kind: 'Service', group: '', plural: 'services', namespaced: true, version: 'v1', part: 'service', cached: true },
];
const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=weft,${COMPONENT_LABEL}=${COMPONENT}`;

export interface GatewayProvisionerOptions extends GatewayObjectOptions {
  client: KubeClient;
  /** Only writes while this says so. Default: always. */
  leader?: Leadership;
  /** The provider's informer cache (Deployments, Services); without it every read is a GET. */
  cache?: ObjectCache;
  /** Everything is reconciled again this often, and orphans looked for (0: never). Default 5 min. */
  resyncMs?: number;
  backoff?: Partial<Backoff>;
  logger?: Logger;
}

export interface GatewayProvisionerStats {
  creates: number;
  patches: number;
  deletes: number;
  /** Objects of a provisioned name that weft does not control (left alone). */
  foreign: number;
  /** Reconciles that failed (retried after a backoff). */
  failures: number;
  /** Gateways waiting or being reconciled. */
  pending: number;
}

const meta = (o: KubeObject | Obj | undefined) => ((o as KubeObject | undefined)?.metadata ?? {}) as Obj;
const record = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * True when `actual` holds everything `desired` says: objects key by key (extra keys, such as the API server's
 * defaults, are fine), arrays item by item, quantities under `resources` by value (`0.5` = `500m`).
 */
export function covers(actual: unknown, desired: unknown, quantities = false): boolean {
  if (desired === undefined) return true;
  if (Array.isArray(desired))
    return (
      Array.isArray(actual) &&
      actual.length === desired.length &&
      desired.every((d, i) => covers(actual[i], d, quantities))
    );
  if (desired !== null && typeof desired === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    return Object.entries(desired).every(([k, v]) => covers((actual as Obj)[k], v, quantities || k === 'resources'));
  }
  if (actual === desired) return true;
  if (!quantities || (typeof actual !== 'string' && typeof actual !== 'number')) return false;
  const a = parseQuantity(actual);
  return a !== undefined && a === parseQuantity(desired as string | number);
}

/** The label and annotation keys weft copied onto an object (its applied-keys annotation). */
function appliedKeys(o: KubeObject | undefined): { labels: string[]; annotations: string[] } {
  try {
    const v = JSON.parse(String(record(meta(o).annotations)[APPLIED_ANNOTATION] ?? '{}')) as Obj;
    const list = (x: unknown) => (Array.isArray(x) ? x.filter((k): k is string => typeof k === 'string') : []);
    return { labels: list(v.labels), annotations: list(v.annotations) };
  } catch {
    return { labels: [], annotations: [] };
  }
}

/** Keys weft put on `current` earlier and `desired` no longer has, each set to null (merge patch: remove). */
function removals(current: KubeObject, desired: KubeObject, field: 'labels' | 'annotations', where: Obj): Obj {
  const wanted = record(meta(desired)[field]);
  const present = record(where[field]);
  return Object.fromEntries(
    appliedKeys(current)
      [field].filter((k) => !(k in wanted) && k in present)
      .map((k) => [k, null]),
  );
}

/** Whether weft controls `o` for the Gateway `gateway` (a controller ownerReference, or its labels and no owner). */
function controlledBy(o: KubeObject, gateway: string): boolean {
  const m = meta(o);
  const refs = (Array.isArray(m.ownerReferences) ? m.ownerReferences : []) as Obj[];
  const controller = refs.find((r) => r.controller === true);
  if (controller)
    return (
      controller.kind === 'Gateway' &&
      controller.name === gateway &&
      String(controller.apiVersion).startsWith('gateway.networking.k8s.io/')
    );
  const labels = record(m.labels);
  return labels['app.kubernetes.io/managed-by'] === 'weft' && labels[COMPONENT_LABEL] === COMPONENT;
}

/** `namespace/name` of the Gateway a managed object belongs to, from its controller ownerReference. */
function ownerGateway(o: KubeObject): string | undefined {
  const m = meta(o);
  const labels = record(m.labels);
  if (labels['app.kubernetes.io/managed-by'] !== 'weft' || labels[COMPONENT_LABEL] !== COMPONENT) return undefined;
  const refs = (Array.isArray(m.ownerReferences) ? m.ownerReferences : []) as Obj[];
  const ref = refs.find((r) => r.controller === true && r.kind === 'Gateway');
  return ref ? `${String(m.namespace)}/${String(ref.name)}` : undefined;
}

/**
 * The merge patch that brings `current` to `desired` (undefined: nothing to do): weft's labels, annotations, owner
 * and every field of desired, with the keys weft no longer copies removed. Lists are replaced whole (merge patch),
 * so a Service keeps the node ports the API server allocated.
 */
export function driftPatch(kind: OwnedKind, current: KubeObject, desired: KubeObject): Obj | undefined {
  const { metadata: dm, apiVersion: _a, kind: _k, ...desiredBody } = desired;
  const cm = meta(current);
  const dmeta = record(dm);
  const ownerRefs = (Array.isArray(dmeta.ownerReferences) ? dmeta.ownerReferences : []) as Obj[];
  const currentRefs = (Array.isArray(cm.ownerReferences) ? cm.ownerReferences : []) as Obj[];
  const template = record(record(record(desiredBody.spec).template).metadata);
  const currentTemplate = record(record(record(record(current.spec).template)).metadata);
  const labelRemovals = removals(current, desired, 'labels', cm);
  const annotationRemovals = removals(current, desired, 'annotations', cm);
  const templateRemovals =
    kind === 'Deployment'
      ? {
          labels: removals(current, desired, 'labels', currentTemplate),
          annotations: removals(current, desired, 'annotations', currentTemplate),
        }
      : { labels: {}, annotations: {} };
  // External IPs weft requested for addresses the Gateway no longer has: a merge patch removes them with null.
  const staleExternalIPs =
    kind === 'Service' &&
    record(desiredBody.spec).externalIPs === undefined &&
    Array.isArray(record(current.spec).externalIPs) &&
    (record(current.spec).externalIPs as unknown[]).length > 0;
  const drifted =
    staleExternalIPs ||
    !covers(cm.labels, dmeta.labels) ||
    !covers(cm.annotations, dmeta.annotations) ||
    !ownerRefs.every((r) => currentRefs.some((c) => covers(c, r))) ||
    !covers(current, desiredBody) ||
    Object.keys(labelRemovals).length +
      Object.keys(annotationRemovals).length +
      Object.keys(templateRemovals.labels).length +
      Object.keys(templateRemovals.annotations).length >
      0;
  if (!drifted) return undefined;
  const patch: Obj = structuredClone(desiredBody);
  patch.metadata = {
    labels: { ...record(dmeta.labels), ...labelRemovals },
    annotations: { ...record(dmeta.annotations), ...annotationRemovals },
    // weft's controller reference; other owners stay.
    ...(ownerRefs.length > 0
      ? {
          ownerReferences: [
            ...ownerRefs,
            ...currentRefs.filter((c) => c.controller !== true && c.uid !== ownerRefs[0].uid),
          ],
        }
      : {}),
  };
  if (kind === 'Deployment') {
    const t = record(record(record(patch.spec).template).metadata);
    t.labels = { ...record(template.labels), ...templateRemovals.labels };
    t.annotations = { ...record(template.annotations), ...templateRemovals.annotations };
  }
  if (kind === 'Service') {
    const spec = record(patch.spec);
    if (staleExternalIPs) spec.externalIPs = null;
    const currentPorts = (Array.isArray(record(current.spec).ports) ? record(current.spec).ports : []) as Obj[];
    if (spec.type !== 'ClusterIP')
      for (const p of (spec.ports ?? []) as Obj[]) {
        const same = currentPorts.find((c) => c.port === p.port && (c.protocol ?? 'TCP') === (p.protocol ?? 'TCP'));
        if (same?.nodePort !== undefined) p.nodePort = same.nodePort;
      }
  }
  return patch;
}

/** Whether a Service must be made again to get the cluster IP weft asks for (the field cannot change). */
function clusterIPChange(current: KubeObject, desired: KubeObject): boolean {
  const wanted = record(desired.spec).clusterIP;
  const has = record(current.spec).clusterIP;
  return desired.kind === 'Service' && typeof wanted === 'string' && typeof has === 'string' && has !== wanted;
}

export class GatewayProvisioner {
  readonly name = 'gateway-provisioner';
  readonly #client: KubeClient;
  readonly #objectOptions: GatewayObjectOptions;
  readonly #leader: Leadership | undefined;
  readonly #resyncMs: number;
  readonly #backoff: Backoff;
  readonly #log: Logger;
  #cache: ObjectCache | undefined;
  #unsubscribeCache: (() => void) | undefined;
  /** Undefined until the first snapshot: nothing is deleted before weft knows which Gateways exist. */
  #desired: Map<string, GatewayObjects> | undefined;
  #fingerprints = new Map<string, string>();
  /** `Kind/namespace/name` of every desired object → its Gateway's key. */
  #byObject = new Map<string, string>();
  readonly #dirty = new Set<string>();
  #scanWanted = false;
  readonly #retries = new Map<string, { attempt: number; timer: NodeJS.Timeout | undefined }>();
  readonly #foreignLogged = new Set<string>();
  readonly #stats = { creates: 0, patches: 0, deletes: 0, foreign: 0, failures: 0 };
  readonly #idleWaiters = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #current: string | undefined;
  #worker: Promise<void> | undefined;
  #resync: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: GatewayProvisionerOptions) {
    const { client, leader, cache, resyncMs, backoff, logger, ...objectOptions } = options;
    this.#client = client;
    this.#objectOptions = objectOptions;
    this.#leader = leader;
    this.#resyncMs = resyncMs ?? 300_000;
    this.#backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this.#log = (logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'gateway-provisioner' });
    this.setCache(cache);
  }

  get stats(): GatewayProvisionerStats {
    return { ...this.#stats, pending: this.#pendingKeys().size };
  }

  /** True when this provisioner may write now. */
  get active(): boolean {
    return this.#running && (this.#leader?.isLeader ?? true);
  }

  /** Reads Deployments and Services from `cache` (the provider of the current run) and follows their changes. */
  setCache(cache: ObjectCache | undefined): void {
    this.#unsubscribeCache?.();
    this.#unsubscribeCache = undefined;
    this.#cache = cache;
    if (cache) this.#unsubscribeCache = cache.onObjectChange((kind, ns, name) => this.#objectChanged(kind, ns, name));
  }

  /** Follows the pipeline's snapshots. Returns the unsubscribe function. */
  attach(snapshots: WatchableMap<'current', ResourceSnapshot>): () => void {
    return snapshots.subscribe((batch) => {
      const latest = batch.updates.at(-1)?.value;
      if (latest) this.update(latest);
    });
  }

  /** Sets the Gateways to provision from a snapshot; those whose objects changed are reconciled. */
  update(snapshot: ResourceSnapshot): void {
    const next = desiredGatewayObjects(snapshot, this.#objectOptions);
    const previous = this.#desired;
    const fingerprints = new Map<string, string>();
    const byObject = new Map<string, string>();
    for (const [key, d] of next) {
      fingerprints.set(key, JSON.stringify(d));
      for (const k of OWNED) byObject.set(`${k.kind}/${d.namespace}/${String(d[k.part].metadata?.name)}`, key);
    }
    const changed = [...next.keys()].filter((k) => this.#fingerprints.get(k) !== fingerprints.get(k));
    const gone = [...(previous?.keys() ?? [])].filter((k) => !next.has(k));
    this.#desired = next;
    this.#fingerprints = fingerprints;
    this.#byObject = byObject;
    if (!previous) this.#scanWanted = true; // the first snapshot: look for objects of Gateways deleted meanwhile
    for (const key of [...changed, ...gone]) this.#mark(key);
    this.#kick();
  }

  /** Starts writing (when leader). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    if (this.#leader)
      this.#unsubscribe.push(
        this.#leader.onChange((leading) => {
          if (leading) this.#markAll();
        }),
      );
    if (this.#resyncMs > 0) {
      this.#resync = setInterval(() => this.#markAll(), this.#resyncMs);
      this.#resync.unref();
    }
    this.#markAll();
  }

  /** Stops: no reconcile starts after this; the one in flight finishes. Can be started again. */
  async close(): Promise<void> {
    this.#running = false;
    clearInterval(this.#resync);
    for (const off of this.#unsubscribe.splice(0)) off();
    for (const [key, r] of this.#retries) {
      clearTimeout(r.timer);
      this.#dirty.add(key);
    }
    this.#retries.clear();
    await this.#worker;
  }

  /** Resolves when nothing is waiting, being reconciled or scheduled for a retry. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#pendingKeys().size > 0 || this.#scanWanted || this.#worker) return;
        this.#idleWaiters.delete(check);
        resolve();
      };
      this.#idleWaiters.add(check);
      check();
    });
  }

  #pendingKeys(): Set<string> {
    const keys = new Set([...this.#dirty, ...this.#retries.keys()]);
    if (this.#current) keys.add(this.#current);
    return keys;
  }

  #markAll(): void {
    this.#scanWanted = true;
    for (const key of this.#desired?.keys() ?? []) this.#mark(key);
    this.#kick();
  }

  #mark(key: string): void {
    const r = this.#retries.get(key);
    if (r) clearTimeout(r.timer);
    this.#dirty.add(key);
  }

  /** A Deployment or Service changed in the cache: reconcile its Gateway if it departs from what weft wants. */
  #objectChanged(kind: string, namespace: string | undefined, name: string): void {
    if (kind !== 'Deployment' && kind !== 'Service') return;
    const key = this.#byObject.get(`${kind}/${namespace}/${name}`);
    const current = this.#cache?.getObject(kind, namespace, name);
    if (key) {
      const d = this.#desired?.get(key);
      const part = OWNED.find((k) => k.kind === kind)!.part;
      if (d && current && controlledBy(current, d.gateway) && !driftPatch(kind, current, d[part])) return;
      this.#mark(key);
    } else {
      // Not wanted: an object of a Gateway that is gone (left by a replica that was not leader, say).
      const owner = current ? ownerGateway(current) : undefined;
      if (!owner || this.#desired?.has(owner)) return;
      this.#mark(owner);
    }
    this.#kick();
  }

  #kick(): void {
    if (this.#worker || !this.active || !this.#desired) {
      this.#notifyIdle();
      return;
    }
    this.#worker = this.#work().finally(() => {
      this.#worker = undefined;
      if (this.active && (this.#dirty.size > 0 || this.#scanWanted)) this.#kick();
      this.#notifyIdle();
    });
  }

  #notifyIdle(): void {
    for (const w of [...this.#idleWaiters]) w();
  }

  /** One reconcile at a time: provisioning is rare, and serial writes keep the API server's load flat. */
  async #work(): Promise<void> {
    while (this.active) {
      if (this.#scanWanted) {
        this.#scanWanted = false;
        await this.#scan();
        continue;
      }
      const key = this.#dirty.values().next().value;
      if (key === undefined) return;
      this.#dirty.delete(key);
      this.#current = key;
      try {
        await this.#reconcile(key);
        this.#retries.delete(key);
      } catch (err) {
        this.#stats.failures++;
        this.#retry(key, err);
      } finally {
        this.#current = undefined;
      }
    }
  }

  /** Objects weft made for Gateways it no longer provisions: their Gateways are reconciled (removed). */
  async #scan(): Promise<void> {
    try {
      for (const k of OWNED) {
        const list = await this.#client.listAll<KubeObject>(k, k.version, { labelSelector: MANAGED_SELECTOR });
        for (const o of list.items) {
          const owner = ownerGateway(o);
          if (owner && !this.#desired?.has(owner)) this.#dirty.add(owner);
        }
      }
    } catch (err) {
      this.#stats.failures++;
      this.#log.warn(
        { event: 'provision.scan-failed', err: describe(err) },
        `looking for objects of deleted Gateways failed (${describe(err)}); trying again at the next resync`,
      );
    }
  }

  #retry(key: string, err: unknown): void {
    const attempt = (this.#retries.get(key)?.attempt ?? 0) + 1;
    const delay = backoffDelay(attempt, this.#backoff);
    this.#log.warn(
      { event: 'provision.failed', gateway: key, err: describe(err), attempt, retryInMs: delay },
      `provisioning Gateway ${key} failed (${describe(err)}); retrying in ${delay} ms`,
    );
    const entry = { attempt, timer: undefined as NodeJS.Timeout | undefined };
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#dirty.add(key);
      this.#kick();
    }, delay);
    this.#retries.set(key, entry);
  }

  async #reconcile(key: string): Promise<void> {
    const desired = this.#desired?.get(key);
    if (!desired) return this.#removeAll(key);
    for (const k of OWNED) await this.#ensure(k, desired, desired[k.part]);
  }

  /** The object, from the cache when it has it, else from the API; undefined when there is none. */
  async #read(k: KindRef, namespace: string, name: string): Promise<KubeObject | undefined> {
    const cached =
      k.cached && k.kind !== 'ServiceAccount' ? this.#cache?.getObject(k.kind, namespace, name) : undefined;
    if (cached) return cached;
    try {
      return await this.#client.get(k, k.version, namespace, name);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async #ensure(k: KindRef, d: GatewayObjects, desired: KubeObject): Promise<void> {
    const name = String(desired.metadata?.name);
    let current = await this.#read(k, d.namespace, name);
    if (!current) {
      try {
        await this.#client.create(k, k.version, d.namespace, desired);
        this.#stats.creates++;
        this.#log.info(
          { event: 'provision.created', gateway: d.key, kind: k.kind, name },
          `${k.kind} ${d.namespace}/${name} created for Gateway ${d.key}`,
        );
        return;
      } catch (e) {
        if (!isConflict(e)) throw e; // 409 AlreadyExists: made meanwhile (or the cache had not seen it)
        current = await this.#read({ ...k, cached: false }, d.namespace, name);
        if (!current) throw e;
      }
    }
    const objectKey = `${k.kind}/${d.namespace}/${name}`;
    if (!controlledBy(current, d.gateway)) {
      if (!this.#foreignLogged.has(objectKey)) {
        this.#foreignLogged.add(objectKey);
        this.#stats.foreign++;
        this.#log.warn(
          { event: 'provision.foreign', gateway: d.key, kind: k.kind, name },
          `${k.kind} ${d.namespace}/${name} exists and is not weft's: Gateway ${d.key} cannot use it (rename or delete it)`,
        );
      }
      return;
    }
    this.#foreignLogged.delete(objectKey);
    if (clusterIPChange(current, desired)) {
      // spec.clusterIP is immutable: a Service asked for another static address is made again.
      // A failed create (the old one not gone yet) is retried after a backoff like any other failure.
      await this.#delete(k, d.namespace, name, current);
      await this.#client.create(k, k.version, d.namespace, desired);
      this.#stats.creates++;
      this.#log.info(
        { event: 'provision.replaced', gateway: d.key, kind: k.kind, name },
        `${k.kind} ${d.namespace}/${name} made again: Gateway ${d.key} asks for cluster IP ${String(record(desired.spec).clusterIP)}`,
      );
      return;
    }
    const patch = driftPatch(k.kind, current, desired);
    if (!patch) return;
    await this.#client.patch(k, k.version, d.namespace, name, patch, 'merge');
    this.#stats.patches++;
    this.#log.info(
      { event: 'provision.updated', gateway: d.key, kind: k.kind, name },
      `${k.kind} ${d.namespace}/${name} updated to what Gateway ${d.key} needs`,
    );
  }

  /** Deletes the objects weft made for a Gateway it no longer provisions (last made, first deleted). */
  async #removeAll(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const gateway = key.slice(slash + 1);
    const name = gatewayServiceName(gateway);
    for (const k of [...OWNED].reverse()) {
      const current = await this.#read(k, namespace, name);
      if (!current || !controlledBy(current, gateway) || ownerGateway(current) === undefined) continue;
      if (await this.#delete(k, namespace, name, current))
        this.#log.info(
          { event: 'provision.deleted', gateway: key, kind: k.kind, name },
          `${k.kind} ${namespace}/${name} deleted: Gateway ${key} is gone or no longer weft's`,
        );
    }
  }

  /** Deletes `current` (false when it was gone or replaced already). */
  async #delete(k: KindRef, namespace: string, name: string, current: KubeObject): Promise<boolean> {
    try {
      // The uid precondition: never delete a same-named object made after this read.
      await this.#client.request('DELETE', resourcePath(k, k.version, namespace, name), {
        body: { preconditions: { uid: meta(current).uid } },
      });
      this.#stats.deletes++;
      return true;
    } catch (e) {
      if (!isNotFound(e) && !isConflict(e)) throw e;
      return false;
    }
  }
}

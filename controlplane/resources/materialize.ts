// What a running cluster adds to applied manifests, computed instead of observed, so a directory
// of Deployments, Services and Gateways behaves like a cluster for `weft translate` and
// `weft local`: Pods for Deployments, Pod IPs, Service clusterIPs, EndpointSlices, and the
// LoadBalancer Service weft provisions for each of its Gateways. Deterministic: no clock, no
// randomness; addresses are hashed from object keys, so adding one object rarely moves others.

import { createHash } from 'node:crypto';
import { AddressPoolError } from './errors.ts';
import { isDns1123Label, isDns1035Label, isLabelValue } from './parse.ts';
import { resourceKey } from './snapshot.ts';
import type {
  Container,
  Deployment,
  EndpointSlice,
  Gateway,
  GatewayClass,
  ObjectMeta,
  Pod,
  Resource,
  Service,
  ServicePort,
} from './types.ts';

export const WEFT_CONTROLLER_NAME = 'weft.dev/gateway-controller';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const ENDPOINTSLICE_MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const ENDPOINTSLICE_MANAGER = 'weft-local';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const GATEWAY_CLASS_NAME_LABEL = 'gateway.networking.k8s.io/gateway-class-name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

export interface MaterializeOptions {
  /** Gateways whose GatewayClass has this controllerName get a provisioned Service. */
  controllerName?: string;
  /** IPv4 CIDR Pod IPs are taken from. */
  podCidr?: string;
  /** IPv4 CIDR Service clusterIPs are taken from (the Gateway Services' too). */
  serviceCidr?: string;
  /** IPv4 CIDR the Gateway Services' load-balancer addresses are taken from. */
  gatewayCidr?: string;
}

export const MATERIALIZE_DEFAULTS: Readonly<Required<MaterializeOptions>> = Object.freeze({
  controllerName: WEFT_CONTROLLER_NAME,
  podCidr: '127.20.0.0/16',
  serviceCidr: '127.10.0.0/16',
  gatewayCidr: '127.30.0.0/16',
});

// ---- IPv4 and pools ----

/** The address as an unsigned 32-bit integer, or undefined when `ip` is not dotted-quad IPv4. */
export function parseIPv4(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i].length > 1 && m[i][0] === '0')) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** 32-bit FNV-1a of the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * An IPv4 range addresses are handed out from: `allocate(key)` takes base + fnv1a32(key) mod size
 * and probes linearly past addresses already taken (and past the network and broadcast addresses
 * of prefixes up to /30). Call `reserve` for addresses already in use first, then `allocate` in
 * sorted key order (what `assignAddresses` does) for results that depend on the set of keys only.
 */
export class AddressPool {
  readonly cidr: string;
  readonly base: number;
  readonly prefix: number;
  readonly size: number;
  readonly #used = new Set<number>();

  constructor(cidr: string) {
    const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr);
    const base = m ? parseIPv4(m[1]) : undefined;
    const prefix = m ? Number(m[2]) : Number.NaN;
    if (base === undefined || !(prefix >= 0 && prefix <= 32))
      throw new AddressPoolError('WEFT_ERR_POOL_INVALID', `address pool ${JSON.stringify(cidr)} is not an IPv4 CIDR`);
    this.size = 2 ** (32 - prefix);
    if (base % this.size !== 0)
      throw new AddressPoolError(
        'WEFT_ERR_POOL_INVALID',
        `address pool ${cidr} has host bits set (did you mean ${formatIPv4(base - (base % this.size))}/${prefix}?)`,
      );
    this.cidr = cidr;
    this.base = base;
    this.prefix = prefix;
  }

  contains(ip: string): boolean {
    const n = parseIPv4(ip);
    return n !== undefined && n >= this.base && n < this.base + this.size;
  }

  /** Marks an address as taken; false (and nothing done) when it is outside the pool. */
  reserve(ip: string): boolean {
    if (!this.contains(ip)) return false;
    this.#used.add(parseIPv4(ip)! - this.base);
    return true;
  }

  #usable(offset: number): boolean {
    if (this.#used.has(offset)) return false;
    return this.prefix > 30 || (offset !== 0 && offset !== this.size - 1);
  }

  allocate(key: string): string {
    let offset = fnv1a32(key) % this.size;
    for (let tries = 0; tries < this.size; tries++) {
      if (this.#usable(offset)) {
        this.#used.add(offset);
        return formatIPv4(this.base + offset);
      }
      offset = (offset + 1) % this.size;
    }
    throw new AddressPoolError('WEFT_ERR_POOL_EXHAUSTED', `address pool ${this.cidr} has no free address for ${key}`);
  }
}

/** Allocates one address per distinct key, keys in sorted order (so the result depends on the key set only). */
export function assignAddresses(pool: AddressPool, keys: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of [...new Set(keys)].sort(compare)) out.set(key, pool.allocate(key));
  return out;
}

// ---- names ----

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** JSON with object keys sorted, so equal objects hash equally whatever their key order. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => compare(a, b));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function suffix5(seed: string): string {
  const bytes = sha256(seed);
  let out = '';
  for (let i = 0; i < 5; i++) out += SUFFIX_ALPHABET[bytes[i] % SUFFIX_ALPHABET.length];
  return out;
}

/** A UUID-shaped uid derived from `seed` (objects a cluster would give a random uid). */
function uidFor(seed: string): string {
  const h = sha256(seed).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function hash8(s: string): string {
  return fnv1a32(s).toString(16).padStart(8, '0');
}

/**
 * Name of the Service weft provisions for a Gateway: `<gateway>-weft`. Gateway names are DNS
 * subdomains (up to 253 characters, dots allowed) but Service names are DNS-1035 labels, so
 * other names are shortened deterministically to `<prefix>-<8 hex of the name>-weft`.
 */
export function gatewayServiceName(gatewayName: string): string {
  const plain = `${gatewayName}-weft`;
  if (isDns1035Label(plain)) return plain;
  let prefix = gatewayName.replace(/[^a-z0-9-]/g, '-');
  if (!/^[a-z]/.test(prefix)) prefix = `g${prefix}`;
  prefix = prefix.slice(0, 63 - '-weft'.length - 9).replace(/-+$/, '');
  return `${prefix}-${hash8(gatewayName)}-weft`;
}

/** A label value naming `name`: the name itself, or (over 63 characters) a prefix and 8 hex of it. */
export function labelValueFor(name: string): string {
  if (isLabelValue(name)) return name;
  return `${name.slice(0, 54).replace(/[^A-Za-z0-9]+$/, '')}-${hash8(name)}`;
}

// ---- the materializer ----

function ns(r: { metadata: ObjectMeta }): string {
  return r.metadata.namespace ?? 'default';
}

function typedKey(r: Resource): string {
  return `${r.kind}\u0000${resourceKey(r)}`;
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}

function isReady(pod: Pod): boolean {
  return pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
}

function runningStatus(ip: string): NonNullable<Pod['status']> {
  return {
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True' })),
  };
}

function podsFor(d: Deployment): Pod[] {
  const namespace = ns(d);
  const template = d.spec.template;
  const templateHash = sha256(`${namespace}/${d.metadata.name}\n${stableJson(template)}`)
    .toString('hex')
    .slice(0, 10);
  const replicaSet = `${d.metadata.name}-${templateHash}`;
  const pods: Pod[] = [];
  const names = new Set<string>();
  for (let i = 0; i < (d.spec.replicas ?? 1); i++) {
    let name = `${replicaSet}-${suffix5(`${templateHash}/${i}`)}`;
    for (let retry = 1; names.has(name); retry++) name = `${replicaSet}-${suffix5(`${templateHash}/${i}/${retry}`)}`;
    names.add(name);
    const spec = structuredClone(template.spec);
    spec.serviceAccountName ??= 'default';
    const metadata: ObjectMeta = {
      name,
      namespace,
      uid: uidFor(`Pod/${namespace}/${name}`),
      labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH_LABEL]: templateHash },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: replicaSet,
          uid: uidFor(`ReplicaSet/${namespace}/${replicaSet}`),
          controller: true,
        },
      ],
    };
    if (template.metadata?.annotations) metadata.annotations = { ...template.metadata.annotations };
    pods.push({ apiVersion: 'v1', kind: 'Pod', metadata, spec });
  }
  return pods;
}

/** kube's FindPort: the named container port (protocol must agree) of a regular or sidecar container. */
function findNamedPort(pod: Pod, name: string, protocol: string): number | undefined {
  const containers: Container[] = [
    ...pod.spec.containers,
    ...(pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
  ];
  for (const c of containers)
    for (const p of c.ports ?? []) if (p.name === name && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
  return undefined;
}

function resolveTargetPort(sp: ServicePort, pod: Pod): number | undefined {
  const target = sp.targetPort ?? sp.port;
  return typeof target === 'number' ? target : findNamedPort(pod, target, sp.protocol ?? 'TCP');
}

function endpointSlicesFor(svc: Service, pods: readonly Pod[]): EndpointSlice[] {
  const namespace = ns(svc);
  const svcPorts = svc.spec.ports ?? [];
  // One slice per (address family, resolution of the Service's target ports), as kube's controller does.
  const groups = new Map<string, { family: 'IPv4' | 'IPv6'; resolved: (number | undefined)[]; pods: Pod[] }>();
  for (const pod of pods) {
    const ip = pod.status?.podIP;
    if (!ip) continue;
    const family = ip.includes(':') ? 'IPv6' : 'IPv4';
    const resolved = svcPorts.map((sp) => resolveTargetPort(sp, pod));
    const sig = `${family}|${resolved.map((p) => p ?? '-').join(',')}`;
    let g = groups.get(sig);
    if (!g) {
      g = { family, resolved, pods: [] };
      groups.set(sig, g);
    }
    g.pods.push(pod);
  }
  if (groups.size === 0) groups.set('', { family: 'IPv4', resolved: [], pods: [] }); // kube's placeholder slice
  const labels = { [SERVICE_NAME_LABEL]: svc.metadata.name, [ENDPOINTSLICE_MANAGED_BY_LABEL]: ENDPOINTSLICE_MANAGER };
  const owner = { apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, controller: true } as NonNullable<
    ObjectMeta['ownerReferences']
  >[number];
  if (svc.metadata.uid) owner.uid = svc.metadata.uid;
  const slices: EndpointSlice[] = [];
  const names = new Set<string>();
  for (const [sig, g] of groups) {
    let name = `${svc.metadata.name}-${suffix5(`${namespace}/${svc.metadata.name}|${sig}`)}`;
    for (let retry = 1; names.has(name); retry++)
      name = `${svc.metadata.name}-${suffix5(`${namespace}/${svc.metadata.name}|${sig}|${retry}`)}`;
    names.add(name);
    const ports: NonNullable<EndpointSlice['ports']> = [];
    svcPorts.forEach((sp, i) => {
      const port = g.resolved[i];
      if (port === undefined) return; // kube leaves out a port the pod cannot resolve
      const p: NonNullable<EndpointSlice['ports']>[number] = {
        name: sp.name ?? '',
        port,
        protocol: sp.protocol ?? 'TCP',
      };
      if (sp.appProtocol !== undefined) p.appProtocol = sp.appProtocol;
      ports.push(p);
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace, labels: { ...labels }, ownerReferences: [{ ...owner }] },
      addressType: g.family,
      endpoints: g.pods.map((pod) => {
        const ready = isReady(pod);
        const targetRef: { kind: string; namespace: string; name: string; uid?: string } = {
          kind: 'Pod',
          namespace: ns(pod),
          name: pod.metadata.name,
        };
        if (pod.metadata.uid) targetRef.uid = pod.metadata.uid;
        return {
          addresses: [pod.status!.podIP!],
          conditions: { ready, serving: ready, terminating: false },
          targetRef,
        };
      }),
      ports,
    });
  }
  return slices;
}

/** The ports of a Gateway's Service: one per distinct listener port, named after its first listener. */
export function gatewayServicePorts(gw: Gateway): ServicePort[] {
  const ports: ServicePort[] = [];
  const names = new Set<string>();
  for (const l of gw.spec.listeners) {
    if (ports.some((p) => p.port === l.port)) continue;
    const name = isDns1123Label(l.name) && !names.has(l.name) ? l.name : `port-${l.port}`;
    names.add(name);
    ports.push({ name, protocol: l.protocol === 'UDP' ? 'UDP' : 'TCP', port: l.port, targetPort: l.port });
  }
  return ports;
}

function gatewayService(gw: Gateway, cls: GatewayClass, ingressIP: string): Service {
  const ports = gatewayServicePorts(gw);
  const owner: NonNullable<ObjectMeta['ownerReferences']>[number] = {
    apiVersion: gw.apiVersion,
    kind: 'Gateway',
    name: gw.metadata.name,
    controller: true,
  };
  if (gw.metadata.uid) owner.uid = gw.metadata.uid;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: gatewayServiceName(gw.metadata.name),
      namespace: ns(gw),
      labels: {
        [GATEWAY_NAME_LABEL]: labelValueFor(gw.metadata.name),
        [GATEWAY_CLASS_NAME_LABEL]: labelValueFor(cls.metadata.name),
        [MANAGED_BY_LABEL]: 'weft',
      },
      ownerReferences: [owner],
    },
    spec: { type: 'LoadBalancer', ports },
    status: { loadBalancer: { ingress: [{ ip: ingressIP }] } },
  };
}

/**
 * Returns `resources` (later duplicates of a kind+key replacing earlier ones, as in a snapshot)
 * completed the way a cluster would complete them, followed by the objects a cluster would create.
 * Input objects are never mutated; the ones that change are copies. See README.md for the rules.
 * Throws AddressPoolError when a pool is invalid or full.
 */
export function materialize(resources: readonly Resource[], opts: MaterializeOptions = {}): Resource[] {
  const o = { ...MATERIALIZE_DEFAULTS, ...opts };
  const podPool = new AddressPool(o.podCidr);
  const servicePool = new AddressPool(o.serviceCidr);
  const gatewayPool = new AddressPool(o.gatewayCidr);

  const byKey = new Map<string, Resource>();
  for (const r of resources) {
    const k = typedKey(r);
    byKey.delete(k); // a replaced object takes the later position
    byKey.set(k, r);
  }
  const input = [...byKey.values()];
  const ofKind = <K extends Resource['kind']>(kind: K) =>
    input.filter((r): r is Extract<Resource, { kind: K }> => r.kind === kind);

  // Pods: the user's, then one per Deployment replica (a user Pod of the same name wins).
  const generatedPods: Pod[] = [];
  for (const d of ofKind('Deployment').sort((a, b) => compare(resourceKey(a), resourceKey(b))))
    for (const pod of podsFor(d)) if (!byKey.has(typedKey(pod))) generatedPods.push(pod);

  const userPods = ofKind('Pod');
  for (const p of userPods)
    for (const ip of [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)]) if (ip) podPool.reserve(ip);
  const needIP = [...userPods.filter((p) => !p.status?.podIP), ...generatedPods];
  const podIPs = assignAddresses(
    podPool,
    needIP.map((p) => resourceKey(p)),
  );
  for (const p of userPods) {
    if (p.status?.podIP) continue;
    const ip = podIPs.get(resourceKey(p))!;
    const copy = structuredClone(p);
    // A hand-written Pod has no status: give it what the kubelet would report once it runs.
    copy.status =
      copy.status?.phase || copy.status?.conditions
        ? { ...copy.status, podIP: ip, podIPs: [{ ip }] }
        : runningStatus(ip);
    byKey.set(typedKey(p), copy);
  }
  for (const p of generatedPods) p.status = runningStatus(podIPs.get(resourceKey(p))!);

  // Gateway Services for the Gateways of our GatewayClass(es).
  const classes = new Map(ofKind('GatewayClass').map((c) => [c.metadata.name, c]));
  const generatedServices: Service[] = [];
  const userServices = ofKind('Service');
  for (const s of userServices)
    for (const ing of s.status?.loadBalancer?.ingress ?? []) if (ing.ip) gatewayPool.reserve(ing.ip);
  const ours = ofKind('Gateway')
    .filter((gw) => classes.get(gw.spec.gatewayClassName)?.spec.controllerName === o.controllerName)
    .filter((gw) => !byKey.has(`Service\u0000${ns(gw)}/${gatewayServiceName(gw.metadata.name)}`));
  const gatewayIPs = assignAddresses(
    gatewayPool,
    ours.map((gw) => resourceKey(gw)),
  );
  for (const gw of ours)
    generatedServices.push(
      gatewayService(gw, classes.get(gw.spec.gatewayClassName)!, gatewayIPs.get(resourceKey(gw))!),
    );

  // clusterIPs.
  const wantsIP = (s: Service) => s.spec.type !== 'ExternalName' && !s.spec.clusterIP && !s.spec.clusterIPs?.[0];
  for (const s of userServices)
    for (const ip of [s.spec.clusterIP, ...(s.spec.clusterIPs ?? [])]) if (ip && ip !== 'None') servicePool.reserve(ip);
  const serviceIPs = assignAddresses(
    servicePool,
    [...userServices.filter(wantsIP), ...generatedServices].map((s) => resourceKey(s)),
  );
  const services: Service[] = [];
  for (const s of userServices) {
    let svc = s;
    if (wantsIP(s)) {
      svc = structuredClone(s);
      const ip = serviceIPs.get(resourceKey(s))!;
      svc.spec.clusterIP = ip;
      svc.spec.clusterIPs = [ip];
      byKey.set(typedKey(s), svc);
    } else if (!s.spec.clusterIP && s.spec.clusterIPs?.[0]) {
      svc = structuredClone(s);
      svc.spec.clusterIP = s.spec.clusterIPs[0];
      byKey.set(typedKey(s), svc);
    }
    services.push(svc);
  }
  for (const s of generatedServices) {
    const ip = serviceIPs.get(resourceKey(s))!;
    s.spec.clusterIP = ip;
    s.spec.clusterIPs = [ip];
  }

  // EndpointSlices for selector Services nobody wrote slices for.
  const allPods = [...[...byKey.values()].filter((r): r is Pod => r.kind === 'Pod'), ...generatedPods]
    .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
    .sort((a, b) => compare(resourceKey(a), resourceKey(b)));
  const covered = new Set(
    ofKind('EndpointSlice')
      .filter((es) => es.metadata.labels?.[SERVICE_NAME_LABEL])
      .map((es) => `${ns(es)}/${es.metadata.labels![SERVICE_NAME_LABEL]}`),
  );
  const generatedSlices: EndpointSlice[] = [];
  for (const svc of services.sort((a, b) => compare(resourceKey(a), resourceKey(b)))) {
    const selector = svc.spec.selector;
    if (svc.spec.type === 'ExternalName' || !selector || Object.keys(selector).length === 0) continue;
    if (covered.has(resourceKey(svc))) continue;
    const selected = allPods.filter((p) => ns(p) === ns(svc) && selects(selector, p.metadata.labels));
    for (const es of endpointSlicesFor(svc, selected)) if (!byKey.has(typedKey(es))) generatedSlices.push(es);
  }

  const byResourceKey = (a: Resource, b: Resource) => compare(resourceKey(a), resourceKey(b));
  return [
    ...byKey.values(),
    ...generatedPods.sort(byResourceKey),
    ...generatedServices.sort(byResourceKey),
    ...generatedSlices.sort(byResourceKey),
  ];
}

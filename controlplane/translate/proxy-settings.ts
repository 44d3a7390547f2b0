// weft's parameters kind, ProxySettings (group weft.dev): how a Gateway's edge proxy is run. A GatewayClass
// `parametersRef` gives the class's defaults, a Gateway `spec.infrastructure.parametersRef` overrides them field by
// field (the Gateway API leaves the merge to the implementation and recommends exactly this). Pure: the translator
// turns a problem into `Accepted=False, reason InvalidParameters`; the provisioner reads the merged values.
import { isQualifiedName } from '../resources/parse.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import {
  type Gateway,
  type GatewayClass,
  type ProxySettings,
  type ResourceQuantities,
  WEFT_GROUP,
} from '../resources/types.ts';

export const PROXY_SETTINGS_KIND = 'ProxySettings';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

/** The merged settings of one Gateway; what no ProxySettings sets is left out (the provisioner's defaults apply). */
export interface EffectiveProxySettings {
  replicas?: number;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  serviceType?: ServiceType;
  serviceAnnotations: Record<string, string>;
  /** `namespace/name` of the ProxySettings used, class first. */
  sources: string[];
}

export type ParametersResult = { ok: true; settings: EffectiveProxySettings } | { ok: false; message: string };

// resource.Quantity's serialization: a signed decimal, then a binary suffix, a decimal suffix or an exponent.
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
const MULTIPLIERS: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a Kubernetes quantity (`100m` → 0.1, `1Gi` → 1073741824), or undefined when it is not one. */
export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === 'number') return Number.isFinite(q) ? q : undefined;
  const m = QUANTITY.exec(q);
  if (!m) return undefined;
  const suffix = m[2] ?? '';
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : MULTIPLIERS[suffix];
  return Number(m[1]) * scale;
}

// The resources a container may request that make sense for a proxy (extended resources need requests = limits and
// a device; not a proxy's business).
const RESOURCE_NAME = /^(cpu|memory|ephemeral-storage|hugepages-.+)$/;

/** What is wrong with one ProxySettings' values (empty when nothing). */
export function proxySettingsProblems(ps: ProxySettings): string[] {
  const problems: string[] = [];
  const { resources, service } = ps.spec;
  for (const part of ['requests', 'limits'] as const) {
    for (const [name, q] of Object.entries(resources?.[part] ?? {})) {
      const value = parseQuantity(q);
      if (!RESOURCE_NAME.test(name))
        problems.push(`resources.${part}: ${name} is not cpu, memory, ephemeral-storage or hugepages-<size>`);
      else if (value === undefined) problems.push(`resources.${part}.${name}: ${q} is not a quantity`);
      else if (value < 0) problems.push(`resources.${part}.${name}: ${q} is negative`);
    }
  }
  for (const [name, limit] of Object.entries(resources?.limits ?? {})) {
    const request = resources?.requests?.[name];
    if (request === undefined) continue;
    const r = parseQuantity(request);
    const l = parseQuantity(limit);
    if (r !== undefined && l !== undefined && r > l)
      problems.push(`resources: the ${name} request ${request} is more than its limit ${limit}`);
  }
  for (const key of Object.keys(service?.annotations ?? {}))
    if (!isQualifiedName(key))
      problems.push(`service.annotations: ${JSON.stringify(key)} is not a valid annotation key`);
  return problems;
}

const asStrings = (q: ResourceQuantities | undefined): Record<string, string> | undefined =>
  q === undefined ? undefined : Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)]));

/** `over`'s fields replace `base`'s; requests, limits and annotations merge per key. */
function merge(base: EffectiveProxySettings, over: ProxySettings, source: string): EffectiveProxySettings {
  const s = over.spec;
  const out: EffectiveProxySettings = {
    ...base,
    serviceAnnotations: { ...base.serviceAnnotations, ...s.service?.annotations },
    sources: [...base.sources, source],
  };
  if (s.replicas !== undefined) out.replicas = s.replicas;
  if (s.service?.type !== undefined) out.serviceType = s.service.type;
  const requests = { ...base.resources?.requests, ...asStrings(s.resources?.requests) };
  const limits = { ...base.resources?.limits, ...asStrings(s.resources?.limits) };
  if (Object.keys(requests).length + Object.keys(limits).length > 0) {
    out.resources = {};
    if (Object.keys(requests).length > 0) out.resources.requests = requests;
    if (Object.keys(limits).length > 0) out.resources.limits = limits;
  }
  return out;
}

const EMPTY: EffectiveProxySettings = { serviceAnnotations: {}, sources: [] };

function resolve(
  snapshot: ResourceSnapshot,
  base: EffectiveProxySettings,
  ref: { group: string; kind: string; name: string },
  namespace: string,
  what: string,
): ParametersResult {
  if (ref.group !== WEFT_GROUP || ref.kind !== PROXY_SETTINGS_KIND)
    return {
      ok: false,
      message: `${what} ${ref.group || 'core'}/${ref.kind} ${ref.name} is not a parameters kind weft supports (${WEFT_GROUP}/${PROXY_SETTINGS_KIND})`,
    };
  const key = `${namespace}/${ref.name}`;
  const ps = snapshot.get('ProxySettings', key);
  if (!ps) return { ok: false, message: `${what}: ProxySettings ${key} not found` };
  const problems = proxySettingsProblems(ps);
  if (problems.length > 0) return { ok: false, message: `${what}: ProxySettings ${key}: ${problems.join('; ')}` };
  // A merged request above a merged limit (one from the class, one from the Gateway) is refused too.
  const merged = merge(base, ps, key);
  const combined = proxySettingsProblems({
    apiVersion: ps.apiVersion,
    kind: 'ProxySettings',
    metadata: ps.metadata,
    spec: { ...(merged.resources ? { resources: merged.resources } : {}) },
  });
  if (combined.length > 0)
    return { ok: false, message: `${what}: with the GatewayClass's ProxySettings, ${combined.join('; ')}` };
  return { ok: true, settings: merged };
}

/** The settings a GatewayClass's `parametersRef` gives (none: empty settings). */
export function classProxySettings(snapshot: ResourceSnapshot, gc: GatewayClass): ParametersResult {
  const ref = gc.spec.parametersRef;
  if (!ref) return { ok: true, settings: EMPTY };
  if (ref.group === WEFT_GROUP && ref.kind === PROXY_SETTINGS_KIND && !ref.namespace)
    return {
      ok: false,
      message: `parametersRef: ProxySettings is namespaced, so the reference to ${ref.name} needs a namespace`,
    };
  return resolve(snapshot, EMPTY, ref, ref.namespace ?? '', 'parametersRef');
}

/** The settings of one Gateway: its class's, overridden by its own `spec.infrastructure.parametersRef`. */
export function gatewayProxySettings(
  snapshot: ResourceSnapshot,
  gw: Gateway,
  gc: GatewayClass | undefined,
): ParametersResult {
  const base = gc ? classProxySettings(snapshot, gc) : { ok: true as const, settings: EMPTY };
  if (!base.ok) return base;
  const ref = gw.spec.infrastructure?.parametersRef;
  if (!ref) return base;
  return resolve(snapshot, base.settings, ref, gw.metadata.namespace ?? 'default', 'infrastructure.parametersRef');
}

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { gatewayServiceName } from '../resources/materialize.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import {
  GATEWAY_GROUP,
  type Gateway,
  type GatewayClass,
  type LabelSelector,
  type Listener,
  type Secret,
} from '../resources/types.ts';
import { cond, joinMessages, Reason } from './conditions.ts';
import { SUPPORTED_FEATURES } from './features.ts';
import { intersectHostnames } from './hostnames.ts';
import { hostnameProblem } from './hostnames.ts';
import { classProxySettings, gatewayProxySettings } from './proxy-settings.ts';
import { referenceAllowed } from './reference-grant.ts';
import type { ConditionOut, GatewayClassStatusOut, ListenerStatusOut } from './types.ts';

/** Route kinds a listener of each protocol can carry. GRPCRoute is parsed but not yet routed, so not listed. */
const ROUTE_KINDS: Record<string, string[]> = { HTTP: ['HTTPRoute'], HTTPS: ['HTTPRoute'] };

export interface ListenerState {
  gateway: GatewayState;
  listener: Listener;
  /** `namespace/gateway/listener`. */
  key: string;
  hostname?: string;
  supportedKinds: string[];
  accepted: ConditionOut;
  resolvedRefs: ConditionOut;
  conflicted: ConditionOut;
  /** OverlappingTLSConfig, only when True (a negative-polarity condition is never set False). */
  overlappingTls?: ConditionOut;
  /** Secret keys (`namespace/name`) of the listener's certificates, resolved and valid. */
  certificates: { key: string; certChain: string; privateKey: string }[];
  /** Whether the listener gets data-plane configuration. */
  programmable: boolean;
  attachedRoutes: number;
}

export interface GatewayState {
  gateway: Gateway;
  key: string;
  generation: number;
  accepted: boolean;
  conditions: ConditionOut[];
  addresses: { type: string; value: string }[];
  listeners: ListenerState[];
}

export function gatewayClassStatus(
  gc: GatewayClass,
  snapshot: ResourceSnapshot,
): { status: GatewayClassStatusOut; accepted: boolean } {
  const gen = gc.metadata.generation ?? 1;
  // A parametersRef must name an existing, valid ProxySettings (weft's parameters kind).
  const params = classProxySettings(snapshot, gc);
  const accepted = params.ok
    ? cond('Accepted', true, Reason.Accepted, 'GatewayClass is accepted by weft', gen)
    : cond('Accepted', false, Reason.InvalidParameters, params.message, gen);
  return {
    accepted: accepted.status === 'True',
    status: {
      kind: 'GatewayClass',
      name: gc.metadata.name,
      generation: gen,
      status: {
        conditions: [
          accepted,
          cond('SupportedVersion', true, Reason.SupportedVersion, 'Gateway API v1 is supported', gen),
        ],
        supportedFeatures: SUPPORTED_FEATURES.map((name) => ({ name })),
      },
    },
  };
}

export interface GatewayOptions {
  usableAddresses?: string[];
  /** Where a static address counts as bound (TranslateOptions.gatewayAddresses). Default `pool`. */
  addressesFrom?: 'pool' | 'service';
}

/** Validates a Gateway and its listeners; route attachment fills in `attachedRoutes` afterwards. */
export function buildGateway(snapshot: ResourceSnapshot, gw: Gateway, opts: GatewayOptions): GatewayState {
  const ns = gw.metadata.namespace ?? 'default';
  const gen = gw.metadata.generation ?? 1;
  const state: GatewayState = {
    gateway: gw,
    key: `${ns}/${gw.metadata.name}`,
    generation: gen,
    accepted: true,
    conditions: [],
    addresses: [],
    listeners: [],
  };

  for (const l of gw.spec.listeners ?? []) state.listeners.push(buildListener(snapshot, state, l, gen));
  markConflicts(state.listeners, gen);
  markOverlappingTls(state.listeners, gen);

  // Gateway-level problems.
  let accepted: ConditionOut | undefined;
  // The Gateway's own parametersRef, merged over its (accepted) class's.
  if (gw.spec.infrastructure?.parametersRef) {
    const params = gatewayProxySettings(snapshot, gw, snapshot.get('GatewayClass', gw.spec.gatewayClassName));
    if (!params.ok) accepted = cond('Accepted', false, Reason.InvalidParameters, params.message, gen);
  }
  if (!accepted && gw.spec.tls?.backend !== undefined)
    accepted = cond(
      'Accepted',
      false,
      Reason.UnsupportedValue,
      'spec.tls.backend (client certificates to backends) is not supported by weft',
      gen,
    );

  // Static addresses: types weft understands are IPAddress; usability from the configured pool.
  const specAddresses = gw.spec.addresses ?? [];
  let programmedProblem: ConditionOut | undefined;
  if (!accepted) {
    for (const a of specAddresses) {
      const type = a.type ?? 'IPAddress';
      // An empty value asks for an address of that type (GatewaySpecAddress.value): not an unsupported address.
      if (type !== 'IPAddress' || (a.value && !isIP(a.value))) {
        accepted = cond(
          'Accepted',
          false,
          Reason.UnsupportedAddress,
          `address ${type} "${a.value}" is not supported: weft assigns IPAddress addresses only`,
          gen,
        );
        break;
      }
    }
  }
  if (!accepted && specAddresses.length > 0) {
    const fixed = specAddresses.filter((a) => a.value);
    const wanted = specAddresses.length - fixed.length;
    if (opts.addressesFrom === 'service') {
      const r = serviceBoundAddresses(snapshot, gw, opts.usableAddresses);
      state.addresses = r.bound;
      programmedProblem = r.problem && cond('Programmed', false, r.problem.reason, r.problem.message, gen);
    } else {
      const unusable = fixed.filter((a) => !addressUsable(a.value, opts.usableAddresses));
      if (unusable.length > 0)
        programmedProblem = cond(
          'Programmed',
          false,
          Reason.AddressNotUsable,
          `address ${unusable.map((a) => a.value).join(', ')} cannot be assigned`,
          gen,
        );
      else state.addresses = fixed.map((a) => ({ type: a.type ?? 'IPAddress', value: a.value }));
    }
    if (!programmedProblem && wanted > 0) {
      // "When a value is unspecified, an implementation SHOULD automatically assign an address matching the
      // requested type if possible": each empty entry takes one of the provisioned Service's IP addresses.
      const spare = provisionedAddresses(snapshot, gw).filter(
        (p) => p.type === 'IPAddress' && !state.addresses.some((a) => a.value === p.value),
      );
      state.addresses.push(...spare.slice(0, wanted));
      if (spare.length < wanted)
        programmedProblem = cond(
          'Programmed',
          false,
          Reason.AddressNotAssigned,
          'no address assigned yet to the IPAddress entries without a value: the Gateway Service has no address',
          gen,
        );
    }
  } else if (!accepted) {
    state.addresses = provisionedAddresses(snapshot, gw);
    if (state.addresses.length === 0)
      programmedProblem = cond(
        'Programmed',
        false,
        Reason.AddressNotAssigned,
        'no address assigned yet: the Gateway Service has no address',
        gen,
      );
  }

  const validListeners = state.listeners.filter((l) => l.accepted.status === 'True');
  const allFine = state.listeners.every(
    (l) => l.accepted.status === 'True' && l.resolvedRefs.status === 'True' && l.conflicted.status === 'False',
  );
  if (!accepted) {
    if (state.listeners.length > 0 && validListeners.length === 0)
      accepted = cond('Accepted', false, Reason.ListenersNotValid, 'no listener is valid', gen);
    else if (!allFine) accepted = cond('Accepted', true, Reason.ListenersNotValid, 'some listeners are not valid', gen);
    else accepted = cond('Accepted', true, Reason.Accepted, 'Gateway is accepted', gen);
  }
  state.accepted = accepted.status === 'True';
  if (!state.accepted) for (const l of state.listeners) l.programmable = false;

  const programmed = !state.accepted
    ? cond('Programmed', false, Reason.Invalid, 'Gateway is not accepted', gen)
    : (programmedProblem ?? cond('Programmed', true, Reason.Programmed, 'Gateway is programmed', gen));
  // A pending or unusable address does not stop the proxies from being configured: listeners stay programmed.
  state.conditions = [accepted, programmed];
  return state;
}

function buildListener(snapshot: ResourceSnapshot, gw: GatewayState, l: Listener, gen: number): ListenerState {
  const ns = gw.gateway.metadata.namespace ?? 'default';
  const state: ListenerState = {
    gateway: gw,
    listener: l,
    key: `${gw.key}/${l.name}`,
    supportedKinds: [],
    accepted: cond('Accepted', true, Reason.Accepted, 'Listener is accepted', gen),
    resolvedRefs: cond('ResolvedRefs', true, Reason.ResolvedRefs, 'All references resolved', gen),
    conflicted: cond('Conflicted', false, Reason.NoConflicts, 'No conflicts', gen),
    certificates: [],
    programmable: true,
    attachedRoutes: 0,
  };
  if (l.hostname) state.hostname = l.hostname;
  const invalid =
    (l.hostname !== undefined ? hostnameProblem(l.hostname) : undefined) ??
    (Number.isInteger(l.port) && l.port >= 1 && l.port <= 65535 ? undefined : `port ${l.port} is not in 1..65535`);
  if (invalid) {
    state.accepted = cond('Accepted', false, Reason.UnsupportedValue, invalid, gen);
    state.programmable = false;
  }
  const kinds = ROUTE_KINDS[l.protocol];
  if (!kinds) {
    state.accepted = cond(
      'Accepted',
      false,
      Reason.UnsupportedProtocol,
      `protocol ${l.protocol} is not supported (HTTP, HTTPS)`,
      gen,
    );
    state.programmable = false;
    return state;
  }

  // allowedRoutes.kinds: the supported subset, and InvalidRouteKinds for the rest.
  if (l.allowedRoutes?.kinds && l.allowedRoutes.kinds.length > 0) {
    const bad: string[] = [];
    for (const k of l.allowedRoutes.kinds) {
      const group = k.group ?? GATEWAY_GROUP;
      if (group === GATEWAY_GROUP && kinds.includes(k.kind)) {
        if (!state.supportedKinds.includes(k.kind)) state.supportedKinds.push(k.kind);
      } else bad.push(`${group}/${k.kind}`);
    }
    if (bad.length > 0)
      state.resolvedRefs = cond(
        'ResolvedRefs',
        false,
        Reason.InvalidRouteKinds,
        `route kinds not supported on ${l.protocol}: ${bad.join(', ')}`,
        gen,
      );
  } else state.supportedKinds = [...kinds];

  if (l.protocol === 'HTTPS') {
    const tls = l.tls;
    if (
      gw.gateway.spec.tls?.frontend !== undefined ||
      (tls as { frontendValidation?: unknown } | undefined)?.frontendValidation
    ) {
      state.accepted = cond(
        'Accepted',
        false,
        Reason.UnsupportedValue,
        'client certificate validation (frontend TLS) is not supported by weft',
        gen,
      );
      state.programmable = false;
    }
    if (!tls || (tls.mode ?? 'Terminate') !== 'Terminate') {
      state.accepted = cond('Accepted', false, Reason.UnsupportedValue, 'HTTPS listeners need tls.mode Terminate', gen);
      state.programmable = false;
    } else if (tls.options && Object.keys(tls.options).length > 0) {
      state.accepted = cond(
        'Accepted',
        false,
        Reason.UnsupportedValue,
        `tls.options ${Object.keys(tls.options).join(', ')} are not supported`,
        gen,
      );
      state.programmable = false;
    }
    const refs = tls?.certificateRefs ?? [];
    const problems: { reason: string; message: string }[] = [];
    if (refs.length === 0)
      problems.push({ reason: Reason.InvalidCertificateRef, message: 'HTTPS listener has no certificateRefs' });
    for (const ref of refs) {
      const group = ref.group ?? '';
      const kind = ref.kind ?? 'Secret';
      const sns = ref.namespace ?? ns;
      if (group !== '' || kind !== 'Secret') {
        problems.push({
          reason: Reason.InvalidCertificateRef,
          message: `certificateRef ${group || 'core'}/${kind} ${ref.name} is not a Secret`,
        });
        continue;
      }
      if (
        !referenceAllowed(
          snapshot,
          { group: GATEWAY_GROUP, kind: 'Gateway', namespace: ns },
          { group: '', kind: 'Secret', namespace: sns, name: ref.name },
        )
      ) {
        problems.push({
          reason: Reason.RefNotPermitted,
          message: `certificateRef to Secret ${sns}/${ref.name} is not permitted by any ReferenceGrant`,
        });
        continue;
      }
      const secret = snapshot.get('Secret', `${sns}/${ref.name}`);
      if (!secret) {
        problems.push({ reason: Reason.InvalidCertificateRef, message: `Secret ${sns}/${ref.name} not found` });
        continue;
      }
      const pair = tlsPair(secret);
      if (typeof pair === 'string') {
        problems.push({ reason: Reason.InvalidCertificateRef, message: `Secret ${sns}/${ref.name}: ${pair}` });
        continue;
      }
      state.certificates.push({ key: `${sns}/${ref.name}`, ...pair });
    }
    if (problems.length > 0) {
      state.resolvedRefs = cond(
        'ResolvedRefs',
        false,
        problems[0].reason,
        joinMessages(problems.map((p) => p.message)),
        gen,
      );
      state.programmable = false;
    }
  } else if (l.tls) {
    state.accepted = cond('Accepted', false, Reason.UnsupportedValue, 'tls is only valid on HTTPS listeners', gen);
    state.programmable = false;
  }
  if (state.resolvedRefs.status === 'False') state.programmable = false;
  return state;
}

/** Reads and checks a kubernetes.io/tls Secret: PEM certificate chain and private key that parse. */
function tlsPair(secret: Secret): { certChain: string; privateKey: string } | string {
  const read = (k: string): string | undefined => {
    if (secret.stringData?.[k] !== undefined) return secret.stringData[k];
    const b64 = secret.data?.[k];
    return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
  };
  const certChain = read('tls.crt');
  const privateKey = read('tls.key');
  if (!certChain || !privateKey) return 'needs tls.crt and tls.key';
  try {
    new X509Certificate(certChain);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  try {
    createPrivateKey(privateKey);
  } catch {
    return 'tls.key is not a PEM private key';
  }
  return { certChain, privateKey };
}

/**
 * OverlappingTLSConfig (GEP-3567): HTTPS listeners on one port whose hostnames overlap — a name one
 * serves, the other serves too; a listener without hostname serves every name — so a client that
 * coalesces connections may reuse one's TLS session for the other's hosts. "Controllers MUST detect
 * the presence of overlapping hostnames … This condition MUST be set on all Listeners with
 * overlapping TLS config."
 */
function markOverlappingTls(listeners: ListenerState[], gen: number): void {
  const https = listeners.filter((l) => l.listener.protocol === 'HTTPS');
  for (const l of https) {
    const others = https.filter(
      (o) =>
        o !== l &&
        o.listener.port === l.listener.port &&
        (l.hostname === undefined ||
          o.hostname === undefined ||
          intersectHostnames(l.hostname, o.hostname) !== undefined),
    );
    if (others.length > 0)
      l.overlappingTls = cond(
        'OverlappingTLSConfig',
        true,
        Reason.OverlappingHostnames,
        `hostname "${l.hostname ?? '(any)'}" overlaps listener${others.length > 1 ? 's' : ''} ${others
          .map((o) => `${o.listener.name} ("${o.hostname ?? '(any)'}")`)
          .join(', ')} on port ${l.listener.port}`,
        gen,
      );
  }
}

/**
 * Listener conflicts (ListenerConditionConflicted): on one port, HTTP and HTTPS conflict by
 * protocol; two listeners of one protocol with the same hostname (or both without) conflict by
 * hostname. Conflicted listeners are not programmed.
 */
function markConflicts(listeners: ListenerState[], gen: number): void {
  const byPort = new Map<number, ListenerState[]>();
  for (const l of listeners) {
    if (!ROUTE_KINDS[l.listener.protocol]) continue;
    const list = byPort.get(l.listener.port) ?? [];
    list.push(l);
    byPort.set(l.listener.port, list);
  }
  for (const list of byPort.values()) {
    const protocols = new Set(list.map((l) => l.listener.protocol));
    if (protocols.size > 1) {
      for (const l of list) {
        l.conflicted = cond(
          'Conflicted',
          true,
          Reason.ProtocolConflict,
          `port ${l.listener.port} is used with protocols ${[...protocols].join(', ')}`,
          gen,
        );
        l.programmable = false;
      }
      continue;
    }
    const byHost = new Map<string, ListenerState[]>();
    for (const l of list) {
      const h = l.hostname ?? '';
      byHost.set(h, [...(byHost.get(h) ?? []), l]);
    }
    for (const [h, same] of byHost) {
      if (same.length < 2) continue;
      for (const l of same) {
        l.conflicted = cond(
          'Conflicted',
          true,
          Reason.HostnameConflict,
          `hostname "${h || '(any)'}" is used by ${same.length} listeners on port ${l.listener.port}`,
          gen,
        );
        l.programmable = false;
      }
    }
  }
}

/**
 * The address of the Service weft provisions for a Gateway (`gatewayServiceName`: `<gateway>-weft`,
 * hashed when too long), load balancer ingress first, else its ClusterIP.
 */
function provisionedAddresses(snapshot: ResourceSnapshot, gw: Gateway): { type: string; value: string }[] {
  const ns = gw.metadata.namespace ?? 'default';
  const svc = snapshot.get('Service', `${ns}/${gatewayServiceName(gw.metadata.name)}`);
  if (!svc) return [];
  const out: { type: string; value: string }[] = [];
  for (const ing of svc.status?.loadBalancer?.ingress ?? []) {
    if (ing.ip) out.push({ type: 'IPAddress', value: ing.ip });
    else if (ing.hostname) out.push({ type: 'Hostname', value: ing.hostname });
  }
  if (out.length === 0 && svc.spec.clusterIP && svc.spec.clusterIP !== 'None')
    out.push({ type: 'IPAddress', value: svc.spec.clusterIP });
  return out;
}

/** What a provisioned Gateway Service requests for the Gateway's static addresses (serviceAddressRequest). */
export interface ServiceAddressRequest {
  /** LoadBalancer and NodePort Services: `spec.externalIPs`. */
  externalIPs: string[];
  /** ClusterIP Services: `spec.clusterIP` (one address; a Service has one cluster IP per family). */
  clusterIP?: string;
  /** Static addresses no Service of this type can carry, each with why. */
  unusable: { value: string; why: string }[];
}

/**
 * The Gateway's static IPAddress values as its provisioned Service requests them, as Envoy Gateway does: external
 * IPs of a LoadBalancer or NodePort Service, the cluster IP of a ClusterIP one. Addresses outside `pool` (when
 * given), and the second and later ones of a ClusterIP Service, can never be used. Entries without a value, and
 * types other than IPAddress, are not requests (the translator assigns or refuses those).
 */
export function serviceAddressRequest(gw: Gateway, serviceType: string, pool?: string[]): ServiceAddressRequest {
  const out: ServiceAddressRequest = { externalIPs: [], unusable: [] };
  for (const a of gw.spec.addresses ?? []) {
    if ((a.type ?? 'IPAddress') !== 'IPAddress' || !a.value || !isIP(a.value)) continue;
    if (!addressUsable(a.value, pool)) out.unusable.push({ value: a.value, why: 'not among the usable addresses' });
    else if (serviceType !== 'ClusterIP') out.externalIPs.push(a.value);
    else if (out.clusterIP === undefined) out.clusterIP = a.value;
    else out.unusable.push({ value: a.value, why: `a ClusterIP Service has one cluster IP (${out.clusterIP})` });
  }
  return out;
}

/**
 * In a cluster: the static addresses the Gateway's provisioned Service carries (an external IP, the cluster IP or a
 * load-balancer ingress IP), and why the rest are not bound: never usable (AddressNotUsable), or requested and not
 * there yet (AddressNotAssigned: no Service yet, the API server refused the request, or it is being applied).
 */
function serviceBoundAddresses(
  snapshot: ResourceSnapshot,
  gw: Gateway,
  pool: string[] | undefined,
): { bound: { type: string; value: string }[]; problem?: { reason: string; message: string } } {
  const ns = gw.metadata.namespace ?? 'default';
  const name = `${ns}/${gatewayServiceName(gw.metadata.name)}`;
  const svc = snapshot.get('Service', name);
  const type = svc?.spec.type ?? 'LoadBalancer';
  const req = serviceAddressRequest(gw, type, pool);
  const carried = new Set<string>([
    ...(svc?.spec.externalIPs ?? []),
    ...(svc?.spec.clusterIP ? [svc.spec.clusterIP] : []),
    ...(svc?.spec.clusterIPs ?? []),
    ...(svc?.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
  ]);
  const requested = [...req.externalIPs, ...(req.clusterIP ? [req.clusterIP] : [])];
  const bound = requested.filter((v) => carried.has(v)).map((value) => ({ type: 'IPAddress', value }));
  if (req.unusable.length > 0)
    return {
      bound,
      problem: {
        reason: Reason.AddressNotUsable,
        message: req.unusable.map((u) => `address ${u.value} cannot be used: ${u.why}`).join('; '),
      },
    };
  const missing = requested.filter((v) => !carried.has(v));
  if (missing.length === 0) return { bound };
  const where = type === 'ClusterIP' ? 'spec.clusterIP' : 'spec.externalIPs';
  return {
    bound,
    problem: {
      reason: Reason.AddressNotAssigned,
      message: svc
        ? `address ${missing.join(', ')} is requested in Service ${name} ${where} but not assigned yet`
        : `address ${missing.join(', ')} not assigned yet: Service ${name} does not exist yet`,
    },
  };
}

function addressUsable(value: string, pool: string[] | undefined): boolean {
  if (!pool) return true;
  return pool.some((entry) => (entry.includes('/') ? inCidr(value, entry) : entry === value));
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (isIP(ip) !== 4 || isIP(base) !== 4) return false;
  const toInt = (a: string) => a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (toInt(ip) & mask) === (toInt(base) & mask);
}

export function listenerStatus(l: ListenerState): ListenerStatusOut {
  const gen = l.gateway.generation;
  const why = !l.gateway.accepted
    ? 'the Gateway is not accepted'
    : [l.accepted, l.resolvedRefs, l.conflicted]
        .filter((c) => (c.type === 'Conflicted' ? c.status === 'True' : c.status === 'False'))
        .map((c) => `${c.type}: ${c.message}`)
        .join('; ');
  const programmed = l.programmable
    ? cond('Programmed', true, Reason.Programmed, 'Listener is programmed', gen)
    : cond('Programmed', false, Reason.Invalid, `Listener is not programmed: ${why}`, gen);
  return {
    name: l.listener.name,
    supportedKinds: l.supportedKinds.map((kind) => ({ group: GATEWAY_GROUP, kind })),
    attachedRoutes: l.attachedRoutes,
    conditions: [l.accepted, programmed, l.resolvedRefs, l.conflicted, ...(l.overlappingTls ? [l.overlappingTls] : [])],
  };
}

/** Whether a route in `routeNs` may attach to the listener by `allowedRoutes.namespaces`. */
export function namespaceAllowed(snapshot: ResourceSnapshot, l: ListenerState, routeNs: string): boolean {
  const gwNs = l.gateway.gateway.metadata.namespace ?? 'default';
  const from = l.listener.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from === 'Same') return routeNs === gwNs;
  if (from === 'Selector') {
    const sel = l.listener.allowedRoutes?.namespaces?.selector;
    if (!sel) return false;
    const labels = {
      'kubernetes.io/metadata.name': routeNs,
      ...(snapshot.get('Namespace', routeNs)?.metadata.labels ?? {}),
    };
    return selectorMatches(sel, labels);
  }
  return false;
}

export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(v)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(v)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

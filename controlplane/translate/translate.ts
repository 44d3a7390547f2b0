import {
  type Cluster,
  type Listener,
  PROXY_CONFIG_VERSION,
  type OutboundService,
  type ProxyConfig,
  type RouteTable,
  type TlsCertificate,
} from '../../sidecar/config/proxy-config.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import {
  GATEWAY_GROUP,
  type GRPCRoute,
  type HTTPRoute,
  type ParentReference,
  type Pod,
  type Service,
  type ServicePort,
} from '../resources/types.ts';
import { cond, Reason } from './conditions.ts';
import {
  buildGateway,
  type GatewayState,
  gatewayClassStatus,
  type ListenerState,
  listenerStatus,
  namespaceAllowed,
} from './gateway.ts';
import { effectiveHostnames, hostnameProblem } from './hostnames.ts';
import { type ClusterRef, type CompiledRoute, compileHttpRoute, resolveBackend } from './http-route.ts';
import {
  buildCluster,
  type ClusterContext,
  clusterIPs,
  isGatewayService,
  isMeshed,
  meshedPodsByIP,
  PLAINTEXT_ANNOTATION,
  podAppPorts,
  podIP,
  routesAsHttp,
  serviceClusterRef,
  serviceHostnames,
  spiffeId,
} from './mesh.ts';
import { buildRouteTable, type TableEntry } from './route-table.ts';
import {
  type ConditionOut,
  DEFAULT_CONTROLLER_NAME,
  type ProxyId,
  type RouteParentStatusOut,
  type StatusOut,
  type TranslateOptions,
  type TranslateResult,
} from './types.ts';

interface Ctx {
  snapshot: ResourceSnapshot;
  controllerName: string;
  trustDomain: string;
  clusterDomain: string;
  ports: { outbound: number; inbound: number; mesh: number; admin: number };
  opts: TranslateOptions;
  gateways: Map<string, GatewayState>;
  /** Gateways of weft's classes whose class is not accepted: routes to them are refused. */
  refusedGateways: Set<string>;
  /** Attached route entries per listener key. */
  listenerEntries: Map<string, TableEntry[]>;
  /** Accepted mesh bindings: `svcns/svc:port` → producer entries and consumer entries by consumer namespace. */
  meshBindings: Map<string, { producer: TableEntry[]; consumers: Map<string, TableEntry[]> }>;
  statuses: StatusOut[];
  compiled: Map<string, CompiledRoute>;
  meshedPods?: Map<string, Pod>;
}

/**
 * Gateway API resources in, per-proxy configuration and status out. Pure and deterministic: no
 * I/O, no clock, no randomness; the same snapshot and options give byte-identical output.
 */
export function translate(snapshot: ResourceSnapshot, options: TranslateOptions = {}): TranslateResult {
  const ctx: Ctx = {
    snapshot,
    controllerName: options.controllerName ?? DEFAULT_CONTROLLER_NAME,
    trustDomain: options.trustDomain ?? 'cluster.local',
    clusterDomain: options.clusterDomain ?? 'cluster.local',
    ports: {
      outbound: options.ports?.outbound ?? 15001,
      inbound: options.ports?.inbound ?? 15006,
      mesh: options.ports?.mesh ?? 15008,
      admin: options.ports?.admin ?? 15020,
    },
    opts: options,
    gateways: new Map(),
    refusedGateways: new Set(),
    listenerEntries: new Map(),
    meshBindings: new Map(),
    statuses: [],
    compiled: new Map(),
  };

  // GatewayClasses and Gateways.
  const acceptedClasses = new Set<string>();
  const ourClasses = new Set<string>();
  for (const gc of snapshot.list('GatewayClass')) {
    if (gc.spec.controllerName !== ctx.controllerName) continue;
    ourClasses.add(gc.metadata.name);
    const { status, accepted } = gatewayClassStatus(gc, snapshot);
    if (accepted) acceptedClasses.add(gc.metadata.name);
    ctx.statuses.push(status);
  }
  for (const gw of snapshot.list('Gateway')) {
    const key = `${gw.metadata.namespace}/${gw.metadata.name}`;
    if (!ourClasses.has(gw.spec.gatewayClassName)) continue;
    if (!acceptedClasses.has(gw.spec.gatewayClassName)) {
      ctx.refusedGateways.add(key);
      const gen = gw.metadata.generation ?? 1;
      ctx.statuses.push({
        kind: 'Gateway',
        namespace: gw.metadata.namespace ?? 'default',
        name: gw.metadata.name,
        generation: gen,
        status: {
          addresses: [],
          conditions: [
            cond('Accepted', false, Reason.Invalid, `GatewayClass ${gw.spec.gatewayClassName} is not accepted`, gen),
            cond('Programmed', false, Reason.Invalid, 'Gateway is not accepted', gen),
          ],
          listeners: [],
        },
      });
      continue;
    }
    const state = buildGateway(snapshot, gw, {
      usableAddresses: options.usableAddresses,
      addressesFrom: options.gatewayAddresses ?? 'pool',
    });
    ctx.gateways.set(key, state);
    for (const l of state.listeners) ctx.listenerEntries.set(l.key, []);
  }

  // Routes: attachment and status.
  for (const route of snapshot.list('HTTPRoute')) attachRoute(ctx, route);
  for (const route of snapshot.list('GRPCRoute')) attachRoute(ctx, route);

  for (const state of ctx.gateways.values()) {
    ctx.statuses.push({
      kind: 'Gateway',
      namespace: state.gateway.metadata.namespace ?? 'default',
      name: state.gateway.metadata.name,
      generation: state.generation,
      status: {
        addresses: state.addresses,
        conditions: state.conditions,
        listeners: state.listeners.map(listenerStatus),
      },
    });
  }

  const proxies = new Map<ProxyId, ProxyConfig>();
  for (const state of ctx.gateways.values()) {
    if (!state.accepted) continue;
    const config = edgeConfig(ctx, state);
    proxies.set(config.proxy.id, config);
  }
  for (const [id, config] of sidecarConfigs(ctx)) proxies.set(id, config);

  const kindOrder = { GatewayClass: 0, Gateway: 1, HTTPRoute: 2, GRPCRoute: 3 } as const;
  ctx.statuses.sort(
    (a, b) =>
      kindOrder[a.kind] - kindOrder[b.kind] ||
      cmp('namespace' in a ? a.namespace : '', 'namespace' in b ? b.namespace : '') ||
      cmp(a.name, b.name),
  );
  return { proxies: new Map([...proxies].sort(([a], [b]) => cmp(a, b))), statuses: ctx.statuses };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- routes

function attachRoute(ctx: Ctx, route: HTTPRoute | GRPCRoute): void {
  const ns = route.metadata.namespace ?? 'default';
  const gen = route.metadata.generation ?? 1;
  const parents: RouteParentStatusOut[] = [];
  const seen = new Set<string>();
  for (const ref of route.spec.parentRefs ?? []) {
    const group = ref.group ?? GATEWAY_GROUP;
    const kind = ref.kind ?? 'Gateway';
    const pns = ref.namespace ?? ns;
    const full: ParentReference = { group, kind, namespace: pns, name: ref.name };
    if (ref.sectionName !== undefined) full.sectionName = ref.sectionName;
    if (ref.port !== undefined) full.port = ref.port;
    const id = JSON.stringify(full);
    if (seen.has(id)) continue;
    seen.add(id);

    let conditions: ConditionOut[] | undefined;
    if (group === GATEWAY_GROUP && kind === 'Gateway') conditions = attachToGateway(ctx, route, full, gen);
    else if (group === '' && kind === 'Service') conditions = attachToService(ctx, route, full, gen);
    if (conditions) parents.push({ parentRef: full, controllerName: ctx.controllerName, conditions });
  }
  if (parents.length === 0) return;
  ctx.statuses.push({
    kind: route.kind,
    namespace: ns,
    name: route.metadata.name,
    generation: gen,
    status: { parents },
  });
}

function compiledFor(ctx: Ctx, route: HTTPRoute, binding: 'gateway' | 'mesh'): CompiledRoute {
  const key = `${binding}\u0000${route.metadata.namespace}/${route.metadata.name}`;
  let c = ctx.compiled.get(key);
  if (!c) {
    c = compileHttpRoute(ctx.snapshot, route, binding);
    ctx.compiled.set(key, c);
  }
  return c;
}

/** ResolvedRefs for a GRPCRoute (parsed, not routed): its backendRefs are still checked and reported. */
function grpcResolvedRefs(ctx: Ctx, route: GRPCRoute, binding: 'gateway' | 'mesh'): CompiledRoute['resolvedRefs'] {
  const ns = route.metadata.namespace ?? 'default';
  const scratch = new Map<string, ClusterRef>();
  for (const rule of route.spec.rules ?? [])
    for (const ref of rule.backendRefs ?? []) {
      const r = resolveBackend(ctx.snapshot, ns, ref, binding, scratch, 'GRPCRoute');
      if (typeof r !== 'string') return { ok: false, reason: r.reason, message: r.message };
    }
  return { ok: true, reason: Reason.ResolvedRefs, message: 'All references resolved' };
}

function routeConditions(
  gen: number,
  accepted: { ok: boolean; reason: string; message: string },
  resolved: CompiledRoute['resolvedRefs'],
  dropped: string[],
): ConditionOut[] {
  const out = [
    cond('Accepted', accepted.ok, accepted.reason, accepted.message, gen),
    cond('ResolvedRefs', resolved.ok, resolved.reason, resolved.message, gen),
  ];
  if (accepted.ok && dropped.length > 0)
    out.push(cond('PartiallyInvalid', true, Reason.UnsupportedValue, dropped.join('; '), gen));
  return out;
}

function attachToGateway(
  ctx: Ctx,
  route: HTTPRoute | GRPCRoute,
  ref: ParentReference,
  gen: number,
): ConditionOut[] | undefined {
  const gwKey = `${ref.namespace}/${ref.name}`;
  if (ctx.refusedGateways.has(gwKey)) {
    const resolved =
      route.kind === 'HTTPRoute'
        ? compiledFor(ctx, route, 'gateway').resolvedRefs
        : grpcResolvedRefs(ctx, route, 'gateway');
    return routeConditions(
      gen,
      { ok: false, reason: Reason.NoMatchingParent, message: `Gateway ${gwKey} is not accepted` },
      resolved,
      [],
    );
  }
  const gw = ctx.gateways.get(gwKey);
  if (!gw) return undefined; // not weft's (or not there): another controller's business
  const ns = route.metadata.namespace ?? 'default';
  const compiled = route.kind === 'HTTPRoute' ? compiledFor(ctx, route, 'gateway') : undefined;
  const resolved = compiled ? compiled.resolvedRefs : grpcResolvedRefs(ctx, route as GRPCRoute, 'gateway');
  const badHostname = (route.spec.hostnames ?? []).map(hostnameProblem).find((p) => p !== undefined);
  if (badHostname)
    return routeConditions(gen, { ok: false, reason: Reason.UnsupportedValue, message: badHostname }, resolved, []);

  const candidates = gw.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.listener.name === ref.sectionName) &&
      (ref.port === undefined || l.listener.port === ref.port),
  );
  if (candidates.length === 0) {
    const what = [
      ref.sectionName !== undefined ? `named "${ref.sectionName}"` : '',
      ref.port !== undefined ? `on port ${ref.port}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    return routeConditions(
      gen,
      { ok: false, reason: Reason.NoMatchingParent, message: `Gateway ${gwKey} has no listener ${what}`.trim() },
      resolved,
      [],
    );
  }
  if (!gw.accepted)
    return routeConditions(
      gen,
      { ok: false, reason: Reason.NoMatchingParent, message: `Gateway ${gwKey} is not accepted` },
      resolved,
      [],
    );

  const accepted: { l: ListenerState; hostnames: string[] | undefined }[] = [];
  let hostnameMiss = false;
  let kindMiss = false;
  for (const l of candidates) {
    if (!l.supportedKinds.includes(route.kind)) {
      kindMiss = true;
      continue;
    }
    if (!namespaceAllowed(ctx.snapshot, l, ns)) continue;
    const hostnames = effectiveHostnames(l.hostname, route.spec.hostnames);
    if (hostnames !== undefined && hostnames.length === 0) {
      hostnameMiss = true;
      continue;
    }
    accepted.push({ l, hostnames });
  }
  if (accepted.length === 0) {
    if (hostnameMiss)
      return routeConditions(
        gen,
        {
          ok: false,
          reason: Reason.NoMatchingListenerHostname,
          message: 'no route hostname intersects a listener hostname',
        },
        resolved,
        [],
      );
    const why =
      kindMiss && route.kind === 'GRPCRoute'
        ? 'GRPCRoute is not yet routed by weft listeners'
        : 'listeners do not allow this route';
    return routeConditions(gen, { ok: false, reason: Reason.NotAllowedByListeners, message: why }, resolved, []);
  }
  if (!compiled) return undefined; // unreachable: GRPCRoute is in no listener's supportedKinds
  if (compiled.rejected)
    return routeConditions(
      gen,
      { ok: false, reason: compiled.rejected.reason, message: compiled.rejected.message },
      resolved,
      [],
    );

  for (const { l, hostnames } of accepted) {
    l.attachedRoutes++;
    ctx.listenerEntries.get(l.key)!.push({
      compiled,
      hostnames,
      created: route.metadata.creationTimestamp ?? '',
      routeKey: `${ns}/${route.metadata.name}`,
    });
  }
  return routeConditions(
    gen,
    { ok: true, reason: Reason.Accepted, message: 'Route is accepted' },
    resolved,
    compiled.dropped,
  );
}

function attachToService(ctx: Ctx, route: HTTPRoute | GRPCRoute, ref: ParentReference, gen: number): ConditionOut[] {
  const ns = route.metadata.namespace ?? 'default';
  const svcKey = `${ref.namespace}/${ref.name}`;
  const compiled = route.kind === 'HTTPRoute' ? compiledFor(ctx, route, 'mesh') : undefined;
  const resolved = compiled ? compiled.resolvedRefs : grpcResolvedRefs(ctx, route as GRPCRoute, 'mesh');
  const refuse = (reason: string, message: string) =>
    routeConditions(gen, { ok: false, reason, message }, resolved, []);

  const svc = ctx.snapshot.get('Service', svcKey);
  if (!svc) return refuse(Reason.NoMatchingParent, `Service ${svcKey} not found`);
  if (clusterIPs(svc).length === 0)
    return refuse(
      Reason.UnsupportedValue,
      `Service ${svcKey} has no ClusterIP (headless or ExternalName): there is nothing to capture`,
    );
  let ports = (svc.spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  if (ref.port !== undefined) ports = ports.filter((p) => p.port === ref.port);
  if (ref.sectionName !== undefined) ports = ports.filter((p) => p.name === ref.sectionName);
  if (ports.length === 0) {
    const what = [
      ref.sectionName !== undefined ? `named "${ref.sectionName}"` : '',
      ref.port !== undefined ? `${ref.port}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    return refuse(Reason.NoMatchingParent, `Service ${svcKey} has no TCP port ${what}`.trim());
  }
  if (!compiled) return refuse(Reason.UnsupportedValue, 'GRPCRoute is parsed but not yet routed by weft');
  if (compiled.rejected) return refuse(compiled.rejected.reason, compiled.rejected.message);

  const entry: TableEntry = {
    compiled,
    hostnames: undefined, // hostnames do not apply to mesh routes (GEP-1294)
    created: route.metadata.creationTimestamp ?? '',
    routeKey: `${ns}/${route.metadata.name}`,
  };
  for (const p of ports) {
    const bindingKey = `${svcKey}:${p.port}`;
    let b = ctx.meshBindings.get(bindingKey);
    if (!b) {
      b = { producer: [], consumers: new Map() };
      ctx.meshBindings.set(bindingKey, b);
    }
    if (ns === ref.namespace) b.producer.push(entry);
    else {
      const list = b.consumers.get(ns) ?? [];
      list.push(entry);
      b.consumers.set(ns, list);
    }
  }
  return routeConditions(
    gen,
    { ok: true, reason: Reason.Accepted, message: 'Route is accepted' },
    resolved,
    compiled.dropped,
  );
}

// ---------------------------------------------------------------- proxies

function baseConfig(ctx: Ctx): Pick<ProxyConfig, 'apiVersion' | 'trust' | 'admin'> {
  const trust: ProxyConfig['trust'] = { trustDomain: ctx.trustDomain };
  if (ctx.opts.rootCAs) trust.rootCAs = ctx.opts.rootCAs;
  return { apiVersion: PROXY_CONFIG_VERSION, trust, admin: { port: ctx.ports.admin } };
}

function clusterContext(ctx: Ctx, meshedPods: Map<string, Pod>): ClusterContext {
  return { snapshot: ctx.snapshot, trustDomain: ctx.trustDomain, meshPort: ctx.ports.mesh, meshedPods };
}

function edgeConfig(ctx: Ctx, state: GatewayState): ProxyConfig {
  const gw = state.gateway;
  const ns = gw.metadata.namespace ?? 'default';
  const routeTables: Record<string, RouteTable> = {};
  const clusterRefs = new Map<string, ClusterRef>();
  const tlsCertificates: Record<string, TlsCertificate> = {};
  const byPort = new Map<number, ListenerState[]>();
  for (const l of state.listeners) {
    if (!l.programmable) continue;
    byPort.set(l.listener.port, [...(byPort.get(l.listener.port) ?? []), l]);
  }
  const listeners: Listener[] = [];
  for (const [port, ls] of [...byPort].sort(([a], [b]) => a - b)) {
    const protocol = ls[0].listener.protocol as 'HTTP' | 'HTTPS';
    const hosts = ls.map((l) => {
      const entries = ctx.listenerEntries.get(l.key) ?? [];
      const tableKey = `gateway/${l.key}`;
      routeTables[tableKey] = buildRouteTable(entries);
      for (const e of entries) for (const [k, v] of e.compiled.clusters) clusterRefs.set(k, v);
      for (const c of l.certificates) tlsCertificates[c.key] = { certChain: c.certChain, privateKey: c.privateKey };
      const host: Extract<Listener, { kind: 'gateway' }>['hosts'][number] = {
        listener: l.key,
        routeTable: tableKey,
        certificates: l.certificates.map((c) => c.key),
      };
      if (l.hostname) host.hostname = l.hostname;
      return host;
    });
    listeners.push({ kind: 'gateway', name: `${state.key}:${port}`, address: '0.0.0.0', port, protocol, hosts });
  }
  const cctx = clusterContext(ctx, meshedPodMap(ctx));
  return {
    ...baseConfig(ctx),
    proxy: { id: `edge:${ns}/${gw.metadata.name}`, mode: 'edge', namespace: ns, name: gw.metadata.name },
    listeners,
    routeTables: sortRecord(routeTables),
    clusters: sortRecord(Object.fromEntries([...clusterRefs].map(([k, ref]) => [k, buildCluster(cctx, ref)]))),
    tlsCertificates: sortRecord(tlsCertificates),
  };
}

function meshedPodMap(ctx: Ctx): Map<string, Pod> {
  if (ctx.meshedPods) return ctx.meshedPods;
  const pods = new Map<string, Pod>();
  for (const pod of ctx.snapshot.list('Pod'))
    if (isMeshed(ctx.snapshot, pod)) pods.set(`${pod.metadata.namespace}/${pod.metadata.name}`, pod);
  ctx.meshedPods = pods;
  return pods;
}

interface NamespaceOutbound {
  services: OutboundService[];
  routeTables: Record<string, RouteTable>;
  clusters: Record<string, Cluster>;
}

function sidecarConfigs(ctx: Ctx): Map<ProxyId, ProxyConfig> {
  const out = new Map<ProxyId, ProxyConfig>();
  const meshed = meshedPodMap(ctx);
  if (meshed.size === 0) return out;
  const cctx = clusterContext(ctx, meshed);
  // Shared by every sidecar: requests to a pod IP pass through to it (mTLS when it is meshed).
  const meshedPods = meshedPodsByIP(cctx);
  const services = ctx.snapshot.list('Service').filter((s) => clusterIPs(s).length > 0 && !isGatewayService(s));

  const clusterCache = new Map<string, Cluster>();
  const cluster = (ref: ClusterRef): Cluster => {
    let c = clusterCache.get(ref.key);
    if (!c) {
      c = buildCluster(cctx, ref);
      clusterCache.set(ref.key, c);
    }
    return c;
  };
  const defaultTable = (svc: Service, key: string): RouteTable => ({
    virtualHosts: [
      {
        domains: ['*'],
        routes: [
          {
            route: `default:${svc.metadata.namespace}/${svc.metadata.name}`,
            rule: 0,
            match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
            filters: { mirrors: [] },
            backends: [{ cluster: key, weight: 1 }],
          },
        ],
      },
    ],
    noMatchStatus: 404,
  });

  // Per Service port, once: its producer (or default) table and the clusters that table names.
  interface PortPlan {
    port: ServicePort;
    bindingKey: string;
    tableKey: string;
    table: RouteTable;
    clusters: [string, Cluster][];
    out: OutboundService['ports'][number];
  }
  interface ServicePlan {
    svc: Service;
    svcNs: string;
    ports: PortPlan[];
    /** The outbound entry as clients in other namespaces / in its own namespace see it (shared by reference). */
    forOthers: OutboundService;
    forOwn: OutboundService;
  }
  const clustersOf = (refs: Iterable<ClusterRef>): [string, Cluster][] => {
    const m = new Map<string, Cluster>();
    for (const ref of refs) m.set(ref.key, cluster(ref));
    return [...m];
  };
  const plans: ServicePlan[] = [];
  for (const svc of services) {
    const svcNs = svc.metadata.namespace ?? 'default';
    const svcKey = `${svcNs}/${svc.metadata.name}`;
    const ports: PortPlan[] = [];
    for (const p of svc.spec.ports ?? []) {
      if (!routesAsHttp(p)) continue; // not HTTP: the proxy passes it through untouched
      const bindingKey = `${svcKey}:${p.port}`;
      const tableKey = `mesh/${bindingKey}`;
      const producer = ctx.meshBindings.get(bindingKey)?.producer ?? [];
      let table: RouteTable;
      let clusters: [string, Cluster][];
      if (producer.length > 0) {
        table = buildRouteTable(producer);
        clusters = clustersOf(producer.flatMap((e) => [...e.compiled.clusters.values()]));
      } else {
        const ref = serviceClusterRef(svc, p);
        table = defaultTable(svc, ref.key);
        clusters = clustersOf([ref]);
      }
      const out: OutboundService['ports'][number] = { port: p.port, routeTable: tableKey };
      if (p.name) out.name = p.name;
      if (p.appProtocol) out.appProtocol = p.appProtocol;
      ports.push({ port: p, bindingKey, tableKey, table, clusters, out });
    }
    if (ports.length === 0) continue;
    const ips = clusterIPs(svc);
    const portsOut = ports.map((pp) => pp.out);
    plans.push({
      svc,
      svcNs,
      ports,
      forOthers: {
        service: svcKey,
        hostnames: serviceHostnames(svc, '', ctx.clusterDomain),
        clusterIPs: ips,
        ports: portsOut,
      },
      forOwn: {
        service: svcKey,
        hostnames: serviceHostnames(svc, svcNs, ctx.clusterDomain),
        clusterIPs: ips,
        ports: portsOut,
      },
    });
  }

  // Namespaces without consumer routes all see the same tables and clusters: build those once.
  const consumerNamespaces = new Set<string>();
  for (const b of ctx.meshBindings.values()) for (const ns of b.consumers.keys()) consumerNamespaces.add(ns);
  let common: Pick<NamespaceOutbound, 'routeTables' | 'clusters'> | undefined;

  const perNamespace = new Map<string, NamespaceOutbound>();
  const outboundFor = (clientNs: string): NamespaceOutbound => {
    const hit = perNamespace.get(clientNs);
    if (hit) return hit;
    if (!consumerNamespaces.has(clientNs) && common) {
      const nsOut: NamespaceOutbound = {
        services: plans.map((plan) => (plan.svcNs === clientNs ? plan.forOwn : plan.forOthers)),
        ...common,
      };
      perNamespace.set(clientNs, nsOut);
      return nsOut;
    }
    const services: OutboundService[] = [];
    const tables = new Map<string, RouteTable>();
    const clusters = new Map<string, Cluster>();
    for (const plan of plans) {
      let consumerPorts: OutboundService['ports'] | undefined;
      for (const [i, pp] of plan.ports.entries()) {
        const consumer =
          clientNs !== plan.svcNs ? ctx.meshBindings.get(pp.bindingKey)?.consumers.get(clientNs) : undefined;
        if (consumer && consumer.length > 0) {
          // Consumer routes replace the producer's for clients in their namespace (GEP-1294).
          consumerPorts ??= plan.ports.map((x) => x.out);
          const tableKey = `mesh/${pp.bindingKey}@${clientNs}`;
          consumerPorts[i] = { ...pp.out, routeTable: tableKey };
          tables.set(tableKey, buildRouteTable(consumer));
          for (const e of consumer) for (const ref of e.compiled.clusters.values()) clusters.set(ref.key, cluster(ref));
        } else {
          tables.set(pp.tableKey, pp.table);
          for (const [k, c] of pp.clusters) clusters.set(k, c);
        }
      }
      const base = plan.svcNs === clientNs ? plan.forOwn : plan.forOthers;
      services.push(consumerPorts ? { ...base, ports: consumerPorts } : base);
    }
    const nsOut: NamespaceOutbound = {
      services,
      routeTables: Object.fromEntries([...tables].sort(([a], [b]) => cmp(a, b))),
      clusters: Object.fromEntries([...clusters].sort(([a], [b]) => cmp(a, b))),
    };
    if (!consumerNamespaces.has(clientNs)) common = { routeTables: nsOut.routeTables, clusters: nsOut.clusters };
    perNamespace.set(clientNs, nsOut);
    return nsOut;
  };

  for (const [key, pod] of meshed) {
    const ns = pod.metadata.namespace ?? 'default';
    const ip = podIP(pod);
    const appAddress = ctx.opts.inboundAppAddress === 'podIP' && ip ? ip : '127.0.0.1';
    const nsOut = outboundFor(ns);
    const sa = pod.spec.serviceAccountName ?? 'default';
    const appPorts = podAppPorts(ctx.snapshot, pod);
    const acceptPlaintext = ctx.snapshot.get('Namespace', ns)?.metadata.annotations?.[PLAINTEXT_ANNOTATION] !== 'deny';
    const id = `sidecar:${key}`;
    out.set(id, {
      ...baseConfig(ctx),
      proxy: {
        id,
        mode: 'sidecar',
        namespace: ns,
        name: pod.metadata.name,
        serviceAccount: sa,
        identity: spiffeId(ctx.trustDomain, ns, sa),
      },
      listeners: [
        {
          kind: 'outbound',
          name: 'outbound',
          address: '0.0.0.0',
          port: ctx.ports.outbound,
          services: nsOut.services,
          meshedPods,
        },
        {
          kind: 'inbound',
          name: 'inbound',
          address: '0.0.0.0',
          port: ctx.ports.inbound,
          appAddress,
          appPorts,
          acceptPlaintext,
        },
        { kind: 'mesh', name: 'mesh', address: '0.0.0.0', port: ctx.ports.mesh, appAddress, appPorts },
      ],
      routeTables: nsOut.routeTables,
      clusters: nsOut.clusters,
      tlsCertificates: {},
    });
  }
  return out;
}

function sortRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => cmp(a, b)));
}

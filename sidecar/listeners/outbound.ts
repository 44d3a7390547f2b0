// Sidecar outbound: the destination Service of a request, then its route table. The
// destination comes from the connection's original destination when a lookup is plugged in
// (SO_ORIGINAL_DST under iptables capture, later work), else from the Host header — any of the
// Service's DNS names or `clusterIP[:port]` — or the authority of an absolute-form target, as
// an explicit HTTP proxy is addressed. The port is the one in Host, else 80. A captured request to no Service
// passes through to its original destination (router/passthrough.ts); so does one addressed to a meshed pod's IP.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Listener } from '../config/proxy-config.ts';
import { ConfigCompileError, ProxyError, ProxyErrorCode } from '../errors.ts';
import { parseTarget } from '../http/request-target.ts';
import type { RoutedRequest } from '../http/routed-request.ts';
import { hostName, hostPort, unbracket } from '../router/host.ts';
import { Passthrough } from '../router/passthrough.ts';
import { normalizePath } from '../router/path.ts';
import type { CompiledRouteTable } from '../router/route-table.ts';
import type { EndpointRegistry } from '../upstream/endpoint-state.ts';

type OutboundListener = Extract<Listener, { kind: 'outbound' }>;

export interface OriginalDestination {
  address: string;
  port: number;
}

/**
 * Where a captured connection was going before iptables redirected it; undefined when not
 * captured (explicit-proxy use) or unknown. Called once per request, so it should cache per socket.
 */
export type OriginalDestinationLookup = (socket: Socket) => OriginalDestination | undefined;

export interface CompiledOutboundService {
  readonly service: string;
  readonly ports: ReadonlyMap<number, CompiledRouteTable>;
}

export interface CompiledOutboundListener {
  readonly kind: 'outbound';
  readonly name: string;
  readonly byHost: ReadonlyMap<string, CompiledOutboundService>;
  readonly byAddress: ReadonlyMap<string, CompiledOutboundService>;
  readonly passthrough: Passthrough;
}

/** The port a request without a port in its Host is taken to be for. */
const DEFAULT_HTTP_PORT = 80;

export function compileOutboundListener(
  l: OutboundListener,
  tables: ReadonlyMap<string, CompiledRouteTable>,
  registry: EndpointRegistry,
): CompiledOutboundListener {
  const byHost = new Map<string, CompiledOutboundService>();
  const byAddress = new Map<string, CompiledOutboundService>();
  for (const s of l.services) {
    const ports = new Map<number, CompiledRouteTable>();
    for (const p of s.ports) {
      const table = tables.get(p.routeTable);
      if (!table)
        throw new ConfigCompileError(`listener ${l.name}: route table ${JSON.stringify(p.routeTable)} does not exist`);
      ports.set(p.port, table);
    }
    const compiled: CompiledOutboundService = { service: s.service, ports };
    // First service claiming a name or address keeps it.
    for (const h of s.hostnames) if (!byHost.has(h.toLowerCase())) byHost.set(h.toLowerCase(), compiled);
    for (const ip of s.clusterIPs) if (!byAddress.has(ip.toLowerCase())) byAddress.set(ip.toLowerCase(), compiled);
  }
  return {
    kind: 'outbound',
    name: l.name,
    byHost,
    byAddress,
    passthrough: new Passthrough(l.meshedPods ?? [], registry),
  };
}

/** The routing input of an outbound request, or the error to answer it with. */
export function resolveOutbound(
  l: CompiledOutboundListener,
  originalDestination: OriginalDestinationLookup | undefined,
  req: IncomingMessage,
): RoutedRequest | ProxyError {
  const target = parseTarget(req.url!);
  if (target === undefined) return new ProxyError(ProxyErrorCode.BadRequest, 400, 'unsupported request target');
  const authority = target.authority ?? req.headers.host;
  if (authority === undefined) return new ProxyError(ProxyErrorCode.BadRequest, 400, 'no Host');
  const host = hostName(authority);
  let service: CompiledOutboundService | undefined;
  let port = 0;
  const dst = originalDestination?.(req.socket);
  if (dst !== undefined) {
    service = l.byAddress.get(dst.address.toLowerCase());
    port = dst.port;
  }
  if (service === undefined) {
    service = l.byHost.get(host) ?? l.byAddress.get(unbracket(host));
    port = hostPort(authority) ?? DEFAULT_HTTP_PORT;
  }
  let table: CompiledRouteTable | undefined;
  if (service !== undefined) {
    table = service.ports.get(port);
    if (table === undefined) {
      return new ProxyError(ProxyErrorCode.UnknownService, 404, `Service ${service.service} has no port ${port}`);
    }
  } else if (dst !== undefined) {
    table = l.passthrough.table(dst.address, dst.port);
    port = dst.port;
  } else if (l.passthrough.pod(unbracket(host)) !== undefined) {
    table = l.passthrough.table(unbracket(host), port);
  } else {
    return new ProxyError(
      ProxyErrorCode.UnknownService,
      404,
      `no Service or meshed pod known as ${host} (other destinations pass through only when captured)`,
    );
  }
  const path = normalizePath(target.path);
  if (path === null) return new ProxyError(ProxyErrorCode.BadPath, 400, 'path cannot be normalised safely');
  return {
    table,
    scheme: 'http',
    listenerPort: port,
    host,
    authority,
    path,
    query: target.query,
    extraHeaders: undefined,
    parent: service?.service,
  };
}

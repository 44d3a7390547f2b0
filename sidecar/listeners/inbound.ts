// Sidecar inbound: captured plaintext handed to the app on `appAddress`. The app port should
// be the connection's original destination (capture, later work) or a port header that only
// trusted peers may set (the mesh listener, later work). Until then the first `appPorts`
// entry is used; without one the request is refused with 503 WEFT_ERR_NO_APP_PORT.
import type { IncomingMessage } from 'node:http';
import type { Listener } from '../config/proxy-config.ts';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';
import type { ExchangePlan } from '../http/exchange.ts';
import { upstreamRequestHeaders } from '../http/hygiene.ts';
import { NONE, RouteLabels } from '../metrics.ts';
import { parseTarget } from '../http/request-target.ts';
import { normalizePath } from '../router/path.ts';
import type { CompiledCluster } from '../upstream/cluster.ts';
import type { EndpointRegistry } from '../upstream/endpoint-state.ts';
import { PEER_IDENTITY_HEADER } from '../upstream/mtls.ts';

type InboundListener = Extract<Listener, { kind: 'inbound' }>;

export interface CompiledInboundListener {
  readonly kind: 'inbound';
  readonly name: string;
  readonly acceptPlaintext: boolean;
  /** The app as a one-endpoint cluster; undefined when the listener lists no app port. */
  readonly app: CompiledCluster | undefined;
}

export function compileInboundListener(l: InboundListener, registry: EndpointRegistry): CompiledInboundListener {
  const first = l.appPorts[0];
  const app =
    first === undefined
      ? undefined
      : appCluster(`inbound:${l.name}`, `inbound:${l.name}`, l.appAddress, first, registry);
  return { kind: 'inbound', name: l.name, acceptPlaintext: l.acceptPlaintext, app };
}

/** The pod's app on one of its ports as a one-endpoint cluster, with its metric labels (no route, `key` as backend). */
export function appCluster(
  key: string,
  service: string,
  address: string,
  port: InboundListener['appPorts'][number],
  registry: EndpointRegistry,
): CompiledCluster {
  const protocol = port.appProtocol === 'kubernetes.io/h2c' ? 'h2c' : 'http1';
  return {
    key,
    service,
    protocol,
    endpoints: [{ state: registry.get(address, port.port, protocol), pod: undefined, identity: undefined }],
    labels: new RouteLabels(NONE, NONE, key),
  };
}

/** The exchange plan of an inbound request, or the error to answer it with. */
export function resolveInbound(l: CompiledInboundListener, req: IncomingMessage): ExchangePlan | ProxyError {
  if (!l.acceptPlaintext) {
    return new ProxyError(ProxyErrorCode.PlaintextRefused, 403, 'plaintext from unmeshed clients is refused');
  }
  if (l.app === undefined)
    return new ProxyError(ProxyErrorCode.NoAppPort, 503, `inbound listener ${l.name} has no app port`);
  const target = parseTarget(req.url!);
  if (target === undefined || target.authority !== undefined) {
    return new ProxyError(ProxyErrorCode.BadRequest, 400, 'unsupported request target');
  }
  const path = normalizePath(target.path);
  if (path === null) return new ProxyError(ProxyErrorCode.BadPath, 400, 'path cannot be normalised safely');
  const headers = upstreamRequestHeaders(req, l.app.protocol === 'h2c');
  // Only the mesh listener vouches for a caller; a plaintext client's claim is dropped.
  delete headers[PEER_IDENTITY_HEADER];
  return appPlan(l.app, path, target.query, headers, req);
}

/** The plan of a request handed to the pod's own app: no routing, no filters, no timeouts, the Host kept. */
export function appPlan(
  app: CompiledCluster,
  path: string,
  query: string,
  headers: HeaderMap,
  req: IncomingMessage,
): ExchangePlan {
  if (req.headers.host !== undefined) headers.host = req.headers.host;
  return {
    kind: 'forward',
    cluster: app,
    path: query === '' ? path : `${path}?${query}`,
    headers,
    retry: undefined,
    requestTimeoutMs: 0,
    backendTimeoutMs: 0,
    mirrors: [],
    responseHeaders: undefined,
    backendResponseHeaders: undefined,
    cors: undefined,
  };
}

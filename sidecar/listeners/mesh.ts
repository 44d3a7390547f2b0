// Sidecar mesh listener (15008): proxy-to-proxy traffic over mTLS. The TLS server (MESH_SERVER_OPTIONS, kept current
// by MeshTls) has already refused callers without a certificate chaining to the trust bundle; here the caller's
// SPIFFE ID is read from that verified certificate — never from a header — and must be in the trust domain. The app
// port comes from `x-weft-target-port`, which the calling proxy sets, and must be one of the app's ports. The
// request goes to the app in plaintext on `appAddress` with the caller's ID in `x-weft-peer-identity`, replacing
// whatever the caller sent under that name.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Listener } from '../config/proxy-config.ts';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { ExchangePlan } from '../http/exchange.ts';
import { upstreamRequestHeaders } from '../http/hygiene.ts';
import { parseTarget } from '../http/request-target.ts';
import { peerSpiffeId } from '../identity/peer.ts';
import { normalizePath } from '../router/path.ts';
import type { CompiledCluster } from '../upstream/cluster.ts';
import type { EndpointRegistry } from '../upstream/endpoint-state.ts';
import { PEER_IDENTITY_HEADER, TARGET_PORT_HEADER } from '../upstream/mtls.ts';
import { appCluster, appPlan } from './inbound.ts';

type MeshListener = Extract<Listener, { kind: 'mesh' }>;

export interface CompiledMeshListener {
  readonly kind: 'mesh';
  readonly name: string;
  /** `spiffe://<trust domain>/`: a caller's ID must start with it. */
  readonly trustPrefix: string;
  /** The app behind each allowed port, as a one-endpoint cluster. */
  readonly apps: ReadonlyMap<number, CompiledCluster>;
}

export function compileMeshListener(
  l: MeshListener,
  trustDomain: string,
  registry: EndpointRegistry,
): CompiledMeshListener {
  const apps = new Map<number, CompiledCluster>();
  for (const p of l.appPorts) {
    if (apps.has(p.port)) continue;
    apps.set(p.port, appCluster(`mesh:${l.name}:${p.port}`, `mesh:${l.name}`, l.appAddress, p, registry));
  }
  return { kind: 'mesh', name: l.name, trustPrefix: `spiffe://${trustDomain}/`, apps };
}

/** A connection's verified peer ID, read once (getPeerCertificate builds a new object on every call). */
const peers = new WeakMap<TLSSocket, string | null>();

function peerOf(socket: TLSSocket): string | null {
  let id = peers.get(socket);
  if (id === undefined) {
    id = socket.encrypted ? (peerSpiffeId(socket) ?? null) : null;
    peers.set(socket, id);
  }
  return id;
}

const PORT = /^[0-9]{1,5}$/;

/** The exchange plan of a request on the mesh port, or the error to answer it with. */
export function resolveMesh(l: CompiledMeshListener, req: IncomingMessage): ExchangePlan | ProxyError {
  const peer = peerOf(req.socket as TLSSocket);
  if (peer === null) {
    return new ProxyError(ProxyErrorCode.PeerIdentity, 403, 'the client certificate carries no single SPIFFE ID');
  }
  if (!peer.startsWith(l.trustPrefix)) {
    return new ProxyError(ProxyErrorCode.PeerIdentity, 403, `peer ${peer} is outside trust domain ${l.trustPrefix}`);
  }
  const portHeader = req.headers[TARGET_PORT_HEADER];
  if (typeof portHeader !== 'string' || !PORT.test(portHeader)) {
    return new ProxyError(ProxyErrorCode.TargetPort, 400, `one numeric ${TARGET_PORT_HEADER} header is required`);
  }
  const app = l.apps.get(Number(portHeader));
  if (app === undefined) {
    return new ProxyError(ProxyErrorCode.TargetPort, 403, `port ${portHeader} is not an app port of this pod`);
  }
  const target = parseTarget(req.url!);
  if (target === undefined || target.authority !== undefined) {
    return new ProxyError(ProxyErrorCode.BadRequest, 400, 'unsupported request target');
  }
  const path = normalizePath(target.path);
  if (path === null) return new ProxyError(ProxyErrorCode.BadPath, 400, 'path cannot be normalised safely');
  const headers = upstreamRequestHeaders(req, app.protocol === 'h2c');
  delete headers[TARGET_PORT_HEADER];
  headers[PEER_IDENTITY_HEADER] = peer;
  return appPlan(app, path, target.query, headers, req);
}

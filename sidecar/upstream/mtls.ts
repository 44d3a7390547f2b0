// Mutual TLS between proxies, both ends: the proxy's workload credentials (from an identity source), the secure
// contexts built from them, client connections to a peer proxy's mesh port that accept only the SPIFFE ID the
// config names, and the options of the mesh listener. Rotation replaces the contexts for new connections only;
// open connections finish on the certificate they started with. Without a valid certificate every meshed request
// fails with 503 (WEFT_ERR_NO_CERTIFICATE) — never plaintext.
import { EventEmitter } from 'node:events';
import {
  connect as tlsConnect,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type Server as TlsServer,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import type { Duplex } from 'node:stream';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';
import { spiffeIdOf } from '../identity/peer.ts';
import type { EndpointState } from './endpoint-state.ts';
import { isConnectFailure } from './forwarder.ts';

/** Set by the client proxy on every meshed request: the app port on the peer pod. Never taken from the app. */
export const TARGET_PORT_HEADER = 'x-weft-target-port';
/** Set by the server proxy for the app: the caller's SPIFFE ID from its verified certificate. */
export const PEER_IDENTITY_HEADER = 'x-weft-peer-identity';

/** Proxy to proxy: both ends are weft, so nothing older than TLS 1.3 is needed. */
export const MESH_TLS_MIN_VERSION = 'TLSv1.3';
/** HTTP/1.1 only for now (h2 between proxies is later work). */
export const MESH_ALPN = ['http/1.1'];
const CONNECT_TIMEOUT_MS = 10_000;
/** setTimeout's ceiling; an expiry further away is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What TLS needs from a workload's credentials; WorkloadCredentials (sidecar/identity) has this shape. */
export interface MeshCredentials {
  /** Private key, PEM. */
  key: string;
  /** Leaf then issuing CA(s), PEM. */
  certChain: string;
  /** Trust bundle, PEM; `config.trust.rootCAs` takes precedence when the config carries one. */
  rootCAs: string;
  spiffeId?: string;
  /** Past it the credentials are not used, whatever the source says. */
  notAfter?: Date;
}

/**
 * Where the proxy's certificate comes from: a WorkloadIdentity (CA, rotation) or files (FileIdentitySource).
 * `current()` is read per connection; `change` means new credentials, `expired` that they were dropped.
 */
export interface IdentitySource {
  current(): MeshCredentials | undefined;
  on(event: 'change' | 'expired', listener: () => void): unknown;
  off(event: 'change' | 'expired', listener: () => void): unknown;
}

/** Fixed credentials (tests, or a caller that manages rotation itself and calls `set`). */
export class StaticIdentity extends EventEmitter implements IdentitySource {
  #creds: MeshCredentials | undefined;

  constructor(creds?: MeshCredentials) {
    super();
    this.#creds = creds;
  }

  current(): MeshCredentials | undefined {
    return this.#creds;
  }

  /** New credentials (a rotation), or undefined to drop them; emits `change` or `expired`. */
  set(creds: MeshCredentials | undefined): void {
    this.#creds = creds;
    this.emit(creds === undefined ? 'expired' : 'change');
  }
}

/** A peer proxy to reach: its address and mesh port, and the one SPIFFE ID its certificate may carry. */
export interface MeshPeer {
  address: string;
  port: number;
  identity: string;
}

/** The part of MeshTls that endpoints and forwarding engines use. */
export interface MeshTransport {
  /** Undefined when a meshed request may go out now; else the error to answer it with. */
  unavailable(): ProxyError | undefined;
  /** A TLS connection to the peer, handed over after the handshake and the identity check. */
  connect(peer: MeshPeer, callback: (err: Error | null, socket: TLSSocket | null) => void): void;
}

/** Stands in when a registry is built without a transport: every meshed request is refused. */
export const NO_MESH_TRANSPORT: MeshTransport = {
  unavailable: () =>
    new ProxyError(ProxyErrorCode.MtlsUnavailable, 503, 'this proxy has no workload identity to speak mTLS with'),
  connect: (_peer, callback) => callback(NO_MESH_TRANSPORT.unavailable()!, null),
};

/** TLS server options of a mesh listener; the key, certificate and roots come from MeshTls.serve(). */
export const MESH_SERVER_OPTIONS: TlsOptions = {
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: MESH_TLS_MIN_VERSION,
  ALPNProtocols: MESH_ALPN,
};

const hasCertificate = (pem: string | undefined): pem is string =>
  pem?.includes('-----BEGIN CERTIFICATE-----') === true;

/** A handshake failure that is not a plain socket error (refused, reset, unreachable). */
function tlsFailure(err: Error & { syscall?: string }, peer: MeshPeer): Error {
  if (err instanceof ProxyError || isConnectFailure(err) || err.syscall !== undefined) return err;
  return new ProxyError(
    ProxyErrorCode.UpstreamTls,
    503,
    `mTLS handshake with ${peer.address}:${peer.port} failed: ${err.message}`,
    { cause: err },
  );
}

export interface MeshTlsOptions {
  /** Absent: the proxy has no identity; meshed requests fail with WEFT_ERR_MTLS_UNAVAILABLE. */
  source?: IdentitySource;
  connectTimeoutMs?: number;
  /** Milliseconds since the epoch (tests). */
  now?: () => number;
  /** Told of each outbound connection: up (`socket`) or failed (`err`, before it is turned into a ProxyError). */
  stats?: { outbound(peerIdentity: string, err: Error | null, socket?: TLSSocket): void };
}

/**
 * The proxy's mTLS state. Emits `update` whenever the server side must change (new or dropped credentials, new
 * trust bundle); the mesh listeners it serves are updated by itself.
 */
export class MeshTls extends EventEmitter implements MeshTransport {
  readonly #source: IdentitySource | undefined;
  readonly #connectTimeoutMs: number;
  readonly #now: () => number;
  readonly #stats: MeshTlsOptions['stats'];
  readonly #servers = new Set<TlsServer>();
  #configRoots: string | undefined;
  #trustPrefix: string | undefined;
  /** The client context and what it was built from. */
  #client: { creds: MeshCredentials; roots: string; context: SecureContext } | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  readonly #onSourceEvent = () => this.#changed();

  constructor(options: MeshTlsOptions = {}) {
    super();
    this.#source = options.source;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
    this.#stats = options.stats;
    this.#source?.on('change', this.#onSourceEvent);
    this.#source?.on('expired', this.#onSourceEvent);
    this.#armExpiry();
  }

  /** Whether an identity source was given at all. */
  get hasIdentity(): boolean {
    return this.#source !== undefined;
  }

  /** The trust domain and the roots of the config being served (`trust` of ProxyConfig). */
  configure(trust: { trustDomain: string; rootCAs?: string | undefined }): void {
    this.#trustPrefix = `spiffe://${trust.trustDomain}/`;
    const roots = hasCertificate(trust.rootCAs) ? trust.rootCAs : undefined;
    if (roots === this.#configRoots) return;
    this.#configRoots = roots;
    this.#changed();
  }

  /** Whether `spiffeId` is in the configured trust domain. */
  inTrustDomain(spiffeId: string): boolean {
    return this.#trustPrefix !== undefined && spiffeId.startsWith(this.#trustPrefix);
  }

  /** The valid credentials and the trust bundle, or undefined (none yet, expired, or no roots at all). */
  credentials(): { creds: MeshCredentials; roots: string } | undefined {
    const creds = this.#source?.current();
    if (creds === undefined) return undefined;
    if (creds.notAfter !== undefined && creds.notAfter.getTime() <= this.#now()) return undefined;
    // Never an empty `ca`: Node would then trust its public root store.
    const roots = this.#configRoots ?? (hasCertificate(creds.rootCAs) ? creds.rootCAs : undefined);
    return roots === undefined ? undefined : { creds, roots };
  }

  unavailable(): ProxyError | undefined {
    if (this.#source === undefined) return NO_MESH_TRANSPORT.unavailable();
    if (this.credentials() !== undefined) return undefined;
    return new ProxyError(
      ProxyErrorCode.NoCertificate,
      503,
      'this proxy has no valid workload certificate (none yet, or expired); meshed traffic is refused, never sent plaintext',
    );
  }

  #clientContext(): SecureContext | undefined {
    const valid = this.credentials();
    if (valid === undefined) return undefined;
    const cached = this.#client;
    if (cached !== undefined && cached.creds === valid.creds && cached.roots === valid.roots) return cached.context;
    const context = createSecureContext({
      key: valid.creds.key,
      cert: valid.creds.certChain,
      ca: valid.roots,
      minVersion: MESH_TLS_MIN_VERSION,
    });
    this.#client = { creds: valid.creds, roots: valid.roots, context };
    return context;
  }

  connect(peer: MeshPeer, callback: (err: Error | null, socket: TLSSocket | null) => void): void {
    let context: SecureContext | undefined;
    try {
      context = this.#clientContext();
    } catch (err) {
      const unusable = new ProxyError(
        ProxyErrorCode.NoCertificate,
        503,
        `workload credentials unusable: ${(err as Error).message}`,
        { cause: err },
      );
      this.#stats?.outbound(peer.identity, unusable);
      callback(unusable, null);
      return;
    }
    if (context === undefined) {
      const unavailable = this.unavailable()!;
      this.#stats?.outbound(peer.identity, unavailable);
      callback(unavailable, null);
      return;
    }
    const socket = tlsConnect({
      host: peer.address,
      port: peer.port,
      secureContext: context,
      // A SPIFFE ID is no host name: no SNI, and the identity check replaces the host name check.
      servername: '',
      ALPNProtocols: MESH_ALPN,
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = spiffeIdOf(cert);
        if (id === peer.identity) return undefined;
        return new ProxyError(
          ProxyErrorCode.UpstreamIdentity,
          503,
          `peer ${peer.address}:${peer.port} presented ${id ?? 'no single SPIFFE ID'}, expected ${peer.identity}`,
        );
      },
    });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.setTimeout(0);
      this.#stats?.outbound(peer.identity, err, socket);
      if (err === null) callback(null, socket);
      else {
        socket.destroy();
        callback(tlsFailure(err, peer), null);
      }
    };
    const onSecure = () => finish(null);
    const onError = (err: Error) => finish(err);
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.setTimeout(this.#connectTimeoutMs, () =>
      finish(Object.assign(new Error(`mTLS connect to ${peer.address}:${peer.port} timed out`), { code: 'ETIMEDOUT' })),
    );
  }

  /** TLS options for a mesh listener now: this proxy's certificate and the roots; no certificate without creds. */
  serverOptions(): TlsOptions {
    const valid = this.credentials();
    if (valid === undefined) return { minVersion: MESH_TLS_MIN_VERSION };
    return { key: valid.creds.key, cert: valid.creds.certChain, ca: valid.roots, minVersion: MESH_TLS_MIN_VERSION };
  }

  /** Keeps a mesh listener's certificate current until it closes. */
  serve(server: TlsServer): void {
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
    this.#apply(server);
  }

  #apply(server: TlsServer): void {
    try {
      server.setSecureContext(this.serverOptions());
    } catch (err) {
      // Unusable credentials: serve none rather than the previous ones (or crash).
      server.setSecureContext({ minVersion: MESH_TLS_MIN_VERSION });
      this.emit('error', err);
    }
  }

  #changed(): void {
    this.#client = undefined;
    for (const server of this.#servers) this.#apply(server);
    this.#armExpiry();
    this.emit('update');
  }

  /** Credentials stop being used at their notAfter even when the source says nothing. */
  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    const notAfter = this.#source?.current()?.notAfter?.getTime();
    if (notAfter === undefined) return;
    const wait = notAfter - this.#now();
    if (wait <= 0) return;
    this.#expiryTimer = setTimeout(
      () => (this.#now() >= notAfter ? this.#changed() : this.#armExpiry()),
      Math.min(wait + 1, MAX_TIMER_MS),
    );
    this.#expiryTimer.unref();
  }

  close(): void {
    clearTimeout(this.#expiryTimer);
    this.#source?.off('change', this.#onSourceEvent);
    this.#source?.off('expired', this.#onSourceEvent);
    this.#servers.clear();
  }
}

/** The headers of a request to a meshed endpoint, or the error that keeps it from going out. */
export function meshRequestHeaders(endpoint: EndpointState, headers: HeaderMap): HeaderMap {
  const mesh = endpoint.mesh;
  if (mesh === undefined) return headers;
  const problem = mesh.transport.unavailable();
  if (problem !== undefined) throw problem;
  return { ...headers, [TARGET_PORT_HEADER]: String(mesh.targetPort) };
}

/** How a meshed endpoint's connections are made: mTLS to the peer, checked against the endpoint's identity. */
export function meshConnect(endpoint: EndpointState): (callback: MeshConnectCallback) => void {
  const mesh = endpoint.mesh!;
  const peer: MeshPeer = { address: endpoint.address, port: endpoint.port, identity: mesh.identity };
  return (callback) => mesh.transport.connect(peer, callback);
}

export type MeshConnectCallback = (err: Error | null, socket: TLSSocket | null) => void;

/** node:http's asynchronous `createConnection` form: nothing returned, the callback gets the socket after the handshake. */
export function createMeshConnection(endpoint: EndpointState) {
  const connect = meshConnect(endpoint);
  return (_options: unknown, callback?: (err: Error | null, socket: Duplex) => void): undefined => {
    connect((err, socket) => callback?.(err, socket as Duplex));
    return undefined;
  };
}

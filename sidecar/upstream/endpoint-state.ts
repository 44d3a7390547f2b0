// Per-endpoint load and health, kept across config swaps so a new config does not forget
// which endpoints are busy or refusing connections, and so keep-alive pools survive.
import { type MeshTransport, NO_MESH_TRANSPORT } from './mtls.ts';

export type UpstreamProtocol = 'http1' | 'h2c';

/** A meshed endpoint: reached over mTLS at the peer proxy's mesh port, which hands the request to `targetPort`. */
export interface MeshTarget {
  /** The SPIFFE ID the peer proxy's certificate must carry, exactly. */
  readonly identity: string;
  /** The app port on the peer, sent in `x-weft-target-port`. */
  readonly targetPort: number;
  readonly transport: MeshTransport;
}

/** How long an endpoint that refused a connection is skipped: doubling from the base, capped. */
const EJECT_BASE_MS = 1_000;
const EJECT_MAX_MS = 30_000;
/** Weight of the newest latency sample in the moving average while samples come often. */
const EWMA_ALPHA = 0.3;
/**
 * Decay time of the latency average (Finagle's and Linkerd's default). An endpoint that gets no
 * samples looks cheaper and cheaper, so a briefly slow one is tried again; after a long silence
 * a new sample outweighs the stale average.
 */
const EWMA_DECAY_MS = 10_000;

export class EndpointState {
  /** `protocol|address|port` (meshed: `mtls|address|meshPort|targetPort|identity`): one pool per key. */
  readonly key: string;
  /** `http://address:port` (meshed: `https://address:meshPort`), IPv6 bracketed. */
  readonly origin: string;
  readonly address: string;
  /** The port connected to: the mesh port for a meshed endpoint (never its app port). */
  readonly port: number;
  readonly protocol: UpstreamProtocol;
  /** Present for a meshed endpoint: then only mTLS to `port` is allowed. */
  readonly mesh: MeshTarget | undefined;
  inFlight = 0;
  /** Moving average of time to response headers, ms, as of `ewmaAt`; 0 until the first response. */
  ewmaMs = 0;
  /** When (ms since epoch) `ewmaMs` was last updated. */
  ewmaAt = 0;
  /** Until this time (ms since epoch) the endpoint is skipped when another is available. */
  ejectedUntil = 0;
  consecutiveFailures = 0;

  constructor(address: string, port: number, protocol: UpstreamProtocol, mesh?: MeshTarget) {
    this.address = address;
    this.port = port;
    this.protocol = protocol;
    this.mesh = mesh;
    this.key = mesh ? meshKey(address, port, mesh) : `${protocol}|${address}|${port}`;
    this.origin = `${mesh ? 'https' : 'http'}://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** The latency average at `now`, decayed toward 0 with the time since its last sample; 0 = never sampled. */
  latencyMs(now: number): number {
    const idle = now - this.ewmaAt;
    return idle <= 0 ? this.ewmaMs : this.ewmaMs * Math.exp(-idle / EWMA_DECAY_MS);
  }

  /** Folds in one time to response headers; the longer since the last sample, the more it counts. */
  recordLatency(ms: number, now: number): void {
    // Never 0 once sampled: 0 means "no sample yet" to the balancer.
    const sample = ms > 0.001 ? ms : 0.001;
    if (this.ewmaMs === 0) this.ewmaMs = sample;
    else {
      const stale = 1 - Math.exp(-(now - this.ewmaAt) / EWMA_DECAY_MS);
      this.ewmaMs += (stale > EWMA_ALPHA ? stale : EWMA_ALPHA) * (sample - this.ewmaMs);
    }
    this.ewmaAt = now;
  }

  /** A connection could not be established: skip this endpoint for a growing while. */
  recordConnectFailure(now: number): void {
    this.consecutiveFailures++;
    const backoff = Math.min(EJECT_BASE_MS * 2 ** (this.consecutiveFailures - 1), EJECT_MAX_MS);
    this.ejectedUntil = now + backoff;
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.ejectedUntil = 0;
  }
}

const meshKey = (address: string, port: number, m: { identity: string; targetPort: number }) =>
  `mtls|${address}|${port}|${m.targetPort}|${m.identity}`;

/** All endpoint states of a proxy, shared by every config it runs. */
export class EndpointRegistry {
  readonly #states = new Map<string, EndpointState>();
  readonly #mesh: MeshTransport;

  /** `mesh`: how meshed endpoints are reached (the proxy's MeshTls); without it they are refused. */
  constructor(mesh: MeshTransport = NO_MESH_TRANSPORT) {
    this.#mesh = mesh;
  }

  get(address: string, port: number, protocol: UpstreamProtocol): EndpointState {
    const key = `${protocol}|${address}|${port}`;
    let state = this.#states.get(key);
    if (!state) {
      state = new EndpointState(address, port, protocol);
      this.#states.set(key, state);
    }
    return state;
  }

  /** A meshed endpoint: HTTP/1.1 over mTLS to the peer proxy at `address:meshPort`, for its app's `targetPort`. */
  getMeshed(address: string, meshPort: number, identity: string, targetPort: number): EndpointState {
    const key = meshKey(address, meshPort, { identity, targetPort });
    let state = this.#states.get(key);
    if (!state) {
      state = new EndpointState(address, meshPort, 'http1', { identity, targetPort, transport: this.#mesh });
      this.#states.set(key, state);
    }
    return state;
  }

  /** Forgets the endpoints not in `live` and returns them, so their pools can be closed. */
  prune(live: ReadonlySet<EndpointState>): EndpointState[] {
    const gone: EndpointState[] = [];
    for (const [key, state] of this.#states) {
      if (live.has(state)) continue;
      this.#states.delete(key);
      gone.push(state);
    }
    return gone;
  }
}

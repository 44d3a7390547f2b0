// Per-endpoint load and health, kept across config swaps so a new config does not forget
// which endpoints are busy or refusing connections, and so keep-alive pools survive.

export type UpstreamProtocol = 'http1' | 'h2c';

/** How long an endpoint that refused a connection is skipped: doubling from the base, capped. */
const EJECT_BASE_MS = 1_000;
const EJECT_MAX_MS = 30_000;
/** Weight of the newest latency sample in the moving average. */
const EWMA_ALPHA = 0.3;

export class EndpointState {
  /** `protocol|address|port`: one pool per key. */
  readonly key: string;
  /** `http://address:port`, IPv6 bracketed. */
  readonly origin: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: UpstreamProtocol;
  inFlight = 0;
  /** Moving average of time to response headers, ms; 0 until the first response. */
  ewmaMs = 0;
  /** Until this time (ms since epoch) the endpoint is skipped when another is available. */
  ejectedUntil = 0;
  consecutiveFailures = 0;

  constructor(address: string, port: number, protocol: UpstreamProtocol) {
    this.address = address;
    this.port = port;
    this.protocol = protocol;
    this.key = `${protocol}|${address}|${port}`;
    this.origin = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** P2C cost: pending work weighted by how slow the endpoint has been. */
  cost(): number {
    return (this.inFlight + 1) * (this.ewmaMs + 1);
  }

  recordLatency(ms: number): void {
    this.ewmaMs = this.ewmaMs === 0 ? ms : this.ewmaMs + EWMA_ALPHA * (ms - this.ewmaMs);
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

/** All endpoint states of a proxy, shared by every config it runs. */
export class EndpointRegistry {
  readonly #states = new Map<string, EndpointState>();

  get(address: string, port: number, protocol: UpstreamProtocol): EndpointState {
    const key = `${protocol}|${address}|${port}`;
    let state = this.#states.get(key);
    if (!state) {
      state = new EndpointState(address, port, protocol);
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

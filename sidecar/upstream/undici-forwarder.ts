// Forwarder on undici Pools: one keep-alive pool per endpoint (HTTP/1.1, or HTTP/1.1 over mTLS to a
// peer proxy for meshed endpoints); h2c endpoints go to the node:http2 forwarder, as in the other
// engines. Aborting the request's signal destroys the upstream socket.
import { PassThrough, type Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import type { EndpointState } from './endpoint-state.ts';
import type { Forwarder, UpstreamRequest, UpstreamResponse } from './forwarder.ts';
import { H2cForwarder } from './h2c-forwarder.ts';
import { meshConnect, meshRequestHeaders } from './mtls.ts';

export interface UndiciForwarderOptions {
  /** Idle keep-alive connections are closed after this long (ms). */
  keepAliveTimeoutMs?: number;
  /** Upper bound on waiting for response headers when no route timeout is set (ms). */
  headersTimeoutMs?: number;
  /** Upper bound on a stalled response body (ms). */
  bodyTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export class UndiciForwarder implements Forwarder {
  readonly #pools = new Map<string, Pool>();
  /** Endpoints that left the config; a request still on an old config gets a pool closed after it. */
  readonly #retired = new WeakSet<EndpointState>();
  readonly #options: Pool.Options;
  readonly #h2c = new H2cForwarder();

  constructor(options: UndiciForwarderOptions = {}) {
    this.#options = {
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 4_000,
      headersTimeout: options.headersTimeoutMs ?? 300_000,
      bodyTimeout: options.bodyTimeoutMs ?? 300_000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
    };
  }

  #newPool(endpoint: EndpointState): Pool {
    // The connector makes each new connection with the certificate current at that moment (rotation).
    if (endpoint.mesh) {
      const connect = meshConnect(endpoint);
      return new Pool(endpoint.origin, {
        ...this.#options,
        connect: (_options, callback) =>
          connect((err, socket) => (err ? callback(err, null) : callback(null, socket!))),
      });
    }
    return new Pool(endpoint.origin, this.#options);
  }

  #pool(endpoint: EndpointState): Pool {
    let pool = this.#pools.get(endpoint.key);
    if (pool === undefined) {
      pool = this.#newPool(endpoint);
      this.#pools.set(endpoint.key, pool);
    }
    return pool;
  }

  async request(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.endpoint.protocol === 'h2c') return this.#h2c.request(r);
    const headers = meshRequestHeaders(r.endpoint, r.headers);
    let body: Buffer | Readable | null = r.body;
    if (body !== null && !Buffer.isBuffer(body)) {
      // undici destroys a stream body when the exchange fails; a PassThrough keeps that from
      // destroying the client's own request (and socket) before it gets its 5xx.
      const pass = new PassThrough();
      body.pipe(pass);
      body = pass;
    }
    const retired = this.#retired.has(r.endpoint);
    const pool = retired ? this.#newPool(r.endpoint) : this.#pool(r.endpoint);
    // close() lets the request queued just below finish, then closes the connection.
    if (retired) queueMicrotask(() => void pool.close().catch(() => {}));
    const res = await pool.request({
      path: r.path,
      method: r.method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string | string[]>,
      body,
      signal: r.signal,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  }

  retire(endpoint: EndpointState): void {
    if (endpoint.protocol === 'h2c') {
      this.#h2c.retire(endpoint);
      return;
    }
    this.#retired.add(endpoint);
    const pool = this.#pools.get(endpoint.key);
    if (!pool) return;
    this.#pools.delete(endpoint.key);
    pool.close().catch(() => {});
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    // Proxy shutdown: in-flight exchanges were the listeners' to finish; what remains is cut.
    await Promise.all([...pools.map((p) => p.destroy().catch(() => {})), this.#h2c.close()]);
  }
}

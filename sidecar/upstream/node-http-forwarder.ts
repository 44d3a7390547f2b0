// Forwarder on node:http keep-alive Agents, one per endpoint: the second engine, so the
// benchmark can compare it with the undici pools on the same routes. h2c endpoints are handed
// to an undici forwarder (node:http speaks HTTP/1.1 only). Meshed endpoints get an Agent whose
// connections are mTLS to the peer proxy, made with the certificate current at connect time.
import { Agent, type IncomingMessage, request as httpRequest } from 'node:http';
import type { Readable } from 'node:stream';
import type { EndpointState } from './endpoint-state.ts';
import type { Forwarder, UpstreamRequest, UpstreamResponse } from './forwarder.ts';
import { createMeshConnection, meshRequestHeaders } from './mtls.ts';
import { UndiciForwarder } from './undici-forwarder.ts';

export interface NodeHttpForwarderOptions {
  /** Idle keep-alive sockets per endpoint kept open. */
  maxFreeSockets?: number;
  /** Idle sockets are closed after this long (ms). */
  idleTimeoutMs?: number;
}

export class NodeHttpForwarder implements Forwarder {
  readonly #agents = new Map<string, Agent>();
  /** Endpoints that left the config; a request still on an old config gets a connection of its own. */
  readonly #retired = new WeakSet<EndpointState>();
  readonly #h2c = new UndiciForwarder();
  readonly #options: NodeHttpForwarderOptions;

  constructor(options: NodeHttpForwarderOptions = {}) {
    this.#options = options;
  }

  #agent(endpoint: EndpointState): Agent {
    let agent = this.#agents.get(endpoint.key);
    if (agent === undefined) {
      agent = new Agent({
        keepAlive: true,
        maxFreeSockets: this.#options.maxFreeSockets ?? 256,
        timeout: this.#options.idleTimeoutMs ?? 4_000,
        scheduling: 'lifo',
      });
      if (endpoint.mesh) agent.createConnection = createMeshConnection(endpoint);
      this.#agents.set(endpoint.key, agent);
    }
    return agent;
  }

  request(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.endpoint.protocol === 'h2c') return this.#h2c.request(r);
    let headers: UpstreamRequest['headers'];
    try {
      headers = meshRequestHeaders(r.endpoint, r.headers);
    } catch (err) {
      return Promise.reject(err);
    }
    const retired = this.#retired.has(r.endpoint);
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        host: r.endpoint.address,
        port: r.endpoint.port,
        method: r.method,
        path: r.path,
        headers: headers as Record<string, string | string[]>,
        // A one-off connection for a retired endpoint: its own (mTLS) connector, or a plain socket.
        agent: retired ? (r.endpoint.mesh ? undefined : false) : this.#agent(r.endpoint),
        createConnection: retired && r.endpoint.mesh ? createMeshConnection(r.endpoint) : undefined,
        // Host is in the headers; nothing is derived from the request line.
        setHost: false,
        insecureHTTPParser: false,
        signal: r.signal,
      });
      req.once('response', (res: IncomingMessage) => {
        resolve({ statusCode: res.statusCode ?? 502, headers: res.headers, body: res });
      });
      req.once('error', reject);
      const body = r.body;
      if (body === null) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        // The client's own stream: if the upstream fails, stop reading it but do not destroy it,
        // so the client still gets its 5xx.
        (body as Readable).pipe(req);
        req.once('error', () => (body as Readable).unpipe(req));
      }
    });
  }

  retire(endpoint: EndpointState): void {
    this.#retired.add(endpoint);
    if (endpoint.protocol === 'h2c') {
      this.#h2c.retire(endpoint);
      return;
    }
    const agent = this.#agents.get(endpoint.key);
    if (!agent) return;
    this.#agents.delete(endpoint.key);
    // Idle sockets go now; busy ones finish their exchange, then idle out (the agent's timeout).
    for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
  }

  async close(): Promise<void> {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
    await this.#h2c.close();
  }
}

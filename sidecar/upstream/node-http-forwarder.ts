// Forwarder on node:http keep-alive Agents, one per endpoint: the second engine, so the
// benchmark can compare it with the undici pools on the same routes. h2c endpoints are handed
// to the node:http2 forwarder (node:http speaks HTTP/1.1 only). Meshed endpoints get an Agent whose
// connections are mTLS to the peer proxy, made with the certificate current at connect time.
import { type IncomingMessage, request as httpRequest } from 'node:http';
import type { Readable } from 'node:stream';
import { type EndpointAgentOptions, EndpointAgents } from './endpoint-agents.ts';
import type { EndpointState } from './endpoint-state.ts';
import { type Forwarder, explainProtocolMismatch, type UpstreamRequest, type UpstreamResponse } from './forwarder.ts';
import { H2cForwarder } from './h2c-forwarder.ts';
import { meshRequestHeaders } from './mtls.ts';

export type NodeHttpForwarderOptions = EndpointAgentOptions;

export class NodeHttpForwarder implements Forwarder {
  readonly #agents: EndpointAgents;
  readonly #h2c = new H2cForwarder();

  constructor(options: NodeHttpForwarderOptions = {}) {
    this.#agents = new EndpointAgents(options);
  }

  request(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.endpoint.protocol === 'h2c') return this.#h2c.request(r);
    let headers: UpstreamRequest['headers'];
    try {
      headers = meshRequestHeaders(r.endpoint, r.headers);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        host: r.endpoint.address,
        port: r.endpoint.port,
        method: r.method,
        path: r.path,
        headers: headers as Record<string, string | string[]>,
        agent: this.#agents.for(r.endpoint),
        // Host is in the headers; nothing is derived from the request line.
        setHost: false,
        insecureHTTPParser: false,
        signal: r.signal,
      });
      req.once('response', (res: IncomingMessage) => {
        resolve({ statusCode: res.statusCode ?? 502, headers: res.headers, body: res });
      });
      req.once('error', (err) => reject(explainProtocolMismatch(err, r.endpoint)));
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
    if (endpoint.protocol === 'h2c') this.#h2c.retire(endpoint);
    else this.#agents.retire(endpoint);
  }

  async close(): Promise<void> {
    this.#agents.destroy();
    await this.#h2c.close();
  }
}

// Forwarder on http-proxy-3 (the maintained successor of http-proxy, which the design card
// named): the third engine of the benchmark's comparison (issue 3 §7). http-proxy-3 works on a
// server's req/res pair; the Forwarder interface hands it an already-routed request, so each
// exchange gets a small stand-in for both, and `selfHandleResponse` gives the upstream response
// back instead of piping it. Connections are kept alive by one node:http Agent per endpoint
// (for a meshed endpoint, an Agent whose connections are mTLS to the peer proxy); h2c endpoints
// go to the node:http2 forwarder (http-proxy-3's node:http path speaks HTTP/1.1 only).
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { type EndpointAgentOptions, EndpointAgents } from './endpoint-agents.ts';
import type { EndpointState } from './endpoint-state.ts';
import { type Forwarder, explainProtocolMismatch, type UpstreamRequest, type UpstreamResponse } from './forwarder.ts';
import { H2cForwarder } from './h2c-forwarder.ts';
import { meshRequestHeaders } from './mtls.ts';

export type HttpProxy3ForwarderOptions = EndpointAgentOptions;

/**
 * What http-proxy-3 reads of the client request: method, url, headers, an error hook, and
 * `pipe` to send the body (a buffered body or none is written at once; a stream goes as
 * the `buffer` option instead).
 */
interface StandInRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  httpVersionMajor: number;
  socket: { destroyed: boolean };
  on(event: string, listener: (...args: unknown[]) => void): StandInRequest;
  pipe(upstream: Writable): void;
  settle: (res: IncomingMessage | undefined, err: unknown) => void;
}

/** What it reads of the client response: `close` before the end means the client left. */
class StandInResponse extends EventEmitter {
  headersSent = false;
  finished = false;
  writableFinished = false;
}

function noop(this: StandInRequest): StandInRequest {
  return this;
}

export class HttpProxy3Forwarder implements Forwarder {
  readonly #agents: EndpointAgents;
  readonly #h2c = new H2cForwarder();
  readonly #proxy: ProxyServer;

  constructor(options: HttpProxy3ForwarderOptions = {}) {
    this.#agents = new EndpointAgents(options);
    // selfHandleResponse: the response comes back through `proxyRes`, untouched by the
    // library's outgoing passes (the proxy's own hygiene applies to it downstream).
    this.#proxy = createProxyServer({ selfHandleResponse: true, prependPath: false, xfwd: false });
    this.#proxy.on('proxyRes', (proxyRes, req) => {
      (req as unknown as StandInRequest).settle(proxyRes, undefined);
    });
  }

  request(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.endpoint.protocol === 'h2c') return this.#h2c.request(r);
    if (r.signal.aborted) return Promise.reject(r.signal.reason);
    let headers: UpstreamRequest['headers'];
    try {
      headers = meshRequestHeaders(r.endpoint, r.headers);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const stream = r.body !== null && !Buffer.isBuffer(r.body) ? (r.body as Readable) : undefined;
      const body = stream === undefined ? (r.body as Buffer | null) : null;
      const res = new StandInResponse();
      const onAbort = () => res.emit('close');
      let settled = false;
      const req: StandInRequest = {
        method: r.method,
        url: r.path,
        headers: headers as Record<string, string | string[]>,
        httpVersionMajor: 1,
        socket: { destroyed: false },
        on: noop,
        pipe(upstream) {
          if (body === null) upstream.end();
          else upstream.end(body);
        },
        settle(upstream, err) {
          if (settled) return;
          settled = true;
          r.signal.removeEventListener('abort', onAbort);
          if (upstream === undefined) {
            reject(r.signal.aborted ? r.signal.reason : explainProtocolMismatch(err, r.endpoint));
            return;
          }
          // After the headers, an abort must still cut the body (the exchange's AbortSignal).
          if (!upstream.complete) {
            const cut = () => upstream.destroy();
            r.signal.addEventListener('abort', cut, { once: true });
            upstream.once('close', () => r.signal.removeEventListener('abort', cut));
          }
          resolve({ statusCode: upstream.statusCode ?? 502, headers: upstream.headers, body: upstream });
        },
      };
      r.signal.addEventListener('abort', onAbort, { once: true });
      this.#proxy.web(
        req as unknown as IncomingMessage,
        res as never,
        {
          target: { host: r.endpoint.address, port: r.endpoint.port },
          agent: this.#agents.for(r.endpoint),
          // `buffer` is what http-proxy-3 pipes upstream in place of the client request.
          buffer: stream,
        },
        (err) => req.settle(undefined, err),
      );
    });
  }

  retire(endpoint: EndpointState): void {
    if (endpoint.protocol === 'h2c') this.#h2c.retire(endpoint);
    else this.#agents.retire(endpoint);
  }

  async close(): Promise<void> {
    this.#agents.destroy();
    this.#proxy.close();
    await this.#h2c.close();
  }
}

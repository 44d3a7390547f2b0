// A small echo backend like the Gateway API conformance echo: it answers every request with
// JSON {path, host, method, headers, pod, namespace, body} and records what it received, so
// tests can assert both what the client got and what reached the backend.
//
// Per-request controls (request headers, never forwarded anywhere by the echo itself):
//   x-echo-status: 503              answer with this status
//   x-echo-delay-ms: 200            wait this long before answering (an abort during it is recorded)
//   x-echo-set-header: A:1,B:2      add these response headers
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoRequest {
  method: string;
  /** The request target as received (path and query). */
  path: string;
  host: string;
  /** Lowercased names; repeated headers joined with ','. */
  headers: Record<string, string>;
  body: string;
}

export interface EchoServer {
  readonly port: number;
  readonly address: string;
  readonly pod: string;
  readonly requests: EchoRequest[];
  /** Requests whose client went away before the answer was sent. */
  readonly aborted: EchoRequest[];
  /** Resolves when `count` requests have arrived in total. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves when `count` aborts have been seen in total. */
  waitForAborts(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface EchoOptions {
  pod?: string;
  namespace?: string;
  address?: string;
}

function joined(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) out[name] = (values ?? []).join(',');
  return out;
}

function waiter(check: () => boolean, what: string, timeoutMs: number, listeners: Set<() => void>): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      listeners.delete(listener);
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const listener = () => {
      if (!check()) return;
      clearTimeout(timer);
      listeners.delete(listener);
      resolve();
    };
    listeners.add(listener);
  });
}

export async function startEchoServer(options: EchoOptions = {}): Promise<EchoServer> {
  const pod = options.pod ?? 'echo';
  const requests: EchoRequest[] = [];
  const aborted: EchoRequest[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const record: EchoRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        host: req.headers.host ?? '',
        headers: joined(req),
        body: Buffer.concat(chunks).toString(),
      };
      requests.push(record);
      notify();
      res.once('close', () => {
        if (!res.writableFinished) {
          aborted.push(record);
          notify();
        }
      });
      const status = Number(req.headers['x-echo-status'] ?? 200);
      const delay = Number(req.headers['x-echo-delay-ms'] ?? 0);
      const extra: Record<string, string> = {};
      const set = req.headers['x-echo-set-header'];
      if (typeof set === 'string') {
        for (const pair of set.split(',')) {
          const i = pair.indexOf(':');
          if (i > 0) extra[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
        }
      }
      const answer = () => {
        if (res.destroyed) return;
        const body = JSON.stringify({ ...record, pod, namespace: options.namespace ?? '' });
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          ...extra,
        });
        res.end(body);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  const address = options.address ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address,
    pod,
    requests,
    aborted,
    waitForRequests: (count, timeoutMs = 5_000) =>
      waiter(() => requests.length >= count, `${count} requests at ${pod}`, timeoutMs, listeners),
    waitForAborts: (count, timeoutMs = 5_000) =>
      waiter(() => aborted.length >= count, `${count} aborts at ${pod}`, timeoutMs, listeners),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

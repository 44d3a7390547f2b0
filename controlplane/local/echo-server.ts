// The echo server `weft echo` runs and `weft local` puts in place of every container image: it answers like the
// Gateway API conformance backends so the same checks work against it.
//
// - JSON (default, like echo-basic): `{path, host, method, proto, headers, namespace, ingress, service, pod,
//   httpPort}` with `Content-Type: application/json`. Header names are in Go's canonical form, Host is not among
//   them (Go moves it to `host`), values are lists.
// - Text (like Istio's echo-advanced, what the mesh harness reads): `Key=value` lines — ServiceVersion,
//   ServicePort, Host, URL, Namespace, Method, Proto, IP, one `RequestHeader=Name:value` per value, Hostname —
//   with `Content-Type: application/text`. Chosen per server (`format: 'istio'`, what `weft local` picks for
//   echo-advanced images) or per request with the header `X-Echo-Format: istio` (or `json`).
//
// Both: `X-Echo-Set-Header: Name:value,…` and `?headers=Name:value,…` add response headers; `/status/NNN` answers
// NNN; `/retry/…?uuid=&succeedAfter=[&responseCode=][&delayRetry=]` fails the first attempts of a uuid (the retry
// simulator); `?delay=<Go duration>` waits first; `/health` answers `OK`; `/ws` is a WebSocket echo; h2c (prior
// knowledge) is answered on every port too, and alone on h2c ports (echo-basic's 3001). `X-Echo-Call: <http URL>`
// makes the server call that URL first, as an app calling another Service would — through the HTTP proxy of env
// HTTP_PROXY when set (a sidecar's outbound listener in `weft local`), passing on the trace context headers as an
// instrumented app does — and answer JSON with the callee's reply under `call`. Each echoed request logs `Echoing
// back request made to <RequestURI> to client (<addr>)` — the conformance suite finds mirrored requests by that line.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import {
  constants as h2constants,
  createServer as createH2cServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { hostname as osHostname } from 'node:os';
import type { Duplex } from 'node:stream';

export type EchoFormat = 'json' | 'istio';

export interface EchoServerOptions {
  /** Address to bind (a pod's IP in `weft local`). Default 127.0.0.1. */
  host?: string;
  /** HTTP/1.1 ports (0 picks a free one). */
  ports: readonly number[];
  /** Cleartext HTTP/2 (prior knowledge) ports. */
  h2cPorts?: readonly number[];
  /** Default format of echo replies. Default `json`. */
  format?: EchoFormat;
  /** Reported as `pod` / `Hostname`. Default: env POD_NAME, else the host name. */
  podName?: string;
  /** Reported as `namespace` / `Namespace`. Default: env NAMESPACE. */
  namespace?: string;
  /** Reported as `ServiceVersion`. Default: env SERVICE_VERSION. */
  serviceVersion?: string;
  /** Reported as `ingress` and `service` (echo-basic reads INGRESS_NAME and SERVICE_NAME). */
  ingress?: string;
  service?: string;
  /** Where the per-request line goes. Default: stdout. */
  log?: (line: string) => void;
  /** HTTP proxy for `X-Echo-Call` (absolute-form requests). Default: env HTTP_PROXY, else http_proxy, else none. */
  proxy?: string;
}

export interface RunningEcho {
  /** Bound addresses: HTTP/1.1 ports first, then h2c. */
  readonly addresses: readonly (AddressInfo & { protocol: 'http' | 'h2c' })[];
  close(): Promise<void>;
}

interface Identity {
  format: EchoFormat;
  pod: string;
  namespace: string;
  serviceVersion: string;
  ingress: string;
  service: string;
  log: (line: string) => void;
  /** The bound address: calls leave from it (the pod's IP). */
  host: string;
  proxy: URL | undefined;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

// ---- Go compatibility ----

/** Go's textproto.CanonicalMIMEHeaderKey: `x-echo-set-header` → `X-Echo-Set-Header`. */
export function canonicalHeaderName(name: string): string {
  // Go leaves names with characters outside the token set as they are.
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase());
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds of a Go duration (`1s`, `1.5s`, `300ms`, `1m30s`), or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(text);
  if (!m || m[1] === '-') return undefined;
  let total = 0;
  for (const part of text.replace(/^[+]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * DURATION_UNITS[part[2]];
  }
  return total;
}

// ---- the handler ----

/** Request headers by canonical name, values in arrival order, pseudo-headers and Host left out (as Go does). */
function headerLists(req: Req): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (name.startsWith(':') || name.toLowerCase() === 'host') continue;
    const key = canonicalHeaderName(name);
    const list = out[key] ?? [];
    list.push(raw[i + 1]);
    out[key] = list;
  }
  return out;
}

function requestHost(req: Req): string {
  const h2 = req as Http2ServerRequest;
  if (req.httpVersionMajor === 2) return h2.authority ?? String(req.headers.host ?? '');
  return String(req.headers.host ?? '');
}

function remoteAddress(socket: Socket | undefined): { ip: string; addr: string } {
  const ip = socket?.remoteAddress ?? '';
  const port = socket?.remotePort ?? 0;
  return { ip, addr: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}` };
}

/** `Name:value,Name2:value2` pairs (X-Echo-Set-Header and ?headers=) as response headers, repeated names joined by ",". */
function extraResponseHeaders(req: Req, url: URL): [string, string][] {
  const lists: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === 'x-echo-set-header') lists.push(raw[i + 1]);
  const fromQuery = url.searchParams.get('headers');
  if (fromQuery) lists.push(fromQuery);
  const out = new Map<string, string>();
  for (const list of lists) {
    for (const pair of list.split(',')) {
      const trimmed = pair.trim();
      if (trimmed === '') continue;
      const colon = trimmed.indexOf(':');
      const name = colon < 0 ? trimmed : trimmed.slice(0, colon);
      const value = colon < 0 ? '' : trimmed.slice(colon + 1).trim();
      if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
      const prev = out.get(name);
      out.set(name, prev === undefined ? value : `${prev},${value}`);
    }
  }
  return [...out];
}

function send(res: Res, status: number, type: string, body: string, extra: [string, string][] = []): void {
  const headers: Record<string, string> = { 'content-type': type, 'content-length': String(Buffer.byteLength(body)) };
  const r = res as ServerResponse;
  for (const [name, value] of extra) r.setHeader(name, value);
  r.writeHead(status, headers);
  r.end(body);
}

function echoBody(req: Req, id: Identity, format: EchoFormat, localPort: number): { type: string; body: string } {
  const proto = `HTTP/${req.httpVersion}`;
  const host = requestHost(req);
  const headers = headerLists(req);
  if (format === 'istio') {
    const lines = [`ServiceVersion=${id.serviceVersion}`, `ServicePort=${localPort}`, `Host=${host}`, `URL=${req.url}`];
    if (id.namespace) lines.push(`Namespace=${id.namespace}`);
    lines.push(`Method=${req.method}`, `Proto=${proto}`, `IP=${remoteAddress(req.socket as Socket).ip}`);
    for (const name of Object.keys(headers).sort())
      for (const v of headers[name]) lines.push(`RequestHeader=${name}:${v}`);
    lines.push(`Hostname=${id.pod}`);
    return { type: 'application/text', body: `${lines.join('\n')}\n` };
  }
  const reply = {
    path: req.url,
    host,
    method: req.method,
    proto,
    headers,
    namespace: id.namespace,
    ingress: id.ingress,
    service: id.service,
    pod: id.pod,
    httpPort: String(localPort),
  };
  return { type: 'application/json', body: `${JSON.stringify(reply, null, ' ')}\n` };
}

// ---- X-Echo-Call ----

/** What an instrumented app copies from the request it serves onto the calls it makes. */
const PROPAGATED = [
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-request-id',
];

interface CallResult {
  url: string;
  status?: number;
  /** The callee's body: parsed when JSON. */
  body?: unknown;
  error?: string;
}

/** GET `target` (through the proxy when there is one), with the trace context of `req`. */
function callOut(target: URL, req: Req, id: Identity): Promise<CallResult> {
  const headers: Record<string, string> = { host: target.host };
  for (const name of PROPAGATED) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const viaProxy = id.proxy !== undefined;
  const local = id.host === '0.0.0.0' || id.host === '::' ? undefined : id.host;
  return new Promise((resolve) => {
    const out = request(
      {
        host: viaProxy ? id.proxy!.hostname : target.hostname,
        port: viaProxy ? id.proxy!.port || 80 : target.port || 80,
        path: viaProxy ? target.href : target.pathname + target.search,
        headers,
        localAddress: local,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ url: target.href, status: res.statusCode, body });
        });
        res.on('error', (err) => resolve({ url: target.href, error: err.message }));
      },
    );
    out.on('timeout', () => out.destroy(new Error('timed out')));
    out.on('error', (err) => resolve({ url: target.href, error: err.message }));
    out.end();
  });
}

/** Attempts seen per `uuid` by the retry simulator. */
const retryAttempts = new Map<string, number>();

/**
 * echo-basic's `/retry/…` simulator: the first `succeedAfter` attempts of a `uuid` fail — answered with
 * `responseCode` when given, else the connection is reset — after `delayRetry` when given; later ones are echoed.
 * True when the request is to be echoed.
 */
function retrySimulation(req: Req, res: Res, url: URL): boolean {
  const uuid = url.searchParams.get('uuid');
  const succeedAfter = Number.parseInt(url.searchParams.get('succeedAfter') ?? '', 10);
  if (!uuid || !Number.isInteger(succeedAfter)) {
    send(res, 400, 'text/plain; charset=utf-8', uuid ? 'succeedAfter is required' : 'uuid is required');
    return false;
  }
  const attempts = retryAttempts.get(uuid) ?? 0;
  if (attempts >= succeedAfter) return true;
  retryAttempts.set(uuid, attempts + 1);
  const code = Number.parseInt(url.searchParams.get('responseCode') ?? '', 10);
  const fail = () => {
    if (Number.isInteger(code)) send(res, code, 'text/plain; charset=utf-8', '');
    else if (req.httpVersionMajor === 2) {
      // Only this stream is reset: the session may carry other requests.
      (res as Http2ServerResponse).stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
    } else {
      const socket = req.socket as Socket;
      if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
      else socket.destroy();
    }
  };
  const delayText = url.searchParams.get('delayRetry');
  const delayMs = delayText === null ? 0 : parseGoDuration(delayText);
  if (delayMs === undefined) {
    send(res, 500, 'text/plain; charset=utf-8', `delayRetry ${JSON.stringify(delayText)} is not a duration\n`);
    return false;
  }
  if (delayMs > 0) setTimeout(fail, delayMs);
  else fail();
  return false;
}

function handler(id: Identity): (req: Req, res: Res) => void {
  return (req, res) => {
    // The body is not echoed; read it so the connection can be reused.
    req.resume();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://echo.invalid');
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad request target\n');
      return;
    }
    const localPort = (req.socket as Socket | undefined)?.localPort ?? 0;
    if (url.pathname === '/health') {
      send(res, 200, 'text/plain; charset=utf-8', 'OK');
      return;
    }
    const status = /^\/status\/(\d{1,3})$/.exec(url.pathname);
    if (status) {
      const code = Number(status[1]);
      if (code < 200 || code > 599) send(res, 400, 'text/plain; charset=utf-8', `status ${code} out of range\n`);
      else send(res, code, 'text/plain; charset=utf-8', '', extraResponseHeaders(req, url));
      return;
    }
    if (url.pathname.startsWith('/retry/') && !retrySimulation(req, res, url)) return;
    const delayText = url.searchParams.get('delay');
    const delayMs = delayText === null ? 0 : parseGoDuration(delayText);
    if (delayMs === undefined) {
      send(res, 400, 'text/plain; charset=utf-8', `delay ${JSON.stringify(delayText)} is not a duration like 1s\n`);
      return;
    }
    const call = req.headers['x-echo-call'];
    if (typeof call === 'string') {
      const target = URL.canParse(call) ? new URL(call) : undefined;
      if (target?.protocol !== 'http:') {
        send(res, 400, 'text/plain; charset=utf-8', 'X-Echo-Call takes an http:// URL\n');
        return;
      }
      void callOut(target, req, id).then((result) => {
        const reply = { ...JSON.parse(echoBody(req, id, 'json', localPort).body), call: result };
        id.log(`Echoing back request made to ${req.url} to client (${remoteAddress(req.socket as Socket).addr})`);
        send(res, result.error === undefined ? 200 : 502, 'application/json', `${JSON.stringify(reply, null, ' ')}\n`);
      });
      return;
    }
    const respond = () => {
      if (res.writableEnded || (res as ServerResponse).destroyed) return;
      const asked = String(req.headers['x-echo-format'] ?? '').toLowerCase();
      const format: EchoFormat =
        asked === 'istio' || asked === 'text' ? 'istio' : asked === 'json' ? 'json' : id.format;
      const { type, body } = echoBody(req, id, format, localPort);
      const extra = extraResponseHeaders(req, url);
      if (format === 'json') extra.unshift(['X-Content-Type-Options', 'nosniff']);
      id.log(`Echoing back request made to ${req.url} to client (${remoteAddress(req.socket as Socket).addr})`);
      send(res, 200, type, body, extra);
    };
    if (delayMs > 0) {
      const timer = setTimeout(respond, delayMs);
      res.once('close', () => clearTimeout(timer));
    } else respond();
  };
}

// ---- WebSocket echo (RFC 6455, just enough to echo frames back) ----

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function websocketEcho(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const key = req.headers['sec-websocket-key'];
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/ws' || typeof key !== 'string' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  const accept = createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buffer: Buffer = head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  const frame = (opcode: number, fin: boolean, payload: Buffer): Buffer => {
    const len = payload.length;
    const first = (fin ? 0x80 : 0) | opcode;
    let header: Buffer;
    if (len < 126) header = Buffer.from([first, len]);
    else if (len < 65536) {
      header = Buffer.alloc(4);
      header[0] = first;
      header[1] = 126;
      header.writeUInt16BE(len, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = first;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt(len), 2);
    }
    return Buffer.concat([header, payload]);
  };
  const onData = (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const fin = (buffer[0] & 0x80) !== 0;
      const opcode = buffer[0] & 0x0f;
      const masked = (buffer[1] & 0x80) !== 0;
      let len = buffer[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buffer.length < 4) return;
        len = buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buffer.length < 10) return;
        const big = buffer.readBigUInt64BE(2);
        if (big > 16n * 1024n * 1024n) {
          socket.destroy();
          return;
        }
        len = Number(big);
        offset = 10;
      }
      const maskAt = offset;
      if (masked) offset += 4;
      if (buffer.length < offset + len) return;
      const payload = Buffer.from(buffer.subarray(offset, offset + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buffer[maskAt + (i % 4)];
      buffer = buffer.subarray(offset + len);
      if (opcode === 0x8) {
        socket.end(frame(0x8, true, payload.subarray(0, 125)));
        return;
      }
      if (opcode === 0x9) socket.write(frame(0xa, true, payload));
      else if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) socket.write(frame(opcode, fin, payload));
    }
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  if (buffer.length > 0) {
    const first = buffer;
    buffer = Buffer.alloc(0);
    onData(first);
  }
}

// ---- servers ----

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Gives a new connection to the HTTP/2 server if it opens with the HTTP/2 preface, else to the HTTP/1.1 one. */
function handOver(socket: Socket, http1: Server, h2: Http2Server): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (isH2 && n < H2_PREFACE.length) return;
    socket.off('data', onData);
    socket.pause();
    // The servers read what was already received from the socket's buffer.
    socket.unshift(seen);
    if (isH2) h2.emit('connection', socket);
    else {
      http1.emit('connection', socket);
      socket.resume();
    }
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
}

function listen(server: Server | Http2Server | NetServer, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function proxyUrl(text: string | undefined): URL | undefined {
  if (text === undefined || text === '') return undefined;
  return new URL(/^[a-z]+:\/\//i.test(text) ? text : `http://${text}`);
}

/** Starts the echo server on every port; resolves once all listen (rejects, closing what it opened, if one cannot). */
export async function startEchoServer(options: EchoServerOptions): Promise<RunningEcho> {
  const host = options.host ?? '127.0.0.1';
  const id: Identity = {
    format: options.format ?? 'json',
    pod: options.podName ?? process.env.POD_NAME ?? osHostname(),
    namespace: options.namespace ?? process.env.NAMESPACE ?? '',
    serviceVersion: options.serviceVersion ?? process.env.SERVICE_VERSION ?? '',
    ingress: options.ingress ?? process.env.INGRESS_NAME ?? '',
    service: options.service ?? process.env.SERVICE_NAME ?? '',
    log: options.log ?? ((line) => process.stdout.write(`${line}\n`)),
    host,
    proxy: proxyUrl(options.proxy ?? process.env.HTTP_PROXY ?? process.env.http_proxy),
  };
  const handle = handler(id);
  const servers: (Server | Http2Server | NetServer)[] = [];
  const sockets = new Set<Socket | Duplex>();
  const addresses: (AddressInfo & { protocol: 'http' | 'h2c' })[] = [];
  const closeAll = () =>
    Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            for (const socket of sockets) socket.destroy();
          }),
      ),
    ).then(() => {});
  try {
    for (const port of options.ports) {
      const http1 = createServer({ keepAliveTimeout: 65_000 }, handle);
      http1.on('upgrade', (req, socket, head) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        websocketEcho(req, socket, head);
      });
      // Also h2c with prior knowledge on the same port: weft local cannot know which Service port names a container
      // port kubernetes.io/h2c, so every port answers both.
      const h2 = createH2cServer({}, handle);
      const server = createNetServer((s: Socket) => {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
        handOver(s, http1, h2);
      });
      servers.push(server);
      addresses.push({ ...(await listen(server, port, host)), protocol: 'http' });
    }
    for (const port of options.h2cPorts ?? []) {
      const server = createH2cServer({}, handle);
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
      });
      servers.push(server);
      addresses.push({ ...(await listen(server, port, host)), protocol: 'h2c' });
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { addresses, close: closeAll };
}

// WebSocket upgrades: routed like any request, then tunnelled to the chosen endpoint over a
// fresh HTTP/1.1 connection (an upgraded connection cannot go back to a keep-alive pool).
// Allowed for http1 and websocket clusters; h2c clusters cannot carry an HTTP/1.1 upgrade.
import { type IncomingMessage, request as httpRequest, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { HeaderMap } from '../filters/header-modifier.ts';
import { pickEndpoint } from '../upstream/balancer.ts';
import { isConnectFailure } from '../upstream/forwarder.ts';
import { createMeshConnection, meshRequestHeaders } from '../upstream/mtls.ts';
import type { ExchangePlan, Runtime } from './exchange.ts';
import { downstreamResponseHeaders } from './hygiene.ts';

/** `Upgrade: websocket` on a GET: the only upgrade that leaves Node's HTTP parser. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && upgrade !== undefined && upgrade.trim().toLowerCase() === 'websocket';
}

function headLines(status: number, headers: HeaderMap | undefined): string {
  let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  if (headers) {
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) out += `${name}: ${v}\r\n`;
      else out += `${name}: ${value}\r\n`;
    }
  }
  return out;
}

/** An answer written straight to a socket that left the HTTP parser; the connection closes after it. */
export function rawReply(socket: Duplex, status: number, body: string, headers?: HeaderMap): void {
  const payload = Buffer.from(body);
  const head = headLines(status, { ...headers, 'content-length': String(payload.length), connection: 'close' });
  socket.end(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), payload]));
}

export function rawReplyError(socket: Duplex, err: ProxyError): void {
  rawReply(socket, err.status, `${err.code}: ${err.message}\n`, {
    'content-type': 'text/plain; charset=utf-8',
    'x-weft-error': err.code,
  });
}

function ignore(): void {}

export function forwardWebSocket(rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer, plan: ExchangePlan) {
  socket.on('error', ignore);
  if (plan.cluster.protocol === 'h2c') {
    rawReplyError(
      socket,
      new ProxyError(ProxyErrorCode.UpgradeUnsupported, 400, `cluster ${plan.cluster.key} speaks h2c, not WebSocket`),
    );
    return;
  }
  const endpoint = pickEndpoint(plan.cluster.endpoints, Date.now());
  if (endpoint === undefined) {
    rawReplyError(socket, new ProxyError(ProxyErrorCode.NoEndpoint, 503, `no ready endpoint in ${plan.cluster.key}`));
    return;
  }
  const state = endpoint.state;
  let headers: HeaderMap;
  try {
    // A meshed endpoint: mTLS to its proxy, or a 503 when there is no certificate (never plaintext).
    headers = meshRequestHeaders(state, plan.headers);
  } catch (err) {
    rawReplyError(socket, err as ProxyError);
    return;
  }
  state.inFlight++;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    state.inFlight--;
  };
  const upstream = httpRequest({
    host: state.address,
    port: state.port,
    method: 'GET',
    path: plan.path,
    headers: { ...headers, connection: 'Upgrade', upgrade: req.headers.upgrade } as Record<string, string>,
    agent: state.mesh ? undefined : false,
    createConnection: state.mesh ? createMeshConnection(state) : undefined,
    setHost: false,
    insecureHTTPParser: false,
  });
  socket.once('close', () => {
    upstream.destroy();
    finish();
  });
  upstream.on('upgrade', (res: IncomingMessage, upstreamSocket: Duplex, upstreamHead: Buffer) => {
    state.recordSuccess();
    let out = `HTTP/1.1 101 ${STATUS_CODES[101]}\r\n`;
    for (let i = 0; i < res.rawHeaders.length; i += 2) out += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
    socket.write(`${out}\r\n`, 'latin1');
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    upstreamSocket.on('error', ignore);
    upstreamSocket.once('close', () => socket.destroy());
    socket.once('close', () => upstreamSocket.destroy());
    upstreamSocket.pipe(socket);
    socket.pipe(upstreamSocket);
  });
  upstream.on('response', (res: IncomingMessage) => {
    // The backend declined the upgrade: pass its answer on, framed by closing the connection.
    const headers = downstreamResponseHeaders(res.headers);
    delete headers['content-length'];
    headers.connection = 'close';
    socket.write(`${headLines(res.statusCode ?? 502, headers)}\r\n`, 'latin1');
    res.pipe(socket);
  });
  upstream.on('error', (err) => {
    finish();
    if (socket.destroyed) return;
    rt.metrics?.upstreamConnectError(plan.cluster.key);
    if (isConnectFailure(err)) state.recordConnectFailure(Date.now());
    rt.log.debug({ err }, 'websocket upstream failed');
    rawReplyError(
      socket,
      err instanceof ProxyError
        ? err
        : new ProxyError(ProxyErrorCode.UpstreamConnect, 503, `upstream failed: ${err.message}`),
    );
  });
  upstream.end();
}

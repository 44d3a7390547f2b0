// The gateway harness's client (README §4.2, utils/roundtripper DefaultRoundTripper) in Node: HTTP/1.1 without
// keep-alive, HTTPS with the case's SNI, trusted root and client certificate, HTTP/2 over TLS, cleartext HTTP/2
// with prior knowledge, and a WebSocket echo. Headers are sent with Go's canonical names, plus what Go's client
// adds (User-Agent, Accept-Encoding, X-Echo-Set-Header on every request). Redirects are not followed when the case
// says so; otherwise followed as Go's http.Client does (up to 10).
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import type { EchoJson, GatewayExchange } from './compare.ts';

export interface TlsMaterial {
  serverName?: string;
  /** PEM of the only trusted root. */
  ca?: string;
  cert?: string;
  key?: string;
}

export interface RoundTrip {
  /** `http://host[:port]/path` with the Gateway's address as the authority (the port dropped when default). */
  url: URL;
  /** Where to connect (the world may move ports). */
  connect: { host: string; port: number };
  method: string;
  /** Overrides the Host header / :authority. */
  host?: string;
  headers: Record<string, string>;
  protocol: string;
  tls?: TlsMaterial;
  unfollowRedirect?: boolean;
  timeoutMs: number;
}

/** textproto.CanonicalMIMEHeaderKey. */
export function canonicalHeader(name: string): string {
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return name;
  return name
    .split('-')
    .map((p) => (p.length > 0 ? p[0].toUpperCase() + p.slice(1).toLowerCase() : p))
    .join('-');
}

function headerMap(raw: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(':') || v === undefined) continue;
    out.set(k.toLowerCase(), Array.isArray(v) ? v : [String(v)]);
  }
  return out;
}

function rawHeaderMap(raw: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    out.set(k, [...(out.get(k) ?? []), raw[i + 1]]);
  }
  return out;
}

/** Go's hostname verification (crypto/x509 matchHostnames): a leading `*` label matches exactly one label. */
export function goVerifyHostname(host: string, cert: { subjectaltname?: string }): Error | undefined {
  const want = host.toLowerCase().replace(/\.$/, '');
  const sans = (cert.subjectaltname ?? '').split(/,\s*/);
  if (isIP(want)) {
    if (sans.some((s) => s === `IP Address:${want}`)) return undefined;
    return new Error(`x509: certificate is not valid for IP ${host}`);
  }
  const names = sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase().replace(/\.$/, ''));
  for (const pattern of names) {
    const p = pattern.split('.');
    const h = want.split('.');
    if (p.length !== h.length) continue;
    if (p.every((label, i) => (i === 0 && label === '*') || label === h[i])) return undefined;
  }
  return new Error(`x509: certificate is valid for ${names.join(', ')}, not ${host}`);
}

function parseEcho(headers: Map<string, string[]>, body: string, method: string): EchoJson {
  if (headers.get('content-type')?.[0] !== 'application/json') return { method };
  return JSON.parse(body) as EchoJson;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function roundTrip(rt: RoundTrip): Promise<GatewayExchange> {
  let current = rt;
  for (let hops = 0; ; hops++) {
    const x = await once(current);
    const location = x.headers.get('location')?.[0];
    if (current.unfollowRedirect || !REDIRECTS.has(x.status) || location === undefined) return x;
    if (hops >= 10) throw new Error('stopped after 10 redirects');
    // Go follows to the Location as a new URL: only a Location on the same authority can be reached here.
    const next = new URL(location, current.url);
    if (next.host !== current.url.host) throw new Error(`redirect to ${next.href} cannot be followed from here`);
    current = { ...current, url: next, host: undefined, method: x.status === 303 ? 'GET' : current.method };
  }
}

function requestHeaders(rt: RoundTrip, h2: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  headers['User-Agent'] = h2 ? 'Go-http-client/2.0' : 'Go-http-client/1.1';
  for (const [k, v] of Object.entries(rt.headers)) headers[canonicalHeader(k)] = v;
  headers['Accept-Encoding'] ??= 'gzip';
  return headers;
}

function once(rt: RoundTrip): Promise<GatewayExchange> {
  if (rt.protocol === 'H2' || rt.protocol === 'H2C_PRIOR_KNOWLEDGE') return h2Once(rt);
  const https = rt.url.protocol === 'https:';
  const headers = requestHeaders(rt, false);
  headers.Host = rt.host ?? rt.url.host;
  if (!https) headers.Connection = 'close';
  return new Promise((resolve, reject) => {
    const common = {
      host: rt.connect.host,
      port: rt.connect.port,
      method: rt.method,
      path: `${rt.url.pathname}${rt.url.search}`,
      headers,
      setHost: false,
      agent: false as const,
      timeout: rt.timeoutMs,
    };
    const req = https
      ? httpsRequest({
          ...common,
          servername: rt.tls?.serverName ?? rt.url.hostname,
          ca: rt.tls?.ca,
          cert: rt.tls?.cert,
          key: rt.tls?.key,
          rejectUnauthorized: true,
          checkServerIdentity: (_h, cert) => goVerifyHostname(rt.tls?.serverName ?? rt.url.hostname, cert),
        })
      : httpRequest(common);
    req.on('timeout', () => req.destroy(new Error(`no response within ${rt.timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          const h = rawHeaderMap(res.rawHeaders);
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: h, echo: parseEcho(h, body, rt.method), url: rt.url });
        } catch (e) {
          reject(new Error(`unexpected error reading response: ${(e as Error).message}`));
        }
      });
    });
    req.end();
  });
}

function h2Once(rt: RoundTrip): Promise<GatewayExchange> {
  const tls = rt.protocol === 'H2';
  const authority = `${tls ? 'https' : 'http'}://${rt.connect.host}:${rt.connect.port}`;
  return new Promise((resolve, reject) => {
    const session = h2connect(authority, {
      servername: tls ? (rt.tls?.serverName ?? rt.url.hostname) : undefined,
      ca: rt.tls?.ca,
      cert: rt.tls?.cert,
      key: rt.tls?.key,
      rejectUnauthorized: true,
      checkServerIdentity: (_h: string, cert: { subjectaltname?: string }) =>
        goVerifyHostname(rt.tls?.serverName ?? rt.url.hostname, cert),
      ALPNProtocols: ['h2'],
    });
    const timer = setTimeout(() => {
      session.destroy(new Error(`no response within ${rt.timeoutMs} ms`));
    }, rt.timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(e);
    };
    session.on('error', fail);
    const headers = requestHeaders(rt, true);
    const stream = session.request({
      ...headers,
      ':method': rt.method,
      ':path': `${rt.url.pathname}${rt.url.search}`,
      ':scheme': tls ? 'https' : 'http',
      ':authority': rt.host ?? rt.url.host,
    });
    stream.on('error', fail);
    let status = 0;
    let h = new Map<string, string[]>();
    stream.on('response', (resHeaders) => {
      status = Number(resHeaders[':status']);
      h = headerMap(resHeaders);
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      try {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status, headers: h, echo: parseEcho(h, body, rt.method), url: rt.url });
      } catch (e) {
        reject(new Error(`unexpected error reading response: ${(e as Error).message}`));
      }
    });
    stream.end();
  });
}

// ---------------------------------------------------------------- WebSocket (RFC 6455, client side)

function frame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (len < 126) head[1] = 0x80 | len;
  else if (len < 65536) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

/** Reads one unmasked data frame from `buf`: [opcode, payload, rest], or undefined when incomplete. */
function readFrame(buf: Buffer): [number, Buffer, Buffer] | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0] & 0x0f;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  if (buf[1] & 0x80) off += 4; // a masked server frame is a protocol error, but read past the key anyway
  if (buf.length < off + len) return undefined;
  return [opcode, buf.subarray(off, off + len), buf.subarray(off + len)];
}

/** Dials `ws://`, sends each frame and returns the first mismatch of the echoed frames, or undefined. */
export function websocketEcho(
  rt: Pick<RoundTrip, 'url' | 'connect' | 'timeoutMs'>,
  origin: string,
  frames: { type: 'text' | 'binary'; data: Buffer }[],
): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = httpRequest({
      host: rt.connect.host,
      port: rt.connect.port,
      path: `${rt.url.pathname}${rt.url.search}`,
      headers: {
        Host: rt.url.host,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        Origin: origin,
      },
      setHost: false,
      agent: false,
      timeout: rt.timeoutMs,
    });
    let socket: Socket | undefined;
    const timer = setTimeout(() => {
      req.destroy();
      socket?.destroy();
      reject(new Error(`websocket: nothing within ${rt.timeoutMs} ms`));
    }, rt.timeoutMs);
    const done = (r: string | undefined) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(r);
    };
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      res.resume();
      done(`websocket: bad handshake (status ${res.statusCode})`);
    });
    req.on('upgrade', (res, sock, head) => {
      socket = sock;
      if (res.statusCode !== 101) return done(`websocket: bad handshake (status ${res.statusCode})`);
      let buf: Buffer = Buffer.from(head);
      let i = 0;
      const sendNext = () => {
        if (i >= frames.length) {
          sock.write(frame(0x8, Buffer.from([0x03, 0xe8])));
          return done(undefined);
        }
        sock.write(frame(frames[i].type === 'text' ? 0x1 : 0x2, frames[i].data));
      };
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const f = readFrame(buf);
          if (!f) return;
          buf = f[2];
          if (f[0] === 0x9 || f[0] === 0xa) continue; // ping/pong
          if (f[0] === 0x8) return done(`websocket: closed by the server before frame ${i}`);
          const want = frames[i];
          const type = f[0] === 0x1 ? 'text' : 'binary';
          if (type !== want.type || !f[1].equals(want.data))
            return done(
              `websocket: frame ${i} echoed as ${type} ${JSON.stringify(f[1].toString())}, sent ${want.type}`,
            );
          i++;
          sendNext();
        }
      });
      sock.on('error', () => done(`websocket: connection error at frame ${i}`));
      sendNext();
    });
    req.end();
  });
}

// A small HTTP/2 client for the proxy's HTTP/2 tests: one session, requests with exactly the
// headers a test gives (pseudo-headers included), and the answer or the stream's reset. Not a test file.
import { type ClientHttp2Session, connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';

export interface Http2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** RST_STREAM code when the proxy reset the stream instead of answering (0 = answered). */
  rstCode: number;
}

export interface Http2Target {
  port: number;
  /** TLS (h2 by ALPN) with this SNI; absent: cleartext with prior knowledge. */
  servername?: string;
}

export function openSession(t: Http2Target): Promise<ClientHttp2Session> {
  const tls = t.servername !== undefined;
  return new Promise((resolve, reject) => {
    const session = connect(
      `${tls ? 'https' : 'http'}://127.0.0.1:${t.port}`,
      tls ? { servername: t.servername, rejectUnauthorized: false } : {},
    );
    session.once('connect', () => {
      session.off('error', reject);
      // Later session errors surface as failed requests.
      session.on('error', () => {});
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** Sends one request on `session`; `headers` defaults to GET / with :authority example.com. */
export function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string): Promise<Http2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', ':authority': 'example.com', ...headers });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', () =>
      resolve({
        status,
        headers: responseHeaders,
        body: Buffer.concat(chunks).toString(),
        rstCode: stream.rstCode ?? 0,
      }),
    );
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // A reset stream closes too; only other failures reject.
      if (err.code !== 'ERR_HTTP2_STREAM_ERROR') reject(err);
    });
    stream.end(body);
  });
}

/** One request on a fresh session, closed afterwards. */
export async function once(t: Http2Target, headers: OutgoingHttpHeaders, body?: string): Promise<Http2Reply> {
  const session = await openSession(t);
  try {
    return await request(session, headers, body);
  } finally {
    session.close();
  }
}

// ---------------------------------------------------------------- raw frames (for requests node:http2 refuses to send)

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing, names and values as given (no validation). */
export function headerBlock(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v);
  }
  return Buffer.concat(parts);
}

/**
 * Opens a cleartext connection, sends the preface, an empty SETTINGS and `frames`, and collects
 * the frames the server sends until stream 1 ends (answer or reset), the connection goes away
 * or closes, or `timeoutMs` passes.
 */
export function rawHttp2(port: number, frames: Buffer[], timeoutMs = 5_000): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1');
    const got: Frame[] = [];
    let buf = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('error', (err) => (got.length > 0 ? done() : reject(err)));
    socket.on('close', done);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        const f: Frame = {
          type: buf[3],
          flags: buf[4],
          stream: buf.readUInt32BE(5) & 0x7fffffff,
          payload: buf.subarray(9, 9 + length),
        };
        buf = buf.subarray(9 + length);
        got.push(f);
        if (f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK))
          socket.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
        const endsStream1 =
          f.stream === 1 &&
          (f.type === FrameType.RST_STREAM ||
            ((f.type === FrameType.HEADERS || f.type === FrameType.DATA) && f.flags & Flag.END_STREAM));
        if (endsStream1 || f.type === FrameType.GOAWAY) return done();
      }
    });
    socket.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
        frame(FrameType.SETTINGS, 0, 0),
        ...frames,
      ]),
    );
  });
}

/** The request fields of a GET to example.com/, before the test's own. */
export const BASE_FIELDS: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/'],
  [':authority', 'example.com'],
];

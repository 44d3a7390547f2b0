// Forwarder for h2c clusters (Service port appProtocol `kubernetes.io/h2c`): HTTP/2 over cleartext with prior
// knowledge, on node:http2 client sessions pooled per endpoint. A session carries up to its stream limit at once (ours,
// lowered by the peer's SETTINGS_MAX_CONCURRENT_STREAMS); a full one gets a sibling, up to a bound per endpoint, past
// which nghttp2 queues streams on the least busy session. A session that received GOAWAY, failed or closed takes no
// new streams; a stream the peer provably did not process (REFUSED_STREAM, or above the GOAWAY's last stream id) is
// sent once more on another session when its body can be replayed. Idle sessions are closed. The other engines hand
// their h2c endpoints here; meshed endpoints never come (proxy to proxy is HTTP/1.1 over mTLS; h2c is the last hop).
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  connect as h2connect,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { connect as netConnect } from 'node:net';
import { Readable } from 'node:stream';
import type { EndpointState } from './endpoint-state.ts';
import type { Forwarder, UpstreamRequest, UpstreamResponse } from './forwarder.ts';

export interface H2cForwarderOptions {
  /** Streams one session carries at once, at most; the peer's SETTINGS_MAX_CONCURRENT_STREAMS may lower it. */
  maxStreamsPerSession?: number;
  /** Sessions per endpoint, at most; beyond it streams queue on the least busy one. */
  maxSessionsPerEndpoint?: number;
  /** A session without streams is closed after this long (ms). */
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2; node:http2 throws on them), and Host, which becomes
 * `:authority`. `te` is handled apart: only `trailers` may pass.
 */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'host',
  'te',
]);

/** Per-stream receive window: large enough that a body arriving at loopback speed is not throttled by window updates. */
const STREAM_WINDOW = 1 << 20;
/** Per-session receive window (all streams together). */
const SESSION_WINDOW = 8 << 20;

/** An error counted as a reset upstream connection (metrics: upstream_reset), as a dropped HTTP/1.1 connection is. */
function resetError(message: string, cause: unknown): Error {
  return Object.assign(new Error(message, { cause }), { code: 'ECONNRESET' });
}

/** A stream the peer did not process: safe to send again. */
class Unprocessed extends Error {}

function noop(): void {}

/** One HTTP/2 session to an endpoint, with the count of its open streams. */
class Session {
  readonly h2: ClientHttp2Session;
  /** Resolves once the TCP connection is up; rejects with the socket's error (ECONNREFUSED…) if it never is. */
  readonly ready: Promise<void>;
  connected = false;
  /** Whether new streams may be opened on it (not after GOAWAY, an error or close). */
  usable = true;
  /** Whether the peer's SETTINGS arrived: a session that fails before them was not talking to an HTTP/2 server. */
  settled = false;
  active = 0;
  /** The last stream id of a GOAWAY received: streams above it were not processed. */
  goawayLastStreamId: number | undefined;
  error: Error | undefined;
  readonly #idleMs: number;
  #idle: NodeJS.Timeout | undefined;
  readonly #gone: (s: Session) => void;

  constructor(endpoint: EndpointState, options: Required<H2cForwarderOptions>, gone: (s: Session) => void) {
    this.#idleMs = options.idleTimeoutMs;
    this.#gone = gone;
    const origin = endpoint.origin;
    this.h2 = h2connect(origin, {
      createConnection: () => {
        const socket = netConnect({ host: endpoint.address, port: endpoint.port, noDelay: true });
        socket.setTimeout(options.connectTimeoutMs, () =>
          socket.destroy(
            Object.assign(new Error(`connect to ${origin} timed out`), { code: 'ETIMEDOUT', syscall: 'connect' }),
          ),
        );
        socket.once('connect', () => socket.setTimeout(0));
        return socket;
      },
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.h2.once('connect', () => {
        this.connected = true;
        this.h2.setLocalWindowSize(SESSION_WINDOW);
        resolve();
      });
      this.h2.once('close', () => {
        this.#end();
        if (!this.connected)
          reject(this.error ?? resetError(`h2c session to ${origin} closed before connecting`, null));
      });
    });
    this.ready.catch(noop);
    this.h2.once('remoteSettings', () => {
      this.settled = true;
    });
    this.h2.on('error', (err: Error) => {
      this.error ??= err;
      this.#end();
    });
    this.h2.on('goaway', (_code: number, lastStreamId: number) => {
      this.goawayLastStreamId = lastStreamId;
      this.#end();
    });
    // Idle from the start: a session whose first request never opened a stream is closed all the same.
    this.#armIdle();
  }

  #armIdle(): void {
    this.#idle = setTimeout(() => this.retire(), this.#idleMs);
    this.#idle.unref();
  }

  /** Streams this session may carry now. */
  limit(own: number): number {
    const peer = this.settled ? this.h2.remoteSettings.maxConcurrentStreams : undefined;
    return peer !== undefined && peer < own ? Math.max(peer, 1) : own;
  }

  opened(): void {
    this.active++;
    clearTimeout(this.#idle);
    this.#idle = undefined;
  }

  finished(): void {
    this.active--;
    if (this.active > 0) return;
    // A session that takes no new streams (GOAWAY) closes once its last one is done.
    if (this.usable) this.#armIdle();
    else this.retire();
  }

  /** No new streams; the open ones finish, then the session closes. */
  retire(): void {
    this.#end();
    if (!this.h2.closed && !this.h2.destroyed) this.h2.close();
  }

  #end(): void {
    clearTimeout(this.#idle);
    if (!this.usable) return;
    this.usable = false;
    this.#gone(this);
  }
}

/** The request's headers as HTTP/2 wants them: pseudo-headers first, connection-specific ones left out. */
function requestHeaders(r: UpstreamRequest): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': r.method,
    ':scheme': 'http',
    ':path': r.path,
  };
  let authority = r.headers.host;
  if (Array.isArray(authority)) authority = authority[0];
  out[':authority'] =
    authority ??
    `${r.endpoint.address.includes(':') ? `[${r.endpoint.address}]` : r.endpoint.address}:${r.endpoint.port}`;
  for (const name in r.headers) {
    const value = r.headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    // Pseudo-headers come from an HTTP/2 listener's request; ours were set above.
    if (lower.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(lower)) continue;
    const prev = out[lower];
    // Names differing only in case (a header modifier's spelling) are one field in HTTP/2.
    out[lower] = prev === undefined ? value : ([] as string[]).concat(prev as string | string[], value);
  }
  const te = r.headers.te;
  if (typeof te === 'string' && te.toLowerCase() === 'trailers') out.te = 'trailers';
  return out;
}

function responseHeaders(h: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const name in h) if (name.charCodeAt(0) !== 58) out[name] = h[name];
  return out;
}

/**
 * The response body as a stream that ends only when the peer ended the HTTP/2 stream. node:http2 ends a stream's
 * readable side when its session goes away mid-body (RST code CANCEL, no error): piped on as it is, a cut body
 * would look complete to the client. Destroying the returned stream cancels the HTTP/2 stream.
 */
function responseBody(stream: ClientHttp2Stream, origin: string): Readable {
  const body = new Readable({
    read() {
      stream.resume();
    },
    destroy(err, callback) {
      if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      callback(err);
    },
  });
  stream.on('data', (chunk: Buffer) => {
    if (!body.destroyed && !body.push(chunk)) stream.pause();
  });
  stream.once('end', () => {
    const code = stream.rstCode;
    if (code === undefined || code === constants.NGHTTP2_NO_ERROR) body.push(null);
    else body.destroy(resetError(`h2c stream from ${origin} cut mid-body (code ${code})`, undefined));
  });
  stream.once('error', (err) => body.destroy(err));
  stream.once('close', () => {
    if (!body.readableEnded && !body.destroyed && !stream.readableEnded)
      body.destroy(resetError(`h2c stream from ${origin} closed mid-body (code ${stream.rstCode})`, undefined));
  });
  return body;
}

export class H2cForwarder implements Forwarder {
  readonly #options: Required<H2cForwarderOptions>;
  readonly #pools = new Map<string, Session[]>();
  /** Every open session, pooled or one-off, for close(). */
  readonly #all = new Set<Session>();
  /** Endpoints that left the config; a request still on an old config gets a session closed after it. */
  readonly #retired = new WeakSet<EndpointState>();

  constructor(options: H2cForwarderOptions = {}) {
    this.#options = {
      maxStreamsPerSession: options.maxStreamsPerSession ?? 100,
      maxSessionsPerEndpoint: options.maxSessionsPerEndpoint ?? 4,
      idleTimeoutMs: options.idleTimeoutMs ?? 4_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    };
  }

  #newSession(endpoint: EndpointState, pool: Session[] | undefined): Session {
    const session = new Session(endpoint, this.#options, (s) => {
      if (pool === undefined) return;
      const i = pool.indexOf(s);
      if (i >= 0) pool.splice(i, 1);
      if (pool.length === 0 && this.#pools.get(endpoint.key) === pool) this.#pools.delete(endpoint.key);
    });
    this.#all.add(session);
    session.h2.once('close', () => this.#all.delete(session));
    pool?.push(session);
    return session;
  }

  /** A session with room for one more stream: the first pooled one that has it, else a new one, else the least busy. */
  #session(endpoint: EndpointState): Session {
    let pool = this.#pools.get(endpoint.key);
    if (pool === undefined) {
      pool = [];
      this.#pools.set(endpoint.key, pool);
    }
    const own = this.#options.maxStreamsPerSession;
    let least: Session | undefined;
    for (const s of pool) {
      if (s.active < s.limit(own)) return s;
      if (least === undefined || s.active < least.active) least = s;
    }
    if (least !== undefined && pool.length >= this.#options.maxSessionsPerEndpoint) return least;
    return this.#newSession(endpoint, pool);
  }

  async request(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.signal.aborted) throw r.signal.reason;
    const headers = requestHeaders(r);
    const replayable = r.body === null || Buffer.isBuffer(r.body);
    for (let attempt = 1; ; attempt++) {
      const oneOff = this.#retired.has(r.endpoint);
      const session = oneOff ? this.#newSession(r.endpoint, undefined) : this.#session(r.endpoint);
      // The stream's place is taken now, so requests arriving while the session connects spread as they will run.
      session.opened();
      try {
        if (!session.connected) {
          try {
            await abortable(session.ready, r.signal);
          } catch (err) {
            session.finished();
            throw err;
          }
        }
        return await this.#exchange(session, headers, r, oneOff);
      } catch (err) {
        if (err instanceof Unprocessed) {
          if (attempt === 1 && replayable && !r.signal.aborted) continue;
          throw err.cause;
        }
        throw err;
      }
    }
  }

  #exchange(session: Session, headers: OutgoingHttpHeaders, r: UpstreamRequest, oneOff: boolean) {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const origin = r.endpoint.origin;
      let stream: ClientHttp2Stream;
      try {
        stream = session.h2.request(headers, { endStream: r.body === null });
      } catch (err) {
        // The session went away (GOAWAY, closed) or ran out of stream ids: nothing was sent. Anything else is this
        // request's own fault (a header node:http2 refuses).
        const gone =
          session.h2.closed || session.h2.destroyed || (err as { code?: string }).code === 'ERR_HTTP2_OUT_OF_STREAMS';
        session.finished();
        if (gone || oneOff) session.retire();
        if (!gone) reject(err);
        else {
          const cause = resetError(`h2c session to ${origin} takes no new streams: ${(err as Error).message}`, err);
          reject(new Unprocessed('not sent', { cause }));
        }
        return;
      }
      if (oneOff) session.retire();
      let answered = false;
      let streamError: Error | undefined;
      const onAbort = () => {
        if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      };
      r.signal.addEventListener('abort', onAbort, { once: true });
      stream.on('error', (err: Error) => {
        streamError ??= err;
      });
      stream.once('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
        answered = true;
        resolve({ statusCode: h[':status'] ?? 502, headers: responseHeaders(h), body: responseBody(stream, origin) });
      });
      stream.once('close', () => {
        session.finished();
        r.signal.removeEventListener('abort', onAbort);
        if (answered) return;
        if (r.signal.aborted) {
          reject(r.signal.reason);
          return;
        }
        const code = stream.rstCode;
        const last = session.goawayLastStreamId;
        const cause = streamError ?? session.error;
        if (
          code === constants.NGHTTP2_REFUSED_STREAM ||
          stream.id === undefined ||
          (last !== undefined && stream.id > last)
        ) {
          reject(new Unprocessed('not processed', { cause: resetError(`h2c stream to ${origin} refused`, cause) }));
          return;
        }
        const why = !session.settled
          ? `h2c session to ${origin} failed before the peer's HTTP/2 settings: the endpoint does not speak h2c (HTTP/2 with prior knowledge)`
          : `h2c stream to ${origin} closed before the response (code ${code}${cause ? `: ${cause.message}` : ''})`;
        reject(resetError(why, cause));
      });
      const body = r.body;
      if (body === null) return;
      if (Buffer.isBuffer(body)) stream.end(body);
      else {
        // The client's own stream: if the upstream fails, stop reading it but do not destroy it, so the client
        // still gets its 5xx.
        const client = body as Readable;
        client.pipe(stream);
        stream.once('close', () => client.unpipe(stream));
      }
    });
  }

  retire(endpoint: EndpointState): void {
    this.#retired.add(endpoint);
    const pool = this.#pools.get(endpoint.key);
    if (pool === undefined) return;
    this.#pools.delete(endpoint.key);
    for (const s of [...pool]) s.retire();
  }

  async close(): Promise<void> {
    const sessions = [...this.#all];
    this.#all.clear();
    this.#pools.clear();
    // Proxy shutdown: in-flight exchanges were the listeners' to finish; what remains is cut.
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.h2.destroyed) resolve();
            else {
              s.h2.once('close', () => resolve());
              s.h2.destroy();
            }
          }),
      ),
    );
  }
}

/** `promise`, or the signal's reason once it aborts. */
function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

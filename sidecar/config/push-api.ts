// The wire contract of config push between a weft proxy and the control plane (controlplane/push). The proxy is
// the consumer, so the contract lives here; the server imports it.
//
// Transport: TLS 1.3 with mutual authentication on port 15010, ALPN `weft-push/1`. The server presents a
// certificate issued by the mesh CA for the name `weft-controlplane`; the proxy presents its workload
// certificate, and the SPIFFE ID in it must own the proxy id it says hello with.
//
// Framing: NDJSON — one JSON object per line, UTF-8, `\n`-terminated, at most PUSH_MAX_FRAME_BYTES per line (a
// longer line is a protocol error: WEFT_ERR_PUSH_FRAME_TOO_LARGE, then the connection closes).
//
//   proxy → server   {"type":"hello","proxyId":"sidecar:shop/web-1","nodeVersion":"weft/0.1.0 node/v24.2.0",
//                     "configVersion":"<version the proxy runs, if any>"}      first frame, exactly once
//                    {"type":"ack","version":"…"}                              config applied
//                    {"type":"nack","version":"…","issues":[{"path":"…","reason":"…"}]}  refused; old one kept
//                    {"type":"ping"}                                           heartbeat, answered by pong
//   server → proxy   {"type":"config","version":"…","config":{ProxyConfig}}   the full config; on hello and on change
//                    {"type":"pong"}
//                    {"type":"error","code":"WEFT_ERR_PUSH_…","message":"…"}  then the server closes
//
// Bump the ALPN protocol on any incompatible change: an old peer then fails the handshake instead of
// misreading frames.
import { z } from 'zod';

export const PUSH_ALPN = 'weft-push/1';
/** Port the control plane serves config push on unless told otherwise. */
export const PUSH_DEFAULT_PORT = 15010;
/** DNS name in the push server's certificate; the proxy verifies it (SNI and hostname check). */
export const PUSH_SERVER_NAME = 'weft-controlplane';
/** Largest frame either side reads by default (a config with 10,000 routes is a few MiB). */
export const PUSH_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** How often a proxy pings; a ping unanswered by the next one means the connection is dead. */
export const PUSH_PING_INTERVAL_MS = 15_000;
/** The server closes a connection that sent nothing (not even a ping) for this long. */
export const PUSH_IDLE_TIMEOUT_MS = 45_000;
/** A nack carries at most this many issues (the rest are summed up in the last one). */
export const PUSH_MAX_NACK_ISSUES = 100;

/** `sidecar:<namespace>/<pod>` or `edge:<namespace>/<gateway>`, as in ProxyConfig's `proxy.id`. */
export const PROXY_ID = /^(sidecar|edge):[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Config versions are content hashes (sha256 hex today); any short printable token is accepted. */
const Version = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'not a config version');

const IssueSchema = z.object({ path: z.string().max(2048), reason: z.string().max(4096) });

export const HelloFrameSchema = z.strictObject({
  type: z.literal('hello'),
  proxyId: z.string().regex(PROXY_ID, 'must be "sidecar:<namespace>/<pod>" or "edge:<namespace>/<gateway>"'),
  /** The proxy's software version (free text, logged and shown by `weft proxy-status`). */
  nodeVersion: z.string().min(1).max(256),
  /** The version of the config the proxy is running (after a reconnect): not re-sent if still current. */
  configVersion: Version.optional(),
});
export const AckFrameSchema = z.strictObject({ type: z.literal('ack'), version: Version });
export const NackFrameSchema = z.strictObject({
  type: z.literal('nack'),
  version: Version,
  issues: z.array(IssueSchema).min(1).max(PUSH_MAX_NACK_ISSUES),
});
export const PingFrameSchema = z.strictObject({ type: z.literal('ping') });

/** Frames a proxy sends. */
export const ProxyFrameSchema = z.discriminatedUnion('type', [
  HelloFrameSchema,
  AckFrameSchema,
  NackFrameSchema,
  PingFrameSchema,
]);

export const ConfigFrameSchema = z.strictObject({
  type: z.literal('config'),
  version: Version,
  /** Checked by the proxy's own validator (parseProxyConfig), not by the frame schema. */
  config: z.unknown(),
});
export const PongFrameSchema = z.strictObject({ type: z.literal('pong') });
export const ErrorFrameSchema = z.strictObject({
  type: z.literal('error'),
  code: z.string().regex(/^WEFT_ERR_[A-Z0-9_]+$/),
  message: z.string().max(4096),
});

/** Frames the server sends. Unknown fields are refused: a newer server must bump PUSH_ALPN. */
export const ServerFrameSchema = z.discriminatedUnion('type', [ConfigFrameSchema, PongFrameSchema, ErrorFrameSchema]);

export type HelloFrame = z.infer<typeof HelloFrameSchema>;
export type AckFrame = z.infer<typeof AckFrameSchema>;
export type NackFrame = z.infer<typeof NackFrameSchema>;
export type PingFrame = z.infer<typeof PingFrameSchema>;
export type ProxyFrame = z.infer<typeof ProxyFrameSchema>;
export type ConfigFrame = z.infer<typeof ConfigFrameSchema>;
export type PongFrame = z.infer<typeof PongFrameSchema>;
export type ErrorFrame = z.infer<typeof ErrorFrameSchema>;
export type ServerFrame = z.infer<typeof ServerFrameSchema>;

/** Codes of `error` frames (and of the proxy's own protocol failures). Stable; messages are for people. */
export const PUSH_ERRORS = {
  /** A line is not JSON, not a known frame, or out of order (anything before hello, a second hello). */
  WEFT_ERR_PUSH_PROTOCOL: 'protocol violation',
  /** A line longer than the reader's maximum frame size. */
  WEFT_ERR_PUSH_FRAME_TOO_LARGE: 'frame too large',
  /** The client certificate carries no single SPIFFE ID, or one that does not own the requested proxy id. */
  WEFT_ERR_PUSH_IDENTITY: 'identity does not own this proxy',
  /** The control plane does not know the pod or Gateway (yet): the proxy retries with backoff. */
  WEFT_ERR_PUSH_UNKNOWN_PROXY: 'unknown proxy',
  /** No hello within the server's hello timeout. */
  WEFT_ERR_PUSH_HELLO_TIMEOUT: 'no hello',
  /** Nothing received for PUSH_IDLE_TIMEOUT_MS. */
  WEFT_ERR_PUSH_IDLE_TIMEOUT: 'idle',
  /** A newer connection for the same proxy id replaced this one. */
  WEFT_ERR_PUSH_SUPERSEDED: 'superseded',
  /** The control plane is shutting down: reconnect (to it after restart, or to another replica). */
  WEFT_ERR_PUSH_SHUTDOWN: 'shutting down',
} as const;
export type PushErrorCode = keyof typeof PUSH_ERRORS;

/** A line as UTF-8 JSON plus the newline. JSON.stringify escapes newlines inside strings, so one frame = one line. */
export function encodeFrame(frame: ProxyFrame | ServerFrame): string {
  return `${JSON.stringify(frame)}\n`;
}

export type DecodeResult = { lines: string[]; error?: undefined } | { lines: string[]; error: 'too-large' };

/**
 * Splits a byte stream into lines without ever holding more than `maxFrameBytes` of an unfinished line: a longer
 * one is reported (`error: 'too-large'`) as soon as it passes the limit, without waiting for its end.
 */
export class LineDecoder {
  readonly maxFrameBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #failed = false;

  constructor(maxFrameBytes: number = PUSH_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  push(chunk: Buffer): DecodeResult {
    const lines: string[] = [];
    if (this.#failed) return { lines, error: 'too-large' };
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.#size + piece.length > this.maxFrameBytes) return this.#fail(lines);
      const line = this.#size === 0 ? piece : Buffer.concat([...this.#parts, piece], this.#size + piece.length);
      this.#parts = [];
      this.#size = 0;
      // A trailing CR is tolerated (CRLF senders); blank lines are ignored.
      const text = line.toString('utf8').replace(/\r$/, '');
      if (text.length > 0) lines.push(text);
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      if (this.#size + rest.length > this.maxFrameBytes) return this.#fail(lines);
      // Copy: the chunk's buffer may be reused by the stream.
      this.#parts.push(Buffer.from(rest));
      this.#size += rest.length;
    }
    return { lines };
  }

  /** Bytes of the unfinished line. */
  get buffered(): number {
    return this.#size;
  }

  #fail(lines: string[]): DecodeResult {
    this.#failed = true;
    this.#parts = [];
    this.#size = 0;
    return { lines, error: 'too-large' };
  }
}

/** Parses one line against a frame schema; a readable reason when it is not one. */
export function parseFrame<T>(
  line: string,
  schema: z.ZodType<T>,
): { ok: true; frame: T } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'frame is not JSON' };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const first = parsed.error.issues[0];
  const where = first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  const type = (json as { type?: unknown } | null)?.type;
  return { ok: false, reason: `bad ${typeof type === 'string' ? `"${type}" ` : ''}frame: ${where}${first.message}` };
}

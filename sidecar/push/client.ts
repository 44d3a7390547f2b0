// The proxy's side of config push (sidecar/config/push-api.ts is the contract). It connects over mTLS with the
// workload certificate the `credentials` callback returns at that moment (so a rotated certificate is used from
// the next connection on), says hello, and for each config frame: validates it with parseProxyConfig, applies it
// through `apply` (the proxy's `update`), then acks — or nacks with the validator's issues, in which case
// nothing of the config was applied and the last good one keeps serving. Configs are applied one at a time;
// when several arrive during an apply only the newest is applied next. It pings, treats an unanswered ping as a
// dead connection, and reconnects on any error with capped, jittered exponential backoff until close().
import { EventEmitter } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import { ConfigError, type ConfigIssue, ConfigVersionError } from '../config/errors.ts';
import type { ProxyConfig } from '../config/proxy-config.ts';
import {
  encodeFrame,
  LineDecoder,
  PUSH_ALPN,
  PUSH_DEFAULT_PORT,
  PUSH_MAX_FRAME_BYTES,
  PUSH_MAX_NACK_ISSUES,
  PUSH_PING_INTERVAL_MS,
  PUSH_SERVER_NAME,
  type ProxyFrame,
  parseFrame,
  type ServerFrame,
  ServerFrameSchema,
} from '../config/push-api.ts';
import { parseProxyConfig } from '../config/validate.ts';

/** What the TLS client needs: the proxy's key, its certificate chain and the mesh roots (all PEM). */
export interface PushCredentials {
  key: string;
  certChain: string;
  rootCAs: string;
}

export interface PushBackoff {
  /** First retry after about this long. Default 500 ms. */
  initialMs: number;
  /** Retries never wait longer than this. Default 30 s. */
  maxMs: number;
}

export const DEFAULT_PUSH_BACKOFF: Readonly<PushBackoff> = { initialMs: 500, maxMs: 30_000 };

export interface PushClientOptions {
  /** Control plane address. */
  host: string;
  /** Default 15010. */
  port?: number;
  /** Name the server certificate must carry (and SNI). Default `weft-controlplane`. */
  serverName?: string;
  proxyId: string;
  /** Software version, shown by `weft proxy-status`. */
  nodeVersion: string;
  /** Current credentials; undefined (none yet, or expired) makes this attempt fail and retry later. */
  credentials: () => PushCredentials | undefined | Promise<PushCredentials | undefined>;
  /** Applies a validated config (the proxy's `update`); a throw or rejection nacks it. */
  apply: (config: ProxyConfig, version: string) => void | Promise<void>;
  /**
   * Told of a config refused by the client's own checks (validation, proxy id), which never reached `apply`: the
   * proxy's metrics count it, as `update` counts the configs it refuses itself.
   */
  onInvalid?: (err: unknown, version: string) => void;
  /** The version already running (e.g. from a config file), sent in hello so it is not sent again. */
  runningVersion?: string;
  /** Default 15 s. A ping still unanswered when the next one is due closes the connection. */
  pingIntervalMs?: number;
  /** TCP + TLS handshake limit. Default 10 s. */
  connectTimeoutMs?: number;
  backoff?: Partial<PushBackoff>;
  /** [0, 1); injectable for tests. */
  random?: () => number;
  /** Longest frame read from the server. Default 64 MiB. */
  maxFrameBytes?: number;
  logger?: Logger;
}

/** Why a connection ended (the `disconnected` event). */
export class PushConnectionError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PushConnectionError';
    this.code = code;
  }
}

type Events = {
  /** TLS is up and hello was sent. */
  connected: [];
  /** A config frame arrived (before it is validated and applied). */
  received: [version: string];
  /** A config was applied and acked. */
  applied: [version: string, config: ProxyConfig];
  /** A config was refused (nacked); the previous one keeps serving. */
  rejected: [version: string, issues: ConfigIssue[]];
  /** The server sent an error frame. */
  refused: [code: string, message: string];
  /** The connection ended; the next attempt is in `retryInMs` (undefined after close()). */
  disconnected: [error: PushConnectionError, retryInMs: number | undefined];
};

/** Delay before attempt `n` (1 = first retry): doubling, capped, equal jitter. */
export function reconnectDelay(attempt: number, random: () => number, backoff: PushBackoff): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/** The validator's issues for a config that cannot be applied, bounded to what a nack frame carries. */
function issuesOf(err: unknown): ConfigIssue[] {
  let issues: ConfigIssue[];
  if (err instanceof ConfigError) issues = err.issues;
  else if (err instanceof ConfigVersionError) issues = [{ path: 'apiVersion', reason: err.message }];
  else issues = [{ path: '(root)', reason: err instanceof Error ? err.message : String(err) }];
  if (issues.length === 0) issues = [{ path: '(root)', reason: 'refused' }];
  const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  const bounded = issues.map((i) => ({ path: clip(i.path, 2048), reason: clip(i.reason, 4096) }));
  if (bounded.length <= PUSH_MAX_NACK_ISSUES) return bounded;
  const kept = bounded.slice(0, PUSH_MAX_NACK_ISSUES - 1);
  kept.push({ path: '(root)', reason: `and ${bounded.length - kept.length} more issues` });
  return kept;
}

interface Incoming {
  version: string;
  config: unknown;
}

export class PushClient extends EventEmitter<Events> {
  readonly #o: PushClientOptions;
  readonly #log: Logger;
  readonly #backoff: PushBackoff;
  readonly #random: () => number;
  #socket: TLSSocket | undefined;
  #connected = false;
  #started = false;
  #closed = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #awaitingPong = false;
  #applied: string | undefined;
  #rejected: { version: string; issues: ConfigIssue[] } | undefined;
  #incoming: Incoming | undefined;
  #applying: Promise<void> | undefined;
  #lastError: PushConnectionError | undefined;

  constructor(options: PushClientOptions) {
    super();
    this.#o = options;
    this.#log = (options.logger ?? pino({ name: 'weft-proxy' })).child({ component: 'push-client' });
    this.#backoff = { ...DEFAULT_PUSH_BACKOFF, ...options.backoff };
    this.#random = options.random ?? Math.random;
    this.#applied = options.runningVersion;
  }

  /** Starts connecting (and keeps reconnecting until close()). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#connect();
  }

  /** Stops for good: no reconnect; waits for an apply in progress. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    const socket = this.#socket;
    if (socket && !socket.destroyed) {
      const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
      await gone;
    }
    await this.#applying;
  }

  /** True between a successful handshake and the end of that connection. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Version of the config last applied (or given as `runningVersion`). */
  get appliedVersion(): string | undefined {
    return this.#applied;
  }

  /** Why the last connection ended. */
  get lastError(): PushConnectionError | undefined {
    return this.#lastError;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    let creds: PushCredentials | undefined;
    try {
      creds = await this.#o.credentials();
    } catch (err) {
      this.#ended(new PushConnectionError('WEFT_ERR_PUSH_CREDENTIALS', 'reading credentials failed', { cause: err }));
      return;
    }
    if (this.#closed) return;
    if (!creds) {
      this.#ended(new PushConnectionError('WEFT_ERR_PUSH_CREDENTIALS', 'no workload certificate yet'));
      return;
    }
    const decoder = new LineDecoder(this.#o.maxFrameBytes ?? PUSH_MAX_FRAME_BYTES);
    let endError: PushConnectionError | undefined;
    const socket = connect({
      host: this.#o.host,
      port: this.#o.port ?? PUSH_DEFAULT_PORT,
      servername: this.#o.serverName ?? PUSH_SERVER_NAME,
      key: creds.key,
      cert: creds.certChain,
      ca: creds.rootCAs,
      minVersion: 'TLSv1.3',
      rejectUnauthorized: true,
      ALPNProtocols: [PUSH_ALPN],
    });
    this.#socket = socket;
    const fail = (code: string, message: string, cause?: unknown) => {
      endError ??= new PushConnectionError(code, message, cause === undefined ? undefined : { cause });
      socket.destroy();
    };
    socket.setTimeout(this.#o.connectTimeoutMs ?? 10_000, () =>
      fail('WEFT_ERR_PUSH_CONNECT_TIMEOUT', 'connecting to the control plane timed out'),
    );
    socket.once('secureConnect', () => {
      socket.setTimeout(0);
      socket.setNoDelay(true);
      this.#connected = true;
      const hello: ProxyFrame = { type: 'hello', proxyId: this.#o.proxyId, nodeVersion: this.#o.nodeVersion };
      if (this.#applied !== undefined) hello.configVersion = this.#applied;
      this.#send(hello);
      // A ping right away: its pong (sent after the server accepted the hello) proves the session works.
      this.#ping();
      clearInterval(this.#pingTimer);
      this.#pingTimer = setInterval(() => {
        if (this.#awaitingPong) fail('WEFT_ERR_PUSH_HEARTBEAT', 'the control plane did not answer a ping');
        else this.#ping();
      }, this.#o.pingIntervalMs ?? PUSH_PING_INTERVAL_MS);
      this.#pingTimer.unref();
      this.#log.info({ event: 'push.connected', host: this.#o.host, proxyId: this.#o.proxyId }, 'connected');
      this.emit('connected');
    });
    socket.on('data', (chunk: Buffer) => {
      const { lines, error } = decoder.push(chunk);
      for (const line of lines) {
        if (socket.destroyed) return;
        const parsed = parseFrame<ServerFrame>(line, ServerFrameSchema);
        if (!parsed.ok) return fail('WEFT_ERR_PUSH_PROTOCOL', parsed.reason);
        this.#frame(parsed.frame, fail);
      }
      if (error) fail('WEFT_ERR_PUSH_FRAME_TOO_LARGE', `a frame is longer than ${decoder.maxFrameBytes} bytes`);
    });
    socket.on('error', (err) => {
      endError ??= new PushConnectionError(
        (err as NodeJS.ErrnoException).code ?? 'WEFT_ERR_PUSH_CONNECTION',
        err.message,
        { cause: err },
      );
    });
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#connected = false;
      this.#awaitingPong = false;
      clearInterval(this.#pingTimer);
      this.#ended(
        endError ?? new PushConnectionError('WEFT_ERR_PUSH_CLOSED', 'the control plane closed the connection'),
      );
    });
  }

  #frame(f: ServerFrame, fail: (code: string, message: string) => void): void {
    switch (f.type) {
      case 'pong':
        this.#awaitingPong = false;
        this.#attempt = 0; // the session works: the next failure starts the backoff over
        return;
      case 'error':
        this.#log.warn({ event: 'push.refused', code: f.code, reason: f.message }, `refused: ${f.message}`);
        this.emit('refused', f.code, f.message);
        fail(f.code, f.message);
        return;
      case 'config':
        this.#attempt = 0;
        this.emit('received', f.version);
        this.#incoming = { version: f.version, config: f.config };
        if (!this.#applying) {
          this.#applying = this.#drain().finally(() => {
            this.#applying = undefined;
          });
        }
        return;
    }
  }

  /** Applies the newest incoming config until none is left. */
  async #drain(): Promise<void> {
    while (this.#incoming && !this.#closed) {
      const { version, config } = this.#incoming;
      this.#incoming = undefined;
      if (version === this.#applied) {
        this.#send({ type: 'ack', version });
        continue;
      }
      if (version === this.#rejected?.version) {
        this.#send({ type: 'nack', version, issues: this.#rejected.issues });
        continue;
      }
      let parsed: ProxyConfig;
      let checked = false;
      try {
        parsed = parseProxyConfig(config);
        if (parsed.proxy.id !== this.#o.proxyId) {
          throw new ConfigError([
            { path: 'proxy.id', reason: `is ${JSON.stringify(parsed.proxy.id)}, this proxy is ${this.#o.proxyId}` },
          ]);
        }
        checked = true;
        await this.#o.apply(parsed, version);
      } catch (err) {
        if (!checked) this.#o.onInvalid?.(err, version);
        const issues = issuesOf(err);
        this.#rejected = { version, issues };
        this.#log.warn(
          { event: 'config.rejected', version, issues: issues.slice(0, 5), issueCount: issues.length },
          `config ${version.slice(0, 12)} rejected; keeping ${this.#applied?.slice(0, 12) ?? 'no config'}`,
        );
        this.#send({ type: 'nack', version, issues });
        this.emit('rejected', version, issues);
        continue;
      }
      this.#applied = version;
      this.#send({ type: 'ack', version });
      this.#log.info({ event: 'config.applied', version }, `config ${version.slice(0, 12)} applied`);
      this.emit('applied', version, parsed);
    }
  }

  #ping(): void {
    this.#awaitingPong = true;
    this.#send({ type: 'ping' });
  }

  /** Writes on the current connection; a frame for a connection that is gone is dropped (hello resyncs). */
  #send(frame: ProxyFrame): void {
    const s = this.#socket;
    if (s && this.#connected && !s.destroyed && s.writable) s.write(encodeFrame(frame));
  }

  #ended(err: PushConnectionError): void {
    this.#lastError = err;
    if (this.#closed) {
      this.emit('disconnected', err, undefined);
      return;
    }
    this.#attempt++;
    const delay = reconnectDelay(this.#attempt, this.#random, this.#backoff);
    this.#log.warn(
      { event: 'push.disconnected', code: err.code, reason: err.message, attempt: this.#attempt, retryInMs: delay },
      `config push connection ended (${err.message}); retrying in ${delay} ms`,
    );
    this.emit('disconnected', err, delay);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }
}

// Config push (sidecar/config/push-api.ts is the contract): a TLS 1.3 server that requires a client certificate
// chained to the mesh root, identifies each proxy by the SPIFFE ID in it, and streams that proxy its full config
// from the pipeline's `proxies` map — on hello, then on every change whose version differs from the last one
// sent or acknowledged. A slow proxy is never sent stale intermediate versions: while its socket is backed up,
// only the latest pending config is kept and written on drain. Per proxy it records when it connected, from
// where, what was sent, what was acknowledged and why the last config was refused.
import type { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import {
  encodeFrame,
  LineDecoder,
  PUSH_ALPN,
  PUSH_DEFAULT_PORT,
  PUSH_IDLE_TIMEOUT_MS,
  PUSH_MAX_FRAME_BYTES,
  PUSH_SERVER_NAME,
  type PushErrorCode,
  parseFrame,
  type ProxyFrame,
  ProxyFrameSchema,
  type ServerFrame,
} from '../../sidecar/config/push-api.ts';
import type { VersionedConfig } from '../runtime/pipeline.ts';
import type { WatchableMap } from '../runtime/watchable.ts';
import type { ProxyId } from '../translate/types.ts';
import { certificateSpiffeId, type ProxyAuthorizer } from './identity.ts';

/** Issues the server's certificate: MeshCA has this shape. */
export interface ServingIssuer {
  readonly rootCAsPem: string;
  issueServing(
    names: { dnsNames: string[]; ips: string[] },
    lifetimeMs?: number,
  ): { keyPem: string; certChainPem: string; notAfter: Date };
}

/** Names the serving certificate always carries; `serverNames` adds to them (e.g. the in-cluster Service name). */
export const PUSH_SERVER_DNS_NAMES = [PUSH_SERVER_NAME, 'localhost'];
export const PUSH_SERVER_IPS = ['127.0.0.1'];
const SERVING_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** After an error frame, the peer gets this long to close before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** Characters of a nack reason kept in the record. */
const MAX_REASON_CHARS = 500;

/** How a pushed config ended: acked, nacked, or lost with its connection before either. */
export type PushOutcome = 'ack' | 'nack' | 'error';

/** What the push server reports to the control plane's metrics (ControlPlaneMetrics implements it). */
export interface PushMetrics {
  /** Proxies with an accepted connection, after each change. */
  connectedProxies(count: number): void;
  configSent(): void;
  /** `seconds`: from writing the config to its answer, when it was the last config written on the connection. */
  pushFinished(result: PushOutcome, seconds?: number): void;
  /** A refused connection: its WEFT_ERR_PUSH code, or `tls` for a failed handshake. */
  pushRefused(reason: string): void;
}

export interface PushServerOptions {
  /** The pipeline's per-proxy configs. */
  configs: WatchableMap<ProxyId, VersionedConfig>;
  /** Who may get which config (snapshotAuthorizer over the pipeline's snapshot). */
  authorize: ProxyAuthorizer;
  /** Issues the serving certificate (renewed at two thirds of its lifetime); its roots verify clients. */
  ca: ServingIssuer;
  /** Default 15010; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1; a cluster deployment passes 0.0.0.0 or `::`. */
  host?: string;
  serverNames?: { dnsNames?: string[]; ips?: string[] };
  /** Longest frame read from a proxy. Default 64 MiB. */
  maxFrameBytes?: number;
  /** A connection that has not said hello after this long is closed. Default 10 s. */
  helloTimeoutMs?: number;
  /** A connection silent (no frame, not even a ping) this long is closed. Default 45 s. */
  idleTimeoutMs?: number;
  /** Records of disconnected proxies are listed this long. Default 10 min. */
  forgetAfterMs?: number;
  logger?: Logger;
  now?: () => number;
  metrics?: PushMetrics;
}

export interface ProxyRecord {
  proxyId: string;
  /** SPIFFE ID of the client certificate. */
  identity: string;
  /** `address:port` the proxy connected from. */
  remoteAddress: string;
  nodeVersion: string;
  connected: boolean;
  /** ISO time of the current (or last) connection's hello. */
  connectedSince: string;
  disconnectedAt?: string;
  /** Version of this proxy's config in the control plane now (absent: it has none). */
  currentVersion?: string;
  lastSentVersion?: string;
  lastSentAt?: string;
  lastAckedVersion?: string;
  lastAckedAt?: string;
  /** Milliseconds from sending the last acknowledged version to its ack. */
  lastAckLatencyMs?: number;
  lastNack?: { version: string; reason: string; at: string };
  /** Nacks from this proxy since the control plane started. */
  nacks: number;
}

export interface PushStats {
  /** Connections that said an accepted hello. */
  connected: number;
  configsSent: number;
  acks: number;
  nacks: number;
  /** Refusals by error code (identity, unknown proxy, protocol, frame size, timeouts). */
  refusals: Partial<Record<PushErrorCode, number>>;
  /** TLS handshakes that failed (no or untrusted client certificate, wrong protocol). */
  tlsFailures: number;
}

type Events = {
  hello: [proxyId: string];
  ack: [proxyId: string, version: string];
  nack: [proxyId: string, version: string, reason: string];
  refused: [code: PushErrorCode, message: string, proxyId: string | undefined];
  disconnect: [proxyId: string];
  /** A TLS handshake failed (no or untrusted client certificate, wrong ALPN…). */
  tlsRefused: [err: Error];
};

interface Conn {
  socket: TLSSocket;
  decoder: LineDecoder;
  spiffeId: string | undefined;
  remote: string;
  proxyId: string | undefined;
  record: RecordState | undefined;
  /** Last version written on this connection, and when. */
  lastSent: string | undefined;
  lastSentAt: number;
  /** A config was written on this connection and is not answered yet. */
  awaiting: boolean;
  /** The config waiting for the socket to drain. */
  pending: VersionedConfig | undefined;
  closing: boolean;
  helloTimer: NodeJS.Timeout | undefined;
}

interface RecordState extends Omit<ProxyRecord, 'connected' | 'currentVersion'> {
  conn: Conn | undefined;
  disconnectedAtMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** `path: reason` of the first issue, and how many more. */
function summarize(issues: readonly { path: string; reason: string }[]): string {
  const first = `${issues[0].path}: ${issues[0].reason}`;
  const text = issues.length > 1 ? `${first} (and ${issues.length - 1} more)` : first;
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS - 1)}…` : text;
}

export class PushServer extends EventEmitter<Events> {
  readonly #o: PushServerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #server: Server;
  readonly #conns = new Set<Conn>();
  /** The accepted connection of each proxy. */
  readonly #byProxy = new Map<string, Conn>();
  readonly #records = new Map<string, RecordState>();
  readonly #stats: PushStats = { connected: 0, configsSent: 0, acks: 0, nacks: 0, refusals: {}, tlsFailures: 0 };
  readonly #names: { dnsNames: string[]; ips: string[] };
  #unsubscribe: (() => void) | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #address: AddressInfo | undefined;
  #closed = false;

  private constructor(o: PushServerOptions) {
    super();
    this.#o = o;
    this.#log = (o.logger ?? pino({ name: 'weft-controlplane' })).child({ component: 'push' });
    this.#now = o.now ?? Date.now;
    this.#names = {
      dnsNames: [...new Set([...PUSH_SERVER_DNS_NAMES, ...(o.serverNames?.dnsNames ?? [])])],
      ips: [...new Set([...PUSH_SERVER_IPS, ...(o.serverNames?.ips ?? [])])],
    };
    const serving = o.ca.issueServing(this.#names, SERVING_LIFETIME_MS);
    this.#server = createServer({
      ...this.#contextOptions(serving),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [PUSH_ALPN],
    });
    this.#scheduleRenewal(serving.notAfter);
    this.#server.on('secureConnection', (socket) => this.#accept(socket));
    this.#server.on('tlsClientError', (err, socket) => {
      this.#stats.tlsFailures++;
      this.#o.metrics?.pushRefused('tls');
      this.#log.warn(
        {
          event: 'tls.refused',
          remote: `${socket.remoteAddress}:${socket.remotePort}`,
          code: (err as NodeJS.ErrnoException).code,
          reason: err.message,
        },
        'TLS handshake refused',
      );
      this.emit('tlsRefused', err);
    });
  }

  /** Starts listening and serving the configs map. */
  static async start(options: PushServerOptions): Promise<PushServer> {
    const s = new PushServer(options);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(options.port ?? PUSH_DEFAULT_PORT, options.host ?? '127.0.0.1', () => {
        s.#server.off('error', reject);
        resolve();
      });
    });
    s.#address = s.#server.address() as AddressInfo;
    s.#unsubscribe = options.configs.subscribe((batch) => {
      for (const u of batch.updates) {
        const conn = s.#byProxy.get(u.key);
        if (conn && u.value) s.#offer(conn, u.value);
      }
    });
    s.#log.info(
      { event: 'push.listening', host: s.host, port: s.port, names: s.#names.dnsNames },
      `config push listening on ${s.host}:${s.port}`,
    );
    return s;
  }

  get port(): number {
    return this.#address?.port ?? 0;
  }

  get host(): string {
    return this.#address?.address ?? '';
  }

  /** The trust bundle a proxy needs to authenticate this server. */
  get rootCAsPem(): string {
    return this.#o.ca.rootCAsPem;
  }

  get stats(): PushStats {
    return { ...this.#stats, refusals: { ...this.#stats.refusals } };
  }

  /** One record per proxy seen (connected, or disconnected less than `forgetAfterMs` ago), sorted by id. */
  records(): ProxyRecord[] {
    const forget = this.#o.forgetAfterMs ?? 10 * 60_000;
    const now = this.#now();
    const out: ProxyRecord[] = [];
    for (const [id, r] of [...this.#records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (r.conn === undefined && r.disconnectedAtMs !== undefined && now - r.disconnectedAtMs > forget) {
        this.#records.delete(id);
        continue;
      }
      const { conn, disconnectedAtMs: _, ...rest } = r;
      const rec: ProxyRecord = { ...rest, connected: conn !== undefined };
      const current = this.#o.configs.load(id)?.version;
      if (current !== undefined) rec.currentVersion = current;
      out.push(rec);
    }
    return out;
  }

  /** Stops accepting, tells every proxy (error WEFT_ERR_PUSH_SHUTDOWN) and closes their connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#renewTimer);
    this.#unsubscribe?.();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const sockets = [...this.#conns].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.socket.destroyed) return resolve();
          c.socket.once('close', () => resolve());
          this.#refuse(c, 'WEFT_ERR_PUSH_SHUTDOWN', 'the control plane is shutting down', { quiet: true });
        }),
    );
    await Promise.all(sockets);
    await closed;
    this.#log.info({ event: 'push.closed' }, 'config push closed');
  }

  #contextOptions(serving: { keyPem: string; certChainPem: string }) {
    return {
      key: serving.keyPem,
      cert: serving.certChainPem,
      ca: this.#o.ca.rootCAsPem,
      minVersion: 'TLSv1.3' as const,
    };
  }

  #scheduleRenewal(notAfter: Date): void {
    const delay = Math.max(60_000, ((notAfter.getTime() - this.#now()) * 2) / 3);
    this.#renewTimer = setTimeout(() => {
      try {
        const serving = this.#o.ca.issueServing(this.#names, SERVING_LIFETIME_MS);
        this.#server.setSecureContext(this.#contextOptions(serving));
        this.#log.info({ event: 'serving-certificate.renewed', notAfter: serving.notAfter.toISOString() }, 'renewed');
        this.#scheduleRenewal(serving.notAfter);
      } catch (err) {
        this.#log.error({ event: 'serving-certificate.renew-failed', err }, 'renewing the push certificate failed');
        this.#scheduleRenewal(new Date(this.#now() + 90_000));
      }
    }, delay);
    this.#renewTimer.unref();
  }

  #accept(socket: TLSSocket): void {
    const conn: Conn = {
      socket,
      decoder: new LineDecoder(this.#o.maxFrameBytes ?? PUSH_MAX_FRAME_BYTES),
      spiffeId: undefined,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      proxyId: undefined,
      record: undefined,
      lastSent: undefined,
      lastSentAt: 0,
      awaiting: false,
      pending: undefined,
      closing: false,
      helloTimer: undefined,
    };
    this.#conns.add(conn);
    socket.setNoDelay(true);
    socket.on('error', (err) => {
      this.#log.debug({ event: 'connection.error', remote: conn.remote, proxyId: conn.proxyId, err }, 'socket error');
    });
    socket.on('close', () => this.#closedConn(conn));
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // rejectUnauthorized already refused unverified chains; this guards against a future option change.
    if (!socket.authorized) {
      socket.destroy();
      return;
    }
    conn.spiffeId = certificateSpiffeId(socket.getPeerX509Certificate() as X509Certificate | undefined);
    if (conn.spiffeId === undefined) {
      this.#refuse(conn, 'WEFT_ERR_PUSH_IDENTITY', 'the client certificate carries no single SPIFFE ID');
      return;
    }
    conn.helloTimer = setTimeout(
      () => this.#refuse(conn, 'WEFT_ERR_PUSH_HELLO_TIMEOUT', 'no hello received'),
      this.#o.helloTimeoutMs ?? 10_000,
    );
    socket.setTimeout(this.#o.idleTimeoutMs ?? PUSH_IDLE_TIMEOUT_MS, () =>
      this.#refuse(conn, 'WEFT_ERR_PUSH_IDLE_TIMEOUT', 'nothing received for too long'),
    );
    socket.on('data', (chunk: Buffer) => {
      if (conn.closing) return;
      const { lines, error } = conn.decoder.push(chunk);
      for (const line of lines) {
        if (conn.closing) return;
        this.#frame(conn, line);
      }
      if (error && !conn.closing) {
        this.#refuse(
          conn,
          'WEFT_ERR_PUSH_FRAME_TOO_LARGE',
          `a frame is longer than ${conn.decoder.maxFrameBytes} bytes`,
        );
      }
    });
  }

  #frame(conn: Conn, line: string): void {
    const parsed = parseFrame<ProxyFrame>(line, ProxyFrameSchema);
    if (!parsed.ok) {
      this.#refuse(conn, 'WEFT_ERR_PUSH_PROTOCOL', parsed.reason);
      return;
    }
    const f = parsed.frame;
    if (f.type === 'hello') {
      this.#hello(conn, f);
      return;
    }
    const rec = conn.record;
    if (rec === undefined) {
      this.#refuse(conn, 'WEFT_ERR_PUSH_PROTOCOL', `"${f.type}" before hello`);
      return;
    }
    const now = this.#now();
    switch (f.type) {
      case 'ping':
        this.#write(conn, { type: 'pong' });
        return;
      case 'ack':
        this.#stats.acks++;
        rec.lastAckedVersion = f.version;
        rec.lastAckedAt = iso(now);
        if (f.version === conn.lastSent) rec.lastAckLatencyMs = now - conn.lastSentAt;
        this.#answered(conn, 'ack', f.version, now);
        this.#log.debug({ event: 'config.acked', proxyId: rec.proxyId, version: f.version }, 'config acked');
        this.emit('ack', rec.proxyId, f.version);
        return;
      case 'nack': {
        this.#stats.nacks++;
        rec.nacks++;
        const reason = summarize(f.issues);
        rec.lastNack = { version: f.version, reason, at: iso(now) };
        this.#answered(conn, 'nack', f.version, now);
        this.#log.warn(
          {
            event: 'config.rejected',
            proxyId: rec.proxyId,
            version: f.version,
            issues: f.issues.slice(0, 5),
            issueCount: f.issues.length,
            nacks: rec.nacks,
          },
          `proxy ${rec.proxyId} rejected config ${f.version.slice(0, 12)}: ${reason}`,
        );
        this.emit('nack', rec.proxyId, f.version, reason);
        return;
      }
    }
  }

  #hello(conn: Conn, f: Extract<ProxyFrame, { type: 'hello' }>): void {
    if (conn.proxyId !== undefined) {
      this.#refuse(conn, 'WEFT_ERR_PUSH_PROTOCOL', 'a second hello');
      return;
    }
    const spiffeId = conn.spiffeId!;
    const auth = this.#o.authorize(f.proxyId, spiffeId);
    if (!auth.ok) {
      this.#refuse(conn, auth.code, auth.message, { proxyId: f.proxyId });
      return;
    }
    clearTimeout(conn.helloTimer);
    conn.helloTimer = undefined;
    const previous = this.#byProxy.get(f.proxyId);
    if (previous && previous !== conn) {
      this.#refuse(previous, 'WEFT_ERR_PUSH_SUPERSEDED', 'a newer connection for this proxy replaced this one');
    }
    conn.proxyId = f.proxyId;
    this.#byProxy.set(f.proxyId, conn);
    this.#o.metrics?.connectedProxies(this.#byProxy.size);
    const now = this.#now();
    const old = this.#records.get(f.proxyId);
    const rec: RecordState = {
      proxyId: f.proxyId,
      identity: spiffeId,
      remoteAddress: conn.remote,
      nodeVersion: f.nodeVersion,
      connectedSince: iso(now),
      nacks: old?.nacks ?? 0,
      conn,
    };
    if (old?.lastNack) rec.lastNack = old.lastNack;
    // The proxy says which config it runs: that one counts as acknowledged.
    if (f.configVersion !== undefined) {
      rec.lastAckedVersion = f.configVersion;
      rec.lastAckedAt = iso(now);
    }
    this.#records.set(f.proxyId, rec);
    conn.record = rec;
    this.#stats.connected++;
    this.#log.info(
      {
        event: 'proxy.connected',
        proxyId: f.proxyId,
        identity: spiffeId,
        remote: conn.remote,
        nodeVersion: f.nodeVersion,
        runningVersion: f.configVersion,
      },
      `proxy ${f.proxyId} connected`,
    );
    this.emit('hello', f.proxyId);
    const current = this.#o.configs.load(f.proxyId);
    if (current) this.#offer(conn, current);
  }

  /** Sends `vc` unless this proxy already has it or was already sent it; waits for drain when backed up. */
  #offer(conn: Conn, vc: VersionedConfig): void {
    if (conn.closing || conn.record === undefined) return;
    // What the proxy runs once it has handled every frame: the last config sent on this connection, else the version
    // it said hello with. Not the last ack: with a newer config still in flight, that ack is stale (A acked, B sent,
    // then A again must be sent).
    if (vc.version === (conn.lastSent ?? conn.record.lastAckedVersion)) {
      conn.pending = undefined;
      return;
    }
    if (conn.socket.writableNeedDrain) {
      const waiting = conn.pending !== undefined;
      conn.pending = vc;
      if (!waiting) {
        conn.socket.once('drain', () => {
          const next = conn.pending;
          conn.pending = undefined;
          if (next) this.#offer(conn, next);
        });
      }
      return;
    }
    conn.pending = undefined;
    const now = this.#now();
    this.#writeConfig(conn, vc);
    conn.lastSent = vc.version;
    conn.lastSentAt = now;
    conn.awaiting = true;
    this.#o.metrics?.configSent();
    conn.record.lastSentVersion = vc.version;
    conn.record.lastSentAt = iso(now);
    this.#stats.configsSent++;
    this.#log.debug({ event: 'config.sent', proxyId: conn.proxyId, version: vc.version }, 'config sent');
  }

  /** A config frame; from the pipeline's canonical chunks when present (shared parts are not serialized again). */
  #writeConfig(conn: Conn, vc: VersionedConfig): void {
    const s = conn.socket;
    if (s.destroyed || !s.writable) return;
    if (!vc.json) {
      this.#write(conn, { type: 'config', version: vc.version, config: vc.config });
      return;
    }
    s.cork();
    s.write(`{"type":"config","version":${JSON.stringify(vc.version)},"config":`);
    for (const chunk of vc.json.chunks) s.write(chunk);
    s.write('}\n');
    s.uncork();
  }

  #write(conn: Conn, frame: ServerFrame): void {
    if (conn.socket.destroyed || !conn.socket.writable) return;
    conn.socket.write(encodeFrame(frame));
  }

  /** Sends an error frame and closes the connection (destroyed if the peer does not close in time). */
  #refuse(conn: Conn, code: PushErrorCode, message: string, o: { proxyId?: string; quiet?: boolean } = {}): void {
    if (conn.closing) return;
    conn.closing = true;
    conn.pending = undefined;
    clearTimeout(conn.helloTimer);
    const proxyId = conn.proxyId ?? o.proxyId;
    if (!o.quiet) {
      this.#stats.refusals[code] = (this.#stats.refusals[code] ?? 0) + 1;
      this.#o.metrics?.pushRefused(code);
      this.#log.warn(
        { event: 'proxy.refused', code, reason: message, proxyId, identity: conn.spiffeId, remote: conn.remote },
        `refused ${proxyId ?? conn.remote}: ${message}`,
      );
      this.emit('refused', code, message, proxyId);
    }
    this.#write(conn, { type: 'error', code, message });
    conn.socket.end();
    setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** An ack or nack: the push it answers is done; timed when it answers the last config written. */
  #answered(conn: Conn, result: PushOutcome, version: string, now: number): void {
    const latest = version === conn.lastSent;
    if (latest) conn.awaiting = false;
    this.#o.metrics?.pushFinished(result, latest ? (now - conn.lastSentAt) / 1000 : undefined);
  }

  #closedConn(conn: Conn): void {
    this.#conns.delete(conn);
    clearTimeout(conn.helloTimer);
    // A config written and never answered: lost with the connection (the next connection's hello resyncs).
    if (conn.awaiting) {
      conn.awaiting = false;
      this.#o.metrics?.pushFinished('error');
    }
    const id = conn.proxyId;
    if (id === undefined || this.#byProxy.get(id) !== conn) return;
    this.#byProxy.delete(id);
    this.#o.metrics?.connectedProxies(this.#byProxy.size);
    const rec = this.#records.get(id);
    if (rec && rec.conn === conn) {
      rec.conn = undefined;
      rec.disconnectedAtMs = this.#now();
      rec.disconnectedAt = iso(rec.disconnectedAtMs);
    }
    this.#log.info({ event: 'proxy.disconnected', proxyId: id, remote: conn.remote }, `proxy ${id} disconnected`);
    this.emit('disconnect', id);
  }
}

/** Starts a push server (see PushServerOptions). */
export function startPushServer(options: PushServerOptions): Promise<PushServer> {
  return PushServer.start(options);
}

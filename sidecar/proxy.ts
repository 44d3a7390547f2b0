// The weft proxy: listeners, admin port and the config they serve. `update` validates and
// compiles a config whole, binds the listeners it adds, then swaps the compiled config in by
// reference; requests in flight finish on the config they started with. A config that fails
// validation, compilation or binding is refused whole and the previous one keeps serving.
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { type Logger, pino } from 'pino';
import { AccessLog, type AccessLogOptions } from './access-log.ts';
import { createAdminServer } from './admin.ts';
import { AppHealth } from './app-health.ts';
import { type CompiledConfig, compileConfig, listenerKey } from './compiled-config.ts';
import type { AppProbes } from './config/app-probes.ts';
import { DEFAULT_LIMITS, type Listener, type ProxyConfig } from './config/proxy-config.ts';
import { ConfigError } from './config/errors.ts';
import { parseProxyConfig } from './config/validate.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS, drainServer } from './drain.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import type { Runtime } from './http/exchange.ts';
import {
  applyServerLimits,
  createListenerServer,
  DEFAULT_SERVER_LIMITS,
  type ListenerContext,
  type ServerLimits,
} from './listeners/listener-server.ts';
import type { OriginalDestinationLookup } from './listeners/outbound.ts';
import { configRejectReason, ProxyMetrics } from './metrics.ts';
import { Tracing, type TracingOptions } from './tracing.ts';
import { EndpointRegistry } from './upstream/endpoint-state.ts';
import type { Forwarder } from './upstream/forwarder.ts';
import { type IdentitySource, MESH_SERVER_OPTIONS, MeshTls } from './upstream/mtls.ts';
import { NodeHttpForwarder } from './upstream/node-http-forwarder.ts';

export interface StartProxyOptions {
  /** The first config; absent: the proxy starts unready and serves once `update` gives it one. */
  config?: unknown;
  /** When set, configs for the other mode are refused. */
  mode?: 'sidecar' | 'edge';
  /** Admin port; default `config.admin.port` (15020). 0 picks a free port (tests). */
  adminPort?: number;
  /** Default 0.0.0.0: the kubelet probes the pod IP. */
  adminAddress?: string;
  /** Port to bind for a listener instead of its configured one (tests: `() => 0`). */
  listenPort?: (listener: Listener) => number;
  /** Address to bind for a listener instead of its configured one. */
  listenAddress?: (listener: Listener) => string;
  forwarder?: Forwarder;
  /** SO_ORIGINAL_DST lookup for captured outbound connections (later work plugs it in). */
  originalDestination?: OriginalDestinationLookup;
  logger?: Logger;
  /** Overrides (tests, flags): header and body limits set here win over the config's `limits`. */
  limits?: Partial<ServerLimits>;
  /** How long a drain (`/shutdown`, SIGTERM) lets requests in flight finish before cutting them; default 10 s. */
  drainTimeoutMs?: number;
  /**
   * The workload certificate for mTLS (mesh listener, meshed endpoints): a WorkloadIdentity, a FileIdentitySource
   * or a StaticIdentity. Read per new connection, so rotation needs no restart. Absent: meshed endpoints are
   * refused (WEFT_ERR_MTLS_UNAVAILABLE). A sidecar with one is not ready while it has no valid certificate.
   */
  identity?: IdentitySource;
  /** Export spans over OTLP/HTTP (docs/tracing.md). Absent: no tracing, and trace headers pass through untouched. */
  tracing?: TracingOptions;
  /** One JSON line per request (sampled), docs/logging.md. Absent: no access log. */
  accessLog?: AccessLogOptions;
  /** The app's probes the admin port performs for kubelet at `/app-health/…` (WEFT_APP_PROBES). */
  appProbes?: AppProbes;
}

export interface ProxyAddresses {
  admin: AddressInfo;
  /** Bound address of each listener, by listener name. */
  listeners: Record<string, AddressInfo>;
}

export interface RunningProxy {
  /**
   * Validates, compiles and applies a config; rejects (and keeps the old one) when it cannot.
   * `version` labels it in the metrics (the push stream's version); default: a sha256 of the config.
   */
  update(config: unknown, version?: string): Promise<void>;
  /**
   * Graceful stop (`/shutdown`, SIGTERM): not ready at once, no new connections, `Connection: close`
   * on every response still to be written, idle keep-alive connections closed, requests in flight
   * given `timeoutMs` (default `drainTimeoutMs`) to finish, then the rest cut and the upstream pools
   * and admin port closed. Idempotent: a second call returns the first drain.
   */
  drain(options?: { timeoutMs?: number }): Promise<void>;
  /** Immediate stop: connections are cut (a drain under way is cut short). */
  close(): Promise<void>;
  /** True from the moment a drain or close starts. */
  readonly draining: boolean;
  /** Resolves once the proxy has stopped, however it was stopped (`/shutdown` included). */
  readonly closed: Promise<void>;
  readonly metrics: ProxyMetrics;
  /** Present when `tracing` was given. */
  readonly tracing: Tracing | undefined;
  readonly addresses: ProxyAddresses;
  /** The config being served (defaults applied), or undefined before the first. */
  readonly config: ProxyConfig | undefined;
}

interface BoundListener {
  server: Server;
  address: AddressInfo;
  tls: boolean;
}

/** Every socket of a server, upgraded (WebSocket) ones included, which closeAllConnections misses. */
const serverSockets = new WeakMap<Server, Set<Socket>>();

function trackSockets(server: Server): void {
  const sockets = new Set<Socket>();
  serverSockets.set(server, sockets);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** The version label of a config that came without one: a digest of its content. */
function configVersion(config: ProxyConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // A listener a new config dropped, or the admin port at the end: connections are cut (a
    // whole-proxy drain is drainServer's).
    server.closeAllConnections();
    for (const socket of serverSockets.get(server) ?? []) socket.destroy();
  });
}

export async function startProxy(options: StartProxyOptions): Promise<RunningProxy> {
  const log = options.logger ?? pino({ name: 'weft-proxy' });
  const metrics = new ProxyMetrics();
  const mesh = new MeshTls({ source: options.identity, stats: metrics.mtls });
  mesh.on('error', (err) =>
    log.error({ event: 'identity.unusable', err }, 'workload credentials unusable for the mesh listener'),
  );
  const registry = new EndpointRegistry(mesh);
  // node:http Agent pools won `npm run bench` (docs/performance.md, "Forwarding engine"); h2c goes to node:http2 sessions.
  const forwarder = options.forwarder ?? new NodeHttpForwarder();
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
  const tracing = options.tracing ? new Tracing(options.tracing, metrics.registry) : undefined;
  const accessLog = options.accessLog && new AccessLog(options.accessLog.logger ?? log, options.accessLog.sampleRatio);
  const runtime: Runtime = { forwarder, log, metrics, limits, draining: false, tracing, accessLog };
  let current: CompiledConfig | undefined;
  if (options.identity) metrics.certificates.watch(options.identity, () => current?.config.trust.rootCAs);
  const bound = new Map<string, BoundListener>();
  const ctx: ListenerContext = {
    runtime,
    current: (key) => current?.listeners.get(key),
    originalDestination: options.originalDestination,
    limits,
    metrics,
  };
  /** Sets the request limits of `config` (its `limits`, unless an option overrides one). */
  const setLimits = (config: ProxyConfig) => {
    const l = config.limits ?? DEFAULT_LIMITS;
    const o = options.limits;
    limits.maxHeaderSize = o?.maxHeaderSize ?? l.maxRequestHeaderBytes;
    limits.maxHeadersCount = o?.maxHeadersCount ?? l.maxRequestHeaders;
    limits.maxBodyBytes = o?.maxBodyBytes ?? l.maxRequestBodyBytes;
  };

  const prepare = (input: unknown): CompiledConfig => {
    const config = parseProxyConfig(input);
    if (options.mode !== undefined && config.proxy.mode !== options.mode) {
      throw new ConfigError([
        { path: 'proxy.mode', reason: `config is for a ${config.proxy.mode} proxy, this one runs as ${options.mode}` },
      ]);
    }
    return compileConfig(config, registry);
  };

  const apply = async (next: CompiledConfig): Promise<void> => {
    const wanted = new Map<string, Listener>();
    for (const l of next.config.listeners) wanted.set(listenerKey(l), l);
    const started = new Map<string, BoundListener>();
    const previousLimits = { ...limits };
    setLimits(next.config);
    try {
      for (const [key, l] of wanted) {
        if (bound.has(key)) continue;
        const tls = (l.kind === 'gateway' && l.protocol === 'HTTPS') || l.kind === 'mesh';
        // Gateway listeners speak HTTP/2 too; sidecar listeners HTTP/1.1 only.
        const server = createListenerServer(
          key,
          tls,
          ctx,
          l.kind === 'mesh' ? MESH_SERVER_OPTIONS : undefined,
          l.kind === 'gateway',
        );
        // The mesh listener's certificate follows the workload identity (rotation) from here on.
        if (l.kind === 'mesh') {
          mesh.serve(server as unknown as TlsServer);
          metrics.mtls.serve(server as unknown as TlsServer);
        }
        trackSockets(server);
        const port = options.listenPort ? options.listenPort(l) : l.port;
        const host = options.listenAddress ? options.listenAddress(l) : l.address;
        let address: AddressInfo;
        try {
          address = await listen(server, port, host);
        } catch (err) {
          throw new ProxyError(ProxyErrorCode.ListenFailed, 500, `listener ${l.name} on ${host}:${port}: ${err}`, {
            cause: err,
          });
        }
        server.on('error', (err) => log.error({ event: 'listener.error', err, listener: l.name }, 'listener error'));
        started.set(key, { server, address, tls });
      }
    } catch (err) {
      Object.assign(limits, previousLimits);
      await Promise.all([...started.values()].map((s) => closeServer(s.server)));
      throw err;
    }
    const previous = current;
    current = next;
    if (tracing) tracing.proxyId = next.config.proxy.id;
    mesh.configure(next.config.trust);
    for (const [key, s] of started) bound.set(key, s);
    for (const s of bound.values()) applyServerLimits(s.server, limits);
    for (const key of wanted.keys()) {
      const c = next.listeners.get(key);
      const s = bound.get(key)!;
      // Clients without SNI get the default certificate of the listener.
      if (s.tls && c?.kind === 'gateway' && c.defaultPems) {
        (s.server as unknown as TlsServer).setSecureContext(c.defaultPems);
      }
    }
    const removed: Promise<void>[] = [];
    for (const [key, s] of bound) {
      if (wanted.has(key)) continue;
      bound.delete(key);
      removed.push(closeServer(s.server));
    }
    for (const gone of registry.prune(next.endpoints)) forwarder.retire(gone);
    if (previous) log.info({ event: 'config.swapped', listeners: wanted.size }, 'config applied');
    await Promise.all(removed);
  };

  // Updates run one after another; each sees the result of the one before.
  let queue: Promise<unknown> = Promise.resolve();
  const update = (input: unknown, version?: string): Promise<void> => {
    const run = queue.then(async () => {
      if (runtime.draining) throw new Error('the proxy is shutting down; config not applied');
      try {
        const next = prepare(input);
        await apply(next);
        metrics.configApplied(version ?? configVersion(next.config));
      } catch (err) {
        metrics.configRejected(configRejectReason(err));
        log.error({ event: 'config.refused', err }, 'config refused; the previous config keeps serving');
        throw err;
      }
    });
    queue = run.catch(() => {});
    return run;
  };

  let stopping: Promise<void> | undefined;
  let stopped!: () => void;
  const closed = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const cutNow = new AbortController();
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const stop = (timeoutMs: number): Promise<void> => {
    stopping ??= (async () => {
      // Not ready from this moment; responses written from now on close their connections.
      runtime.draining = true;
      if (!cutNow.signal.aborted) log.info({ event: 'proxy.draining', timeoutMs }, 'draining');
      await queue;
      const servers = [...bound.values()];
      bound.clear();
      const cut = await Promise.all(
        servers.map((s) => drainServer(s.server, serverSockets.get(s.server), timeoutMs, cutNow.signal)),
      );
      const total = cut.reduce((a, b) => a + b, 0);
      if (total > 0 && !cutNow.signal.aborted)
        log.warn({ event: 'proxy.drain-timeout', connections: total }, 'drain timeout: connections cut');
      // Upstream keep-alive connections: idle by now, or belonging to exchanges just cut.
      mesh.close();
      await forwarder.close();
      await closeServer(admin);
      // Spans still queued get a short chance to leave; a collector that is away cannot hold the stop up.
      await tracing?.shutdown(cutNow.signal.aborted ? 0 : 2_000);
      stopped();
    })();
    return stopping;
  };
  const drain = (o?: { timeoutMs?: number }) => stop(o?.timeoutMs ?? drainTimeoutMs);

  const appHealth = options.appProbes && new AppHealth(options.appProbes);
  const admin = createAdminServer({
    config: () => current?.config,
    appHealth: (path, userAgent) => appHealth?.run(path, userAgent),
    draining: () => runtime.draining === true,
    metrics: () => metrics.text(),
    metricsContentType: metrics.contentType,
    shutdown: () => {
      drain().catch((err: unknown) => log.error({ event: 'proxy.drain-failed', err }, 'drain failed'));
    },
    // A sidecar that cannot speak mTLS yet would only fail meshed traffic with 503s.
    notReady: () => {
      const config = current?.config;
      if (config === undefined || (options.mode ?? config.proxy.mode) !== 'sidecar') return undefined;
      if (!mesh.hasIdentity && !config.listeners.some((l) => l.kind === 'mesh')) return undefined;
      return mesh.credentials() === undefined ? 'no valid workload certificate yet' : undefined;
    },
  });
  let initial: CompiledConfig | undefined;
  if (options.config !== undefined) initial = prepare(options.config);
  const adminPort = options.adminPort ?? initial?.config.admin.port ?? 15020;
  const adminAddress = await listen(admin, adminPort, options.adminAddress ?? '0.0.0.0');
  if (initial) {
    try {
      await apply(initial);
    } catch (err) {
      await closeServer(admin);
      throw err;
    }
    metrics.configApplied(configVersion(initial.config));
  }

  return {
    update,
    drain,
    close() {
      cutNow.abort();
      return stop(0);
    },
    get draining() {
      return runtime.draining === true;
    },
    closed,
    metrics,
    tracing,
    get addresses(): ProxyAddresses {
      const listeners: Record<string, AddressInfo> = {};
      for (const l of current?.config.listeners ?? []) {
        const s = bound.get(listenerKey(l));
        if (s) listeners[l.name] = s.address;
      }
      return { admin: adminAddress, listeners };
    },
    get config() {
      return current?.config;
    },
  };
}

// `weft controlplane`: the control plane in a cluster, wired. One process runs
//
//   admin (15014)   /healthz, /readyz (ready once the informers synced and the first translation is done), /proxies…
//   mesh CA         root from the Secret `weft-ca` (created by the first replica), TokenReview verifier (15012)
//   pipeline        KubernetesProvider → translate → per-proxy configs; status writer + Lease election
//   push (15010)    configs to proxies over mTLS, authorized by the live snapshot
//   webhook (9443)  the injector, hosted on HTTPS with a serving certificate from the mesh CA
//   publishers      the root CA as ConfigMap `weft-root-ca` in injected namespaces; the CA as caBundle of the
//                   MutatingWebhookConfiguration `weft-injector`
//
// controlplane/ may not import injector/, so the webhook arrives as a function (`webhook`) that bin/ builds from the
// injector; this module gives it the serving certificate, the namespace lookup (informer cache, then a GET) and
// whether the API server supports native sidecars (read from /version).
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, pino } from 'pino';
import { ControlPlaneMetrics } from '../admin/metrics.ts';
import { type AdminServer, startAdminServer, type Readiness } from '../admin/server.ts';
import { CaSetupError, type CAServer, DEFAULT_LEAF_LIFETIME_MS, type MeshCA, startCAServer } from '../certs/index.ts';
import { snapshotAuthorizer } from '../push/identity.ts';
import { type PushServer, startPushServer } from '../push/server.ts';
import { Supervisor } from '../runtime/runner.ts';
import type { ControlPlaneTracing } from '../telemetry/tracing.ts';
import { loadOrCreateCaSecret } from './ca-secret.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient, type KubeObject, loadKubeConfig } from './client.ts';
import { type KubernetesControlPlane, kubernetesControlPlane } from './control-plane.ts';
import { isNotFound, KubeApiError, KubeError } from './errors.ts';
import { KIND_INFO } from './kinds.ts';
import type { LeaderElectorOptions } from './leader.ts';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF, type KubernetesProviderOptions } from './provider.ts';
import { gatewayNamespaces } from './gateway-objects.ts';
import { injectedNamespaces, RootCaPublisher } from './root-ca-publisher.ts';
import { TokenReviewVerifier } from './token-review.ts';
import { WebhookCaBundle } from './webhook-ca-bundle.ts';

export const CLUSTER_DEFAULTS = {
  namespace: 'weft-system',
  trustDomain: 'cluster.local',
  clusterDomain: 'cluster.local',
  certTtlMs: DEFAULT_LEAF_LIFETIME_MS,
  caSecret: 'weft-ca',
  rootCaConfigMap: 'weft-root-ca',
  service: 'weft-controlplane',
  webhookConfiguration: 'weft-injector',
  host: '0.0.0.0',
  ports: { push: 15010, ca: 15012, admin: 15014, webhook: 9443 },
} as const;

export interface ClusterPorts {
  push: number;
  ca: number;
  admin: number;
  webhook: number;
}

/** Serving certificates are issued for this long and renewed at two thirds of it. */
const SERVING_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** What the injector's webhook needs from its host (bin/ adapts injector's startWebhook to it). */
export interface WebhookHostOptions {
  port: number;
  host: string;
  tls: { cert: string; key: string };
  /** A namespace's labels: the informer cache first, then a GET; undefined when it does not exist. */
  namespaceLookup: (name: string) => Promise<{ name: string; labels?: Record<string, string> } | undefined>;
  /** The API server supports init containers with restartPolicy Always (Kubernetes 1.29+). */
  nativeSidecar: boolean;
  logger: Logger;
}

export interface HostedWebhook {
  readonly port: number;
  updateTls(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

export interface ClusterControlPlaneOptions {
  client: KubeClient;
  /** The control plane's own namespace (CA Secret, Lease, the Service). Default weft-system. */
  namespace?: string;
  trustDomain?: string;
  /** The cluster's DNS domain, for the Service names in serving certificates. Default cluster.local. */
  clusterDomain?: string;
  /** Lifetime of workload certificates. Default 24 h. */
  certTtlMs?: number;
  caSecret?: string;
  rootCaConfigMap?: string;
  /** The Service in front of the control plane: serving certificates carry its DNS names. */
  service?: string;
  webhookConfiguration?: string;
  /** Address every server binds. Default 0.0.0.0. */
  host?: string;
  /** 0 picks a free port (tests). */
  ports?: Partial<ClusterPorts>;
  /** Default true; false: this replica writes status alone. */
  leaderElect?: boolean;
  /** This replica's name in the Lease. Default the pod name, else `<hostname>_<random>`. */
  identity?: string;
  /**
   * The weft image: Gateway provisioning runs edge proxies with it (absent: no provisioning). The injector's image
   * is in its own settings (bin/ makes both the same).
   */
  proxyImage?: string;
  /** Control-plane spans (translate cycles, pushes) to this OTLP/HTTP collector. */
  tracing?: { endpoint: string; sampleRatio?: number };
  /** Hosts the injector; absent: no webhook (and no caBundle upkeep). */
  webhook?: (options: WebhookHostOptions) => Promise<HostedWebhook>;
  /** Retry of the start-up reads (CA Secret, /version) while the API cannot be reached. */
  startupBackoff?: Partial<Backoff>;
  /** Aborting it stops the control plane (also while it is still starting). */
  signal?: AbortSignal;
  /** Tuning passed through (tests use short intervals). */
  provider?: Omit<Partial<KubernetesProviderOptions>, 'client' | 'logger'>;
  leader?: Omit<Partial<LeaderElectorOptions>, 'client' | 'logger' | 'namespace' | 'identity'>;
  logger?: Logger;
}

/** Whether `/version` names a release with native sidecars (1.29+; `minor` may read like "29+"). */
export function supportsNativeSidecars(version: { major?: string; minor?: string } | undefined): boolean {
  const major = Number.parseInt(version?.major ?? '', 10);
  const minor = Number.parseInt(version?.minor ?? '', 10);
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return false;
  return major > 1 || (major === 1 && minor >= 29);
}

/** The DNS names a client in the cluster may use for `service` in `namespace`. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.${clusterDomain}`,
  ];
}

/**
 * Where proxies reach the push server and the CA: the Service, on the ports served (the chart's Service forwards
 * each port to the same container port); a port of 0 (tests: any free port) names the default.
 */
export function controlPlaneAddresses(o: { service: string; namespace: string; ports: { push: number; ca: number } }): {
  push: string;
  ca: string;
} {
  const host = `${o.service}.${o.namespace}.svc`;
  return {
    push: `${host}:${o.ports.push || CLUSTER_DEFAULTS.ports.push}`,
    ca: `${host}:${o.ports.ca || CLUSTER_DEFAULTS.ports.ca}`,
  };
}

/** Where a pod finds its ServiceAccount token (in-cluster configuration). */
export const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * The API client of `weft controlplane`: the kubeconfig `file` when given; else the in-cluster ServiceAccount when
 * running in a pod; else `$KUBECONFIG` or `~/.kube/config`. Throws KubeError(WEFT_ERR_K8S_CONFIG).
 */
export function controlPlaneClient(file?: string, env: NodeJS.ProcessEnv = process.env): KubeClient {
  let kc: KubeConfig;
  if (file) kc = loadKubeConfig(file);
  else if (env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
    kc = new KubeConfig();
    kc.loadFromCluster();
  } else kc = loadKubeConfig();
  return new KubeClient(kc, { userAgent: 'weft-controlplane' });
}

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class ClusterControlPlane {
  readonly o: Required<
    Omit<
      ClusterControlPlaneOptions,
      | 'webhook'
      | 'identity'
      | 'startupBackoff'
      | 'provider'
      | 'leader'
      | 'logger'
      | 'ports'
      | 'signal'
      | 'proxyImage'
      | 'tracing'
    >
  > & { ports: ClusterPorts } & Pick<
      ClusterControlPlaneOptions,
      'webhook' | 'identity' | 'provider' | 'leader' | 'proxyImage' | 'tracing'
    >;
  readonly log: Logger;
  readonly #client: KubeClient;
  readonly #startupBackoff: Backoff;
  readonly #closing = new AbortController();
  #ca: MeshCA | undefined;
  #nativeSidecar: boolean | undefined;
  #k8s: KubernetesControlPlane | undefined;
  #supervisor: Supervisor | undefined;
  #publisher: RootCaPublisher | undefined;
  #caBundle: WebhookCaBundle | undefined;
  #admin: AdminServer | undefined;
  /** Served at the admin endpoint's /metrics. */
  readonly metrics = new ControlPlaneMetrics();
  #caServer: CAServer | undefined;
  #push: PushServer | undefined;
  #webhook: HostedWebhook | undefined;
  #webhookRenewal: NodeJS.Timeout | undefined;
  #tracing: ControlPlaneTracing | undefined;
  #supervising: Promise<void> | undefined;
  #closed = false;
  #starting: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #readyWaiters: (() => void)[] = [];

  constructor(options: ClusterControlPlaneOptions) {
    const d = CLUSTER_DEFAULTS;
    this.o = {
      client: options.client,
      namespace: options.namespace ?? d.namespace,
      trustDomain: options.trustDomain ?? d.trustDomain,
      clusterDomain: options.clusterDomain ?? d.clusterDomain,
      certTtlMs: options.certTtlMs ?? d.certTtlMs,
      caSecret: options.caSecret ?? d.caSecret,
      rootCaConfigMap: options.rootCaConfigMap ?? d.rootCaConfigMap,
      service: options.service ?? d.service,
      webhookConfiguration: options.webhookConfiguration ?? d.webhookConfiguration,
      host: options.host ?? d.host,
      ports: {
        push: options.ports?.push ?? d.ports.push,
        ca: options.ports?.ca ?? d.ports.ca,
        admin: options.ports?.admin ?? d.ports.admin,
        webhook: options.ports?.webhook ?? d.ports.webhook,
      },
      leaderElect: options.leaderElect ?? true,
      webhook: options.webhook,
      proxyImage: options.proxyImage,
      tracing: options.tracing,
      identity: options.identity,
      provider: options.provider,
      leader: options.leader,
    };
    this.#client = options.client;
    this.#startupBackoff = { ...DEFAULT_BACKOFF, ...options.startupBackoff };
    this.log = options.logger ?? pino({ name: 'weft-controlplane' });
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** The mesh CA (after start). */
  get ca(): MeshCA | undefined {
    return this.#ca;
  }

  get kubernetes(): KubernetesControlPlane | undefined {
    return this.#k8s;
  }

  get nativeSidecar(): boolean | undefined {
    return this.#nativeSidecar;
  }

  get publisher(): RootCaPublisher | undefined {
    return this.#publisher;
  }

  get caBundle(): WebhookCaBundle | undefined {
    return this.#caBundle;
  }

  /** Bound ports (after start; 0 for a server not started). */
  get ports(): ClusterPorts {
    return {
      push: this.#push?.port ?? 0,
      ca: this.#caServer?.port ?? 0,
      admin: this.#admin?.port ?? 0,
      webhook: this.#webhook?.port ?? 0,
    };
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (!this.#ca) reasons.push(`the mesh CA is not loaded yet (Secret ${this.o.namespace}/${this.o.caSecret})`);
    if (this.#ca && !this.#k8s?.provider?.ready) reasons.push('the informers have not completed their first list');
    else if (this.#k8s && !this.#k8s.pipeline.ready) reasons.push('no translation yet');
    if (this.#ca && (!this.#push || !this.#caServer)) reasons.push('the push and CA servers are not listening yet');
    if (this.o.webhook && this.#ca && !this.#webhook) reasons.push('the injector webhook is not listening yet');
    return reasons.length === 0 ? { ready: true } : { ready: false, reasons };
  }

  get ready(): boolean {
    return this.readiness().ready;
  }

  /** Resolves once ready (see readiness()). */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((r) => this.#readyWaiters.push(r));
  }

  /** Starts everything; rejects with KubeError(WEFT_ERR_K8S_CLOSED) when closed meanwhile. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  #checkOpen(): void {
    if (this.#closed) throw new KubeError('WEFT_ERR_K8S_CLOSED', 'the control plane was stopped while starting');
  }

  async #start(): Promise<void> {
    this.#checkOpen();
    const o = this.o;
    this.#admin = await startAdminServer({
      port: o.ports.admin,
      host: o.host,
      logger: this.log,
      ready: () => this.readiness(),
      proxies: () => this.#push?.records() ?? [],
      statuses: () => this.#k8s?.pipeline.statuses.entries().map(([, s]) => s) ?? [],
      runners: () => this.#supervisor?.status() ?? [],
      metrics: this.metrics.registry,
    });
    const { ca, created } = await this.#retrying('loading the mesh CA', () =>
      loadOrCreateCaSecret({
        client: this.#client,
        namespace: o.namespace,
        name: o.caSecret,
        trustDomain: o.trustDomain,
        logger: this.log,
      }),
    );
    this.#checkOpen();
    this.#ca = ca;
    this.metrics.watchCa(ca);
    this.log.info(
      { event: 'ca.loaded', secret: `${o.namespace}/${o.caSecret}`, created, notAfter: ca.notAfter.toISOString() },
      `mesh CA ${created ? 'created in' : 'loaded from'} Secret ${o.namespace}/${o.caSecret}`,
    );
    if (o.webhook) {
      const version = await this.#retrying('reading the API server version', () =>
        this.#client.request<{ major?: string; minor?: string; gitVersion?: string }>('GET', '/version'),
      );
      this.#checkOpen();
      this.#nativeSidecar = supportsNativeSidecars(version);
      this.log.info(
        { event: 'k8s.version', gitVersion: version?.gitVersion, nativeSidecar: this.#nativeSidecar },
        `API server ${version?.gitVersion ?? '(unknown version)'}: ${this.#nativeSidecar ? 'native sidecars' : 'classic sidecar containers'}`,
      );
    }

    const addresses = controlPlaneAddresses(o);
    const k8s = kubernetesControlPlane({
      client: this.#client,
      namespace: o.namespace,
      identity: o.identity ?? process.env.POD_NAME ?? `${hostname()}_${Math.random().toString(36).slice(2, 10)}`,
      translateOptions: { trustDomain: o.trustDomain, clusterDomain: o.clusterDomain, rootCAs: ca.rootCAsPem },
      logger: this.log,
      ...(o.provider ? { provider: o.provider } : {}),
      leader: o.leaderElect ? (o.leader ?? {}) : false,
      ...(o.proxyImage
        ? {
            provisioner: {
              image: o.proxyImage,
              pushAddress: addresses.push,
              caAddress: addresses.ca,
              rootCaConfigMap: o.rootCaConfigMap,
            },
          }
        : {}),
    });
    this.#k8s = k8s;
    if (o.tracing) {
      const { startControlPlaneTracing } = await import('../telemetry/tracing.ts');
      this.#tracing = startControlPlaneTracing(
        { ...o.tracing, serviceName: 'weft-controlplane', registry: this.metrics.registry },
        { pipeline: k8s.pipeline },
      );
    }
    this.metrics.watchPipeline(k8s.pipeline);
    this.metrics.watchStatusWriter(k8s.writer);
    this.#publisher = new RootCaPublisher({
      client: this.#client,
      snapshots: k8s.pipeline.snapshots,
      rootCAsPem: ca.rootCAsPem,
      name: o.rootCaConfigMap,
      // Edge proxies mount it too, in Gateway namespaces that need not be labelled for injection.
      namespaces: (snapshot) => [...injectedNamespaces(snapshot), ...gatewayNamespaces(snapshot)],
      ...(k8s.leader ? { leader: k8s.leader } : {}),
      logger: this.log,
    });
    const supervisor = new Supervisor({ logger: this.log });
    this.#supervisor = supervisor;
    for (const r of k8s.runners) supervisor.add(r);
    supervisor.add(this.#publisher);
    if (o.webhook) {
      this.#caBundle = new WebhookCaBundle({
        client: this.#client,
        name: o.webhookConfiguration,
        caBundlePem: ca.rootCAsPem,
        ...(k8s.leader ? { leader: k8s.leader } : {}),
        logger: this.log,
      });
      supervisor.add(this.#caBundle);
    }
    k8s.pipeline.onTranslation(() => this.#checkReady());

    const dnsNames = serviceDnsNames(o.service, o.namespace, o.clusterDomain);
    this.#caServer = await startCAServer({
      ca,
      verifier: new TokenReviewVerifier({ client: this.#client }),
      port: o.ports.ca,
      host: o.host,
      serverNames: { dnsNames },
      leafLifetimeMs: o.certTtlMs,
      logger: this.log,
      metrics: this.metrics,
    });
    this.#push = await startPushServer({
      configs: k8s.pipeline.proxies,
      authorize: snapshotAuthorizer({ snapshot: () => k8s.pipeline.snapshot, trustDomain: o.trustDomain }),
      ca,
      port: o.ports.push,
      host: o.host,
      serverNames: { dnsNames },
      logger: this.log,
      metrics: this.metrics,
    });
    this.#tracing?.tracePush(this.#push);
    this.#checkOpen();
    if (o.webhook) await this.#startWebhook(o.webhook, ca, dnsNames);
    this.#checkOpen();
    // Not awaited: the provider's first start waits for the informers' first lists, and the servers are already up.
    this.#supervising = supervisor.start();
    this.log.info(
      { event: 'controlplane.started', ports: this.ports, namespace: o.namespace, leaderElect: o.leaderElect },
      `weft control plane serving: push :${this.ports.push}, CA :${this.ports.ca}, admin :${this.ports.admin}${this.#webhook ? `, webhook :${this.ports.webhook}` : ''}`,
    );
    this.#checkReady();
  }

  async #startWebhook(
    start: NonNullable<ClusterControlPlaneOptions['webhook']>,
    ca: MeshCA,
    dnsNames: string[],
  ): Promise<void> {
    const issue = () => {
      const s = ca.issueServing({ dnsNames, ips: [] }, SERVING_LIFETIME_MS);
      return { tls: { cert: s.certChainPem, key: s.keyPem }, notAfter: s.notAfter };
    };
    let serving = issue();
    this.#webhook = await start({
      port: this.o.ports.webhook,
      host: this.o.host,
      tls: serving.tls,
      namespaceLookup: (name) => this.#namespace(name),
      nativeSidecar: this.#nativeSidecar ?? true,
      logger: this.log.child({ component: 'injector' }),
    });
    const schedule = () => {
      const delay = Math.max(1000, ((serving.notAfter.getTime() - Date.now()) * 2) / 3);
      this.#webhookRenewal = setTimeout(() => {
        try {
          serving = issue();
          this.#webhook?.updateTls(serving.tls);
          this.log.info({ event: 'webhook.certificate-renewed', notAfter: serving.notAfter.toISOString() }, 'renewed');
        } catch (err) {
          this.log.error({ err }, 'renewing the webhook serving certificate failed; retrying');
        }
        schedule();
      }, delay);
      this.#webhookRenewal.unref();
    };
    schedule();
  }

  async #namespace(name: string): Promise<{ name: string; labels?: Record<string, string> } | undefined> {
    let ns: KubeObject | undefined = this.#k8s?.provider?.getObject('Namespace', undefined, name);
    if (!ns) {
      // Not in the cache (yet): a namespace created a moment before its first pod.
      try {
        ns = await this.#client.get(KIND_INFO.get('Namespace')!, 'v1', undefined, name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }
    return { name, labels: { ...(ns?.metadata?.labels ?? {}) } };
  }

  /** Retries `fn` while the API cannot answer (unreachable, 5xx, 429, 403 until RBAC is in place). */
  async #retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        this.#checkOpen();
        if (err instanceof CaSetupError) throw err;
        const retryable =
          !(err instanceof KubeApiError) || err.statusCode >= 500 || [401, 403, 404, 429].includes(err.statusCode);
        if (!(err instanceof KubeError) || !retryable) throw err;
        const delay = backoffDelay(attempt, this.#startupBackoff);
        this.log.warn(
          { event: 'controlplane.startup-retry', what, err: describe(err), retryInMs: delay },
          `${what}: ${describe(err)}; retrying in ${delay} ms`,
        );
        await sleep(delay, undefined, { signal: this.#closing.signal }).catch(() => {});
        this.#checkOpen();
      }
    }
  }

  #checkReady(): void {
    if (!this.ready) return;
    for (const w of this.#readyWaiters.splice(0)) w();
  }

  /**
   * Stops taking work (webhook, push, CA), then the runners (the leader releases its Lease), then the admin
   * endpoint. Proxies keep their configs and certificates and reconnect to the other replica.
   */
  close(): Promise<void> {
    this.#stopped ??= this.#close();
    return this.#stopped;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    // A start under way runs to its next step and gives up: then everything it started is here to close.
    await this.#starting?.catch(() => {});
    clearTimeout(this.#webhookRenewal);
    await this.#webhook?.close();
    await this.#push?.close();
    await this.#caServer?.close();
    await this.#supervisor?.close();
    await this.#supervising?.catch(() => {});
    await this.#admin?.close();
    await this.#tracing?.shutdown();
    this.log.info({ event: 'controlplane.stopped' }, 'weft control plane stopped');
  }
}

/** Starts the control plane (see ClusterControlPlane); on a failed start, what was started is closed again. */
export async function startClusterControlPlane(options: ClusterControlPlaneOptions): Promise<ClusterControlPlane> {
  const cp = new ClusterControlPlane(options);
  try {
    await cp.start();
  } catch (err) {
    await cp.close().catch(() => {});
    throw err;
  }
  return cp;
}

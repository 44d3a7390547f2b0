// A small JSON REST client for the Kubernetes API on top of client-node's KubeConfig (which handles kubeconfig
// files, in-cluster service-account tokens, exec and OIDC auth, client certificates and TLS). Objects stay plain
// JSON exactly as the server sent them: client-node's generated clients turn timestamps into Date objects and drop
// fields they do not know, which would make an object read by a list differ from the same object read by a watch.
import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { type Dispatcher, fetch } from 'undici';
import { KubeApiError, KubeError, type KubeStatus } from './errors.ts';
import { type KindInfo, resourcePath } from './kinds.ts';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

export interface KubeList<T = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: T[];
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Default `application/json` when there is a body. */
  contentType?: string;
  signal?: AbortSignal;
}

/** What to list: `list` also takes a page's `continue` token; `listAll` pages by itself. */
export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  signal?: AbortSignal;
}

export interface KubeClientOptions {
  /** Sent as User-Agent (the API server's audit log shows it). Default `weft-controlplane`. */
  userAgent?: string;
  /** Per request, not for watches (client-node's Watch has its own). Default 30 s. */
  timeoutMs?: number;
}

const METHODS: Record<string, HttpMethod> = {
  GET: HttpMethod.GET,
  POST: HttpMethod.POST,
  PUT: HttpMethod.PUT,
  PATCH: HttpMethod.PATCH,
  DELETE: HttpMethod.DELETE,
};

/** A KubeConfig for one API server URL and an optional bearer token (tests, `weft` flags). */
export function kubeConfigFor(server: string, options: { token?: string; caData?: string; insecure?: boolean } = {}) {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: 'weft',
      server,
      // client-node refuses plain http:// unless TLS verification is skipped explicitly.
      skipTLSVerify: options.insecure ?? server.startsWith('http:'),
      ...(options.caData ? { caData: options.caData } : {}),
    },
    { name: 'weft', ...(options.token ? { token: options.token } : {}) },
  );
  return kc;
}

/** The kubeconfig a controller uses: `$KUBECONFIG`/`~/.kube/config`, else the in-cluster service account. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (cause) {
    throw new KubeError('WEFT_ERR_K8S_CONFIG', `cannot load kubeconfig${file ? ` ${file}` : ''}: ${String(cause)}`, {
      cause,
    });
  }
  if (!kc.getCurrentCluster()) throw new KubeError('WEFT_ERR_K8S_CONFIG', 'kubeconfig has no current cluster');
  return kc;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly #userAgent: string;
  readonly #timeoutMs: number;
  #dispatcher: Dispatcher | undefined;
  #closed = false;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    if (!kubeConfig.getCurrentCluster())
      throw new KubeError('WEFT_ERR_K8S_CONFIG', 'kubeconfig has no current cluster');
    this.kubeConfig = kubeConfig;
    this.#userAgent = options.userAgent ?? 'weft-controlplane';
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? '';
  }

  /** One request; resolves with the parsed JSON body, or rejects with KubeApiError / KubeError. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (this.#closed) throw new KubeError('WEFT_ERR_K8S_CLOSED', 'client closed');
    const url = new URL(this.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    // Credentials may rotate (projected tokens, exec plugins): applied anew to every request.
    const ctx = new RequestContext(url.toString(), METHODS[method] ?? HttpMethod.GET);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = {
      ...ctx.getHeaders(),
      accept: 'application/json',
      'user-agent': this.#userAgent,
    };
    const fresh = ctx.getDispatcher() as Dispatcher | undefined;
    // client-node builds a new agent for every request; keep the first so connections are reused.
    if (fresh && !this.#dispatcher) this.#dispatcher = fresh;
    else if (fresh && fresh !== this.#dispatcher) void fresh.close().catch(() => {});
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    const signals = [AbortSignal.timeout(this.#timeoutMs)];
    if (options.signal) signals.push(options.signal);
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers,
        body,
        signal: AbortSignal.any(signals),
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
      });
      text = await res.text();
    } catch (cause) {
      throw new KubeError(
        'WEFT_ERR_K8S_UNREACHABLE',
        `${method} ${path}: ${(cause as Error)?.message ?? String(cause)}${(cause as { cause?: Error })?.cause ? ` (${(cause as { cause: Error }).cause.message})` : ''}`,
        { cause },
      );
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.status >= 200 && res.status < 300) return json as T;
    const status =
      json && typeof json === 'object' && (json as KubeStatus).kind === 'Status' ? (json as KubeStatus) : undefined;
    throw new KubeApiError(
      method,
      path,
      res.status,
      status?.reason || res.statusText || 'Error',
      status?.message ?? text.slice(0, 200),
      status,
    );
  }

  get<T = KubeObject>(info: KindInfo | ResourceRef, version: string, namespace: string | undefined, name: string) {
    return this.request<T>('GET', resourcePath(info, version, namespace, name));
  }

  /** One page of a list. */
  list<T = KubeObject>(
    info: KindInfo | ResourceRef,
    version: string,
    options: ListOptions & { continue?: string } = {},
  ): Promise<KubeList<T>> {
    return this.request<KubeList<T>>('GET', resourcePath(info, version, options.namespace), {
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
      },
      signal: options.signal,
    });
  }

  /**
   * Every item, in pages of `limit` (as client-go's reflector lists). A continue token that expired mid-way (410)
   * restarts the list from the beginning once.
   */
  async listAll<T = KubeObject>(
    info: KindInfo | ResourceRef,
    version: string,
    options: ListOptions = {},
  ): Promise<KubeList<T>> {
    const limit = options.limit ?? 500;
    for (let attempt = 0; ; attempt++) {
      const items: T[] = [];
      let cont: string | undefined;
      let first: KubeList<T> | undefined;
      try {
        do {
          const page: KubeList<T> = await this.list<T>(info, version, { ...options, limit, continue: cont });
          first ??= page;
          items.push(...page.items);
          cont = page.metadata?.continue || undefined;
        } while (cont);
      } catch (e) {
        if (attempt === 0 && cont !== undefined && e instanceof KubeApiError && e.statusCode === 410) continue;
        throw e;
      }
      return { ...first, items };
    }
  }

  create<T = KubeObject>(info: KindInfo | ResourceRef, version: string, namespace: string | undefined, body: unknown) {
    return this.request<T>('POST', resourcePath(info, version, namespace), { body });
  }

  replace<T = KubeObject>(
    info: KindInfo | ResourceRef,
    version: string,
    namespace: string | undefined,
    name: string,
    body: unknown,
  ) {
    return this.request<T>('PUT', resourcePath(info, version, namespace, name), { body });
  }

  /** PUT of the `status` subresource: only the status of `body` is taken; its resourceVersion must be current. */
  replaceStatus<T = KubeObject>(
    info: KindInfo | ResourceRef,
    version: string,
    namespace: string | undefined,
    name: string,
    body: unknown,
  ) {
    return this.request<T>('PUT', resourcePath(info, version, namespace, name, 'status'), { body });
  }

  patch<T = KubeObject>(
    info: KindInfo | ResourceRef,
    version: string,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    type: 'merge' | 'json' = 'merge',
    subresource?: 'status',
  ) {
    return this.request<T>('PATCH', resourcePath(info, version, namespace, name, subresource), {
      body: patch,
      contentType: type === 'merge' ? 'application/merge-patch+json' : 'application/json-patch+json',
    });
  }

  delete<T = KubeObject>(info: KindInfo | ResourceRef, version: string, namespace: string | undefined, name: string) {
    return this.request<T>('DELETE', resourcePath(info, version, namespace, name));
  }

  /** Creates or replaces (by its resourceVersion, or the current one when it has none) — a test and tool helper. */
  async apply<T extends KubeObject = KubeObject>(info: KindInfo | ResourceRef, version: string, body: T): Promise<T> {
    const ns = info.namespaced ? (body.metadata?.namespace ?? 'default') : undefined;
    const name = body.metadata?.name ?? '';
    try {
      return await this.create<T>(info, version, ns, body);
    } catch (e) {
      if (!(e instanceof KubeApiError) || e.statusCode !== 409) throw e;
    }
    const current = await this.get<T>(info, version, ns, name);
    const next = { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } };
    return this.replace<T>(info, version, ns, name, next);
  }

  /** Closes pooled connections; later requests fail with WEFT_ERR_K8S_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true;
    const d = this.#dispatcher;
    this.#dispatcher = undefined;
    await d?.close().catch(() => {});
  }
}

/** Enough to address a resource that is not one of the snapshot's kinds (Leases, TokenReviews, CRDs). */
export interface ResourceRef {
  group: string;
  plural: string;
  namespaced: boolean;
}

export const LEASES: ResourceRef = { group: 'coordination.k8s.io', plural: 'leases', namespaced: true };
export const TOKEN_REVIEWS: ResourceRef = { group: 'authentication.k8s.io', plural: 'tokenreviews', namespaced: false };

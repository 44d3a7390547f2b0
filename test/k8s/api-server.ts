// A Kubernetes API server for tests, over plain HTTP on a port of its own, faithful enough that client-node's
// informers, watches and REST calls (and so weft's controlplane/k8s) run against it unmodified:
//
// - discovery (/api, /apis, /api/v1, /apis/<group>[/<version>], /version): CRD-defined resources are absent from
//   it (and every request to them is 404) while "not installed" — see installCrd/uninstallCrd;
// - one global resourceVersion counter; list (with limit/continue pages that stay consistent) and watch (chunked
//   JSON lines ADDED/MODIFIED/DELETED, BOOKMARK with allowWatchBookmarks, timeoutSeconds, an initial burst of
//   synthetic ADDED events without a resourceVersion, a replay from the bounded history with one); a watch from
//   a resourceVersion older than the history gets the ERROR event with the 410 `Expired` Status, as the watch
//   cache sends it;
// - labelSelector and fieldSelector (metadata.name, metadata.namespace, and per-kind fields like Secret `type`),
//   including the ADDED/DELETED a watcher sees when an object starts or stops matching;
// - create/get/update/delete/deletecollection, dryRun, the `status` subresource (the main resource ignores status,
//   /status ignores the rest), metadata.generation bumped by spec changes of the kinds that keep it, no-op updates
//   that change nothing, optimistic concurrency (409 on a stale resourceVersion; CRDs refuse unconditional PUT),
//   merge patch and JSON patch (and strategic merge treated as merge patch for built-in kinds only), namespaces that
//   must exist, the defaults a real server applies (Service type/ports/clusterIP, the Gateway API CRD defaults);
// - TokenReview (authentication.k8s.io/v1) answered by a function the test sets; Leases (coordination.k8s.io/v1),
//   whose MicroTime fields must have six fractional digits as metav1.MicroTime requires.
// - mutating admission (admission.ts): a create calls the webhooks of the MutatingWebhookConfigurations stored here
//   over HTTPS (selectors, failurePolicy, caBundle, timeout), Service-backed ones at the address `resolveService`
//   gives;
// - the services proxy subresource (`/api/v1/namespaces/<ns>/services/[scheme:]<name>[:port]/proxy/<path>`), which
//   forwards the request to the address `resolveService` gives for the Service's port (503 when none, as a real
//   server answers for a Service without endpoints);
//
// Test controls: failNext (an error status or a dropped connection for the next matching requests), dropWatches
// (connections cut), endWatches (closed cleanly), expireNextWatch (410 for the next watch), compact (forget the
// history), a log of every request, and in-process put/get/remove that bypass HTTP but emit the same events.

import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  request as httpRequest,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { canonicalJson as canonical } from '../../controlplane/runtime/canonical.ts';
import { AdmissionError, mutatingAdmission, type ServiceResolver } from './admission.ts';
import { jsonPatch, mergePatch, PatchError } from './patch.ts';
import { apiVersionOf, groupResource, RESOURCE_TYPES, type ResourceType } from './resource-types.ts';
import {
  type FieldSelector,
  type LabelSelector,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
} from './selectors.ts';

export type Obj = Record<string, unknown>;
type Meta = {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  [k: string]: unknown;
};

export type Verb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** One request as the server saw it (the audit log of the tests). */
export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb | 'discovery' | 'other';
  group?: string;
  version?: string;
  /** Plural resource name. */
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  contentType?: string;
  userAgent?: string;
  /** HTTP status answered (0 when the connection was dropped). */
  code: number;
  /** performance.now() when the request arrived. */
  at: number;
}

export interface RequestMatch {
  verb?: RequestRecord['verb'];
  method?: string;
  /** Plural resource name (`httproutes`) or kind (`HTTPRoute`). */
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export interface FailureRule extends RequestMatch {
  /** HTTP status of the error answered. Default 500. */
  code?: number;
  reason?: string;
  message?: string;
  /** Cut the connection instead of answering. */
  drop?: boolean;
  /** How many matching requests fail. Default 1. */
  times?: number;
}

export interface TokenReviewSpec {
  token: string;
  audiences?: string[];
}

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

export interface TestApiServerOptions {
  /** Events kept for watches that resume from a resourceVersion. Default 10,000. */
  historySize?: number;
  /** Between two BOOKMARK events of a watch that asked for them. Default 1000 ms. */
  bookmarkIntervalMs?: number;
  /** Require `Authorization: Bearer <token>` on every request. */
  token?: string;
  /**
   * CRD-defined kinds installed at start: all of them (default), none, or these kinds — a list names Gateway API
   * kinds, and weft's own (ProxySettings) are installed with any list (uninstallCrd removes them).
   */
  crds?: 'all' | 'none' | string[];
  /** Apply the defaults a real server applies. Default true. */
  defaulting?: boolean;
  /** Refuse objects in namespaces that do not exist. Default true. */
  requireNamespaces?: boolean;
  /** Answers TokenReviews; default: every token is unauthenticated. */
  tokenReview?: (spec: TokenReviewSpec) => TokenReviewStatus | Promise<TokenReviewStatus>;
  /** Cut every watch after this long (a real server ends watches after 5–10 min). Default: never. */
  watchTimeoutMs?: number;
  /** Where admission webhooks backed by a Service are reached (see admission.ts). */
  resolveService?: ServiceResolver;
}

interface StoredEvent {
  rv: number;
  gr: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: Obj;
  old?: Obj;
}

interface Watcher {
  type: ResourceType;
  gr: string;
  version: string;
  namespace: string | undefined;
  labels: LabelSelector;
  fields: FieldSelector;
  res: ServerResponse;
  bookmarks: boolean;
  timers: NodeJS.Timeout[];
  lastBookmarkRv: number;
}

interface Parsed {
  type?: ResourceType;
  group?: string;
  version?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: Obj | undefined;
  constructor(code: number, reason: string, message: string, details?: Obj) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

const MAX_BODY = 3 * 1024 * 1024;
/** `/api/v1/namespaces/<ns>/services/<[scheme:]name[:port]>/proxy[/<path>]`. */
const SERVICE_PROXY = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy(\/.*)?$/;
const WEFT_GROUP = 'weft.dev';
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

const rfc3339 = (d = new Date()) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const clone = <T>(v: T): T => structuredClone(v);
function metaOf(o: Obj): Meta {
  o.metadata ??= {};
  return o.metadata as Meta;
}
const keyOf = (namespace: string | undefined, name: string) => (namespace ? `${namespace}/${name}` : name);

/** Everything but metadata and status: what a generation counts. */
function specPart(o: Obj): string {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return canonical(rest);
}

function withoutVersion(o: Obj): string {
  const m = { ...(o.metadata as Meta) };
  delete m.resourceVersion;
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return canonical({ ...rest, metadata: m });
}

function statusBody(code: number, reason: string, message: string, details?: Obj): Obj {
  const out: Obj = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) out.details = details;
  return out;
}

function qualifiedResource(t: ResourceType): string {
  return t.group ? `${t.plural}.${t.group}` : t.plural;
}

export class TestApiServer extends EventEmitter<{ request: [RequestRecord]; event: [StoredEvent] }> {
  readonly requests: RequestRecord[] = [];
  readonly #o: Required<
    Omit<TestApiServerOptions, 'token' | 'tokenReview' | 'watchTimeoutMs' | 'crds' | 'resolveService'>
  > &
    TestApiServerOptions;
  readonly #server: Server;
  readonly #types = new Map<string, ResourceType>(); // gr → type
  readonly #served = new Map<string, Set<string>>(); // gr → served versions (CRD kinds only)
  readonly #objects = new Map<string, Map<string, Obj>>(); // gr → key → object (no apiVersion/kind)
  readonly #history: StoredEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #failures: FailureRule[] = [];
  readonly #expire: { match: RequestMatch; mode: 'event' | 'http' }[] = [];
  readonly #pages = new Map<string, { rv: number; items: Obj[] }>();
  readonly #clusterIPs = new Set<string>();
  #rv = 100;
  #compactedRv = 100;
  #nextIp = 1;
  #url = '';
  tokenReview: (spec: TokenReviewSpec) => TokenReviewStatus | Promise<TokenReviewStatus>;
  resolveService: ServiceResolver | undefined;
  /** Every admission webhook call: the webhook's name and what came of it. */
  readonly admissions: { webhook: string; outcome: string }[] = [];

  constructor(options: TestApiServerOptions = {}) {
    super();
    this.#o = {
      historySize: 10_000,
      bookmarkIntervalMs: 1000,
      defaulting: true,
      requireNamespaces: true,
      ...options,
    };
    this.tokenReview = options.tokenReview ?? (() => ({ authenticated: false, error: 'token not recognized' }));
    this.resolveService = options.resolveService;
    for (const t of RESOURCE_TYPES) {
      const gr = groupResource(t);
      this.#types.set(gr, t);
      this.#objects.set(gr, new Map());
      if (t.crd) {
        const crds = options.crds ?? 'all';
        // A list names Gateway API kinds; weft's own CRDs (group weft.dev) come with any list.
        const on = crds === 'all' || (Array.isArray(crds) && (crds.includes(t.kind) || t.group === WEFT_GROUP));
        this.#served.set(gr, new Set(on ? t.versions : []));
      }
    }
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease'])
      this.#store(
        this.#typeByKind('Namespace'),
        this.#newObject(this.#typeByKind('Namespace'), { metadata: { name: ns } }),
      );
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        if (!res.headersSent) this.#sendError(res, new ApiError(500, 'InternalError', String(err)));
        else res.destroy();
      });
    });
    this.#server.keepAliveTimeout = 30_000;
  }

  /** Starts listening on 127.0.0.1 and a free port; resolves with the base URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.#url;
  }

  get url(): string {
    return this.#url;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) this.#endWatch(w, false);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- test controls ----

  /** The next `times` requests matching `rule` fail with its status (or a cut connection). */
  failNext(rule: FailureRule = {}): void {
    this.#failures.push({ times: 1, ...rule });
  }

  /** Cuts the connections of open watches (of one resource, or all): the client sees an error mid-stream. */
  dropWatches(resource?: string): number {
    let n = 0;
    for (const w of [...this.#watchers]) {
      if (resource && !this.#matchesResource(w.type, resource)) continue;
      this.#endWatch(w, true);
      n++;
    }
    return n;
  }

  /** Ends open watches cleanly (as the server's watch timeout does). */
  endWatches(resource?: string): number {
    let n = 0;
    for (const w of [...this.#watchers]) {
      if (resource && !this.#matchesResource(w.type, resource)) continue;
      this.#endWatch(w, false);
      n++;
    }
    return n;
  }

  /**
   * The next watch matching `match` is answered 410: with the watch cache's ERROR event on a 200 stream
   * (`event`, the default) or as an HTTP 410 status (`http`).
   */
  expireNextWatch(match: RequestMatch = {}, mode: 'event' | 'http' = 'event'): void {
    this.#expire.push({ match, mode });
  }

  /** Forgets the history: a watch resuming from any earlier resourceVersion gets 410 Expired. */
  compact(): void {
    this.#history.length = 0;
    this.#compactedRv = this.#rv;
  }

  /** Number of open watches (of one resource, or all). */
  watchCount(resource?: string): number {
    let n = 0;
    for (const w of this.#watchers) if (!resource || this.#matchesResource(w.type, resource)) n++;
    return n;
  }

  /** Requests matching `m` so far (and with this HTTP status, if given). */
  count(m: RequestMatch & { code?: number } = {}): number {
    return this.requests.filter((r) => this.#recordMatches(r, m) && (m.code === undefined || r.code === m.code)).length;
  }

  /** Makes a CRD-defined kind served (all its versions, or these). Watches of it end, as after a CRD change. */
  installCrd(kind: string, versions?: string[]): void {
    const t = this.#typeByKind(kind);
    if (!t.crd) throw new Error(`${kind} is not defined by a CRD`);
    this.#served.set(groupResource(t), new Set(versions ?? t.versions));
    this.endWatches(t.plural);
  }

  /** Removes a CRD: its objects are deleted (DELETED events), its watches end, requests to it are 404. */
  uninstallCrd(kind: string): void {
    const t = this.#typeByKind(kind);
    if (!t.crd) throw new Error(`${kind} is not defined by a CRD`);
    const gr = groupResource(t);
    for (const o of [...this.#objects.get(gr)!.values()]) this.#remove(t, o);
    this.#served.set(gr, new Set());
    this.endWatches(t.plural);
  }

  /** Served versions of a kind. */
  servedVersions(kind: string): string[] {
    const t = this.#typeByKind(kind);
    return t.crd ? [...this.#served.get(groupResource(t))!] : [...t.versions];
  }

  // ---- in-process access (no HTTP; same events) ----

  /**
   * Creates or replaces an object the way a controller with every right would (a kubelet writing a Pod's
   * status, a test seeding a cluster): spec and status as given, defaults applied, generation maintained.
   */
  put(input: Obj): Obj {
    const t = this.#typeOf(input);
    const o = clone(input);
    delete o.apiVersion;
    delete o.kind;
    const m = metaOf(o);
    if (!m.name) throw new Error('put: metadata.name required');
    if (t.namespaced) m.namespace ||= 'default';
    else delete m.namespace;
    const gr = groupResource(t);
    const old = this.#objects.get(gr)!.get(keyOf(m.namespace, m.name));
    if (!old) {
      const created = this.#newObject(t, o, true);
      this.#store(t, created);
      return this.#present(t, t.versions[0], created);
    }
    const next = this.#updated(t, old, o, true);
    if (next !== old) this.#store(t, next, old);
    return this.#present(t, t.versions[0], next);
  }

  /** The stored object (a copy), in the kind's preferred version. */
  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const t = this.#typeByKind(kind);
    const o = this.#objects.get(groupResource(t))!.get(keyOf(t.namespaced ? namespace : undefined, name));
    return o ? this.#present(t, t.versions[0], o) : undefined;
  }

  /** Every stored object of a kind (copies), sorted by key. */
  list(kind: string): Obj[] {
    const t = this.#typeByKind(kind);
    return [...this.#objects.get(groupResource(t))!]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, o]) => this.#present(t, t.versions[0], o));
  }

  /** Deletes an object; false when there was none. */
  remove(kind: string, namespace: string | undefined, name: string): boolean {
    const t = this.#typeByKind(kind);
    const o = this.#objects.get(groupResource(t))!.get(keyOf(t.namespaced ? namespace : undefined, name));
    if (!o) return false;
    this.#remove(t, o);
    return true;
  }

  // ---- HTTP ----

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const parsed = this.#parse(path);
    const isWatch = query.watch === 'true' || query.watch === '1';
    const verb = this.#verbOf(req.method ?? 'GET', parsed, isWatch);
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path,
      query,
      verb,
      code: 0,
      at: performance.now(),
    };
    if (parsed.group !== undefined) record.group = parsed.group;
    if (parsed.version !== undefined) record.version = parsed.version;
    if (parsed.type) record.resource = parsed.type.plural;
    if (parsed.subresource) record.subresource = parsed.subresource;
    if (parsed.namespace) record.namespace = parsed.namespace;
    if (parsed.name) record.name = parsed.name;
    if (req.headers['content-type']) record.contentType = req.headers['content-type'];
    if (req.headers['user-agent']) record.userAgent = req.headers['user-agent'];
    const done = (code: number) => {
      record.code = code;
      this.requests.push(record);
      this.emit('request', record);
    };

    if (this.#o.token !== undefined && req.headers.authorization !== `Bearer ${this.#o.token}`) {
      this.#sendError(res, new ApiError(401, 'Unauthorized', 'Unauthorized'));
      return done(401);
    }
    const failure = this.#takeFailure(record);
    if (failure) {
      if (failure.drop) {
        req.socket.destroy();
        return done(0);
      }
      const code = failure.code ?? 500;
      this.#sendError(
        res,
        new ApiError(code, failure.reason ?? 'InternalError', failure.message ?? 'injected failure (test API server)'),
      );
      return done(code);
    }
    try {
      const proxied = SERVICE_PROXY.exec(url.pathname);
      if (proxied) {
        const [, namespace, target, rest] = proxied.map((x) => (x === undefined ? x : decodeURIComponent(x)));
        Object.assign(record, { verb: 'other', resource: 'services', subresource: 'proxy', namespace });
        return done(await this.#serviceProxy(req, res, namespace, target, `${rest ?? '/'}${url.search}`, record));
      }
      const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(record.method) ? await this.#readBody(req) : undefined;
      if (verb === 'watch' && parsed.type) {
        const code = this.#watch(req, res, parsed, query, record);
        return done(code);
      }
      const [code, out] = await this.#dispatch(record.method, parsed, path, query, body, req.headers, verb);
      this.#send(res, code, out);
      return done(code);
    } catch (err) {
      const e =
        err instanceof ApiError
          ? err
          : err instanceof SelectorError
            ? new ApiError(400, 'BadRequest', err.message)
            : err instanceof PatchError
              ? new ApiError(422, 'Invalid', err.message)
              : new ApiError(500, 'InternalError', String(err));
      this.#sendError(res, e);
      return done(e.code);
    }
  }

  /** The services proxy: the request, forwarded to where `resolveService` says the Service's port is served. */
  async #serviceProxy(
    req: IncomingMessage,
    res: ServerResponse,
    namespace: string,
    target: string,
    path: string,
    record: RequestRecord,
  ): Promise<number> {
    const parts = target.split(':');
    const scheme = parts.length > 1 && (parts[0] === 'http' || parts[0] === 'https') ? parts.shift() : 'http';
    const [name, portRef] = parts;
    record.name = name;
    const service = this.#mustGet(this.#typeByKind('Service'), namespace, name);
    const ports = ((service.spec as Obj | undefined)?.ports ?? []) as { name?: string; port: number }[];
    const port =
      portRef === undefined
        ? ports.length === 1
          ? ports[0]
          : undefined
        : ports.find((p) => String(p.port) === portRef || p.name === portRef);
    if (!port)
      throw new ApiError(503, 'ServiceUnavailable', `no endpoints available for service "${name}:${portRef ?? ''}"`);
    const address = this.resolveService?.(namespace, name, port.port);
    if (!address) throw new ApiError(503, 'ServiceUnavailable', `no endpoints available for service "${name}"`);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.authorization;
    return new Promise((resolve) => {
      const upstream = (scheme === 'https' ? httpsRequest : httpRequest)(
        { host: address.host, port: address.port, method: req.method, path, headers, rejectUnauthorized: false },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on('end', () => resolve(up.statusCode ?? 502));
        },
      );
      upstream.setTimeout(10_000, () => upstream.destroy(new Error('timeout')));
      upstream.on('error', (err) => {
        if (res.headersSent) res.destroy();
        else
          this.#sendError(
            res,
            new ApiError(503, 'ServiceUnavailable', `error trying to reach service: ${err.message}`),
          );
        resolve(503);
      });
      req.pipe(upstream);
    });
  }

  #verbOf(method: string, p: Parsed, watch: boolean): RequestRecord['verb'] {
    if (!p.type) return p.group !== undefined || p.version !== undefined ? 'discovery' : 'other';
    const item = p.name !== undefined;
    switch (method) {
      case 'GET':
        return item ? 'get' : watch ? 'watch' : 'list';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return item ? 'delete' : 'deletecollection';
      default:
        return 'other';
    }
  }

  #parse(path: string): Parsed {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api') {
      if (seg.length === 1) return {};
      group = '';
      version = seg[1];
      rest = seg.slice(2);
    } else if (seg[0] === 'apis') {
      if (seg.length === 1) return {};
      group = seg[1];
      if (seg.length === 2) return { group };
      version = seg[2];
      rest = seg.slice(3);
    } else return {};
    if (rest.length === 0) return { group, version };
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const type = this.#types.get(`${group}/${rest[0]}`);
    const out: Parsed = { group, version, name: rest[1], subresource: rest[2] };
    if (type) out.type = type;
    if (namespace !== undefined) out.namespace = namespace;
    if (rest.length > 3) delete out.type;
    return out;
  }

  async #readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'the request is too large');
      chunks.push(c as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, 'BadRequest', `the body is not valid JSON: ${(e as Error).message}`);
    }
  }

  #send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  #sendError(res: ServerResponse, e: ApiError): void {
    this.#send(res, e.code, statusBody(e.code, e.reason, e.message, e.details));
  }

  #served_(t: ResourceType, version: string): boolean {
    if (!t.versions.includes(version)) return false;
    return !t.crd || this.#served.get(groupResource(t))!.has(version);
  }

  async #dispatch(
    method: string,
    p: Parsed,
    path: string,
    query: Record<string, string>,
    body: unknown,
    headers: IncomingMessage['headers'],
    verb: RequestRecord['verb'],
  ): Promise<[number, unknown]> {
    if (path === '/version')
      return [200, { major: '1', minor: '35', gitVersion: 'v1.35.0-weft-test', platform: 'linux/amd64' }];
    if (['/healthz', '/livez', '/readyz'].includes(path)) return [200, 'ok'];
    if (path === '/api') return [200, { kind: 'APIVersions', versions: ['v1'] }];
    if (path === '/apis') return [200, this.#groupList()];
    const notFound = new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (!p.type) {
      if (method !== 'GET' || p.group === undefined) throw notFound;
      if (p.version === undefined) {
        const g = this.#groupList().groups.find((x) => x.name === p.group);
        if (!g) throw notFound;
        return [200, { kind: 'APIGroup', apiVersion: 'v1', ...g }];
      }
      const list = this.#resourceList(p.group, p.version);
      if (!list) throw notFound;
      return [200, list];
    }
    const t = p.type;
    const version = p.version as string;
    if (!this.#served_(t, version)) throw notFound;
    if (p.subresource !== undefined && !(p.subresource === 'status' && t.status)) throw notFound;
    if (t.namespaced && p.name !== undefined && p.namespace === undefined) throw notFound;
    if (!t.namespaced && p.namespace !== undefined) throw notFound;
    if (!t.verbs.includes(verb as string))
      throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    if (t.kind === 'TokenReview') return [201, await this.#tokenReview(body)];
    if (t.kind === 'CustomResourceDefinition') return this.#crds(p, version);
    const dryRun = query.dryRun === 'All';
    switch (verb) {
      case 'list':
        return [200, this.#list(t, version, p.namespace, query)];
      case 'get':
        return [200, this.#present(t, version, this.#mustGet(t, p.namespace, p.name as string))];
      case 'create':
        return [
          201,
          this.#create(t, version, p.namespace, await this.#admit(t, version, p.namespace, body, dryRun), dryRun),
        ];
      case 'update':
        return [200, this.#update(t, version, p, body, dryRun)];
      case 'patch':
        return [200, this.#patch(t, version, p, body, String(headers['content-type'] ?? ''), dryRun)];
      case 'delete':
        return [200, this.#delete(t, version, p, body, dryRun)];
      case 'deletecollection':
        return [200, this.#deleteCollection(t, version, p.namespace, query, dryRun)];
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  #groupList(): {
    kind: string;
    apiVersion: string;
    groups: { name: string; versions: Obj[]; preferredVersion: Obj }[];
  } {
    const groups = new Map<string, string[]>();
    for (const t of this.#types.values()) {
      if (!t.group) continue;
      const versions = t.versions.filter((v) => this.#served_(t, v));
      const have = groups.get(t.group) ?? [];
      for (const v of versions) if (!have.includes(v)) have.push(v);
      groups.set(t.group, have);
    }
    const out: { name: string; versions: Obj[]; preferredVersion: Obj }[] = [];
    for (const [name, versions] of groups) {
      if (versions.length === 0) continue;
      versions.sort((a, b) => (a === 'v1' ? -1 : b === 'v1' ? 1 : a < b ? 1 : -1));
      const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
      out.push({ name, versions: vs, preferredVersion: vs[0] });
    }
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: out };
  }

  #resourceList(group: string, version: string): Obj | undefined {
    const resources: Obj[] = [];
    for (const t of this.#types.values()) {
      if (t.group !== group || !this.#served_(t, version)) continue;
      const r: Obj = {
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: t.verbs,
      };
      if (t.shortNames) r.shortNames = t.shortNames;
      resources.push(r);
      if (t.status)
        resources.push({
          name: `${t.plural}/status`,
          singularName: '',
          namespaced: t.namespaced,
          kind: t.kind,
          verbs: ['get', 'patch', 'update'],
        });
    }
    if (resources.length === 0) return undefined;
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
  }

  #crds(p: Parsed, version: string): [number, unknown] {
    const items: Obj[] = [];
    for (const t of this.#types.values()) {
      if (!t.crd) continue;
      const served = this.#served.get(groupResource(t))!;
      if (served.size === 0) continue;
      items.push({
        apiVersion: `apiextensions.k8s.io/${version}`,
        kind: 'CustomResourceDefinition',
        metadata: {
          name: `${t.plural}.${t.group}`,
          ...(t.group === WEFT_GROUP
            ? {}
            : {
                annotations: {
                  'gateway.networking.k8s.io/bundle-version': 'v1.4.0',
                  'gateway.networking.k8s.io/channel': 'standard',
                },
              }),
        },
        spec: {
          group: t.group,
          names: { kind: t.kind, listKind: `${t.kind}List`, plural: t.plural, singular: t.singular },
          scope: t.namespaced ? 'Namespaced' : 'Cluster',
          versions: t.versions.map((v, i) => ({ name: v, served: served.has(v), storage: i === 0 })),
        },
      });
    }
    if (p.name !== undefined) {
      const hit = items.find((i) => (i.metadata as Meta).name === p.name);
      if (!hit)
        throw new ApiError(404, 'NotFound', `customresourcedefinitions.apiextensions.k8s.io "${p.name}" not found`);
      return [200, hit];
    }
    return [
      200,
      {
        apiVersion: `apiextensions.k8s.io/${version}`,
        kind: 'CustomResourceDefinitionList',
        metadata: { resourceVersion: String(this.#rv) },
        items,
      },
    ];
  }

  /** The object after mutating admission (the body unchanged when no webhook applies). */
  async #admit(t: ResourceType, version: string, namespace: string | undefined, body: unknown, dryRun: boolean) {
    const configurations = [
      ...this.#objects.get('admissionregistration.k8s.io/mutatingwebhookconfigurations')!.values(),
    ];
    if (configurations.length === 0) return body;
    const object = clone(this.#bodyObject(t, version, body));
    object.apiVersion = apiVersionOf(t.group, version);
    object.kind = t.kind;
    if (t.namespaced) metaOf(object).namespace = namespace;
    // Webhooks see the object after decoding, which applies the defaults.
    if (this.#o.defaulting) t.defaults?.(object);
    const ns = namespace === undefined ? undefined : this.#objects.get('/namespaces')!.get(namespace);
    try {
      return await mutatingAdmission({
        configurations,
        operation: 'CREATE',
        group: t.group,
        version,
        resource: t.plural,
        kind: t.kind,
        namespaced: t.namespaced,
        namespace,
        namespaceLabels: ((ns?.metadata as Meta | undefined)?.labels ?? {}) as Record<string, string>,
        object,
        dryRun,
        resolveService: this.resolveService,
        onCall: (webhook, outcome) => this.admissions.push({ webhook, outcome }),
      });
    } catch (err) {
      if (err instanceof AdmissionError) throw new ApiError(err.code, err.reason, err.message);
      throw err;
    }
  }

  async #tokenReview(body: unknown): Promise<Obj> {
    const spec = ((body as Obj | undefined)?.spec ?? {}) as TokenReviewSpec;
    if (typeof spec.token !== 'string' || spec.token === '')
      throw new ApiError(422, 'Invalid', 'TokenReview.authentication.k8s.io "" is invalid: spec.token: Required value');
    const status = await this.tokenReview(spec);
    return {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: { creationTimestamp: null },
      spec,
      status,
    };
  }

  // ---- storage ----

  #typeByKind(kind: string): ResourceType {
    for (const t of this.#types.values()) if (t.kind === kind || t.plural === kind) return t;
    throw new Error(`unknown kind ${kind}`);
  }

  #typeOf(o: Obj): ResourceType {
    const apiVersion = String(o.apiVersion ?? '');
    const slash = apiVersion.indexOf('/');
    const group = slash >= 0 ? apiVersion.slice(0, slash) : '';
    const version = slash >= 0 ? apiVersion.slice(slash + 1) : apiVersion;
    for (const t of this.#types.values())
      if (t.kind === o.kind && t.group === group && t.versions.includes(version)) return t;
    throw new Error(`unknown apiVersion/kind ${apiVersion} ${String(o.kind)}`);
  }

  #matchesResource(t: ResourceType, resource: string): boolean {
    return t.plural === resource || t.kind === resource;
  }

  #present(t: ResourceType, version: string, o: Obj): Obj {
    return { apiVersion: apiVersionOf(t.group, version), kind: t.kind, ...clone(o) };
  }

  #mustGet(t: ResourceType, namespace: string | undefined, name: string): Obj {
    const o = this.#objects.get(groupResource(t))!.get(keyOf(t.namespaced ? namespace : undefined, name));
    if (!o) throw new ApiError(404, 'NotFound', `${qualifiedResource(t)} "${name}" not found`, this.#details(t, name));
    return o;
  }

  #details(t: ResourceType, name: string): Obj {
    return { name, group: t.group, kind: t.plural };
  }

  #newObject(t: ResourceType, input: Obj, keepStatus = false): Obj {
    const o = clone(input);
    delete o.apiVersion;
    delete o.kind;
    const m = metaOf(o);
    if (!m.name && m.generateName) m.name = `${m.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    if (!m.name) throw new ApiError(422, 'Invalid', `${t.kind} "" is invalid: metadata.name: Required value`);
    delete m.resourceVersion;
    m.uid = randomUUID();
    m.creationTimestamp = rfc3339();
    if (t.generation) m.generation = 1;
    else delete m.generation;
    if (!keepStatus && t.status) delete o.status;
    if (!keepStatus || o.status === undefined) t.onCreate?.(o);
    this.#applyDefaults(t, o);
    return o;
  }

  #applyDefaults(t: ResourceType, o: Obj, old?: Obj): void {
    if (!this.#o.defaulting) return;
    t.defaults?.(o);
    if (t.kind === 'Service') {
      const spec = o.spec as Obj;
      const oldSpec = (old?.spec ?? {}) as Obj;
      if (spec.type !== 'ExternalName' && (spec.clusterIP === undefined || spec.clusterIP === '')) {
        spec.clusterIP = (oldSpec.clusterIP as string | undefined) ?? this.#allocateIp();
      }
      if (typeof spec.clusterIP === 'string' && spec.clusterIP !== 'None') this.#clusterIPs.add(spec.clusterIP);
      if (spec.clusterIP !== undefined && spec.clusterIPs === undefined) spec.clusterIPs = [spec.clusterIP];
      if (spec.type !== 'ExternalName') {
        spec.ipFamilies ??= ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
      }
    }
  }

  #allocateIp(): string {
    for (;;) {
      const n = this.#nextIp++;
      const ip = `10.96.${(n >> 8) & 255}.${n & 255}`;
      if ((n & 255) !== 0 && !this.#clusterIPs.has(ip)) return ip;
    }
  }

  /** The object an update of `old` to `input` stores, or `old` itself when nothing changes. */
  #updated(t: ResourceType, old: Obj, input: Obj, keepStatus: boolean, statusOnly = false): Obj {
    let next: Obj;
    if (statusOnly) {
      next = clone(old);
      if (input.status === undefined) delete next.status;
      else next.status = clone(input.status);
    } else {
      next = clone(input);
      delete next.apiVersion;
      delete next.kind;
      const m = metaOf(next);
      const om = old.metadata as Meta;
      m.name = om.name;
      if (om.namespace !== undefined) m.namespace = om.namespace;
      else delete m.namespace;
      m.uid = om.uid;
      m.creationTimestamp = om.creationTimestamp;
      if (t.status && !keepStatus) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
      this.#applyDefaults(t, next, old);
      if (t.generation) m.generation = (om.generation ?? 1) + (specPart(next) !== specPart(old) ? 1 : 0);
      else delete m.generation;
    }
    metaOf(next).resourceVersion = (old.metadata as Meta).resourceVersion;
    if (withoutVersion(next) === withoutVersion(old)) return old;
    return next;
  }

  #store(t: ResourceType, o: Obj, old?: Obj): void {
    const m = metaOf(o);
    m.resourceVersion = String(++this.#rv);
    this.#objects.get(groupResource(t))!.set(keyOf(m.namespace, m.name as string), o);
    this.#record({ rv: this.#rv, gr: groupResource(t), type: old ? 'MODIFIED' : 'ADDED', obj: o, old });
  }

  #remove(t: ResourceType, o: Obj): Obj {
    const m = o.metadata as Meta;
    this.#objects.get(groupResource(t))!.delete(keyOf(m.namespace, m.name as string));
    // The DELETED event carries the object at the deletion's resourceVersion.
    const gone = { ...o, metadata: { ...m, resourceVersion: String(++this.#rv) } };
    this.#record({ rv: this.#rv, gr: groupResource(t), type: 'DELETED', obj: gone, old: o });
    if (t.kind === 'Namespace') {
      for (const [gr, objs] of this.#objects) {
        const nt = this.#types.get(gr)!;
        if (!nt.namespaced) continue;
        for (const x of [...objs.values()]) if ((x.metadata as Meta).namespace === m.name) this.#remove(nt, x);
      }
    }
    return gone;
  }

  #record(e: StoredEvent): void {
    this.#history.push(e);
    while (this.#history.length > this.#o.historySize) this.#compactedRv = this.#history.shift()!.rv;
    for (const w of this.#watchers) if (w.gr === e.gr) this.#deliver(w, e);
    this.emit('event', e);
  }

  #checkNamespace(t: ResourceType, namespace: string | undefined): void {
    if (!t.namespaced || !this.#o.requireNamespaces) return;
    if (!this.#objects.get('/namespaces')!.has(namespace as string))
      throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, {
        name: namespace,
        kind: 'namespaces',
      });
  }

  #checkMicroTimes(t: ResourceType, o: Obj): void {
    if (t.kind !== 'Lease') return;
    const spec = (o.spec ?? {}) as Obj;
    for (const f of ['acquireTime', 'renewTime']) {
      const v = spec[f];
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v)))
        throw new ApiError(
          400,
          'BadRequest',
          `Lease in version "v1" cannot be handled as a Lease: spec.${f}: parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse`,
        );
    }
  }

  #bodyObject(t: ResourceType, version: string, body: unknown): Obj {
    if (!body || typeof body !== 'object' || Array.isArray(body))
      throw new ApiError(400, 'BadRequest', 'the body of the request was not an object');
    const o = body as Obj;
    if (o.kind !== undefined && o.kind !== t.kind)
      throw new ApiError(400, 'BadRequest', `the kind ${String(o.kind)} does not match ${t.kind}`);
    if (o.apiVersion !== undefined && o.apiVersion !== apiVersionOf(t.group, version))
      throw new ApiError(400, 'BadRequest', `the API version in the data (${String(o.apiVersion)}) does not match`);
    return o;
  }

  #create(t: ResourceType, version: string, namespace: string | undefined, body: unknown, dryRun: boolean): Obj {
    const input = this.#bodyObject(t, version, body);
    const m = (input.metadata ?? {}) as Meta;
    if (t.namespaced) {
      if (m.namespace !== undefined && m.namespace !== '' && namespace !== undefined && m.namespace !== namespace)
        throw new ApiError(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      if (namespace === undefined)
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    this.#checkNamespace(t, namespace);
    this.#checkMicroTimes(t, input);
    const o = this.#newObject(t, input);
    if (t.namespaced) metaOf(o).namespace = namespace;
    else delete metaOf(o).namespace;
    const name = metaOf(o).name as string;
    if (this.#objects.get(groupResource(t))!.has(keyOf(metaOf(o).namespace, name)))
      throw new ApiError(
        409,
        'AlreadyExists',
        `${qualifiedResource(t)} "${name}" already exists`,
        this.#details(t, name),
      );
    if (dryRun) return this.#present(t, version, { ...o, metadata: { ...metaOf(o), resourceVersion: '' } });
    this.#store(t, o);
    return this.#present(t, version, o);
  }

  #conflict(t: ResourceType, name: string): ApiError {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualifiedResource(t)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      this.#details(t, name),
    );
  }

  #update(t: ResourceType, version: string, p: Parsed, body: unknown, dryRun: boolean): Obj {
    const input = this.#bodyObject(t, version, body);
    const name = p.name as string;
    const m = (input.metadata ?? {}) as Meta;
    if (m.name !== undefined && m.name !== name)
      throw new ApiError(
        400,
        'BadRequest',
        `the name of the object (${m.name}) does not match the name on the URL (${name})`,
      );
    if (t.namespaced && m.namespace !== undefined && m.namespace !== '' && m.namespace !== p.namespace)
      throw new ApiError(
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    const old = this.#mustGet(t, p.namespace, name);
    const rv = m.resourceVersion;
    if (rv === undefined || rv === '') {
      if (t.crd)
        throw new ApiError(
          422,
          'Invalid',
          `${t.kind}.${t.group} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
        );
    } else if (rv !== (old.metadata as Meta).resourceVersion) throw this.#conflict(t, name);
    return this.#write(t, version, old, input, p.subresource === 'status', dryRun);
  }

  #write(t: ResourceType, version: string, old: Obj, input: Obj, statusOnly: boolean, dryRun: boolean): Obj {
    this.#checkMicroTimes(t, input);
    const next = this.#updated(t, old, input, false, statusOnly);
    if (next === old || dryRun) return this.#present(t, version, next);
    this.#store(t, next, old);
    return this.#present(t, version, next);
  }

  #patch(t: ResourceType, version: string, p: Parsed, body: unknown, contentType: string, dryRun: boolean): Obj {
    const name = p.name as string;
    const old = this.#mustGet(t, p.namespace, name);
    const current = this.#present(t, version, old);
    const type = contentType.split(';')[0].trim();
    let patched: unknown;
    if (type === 'application/merge-patch+json') patched = mergePatch(current, body);
    else if (type === 'application/json-patch+json') patched = jsonPatch(current, body);
    else if (type === 'application/strategic-merge-patch+json' && !t.crd) patched = mergePatch(current, body);
    else
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${t.crd ? '' : ', application/strategic-merge-patch+json'}`,
      );
    const out = this.#bodyObject(t, version, patched);
    const rv = ((out.metadata ?? {}) as Meta).resourceVersion;
    // A patch is unconditional unless it sets metadata.resourceVersion itself.
    if (rv !== undefined && rv !== (old.metadata as Meta).resourceVersion) throw this.#conflict(t, name);
    return this.#write(t, version, old, out, p.subresource === 'status', dryRun);
  }

  #delete(t: ResourceType, version: string, p: Parsed, body: unknown, dryRun: boolean): Obj {
    const name = p.name as string;
    const old = this.#mustGet(t, p.namespace, name);
    const pre = ((body as Obj | undefined)?.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
    const om = old.metadata as Meta;
    if (
      (pre.uid !== undefined && pre.uid !== om.uid) ||
      (pre.resourceVersion !== undefined && pre.resourceVersion !== om.resourceVersion)
    )
      throw this.#conflict(t, name);
    if (dryRun) return this.#present(t, version, old);
    return this.#present(t, version, this.#remove(t, old));
  }

  #select(t: ResourceType, namespace: string | undefined, query: Record<string, string>): (o: Obj) => boolean {
    const labels = parseLabelSelector(query.labelSelector);
    const fields = parseFieldSelector(query.fieldSelector, this.#fieldNames(t));
    return (o) => this.#matches(t, namespace, labels, fields, o);
  }

  #fieldNames(t: ResourceType): Set<string> {
    return new Set(['metadata.name', 'metadata.namespace', ...Object.keys(t.fields ?? {})]);
  }

  #matches(
    t: ResourceType,
    namespace: string | undefined,
    labels: LabelSelector,
    fields: FieldSelector,
    o: Obj,
  ): boolean {
    const m = o.metadata as Meta;
    if (namespace !== undefined && m.namespace !== namespace) return false;
    if (!labels(m.labels)) return false;
    return fields((f) => {
      if (f === 'metadata.name') return m.name;
      if (f === 'metadata.namespace') return m.namespace ?? '';
      return t.fields?.[f]?.(o);
    });
  }

  #list(t: ResourceType, version: string, namespace: string | undefined, query: Record<string, string>): Obj {
    const limit = Number(query.limit ?? 0);
    let rv = this.#rv;
    let items: Obj[];
    let offset = 0;
    if (query.continue) {
      let token: { id: string; offset: number };
      try {
        token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8'));
      } catch {
        throw new ApiError(400, 'BadRequest', 'continue key is not valid');
      }
      const page = this.#pages.get(token.id);
      if (!page)
        throw new ApiError(
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
      rv = page.rv;
      items = page.items;
      offset = token.offset;
    } else {
      const sel = this.#select(t, namespace, query);
      items = [...this.#objects.get(groupResource(t))!]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([, o]) => o)
        .filter(sel);
    }
    const meta: Obj = { resourceVersion: String(rv) };
    let page = items.slice(offset);
    if (limit > 0 && page.length > limit) {
      page = page.slice(0, limit);
      const id = query.continue
        ? JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8')).id
        : randomUUID();
      this.#pages.set(id, { rv, items });
      while (this.#pages.size > 50) this.#pages.delete(this.#pages.keys().next().value as string);
      meta.continue = Buffer.from(JSON.stringify({ id, offset: offset + limit })).toString('base64url');
      meta.remainingItemCount = items.length - offset - limit;
    }
    // Built-in lists carry no apiVersion/kind on their items; CRD lists (unstructured) do.
    const shown = page.map((o) => {
      const p = this.#present(t, version, o);
      if (!t.crd) {
        delete p.apiVersion;
        delete p.kind;
      }
      return p;
    });
    return { apiVersion: apiVersionOf(t.group, version), kind: `${t.kind}List`, metadata: meta, items: shown };
  }

  #deleteCollection(
    t: ResourceType,
    version: string,
    namespace: string | undefined,
    query: Record<string, string>,
    dryRun: boolean,
  ): Obj {
    const sel = this.#select(t, namespace, query);
    const gone: Obj[] = [];
    for (const o of [...this.#objects.get(groupResource(t))!.values()].filter(sel))
      gone.push(dryRun ? this.#present(t, version, o) : this.#present(t, version, this.#remove(t, o)));
    return {
      apiVersion: apiVersionOf(t.group, version),
      kind: `${t.kind}List`,
      metadata: { resourceVersion: String(this.#rv) },
      items: gone,
    };
  }

  // ---- failures ----

  #recordMatches(r: RequestRecord, m: RequestMatch): boolean {
    if (m.verb !== undefined && r.verb !== m.verb) return false;
    if (m.method !== undefined && r.method !== m.method) return false;
    if (m.resource !== undefined) {
      const t = r.resource ? this.#types.get(`${r.group}/${r.resource}`) : undefined;
      if (!t || !this.#matchesResource(t, m.resource)) return false;
    }
    if (m.subresource !== undefined && (r.subresource ?? '') !== m.subresource) return false;
    if (m.namespace !== undefined && r.namespace !== m.namespace) return false;
    if (m.name !== undefined && r.name !== m.name) return false;
    return true;
  }

  #takeFailure(r: RequestRecord): FailureRule | undefined {
    const i = this.#failures.findIndex((f) => this.#recordMatches(r, f));
    if (i < 0) return undefined;
    const f = this.#failures[i];
    f.times = (f.times ?? 1) - 1;
    if (f.times <= 0) this.#failures.splice(i, 1);
    return f;
  }

  // ---- watch ----

  #watch(
    req: IncomingMessage,
    res: ServerResponse,
    p: Parsed,
    query: Record<string, string>,
    record: RequestRecord,
  ): number {
    const t = p.type as ResourceType;
    const version = p.version as string;
    if (!this.#served_(t, version)) {
      this.#sendError(res, new ApiError(404, 'NotFound', 'the server could not find the requested resource'));
      return 404;
    }
    let labels: LabelSelector;
    let fields: FieldSelector;
    try {
      labels = parseLabelSelector(query.labelSelector);
      fields = parseFieldSelector(query.fieldSelector, this.#fieldNames(t));
    } catch (e) {
      this.#sendError(res, new ApiError(400, 'BadRequest', (e as Error).message));
      return 400;
    }
    const expire = this.#expire.findIndex((x) => this.#recordMatches(record, x.match));
    const from = query.resourceVersion ?? '';
    const tooOld = from !== '' && from !== '0' && Number(from) < this.#compactedRv;
    const expiredStatus = statusBody(
      410,
      'Expired',
      `too old resource version: ${from || 0} (${this.#compactedRv + 1})`,
    );
    if (expire >= 0 && this.#expire[expire].mode === 'http') {
      this.#expire.splice(expire, 1);
      this.#send(res, 410, expiredStatus);
      return 410;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (expire >= 0 || tooOld) {
      if (expire >= 0) this.#expire.splice(expire, 1);
      res.end(`${JSON.stringify({ type: 'ERROR', object: expiredStatus })}\n`);
      return 200;
    }
    const w: Watcher = {
      type: t,
      gr: groupResource(t),
      version,
      namespace: p.namespace,
      labels,
      fields,
      res,
      bookmarks: query.allowWatchBookmarks === 'true',
      timers: [],
      lastBookmarkRv: 0,
    };
    // Initial state: synthetic ADDED events without a resourceVersion (or with "0"), else a replay of the history.
    if (from === '' || from === '0') {
      const objs = [...this.#objects.get(w.gr)!].sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [, o] of objs) if (this.#matches(t, w.namespace, labels, fields, o)) this.#sendEvent(w, 'ADDED', o);
    } else {
      const since = Number(from);
      for (const e of this.#history) if (e.rv > since && e.gr === w.gr) this.#deliver(w, e);
    }
    this.#watchers.add(w);
    const timeoutMs = query.timeoutSeconds ? Number(query.timeoutSeconds) * 1000 : this.#o.watchTimeoutMs;
    if (timeoutMs) w.timers.push(setTimeout(() => this.#endWatch(w, false), timeoutMs));
    if (w.bookmarks) {
      const timer = setInterval(() => {
        if (this.#rv === w.lastBookmarkRv) return;
        w.lastBookmarkRv = this.#rv;
        this.#writeLine(w, {
          type: 'BOOKMARK',
          object: {
            kind: t.kind,
            apiVersion: apiVersionOf(t.group, version),
            metadata: { resourceVersion: String(this.#rv) },
          },
        });
      }, this.#o.bookmarkIntervalMs);
      w.timers.push(timer);
    }
    const cleanup = () => {
      for (const x of w.timers) clearTimeout(x);
      this.#watchers.delete(w);
    };
    res.on('close', cleanup);
    req.on('close', () => {
      if (!res.writableEnded) cleanup();
    });
    return 200;
  }

  #deliver(w: Watcher, e: StoredEvent): void {
    const sel = (o: Obj | undefined) => o !== undefined && this.#matches(w.type, w.namespace, w.labels, w.fields, o);
    const now = sel(e.obj);
    const before = e.type === 'ADDED' ? false : sel(e.old);
    if (e.type === 'DELETED') {
      if (before) this.#sendEvent(w, 'DELETED', e.obj);
      return;
    }
    if (now && before) this.#sendEvent(w, 'MODIFIED', e.obj);
    else if (now) this.#sendEvent(w, 'ADDED', e.obj);
    // Stopped matching: the watcher sees it go (carrying its new state, as the watch cache does).
    else if (before) this.#sendEvent(w, 'DELETED', e.obj);
  }

  #sendEvent(w: Watcher, type: string, o: Obj): void {
    this.#writeLine(w, { type, object: this.#present(w.type, w.version, o) });
  }

  #writeLine(w: Watcher, ev: unknown): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    w.res.write(`${JSON.stringify(ev)}\n`);
  }

  #endWatch(w: Watcher, drop: boolean): void {
    for (const x of w.timers) clearTimeout(x);
    this.#watchers.delete(w);
    if (drop) w.res.socket?.destroy();
    else w.res.end();
  }
}

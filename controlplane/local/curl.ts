// `weft local curl --from NS/POD URL`: a request made from inside a local pod, the way its workload makes one. On
// loopback, to its sidecar's outbound listener, as to an explicit HTTP proxy (absolute-form target, Host = the URL's
// authority), from the pod's own IP. With `--netns`, exactly as the workload would: a plain request to the URL, sent
// by a small client (pod-client.ts) run inside the pod's network namespace — the name resolves through the pod's
// hosts file, and iptables hands the connection to the sidecar (or, in a pod without one, the Service rules to an
// endpoint). With --count, many requests and a tally of which backend pod answered (the `pod` of an echo JSON reply,
// or `Hostname=` of the Istio text format).
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { LocalError } from './errors.ts';
import { execInNamespace } from './netns.ts';
import { type MeshState, type MeshStatePod, runningMesh } from './state.ts';

/** A request as a pod's workload makes it. */
export interface PodRequest {
  /** `namespace/pod`, or `namespace/prefix` of a pod name (a Deployment's name picks its first pod). */
  from: string;
  /** `http://` URL, as the workload would call it: `http://echo/path`, `http://echo.ns:8080`, a ClusterIP. */
  url: string;
  method?: string;
  /** `Name: value` lines, or name → value. */
  headers?: readonly string[] | Readonly<Record<string, string>>;
  /** Request body. */
  data?: string;
  /** Per request; default 15 s. */
  timeoutMs?: number;
}

export interface LocalCurlOptions extends PodRequest {
  stateDir: string;
  data?: string;
  /** Requests to send (default 1). */
  count?: number;
  /** Requests in flight at once with --count (default 10). */
  concurrency?: number;
}

export interface CurlResponse {
  status: number;
  statusMessage: string;
  httpVersion: string;
  /** Raw header lines, as received. */
  headers: [string, string][];
  body: string;
  /** Pod that answered, when the body says so. */
  pod?: string;
}

export interface CurlTally {
  requests: number;
  /** Status code → count. */
  statuses: Record<string, number>;
  /** Answering pod → count (`(unknown)` when the body names none). */
  pods: Record<string, number>;
  /** Backend → count: the pod name without its last two `-` parts (a Deployment's pods together). */
  backends: Record<string, number>;
  /** Requests that failed without a response. */
  errors: number;
  firstError?: string;
}

/** The pod of the running mesh `from` names. */
export function findPod(state: MeshState, from: string): MeshStatePod {
  const slash = from.indexOf('/');
  if (slash < 1) throw new LocalError('WEFT_ERR_LOCAL_POD_NOT_FOUND', `--from ${from}: expected NAMESPACE/POD`);
  const ns = from.slice(0, slash);
  const name = from.slice(slash + 1);
  const inNs = state.pods.filter((p) => p.namespace === ns).sort((a, b) => (a.name < b.name ? -1 : 1));
  const pod = inNs.find((p) => p.name === name) ?? inNs.find((p) => p.name.startsWith(`${name}-`));
  if (!pod) {
    const known = state.pods.map((p) => `${p.namespace}/${p.name}`).join(', ');
    throw new LocalError(
      'WEFT_ERR_LOCAL_POD_NOT_FOUND',
      `no pod ${from} in the running mesh; pods: ${known || 'none'}`,
    );
  }
  // With --netns any pod can send (its workload calls the URL itself); on loopback only through a sidecar.
  if (!state.netns && !pod.sidecar?.outbound) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_POD_NOT_FOUND',
      `pod ${pod.namespace}/${pod.name} has no sidecar (is its namespace labelled weft.dev/inject=enabled?)`,
    );
  }
  return pod;
}

/** The backend pod named in an echo reply (JSON `pod`, or Istio text `Hostname=`). */
export function answeringPod(body: string): string | undefined {
  const trimmed = body.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      const pod = (JSON.parse(trimmed) as { pod?: unknown }).pod;
      return typeof pod === 'string' && pod !== '' ? pod : undefined;
    } catch {
      return undefined;
    }
  }
  return /^Hostname=(.+)$/m.exec(body)?.[1];
}

export function backendOf(pod: string): string {
  const parts = pod.split('-');
  return parts.length > 2 ? parts.slice(0, -2).join('-') : pod;
}

function parseHeaders(given: PodRequest['headers']): [string, string][] {
  if (given === undefined) return [];
  if (!Array.isArray(given)) return Object.entries(given as Record<string, string>);
  return (given as readonly string[]).map((l) => {
    const colon = l.indexOf(':');
    if (colon < 1) throw new LocalError('WEFT_ERR_LOCAL_REQUEST', `header ${JSON.stringify(l)} is not "Name: value"`);
    return [l.slice(0, colon).trim(), l.slice(colon + 1).trim()];
  });
}

/** Where a request goes: the URL's own host (a workload in its pod), or an explicit proxy (absolute-form). */
export interface Target {
  host: string;
  port: number;
  path: string;
  localAddress?: string;
}

/** The URL's own host and port: how a workload calls it. */
export function directTarget(url: URL): Target {
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80), path: url.pathname + url.search };
}

function viaSidecar(pod: MeshStatePod, url: URL): Target {
  const outbound = pod.sidecar!.outbound!;
  // From the pod's own address, so the proxy and the backend see the request come from this pod; absolute-form:
  // how a client talks to an explicit proxy.
  return { host: outbound.address, port: outbound.port, path: url.href, localAddress: pod.ip };
}

/** One request to `target`; rejects when there is no response. */
export function send(target: Target, url: URL, o: PodRequest, agent?: Agent): Promise<CurlResponse> {
  // A Host header given replaces the URL's authority as the request's Host (curl -H Host:x, the echo client's -H).
  const given = parseHeaders(o.headers);
  const host = given.find(([k]) => k.toLowerCase() === 'host')?.[1] ?? url.host;
  const headers: [string, string][] = [['Host', host], ...given.filter(([k]) => k.toLowerCase() !== 'host')];
  if (o.data !== undefined) headers.push(['Content-Length', String(Buffer.byteLength(o.data))]);
  return new Promise((resolve, reject) => {
    const req = request({
      host: target.host,
      port: target.port,
      localAddress: target.localAddress,
      method: o.method ?? (o.data !== undefined ? 'POST' : 'GET'),
      path: target.path,
      headers: headers.flat(),
      setHost: false,
      agent: agent ?? false,
      timeout: o.timeoutMs ?? 15_000,
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${o.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const pairs: [string, string][] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        const r: CurlResponse = {
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          httpVersion: res.httpVersion,
          headers: pairs,
          body,
        };
        const answered = answeringPod(body);
        if (answered) r.pod = answered;
        resolve(r);
      });
    });
    req.end(o.data);
  });
}

export function targetUrl(o: Pick<PodRequest, 'url'>): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(o.url) ? o.url : `http://${o.url}`);
  } catch {
    throw new LocalError('WEFT_ERR_LOCAL_REQUEST', `${o.url} is not a URL`);
  }
  if (url.protocol !== 'http:') {
    throw new LocalError(
      'WEFT_ERR_LOCAL_REQUEST',
      `${url.protocol}// is not what an app sends through its sidecar: use http:// (the sidecars add mTLS between them)`,
    );
  }
  return url;
}

/** What pod-client.ts is given (JSON, argv[2]) and prints (JSON, stdout). */
export interface PodClientJob extends PodRequest {
  count?: number;
  concurrency?: number;
}

export type PodClientResult = { response: CurlResponse } | { tally: CurlTally } | { error: string };

const POD_CLIENT = fileURLToPath(new URL('./pod-client.ts', import.meta.url));

/** Runs pod-client.ts in the pod's network namespace (as root, not the proxy uid: a workload, captured). */
async function inPod(pod: MeshStatePod, job: PodClientJob): Promise<PodClientResult> {
  const rounds = Math.ceil((job.count ?? 1) / Math.max(1, job.concurrency ?? 10));
  const r = await execInNamespace(pod.netns!, [process.execPath, POD_CLIENT, JSON.stringify(job)], {
    timeoutMs: (job.timeoutMs ?? 15_000) * rounds + 15_000,
  });
  try {
    return JSON.parse(r.stdout) as PodClientResult;
  } catch {
    const why = r.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${r.code ?? r.signal}`;
    return { error: `the client in ${pod.netns} failed: ${why}` };
  }
}

function requestFailed(pod: MeshStatePod, err: unknown): LocalError {
  const message = err instanceof Error ? err.message : String(err);
  const how = pod.netns
    ? `from ${pod.namespace}/${pod.name} (network namespace ${pod.netns})`
    : `through ${pod.namespace}/${pod.name}'s sidecar (${pod.sidecar!.outbound!.address}:${pod.sidecar!.outbound!.port})`;
  return new LocalError('WEFT_ERR_LOCAL_REQUEST', `request ${how} failed: ${message}`, { cause: err });
}

/**
 * One request from pod `o.from` of the running mesh `state`, as its workload sends it (see the header); throws
 * LocalError (WEFT_ERR_LOCAL_POD_NOT_FOUND, WEFT_ERR_LOCAL_REQUEST) when the pod is unknown or nothing answers.
 */
export async function requestFromPod(state: MeshState, o: PodRequest): Promise<CurlResponse> {
  const url = targetUrl(o);
  const pod = findPod(state, o.from);
  if (pod.netns) {
    const r = await inPod(pod, jobOf(o));
    if ('response' in r) return r.response;
    throw requestFailed(pod, 'error' in r ? r.error : 'no response');
  }
  try {
    return await send(viaSidecar(pod, url), url, o);
  } catch (err) {
    throw requestFailed(pod, err);
  }
}

/** `count` requests from pod `o.from`, `concurrency` at a time (keep-alive), tallied. */
export async function requestsFromPod(
  state: MeshState,
  o: PodRequest & { count: number; concurrency?: number },
): Promise<CurlTally> {
  const url = targetUrl(o);
  const pod = findPod(state, o.from);
  if (pod.netns) {
    const r = await inPod(pod, { ...jobOf(o), count: o.count, concurrency: o.concurrency });
    if ('tally' in r) return r.tally;
    throw requestFailed(pod, 'error' in r ? r.error : 'no tally');
  }
  return tallyRequests(viaSidecar(pod, url), url, o);
}

function jobOf(o: PodRequest): PodClientJob {
  return { from: o.from, url: o.url, method: o.method, headers: o.headers, data: o.data, timeoutMs: o.timeoutMs };
}

/** One request from `from` of the mesh running from `o.stateDir`; throws LocalError when it gets no response. */
export async function localCurl(o: LocalCurlOptions): Promise<{ pod: MeshStatePod; response: CurlResponse }> {
  targetUrl(o);
  const state = await runningMesh(o.stateDir);
  const pod = findPod(state, o.from);
  return { pod, response: await requestFromPod(state, o) };
}

/** `count` requests from `from`, `concurrency` at a time, tallied. */
export async function localCurlCount(o: LocalCurlOptions): Promise<{ pod: MeshStatePod; tally: CurlTally }> {
  targetUrl(o);
  const state = await runningMesh(o.stateDir);
  const pod = findPod(state, o.from);
  return { pod, tally: await requestsFromPod(state, { ...o, count: o.count ?? 1 }) };
}

/** `o.count` requests to `target`, `o.concurrency` at a time, tallied (pod-client.ts runs it inside a pod). */
export async function tallyRequests(
  target: Target,
  url: URL,
  o: PodRequest & { count?: number; concurrency?: number },
): Promise<CurlTally> {
  const count = o.count ?? 1;
  const tally: CurlTally = { requests: count, statuses: {}, pods: {}, backends: {}, errors: 0 };
  // Keep-alive, as an app's HTTP client would: the tally measures routing, not connection set-up.
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency ?? 10 });
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        const r = await send(target, url, o, agent);
        tally.statuses[r.status] = (tally.statuses[r.status] ?? 0) + 1;
        const who = r.pod ?? '(unknown)';
        tally.pods[who] = (tally.pods[who] ?? 0) + 1;
        const backend = r.pod ? backendOf(r.pod) : '(unknown)';
        tally.backends[backend] = (tally.backends[backend] ?? 0) + 1;
      } catch (err) {
        tally.errors++;
        tally.firstError ??= (err as Error).message;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 10, count)) }, worker));
  } finally {
    agent.destroy();
  }
  return tally;
}

/** The tally as a table. */
export function formatTally(t: CurlTally): string {
  const lines: string[] = [];
  const statuses = Object.entries(t.statuses)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([s, n]) => `${s} ×${n}`);
  if (t.errors > 0) statuses.push(`no response ×${t.errors} (${t.firstError})`);
  lines.push(`${t.requests} requests: ${statuses.join(', ')}`);
  const answered = t.requests - t.errors;
  const share = (n: number) => `${((100 * n) / Math.max(1, answered)).toFixed(1).padStart(5)} %`;
  const rows = Object.entries(t.backends).sort(([a], [b]) => (a < b ? -1 : 1));
  const width = Math.max(7, ...rows.map(([b]) => b.length), ...Object.keys(t.pods).map((p) => p.length + 2));
  lines.push(`${'BACKEND'.padEnd(width)}  ${'COUNT'.padStart(6)}  SHARE`);
  for (const [backend, n] of rows) {
    lines.push(`${backend.padEnd(width)}  ${String(n).padStart(6)}  ${share(n)}`);
    const pods = Object.entries(t.pods)
      .filter(([p]) => (p === '(unknown)' ? backend === '(unknown)' : backendOf(p) === backend))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    if (pods.length > 1 || (pods.length === 1 && pods[0][0] !== backend))
      for (const [p, m] of pods) lines.push(`  ${p.padEnd(width - 2)}  ${String(m).padStart(6)}  ${share(m)}`);
  }
  return `${lines.join('\n')}\n`;
}

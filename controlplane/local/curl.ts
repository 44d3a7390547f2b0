// `weft local curl --from NS/POD URL`: a request made from inside a local pod, the way its workload makes one — to
// its sidecar's outbound listener, as to an explicit HTTP proxy (absolute-form target, Host = the URL's authority),
// from the pod's own IP. With --count, many requests and a tally of which backend pod answered (the `pod` of an
// echo JSON reply, or `Hostname=` of the Istio text format).
import { Agent, request } from 'node:http';
import { LocalError } from './errors.ts';
import { type MeshState, type MeshStatePod, runningMesh } from './state.ts';

export interface LocalCurlOptions {
  stateDir: string;
  /** `namespace/pod`, or `namespace/prefix` of a pod name (a Deployment's name picks its first pod). */
  from: string;
  url: string;
  method?: string;
  /** `Name: value` lines. */
  headers?: string[];
  data?: string;
  /** Requests to send (default 1). */
  count?: number;
  /** Requests in flight at once with --count (default 10). */
  concurrency?: number;
  timeoutMs?: number;
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
  if (!pod.sidecar?.outbound) {
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

function parseHeaders(lines: readonly string[]): [string, string][] {
  return lines.map((l) => {
    const colon = l.indexOf(':');
    if (colon < 1) throw new LocalError('WEFT_ERR_LOCAL_REQUEST', `header ${JSON.stringify(l)} is not "Name: value"`);
    return [l.slice(0, colon).trim(), l.slice(colon + 1).trim()];
  });
}

function once(pod: MeshStatePod, url: URL, o: LocalCurlOptions, agent?: Agent): Promise<CurlResponse> {
  const outbound = pod.sidecar!.outbound!;
  const headers: [string, string][] = [['Host', url.host], ...parseHeaders(o.headers ?? [])];
  if (o.data !== undefined) headers.push(['Content-Length', String(Buffer.byteLength(o.data))]);
  return new Promise((resolve, reject) => {
    const req = request({
      host: outbound.address,
      port: outbound.port,
      // The pod's own address: the proxy and the backend see the request come from this pod.
      localAddress: pod.ip,
      method: o.method ?? (o.data !== undefined ? 'POST' : 'GET'),
      path: url.href, // absolute-form: how a client talks to an explicit proxy
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

function target(o: LocalCurlOptions): URL {
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

/** One request from `from`; throws LocalError when it gets no response. */
export async function localCurl(o: LocalCurlOptions): Promise<{ pod: MeshStatePod; response: CurlResponse }> {
  const url = target(o);
  const pod = findPod(await runningMesh(o.stateDir), o.from);
  try {
    return { pod, response: await once(pod, url, o) };
  } catch (err) {
    throw new LocalError(
      'WEFT_ERR_LOCAL_REQUEST',
      `request through ${pod.namespace}/${pod.name}'s sidecar (${pod.sidecar!.outbound!.address}:${pod.sidecar!.outbound!.port}) failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** `count` requests from `from`, `concurrency` at a time, tallied. */
export async function localCurlCount(o: LocalCurlOptions): Promise<{ pod: MeshStatePod; tally: CurlTally }> {
  const url = target(o);
  const pod = findPod(await runningMesh(o.stateDir), o.from);
  const count = o.count ?? 1;
  const tally: CurlTally = { requests: count, statuses: {}, pods: {}, backends: {}, errors: 0 };
  // Keep-alive, as an app's HTTP client would: the tally measures routing, not connection set-up.
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency ?? 10 });
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        const r = await once(pod, url, o, agent);
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
  return { pod, tally };
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

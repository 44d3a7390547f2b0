// One traffic case against a world, as the upstream harnesses run it: every probe through AwaitConvergence
// (README §4.5: 3 consecutive matches, any mismatch resets the count and waits 100 ms, at most 30 s since the first
// attempt), then the case's special procedure when it has one — weighted distribution (§5), mirror detection in
// the mirror pods' logs (§4.6), percentage mirroring, the 100-request Backend header loop, WebSocket frames.
import { randomUUID } from 'node:crypto';
import type { TrafficCase } from './case-file.ts';
import { compareGateway, compareMesh, type MeshExchange, parseEchoText } from './compare.ts';
import { type RoundTrip, roundTrip, type TlsMaterial, websocketEcho } from './round-tripper.ts';
import type { KubeObject } from './status-checks.ts';
import type { World } from './world.ts';

export interface Timing {
  maxTimeToConsistencyMs: number;
  requiredConsecutiveSuccesses: number;
  pollIntervalMs: number;
  requestTimeoutMs: number;
}

export const DEFAULT_TIMING: Timing = {
  maxTimeToConsistencyMs: 30_000,
  requiredConsecutiveSuccesses: 3,
  pollIntervalMs: 100,
  requestTimeoutMs: 10_000,
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A probe: undefined when it matched, else the mismatch (or transport error) it saw. */
type Probe = () => Promise<string | undefined>;

/** AwaitConvergence: undefined on success, else the last mismatch. */
export async function awaitConvergence(probe: Probe, t: Timing, required = t.requiredConsecutiveSuccesses) {
  const start = Date.now();
  let successes = 0;
  let last = 'no attempt';
  for (;;) {
    let r: string | undefined;
    try {
      r = await probe();
    } catch (e) {
      r = `request failed: ${(e as Error).message}`;
    }
    if (r === undefined) {
      successes++;
      if (successes >= required) return undefined;
      continue;
    }
    last = r;
    successes = 0;
    if (Date.now() - start >= t.maxTimeToConsistencyMs)
      return `not consistent within ${t.maxTimeToConsistencyMs / 1000} s: ${last}`;
    await sleep(t.pollIntervalMs);
  }
}

/** Runs `n` jobs, `concurrency` at a time; the first error wins. */
async function pool(n: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}

const backendOf = (pod: string) => pod.split('-').slice(0, -2).join('-');

/** §5's pass rule for one round; undefined when within tolerance. */
export function weightMismatch(
  counts: Map<string, number>,
  weights: Record<string, number>,
  total: number,
  tolerance: number,
): string | undefined {
  for (const b of counts.keys()) if (!(b in weights)) return `request was handled by an unexpected pod ${b}`;
  for (const [b, w] of Object.entries(weights)) {
    const got = (counts.get(b) ?? 0) / total;
    if (Math.abs(got - w) > tolerance)
      return `backend ${b} weighted ${w} got ${got.toFixed(3)} of ${total} (tolerance ${tolerance})`;
    if (w === 0 && (counts.get(b) ?? 0) > 0) return `backend ${b} has weight 0 but received ${counts.get(b)} requests`;
    if (w > 0 && !counts.has(b)) return `backend ${b} received no request`;
  }
  return undefined;
}

/** The Secret a case's TLS prose names ("Secret ns/name (…)"), as PEM. */
async function secretPem(world: World, prose: string | undefined): Promise<{ cert: string; key: string } | undefined> {
  if (!prose) return undefined;
  const m = /^Secret ([^/\s]+)\/(\S+)/.exec(prose);
  if (!m) throw new Error(`cannot read a Secret from ${JSON.stringify(prose)}`);
  const secret = await world.cluster.get({ kind: 'Secret', namespace: m[1], name: m[2] });
  const data = (secret as (KubeObject & { data?: Record<string, string> }) | undefined)?.data;
  if (!data?.['tls.crt']) throw new Error(`Secret ${m[1]}/${m[2]} not found`);
  const dec = (b: string | undefined) => Buffer.from(b ?? '', 'base64').toString('utf8');
  return { cert: dec(data['tls.crt']), key: dec(data['tls.key']) };
}

/** The first typed `status.addresses` entry of the Gateway (GatewayAndHTTPRoutesMustBeAccepted's address). */
async function gatewayAddress(world: World, ns: string, name: string): Promise<string> {
  const gw = await world.cluster.get({ kind: 'Gateway', namespace: ns, name });
  const addr = (gw?.status as { addresses?: { type?: string; value: string }[] } | undefined)?.addresses?.find(
    (a) => a.type,
  );
  if (!addr) throw new Error(`Gateway ${ns}/${name} has no address`);
  return addr.value;
}

/** The pod the mesh harness executes in: the first (by name) with the labels the case names. */
async function clientPod(world: World, from: { namespace: string; client: string }): Promise<string> {
  const labels = /labels ([^)]+)\)/.exec(from.client)?.[1] ?? 'app=echo,version=v1';
  const want = labels.split(',').map((kv) => kv.split('=') as [string, string]);
  const pods = (await world.cluster.list('Pod', from.namespace))
    .filter((p) => want.every(([k, v]) => p.metadata.labels?.[k] === v))
    .map((p) => p.metadata.name)
    .sort();
  if (pods.length === 0) throw new Error(`no pod with labels ${labels} in ${from.namespace}`);
  return pods[0];
}

async function podIP(world: World, ns: string, deployment: string): Promise<string> {
  const pod = (await world.cluster.list('Pod', ns))
    .filter((p) => p.metadata.name.startsWith(`${deployment}-`))
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))[0];
  const ip = (pod?.status as { podIP?: string } | undefined)?.podIP;
  if (!ip) throw new Error(`no pod of ${ns}/${deployment}`);
  return ip.includes(':') ? `[${ip}]` : ip;
}

/** Runs one traffic case; undefined when it passed, else the first mismatch. */
export async function runTrafficCase(world: World, c: TrafficCase, t: Timing): Promise<string | undefined> {
  if (c.from === 'gateway') return runGatewayCase(world, c, t);
  return runMeshCase(world, c, c.from, t);
}

// ---------------------------------------------------------------- gateway

async function runGatewayCase(world: World, c: TrafficCase, t: Timing): Promise<string | undefined> {
  const g = c.gateway;
  if (!g) return 'gateway case without a gateway';
  const address = await gatewayAddress(world, g.namespace, g.name);
  const connect = world.gatewayEndpoint(address, g.port);
  const defaultPort = g.scheme === 'https' ? 443 : 80;
  const authority = `${address.includes(':') ? `[${address}]` : address}${g.port === defaultPort ? '' : `:${g.port}`}`;

  if (c.websocket) {
    const url = new URL(`ws://${authority}${c.request.path}`);
    const frames = c.websocket.frames.map((f) => ({
      type: f.type,
      data: f.type === 'text' ? Buffer.from(f.send ?? '') : Buffer.from(f.sendBytes ?? []),
    }));
    const origin = `ws://gateway/${c.subtest ?? c.name}`;
    return awaitConvergence(() => websocketEcho({ url, connect, timeoutMs: t.requestTimeoutMs }, origin, frames), t);
  }

  let tls: TlsMaterial | undefined;
  if (c.tls) {
    const server = await secretPem(world, c.tls.trustedServerCertificate);
    const client = await secretPem(world, c.tls.clientCertificate);
    tls = { serverName: c.tls.serverName, ca: server?.cert, cert: client?.cert, key: client?.key };
  }
  const setHeader = Object.entries(c.backendSetResponseHeaders ?? {})
    .map(([k, v]) => `${k}:${v}`)
    .join(',');

  /** One round trip with fresh placeholders; the exchange, and the expected path with the same substitutions. */
  const send = async (uuid: string, extraHeaders: Record<string, string> = {}) => {
    const subst = (s: string) => s.replaceAll('{uuid}', uuid);
    const suffix = c.request.pathSuffix ? subst(c.request.pathSuffix.split(' ')[0]) : '';
    const path = subst(c.request.path) + suffix;
    const sent = { ...c.request, path };
    const rt: RoundTrip = {
      url: new URL(`${g.scheme}://${authority}${path}`),
      connect,
      method: c.request.method || 'GET',
      host: c.request.host,
      headers: { ...c.request.headers, ...extraHeaders, 'X-Echo-Set-Header': setHeader },
      protocol: c.request.protocol ?? 'HTTP',
      tls,
      unfollowRedirect: c.request.unfollowRedirect,
      timeoutMs: t.requestTimeoutMs,
    };
    const x = await roundTrip(rt);
    const expectedPath = c.expectedRequest?.path !== undefined ? subst(c.expectedRequest.path) + suffix : undefined;
    return { x, sent, expectedPath, path };
  };
  const check = async (uuid: string, extra?: Record<string, string>): Promise<string | undefined> => {
    const { x, sent, expectedPath } = await send(uuid, extra);
    return compareGateway(c, sent, x, expectedPath);
  };

  if (c.expect === 'transportFailure') {
    return awaitConvergence(async () => {
      try {
        const { x } = await send(randomUUID());
        return `expected a transport failure, got HTTP ${x.status}`;
      } catch {
        return undefined;
      }
    }, t);
  }

  // Mirrors: one uuid for the case, then the mirror pods' logs must show the request.
  if (c.mirroredTo && !c.percentageMirrorCheck) {
    const uuid = randomUUID();
    const r = await awaitConvergence(() => check(uuid), t);
    if (r) return r;
    const { path } = await send(uuid).catch(() => ({ path: '' }));
    return mirrorsSeen(world, c.mirroredTo, path, t);
  }

  // A fresh uuid per probe where the path has one (the retry simulator counts attempts per uuid).
  const first = await awaitConvergence(() => check(randomUUID()), t);
  if (first) return first;

  if (c.weights && c.weightCheck) {
    const wc = c.weightCheck;
    let last = '';
    for (let round = 0; round < wc.maxRetries; round++) {
      const counts = new Map<string, number>();
      let err: string | undefined;
      await pool(wc.totalRequests, wc.concurrency ?? 10, async () => {
        if (err) return;
        const extra: Record<string, string> =
          Math.random() < 0.5 ? { 'X-Jitter': String(Math.floor(Math.random() * 10000)) } : {};
        try {
          const { x, sent, expectedPath } = await send(randomUUID(), extra);
          const m = compareGateway(c, { ...sent, headers: { ...sent.headers, ...extra } }, x, expectedPath);
          if (m) err = m;
          const b = backendOf(x.echo.pod ?? '');
          counts.set(b, (counts.get(b) ?? 0) + 1);
        } catch (e) {
          err = (e as Error).message;
        }
      });
      last = err ?? weightMismatch(counts, c.weights, wc.totalRequests, wc.tolerance) ?? '';
      if (!last) return undefined;
    }
    return `weighted distribution not within tolerance in ${wc.maxRetries} rounds: ${last}`;
  }

  if (c.repeatCheck) {
    for (let i = 0; i < c.repeatCheck.count; i++) {
      const { x } = await send(randomUUID());
      const values = x.echo.headers?.Backend;
      if (values?.length !== 1)
        return `request ${i}: expected exactly one Backend header, got ${JSON.stringify(values ?? [])}`;
      if (!(x.echo.pod ?? '').startsWith(values[0]))
        return `request ${i}: answered by ${x.echo.pod}, Backend header says ${values[0]}`;
    }
    return undefined;
  }

  if (c.percentageMirrorCheck && c.mirroredTo) {
    const pc = c.percentageMirrorCheck;
    const mirror = c.mirroredTo[0];
    const p = (mirror.percent ?? 100) / 100;
    const n = pc.totalRequests;
    const band = 3 * Math.sqrt(n * p * (1 - p));
    let last = '';
    for (let round = 0; round < pc.rounds; round++) {
      const uuid = randomUUID();
      const started = Date.now();
      let err: string | undefined;
      let path = '';
      await pool(n, pc.concurrency, async () => {
        if (err) return;
        const r = await awaitConvergence(
          async () => {
            const s = await send(uuid);
            path = s.path;
            return compareGateway(c, s.sent, s.x, s.expectedPath);
          },
          t,
          1,
        );
        if (r) err = r;
      });
      if (err) return err;
      // The mirrored copies are sent in the background: give the last ones a moment to land.
      let count = 0;
      const deadline = Date.now() + 3000;
      do {
        await sleep(500);
        count = await mirrorLines(world, mirror, path);
      } while (count < n * p - band && Date.now() < deadline);
      if (Math.abs(count - n * p) <= band) return undefined;
      last = `round ${round + 1} (${Date.now() - started} ms): ${count} of ${n} requests mirrored to ${mirror.name}, expected ${(n * p).toFixed(0)} ± ${band.toFixed(1)}`;
      await sleep(2000);
    }
    return last;
  }
  return undefined;
}

const echoLine = (path: string) => `Echoing back request made to ${path} to client`;

async function mirrorPods(world: World, m: { name: string; namespace: string }): Promise<string[]> {
  return (await world.cluster.list('Pod', m.namespace))
    .filter((p) => p.metadata.labels?.app === m.name)
    .map((p) => p.metadata.name);
}

async function mirrorLines(world: World, m: { name: string; namespace: string }, path: string): Promise<number> {
  let n = 0;
  for (const pod of await mirrorPods(world, m)) {
    const text = await world.logs(m.namespace, pod, m.name);
    n += text.split(echoLine(path)).length - 1;
  }
  return n;
}

/** §4.6: every mirror's pods show the request within RequestTimeout, polled every second. */
async function mirrorsSeen(
  world: World,
  mirrors: { name: string; namespace: string }[],
  path: string,
  t: Timing,
): Promise<string | undefined> {
  for (const m of mirrors) {
    const deadline = Date.now() + t.requestTimeoutMs;
    for (;;) {
      if ((await mirrorLines(world, m, path)) > 0) break;
      if (Date.now() > deadline)
        return `mirrored request ${path} not logged by any pod app=${m.name} in ${m.namespace} within ${t.requestTimeoutMs / 1000} s`;
      await sleep(1000);
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- mesh

async function runMeshCase(
  world: World,
  c: TrafficCase,
  from: { namespace: string; client: string },
  t: Timing,
): Promise<string | undefined> {
  const pod = await clientPod(world, from);
  let host = c.request.host || 'echo';
  const podIPPlaceholder = '$' + '{ECHO_V2_POD_IP}'; // the case files' placeholder, spelled literally
  if (host.includes(podIPPlaceholder))
    host = host.replace(podIPPlaceholder, await podIP(world, 'gateway-conformance-mesh', 'echo-v2'));
  const scheme = (c.request.protocol || 'http').toLowerCase();
  const url = `${scheme}://${host}${c.request.path || '/'}`;
  const request = () => ({
    url,
    method: c.request.method || 'GET',
    headers: Object.entries(c.request.headers ?? {}),
    timeoutMs: t.requestTimeoutMs,
  });
  const send = async (): Promise<MeshExchange> => {
    const r = await world.fromPod(from.namespace, pod, request());
    const responseHeaders = new Map<string, string[]>();
    for (const [k, v] of r.headers)
      responseHeaders.set(k.toLowerCase(), [...(responseHeaders.get(k.toLowerCase()) ?? []), v]);
    return { status: r.status, responseHeaders, ...parseEchoText(r.body) };
  };
  const first = await awaitConvergence(async () => compareMesh(c, await send()), t);
  if (first || !c.weights || !c.weightCheck) return first;
  const wc = c.weightCheck;
  let last = '';
  for (let round = 0; round < wc.maxRetries; round++) {
    const counts = new Map<string, number>();
    try {
      const pods = await world.fromPodCount(from.namespace, pod, request(), wc.totalRequests, wc.concurrency ?? 10);
      for (const [p, n] of pods) counts.set(backendOf(p), (counts.get(backendOf(p)) ?? 0) + n);
      last = weightMismatch(counts, c.weights, wc.totalRequests, wc.tolerance) ?? '';
    } catch (e) {
      last = (e as Error).message;
    }
    if (!last) return undefined;
  }
  return `weighted distribution not within tolerance in ${wc.maxRetries} rounds: ${last}`;
}

// Tracing end to end in `weft local`: every proxy and the control plane export to an OTLP/HTTP receiver run by the
// test (it decodes the OTLP JSON the exporters send). One request with a W3C traceparent goes in at the edge:
// Gateway → HTTPRoute → Service A (meshed: the edge reaches A's sidecar over mTLS), whose app calls Service B
// through A's sidecar (the echo server's X-Echo-Call, passing the trace headers on as an instrumented app does),
// B's sidecar hands it to B's app. Asserted: one trace of eight proxy spans (server and client at the edge, at A's
// mesh listener, at A's outbound listener, at B's mesh listener), each the child of the one before, with the HTTP
// and weft attributes; the traceparent each app received names the client span that delivered it; tracestate
// crosses every hop; and the control plane's translate and push spans, the pushes children of the translation.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import { type LocalMesh, startLocalMesh } from '../../controlplane/local/mesh.ts';
import { startEchoServer } from '../../controlplane/local/echo-server.ts';
import { OtlpReceiver, type ReceivedSpan, SPAN_KIND_CLIENT, SPAN_KIND_SERVER } from '../helpers/otlp-receiver.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Ports below 1024 move up by this much; pods get addresses no other test uses.
const OFFSET = 41_000;
const NS = 'trace-e2e';
const A_IP = '127.77.1.1';
const B_IP = '127.77.1.2';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

const manifests = `
apiVersion: v1
kind: Namespace
metadata: { name: ${NS}, labels: { weft.dev/inject: enabled } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: weft }
spec: { controllerName: weft.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: trace-edge, namespace: ${NS} }
spec:
  gatewayClassName: weft
  listeners: [{ name: web, protocol: HTTP, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: front, namespace: ${NS} }
spec:
  parentRefs: [{ name: trace-edge }]
  hostnames: [front.example]
  rules: [{ name: to-a, backendRefs: [{ name: svc-a, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b-route, namespace: ${NS} }
spec:
  parentRefs: [{ group: '', kind: Service, name: svc-b, port: 8080 }]
  rules: [{ name: main, backendRefs: [{ name: svc-b, port: 8080 }] }]
${['a', 'b']
  .map(
    (x) => `---
apiVersion: v1
kind: Service
metadata: { name: svc-${x}, namespace: ${NS} }
spec: { selector: { app: ${x} }, ports: [{ port: 8080, targetPort: 8080 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: ${x}-0, namespace: ${NS}, labels: { app: ${x} } }
spec:
  serviceAccountName: sa-${x}
  containers:
    - name: app
      image: example.com/app-${x}:1
      ports: [{ containerPort: 8080 }]
      # The app's calls go to its sidecar's outbound listener (no iptables capture on loopback).
      env: [{ name: HTTP_PROXY, value: 'http://${x === 'a' ? A_IP : B_IP}:15001' }]
status:
  phase: Running
  podIP: ${x === 'a' ? A_IP : B_IP}
  conditions: [{ type: Ready, status: 'True' }]
`,
  )
  .join('')}`;

interface Ctx {
  tmp: string;
  rx: OtlpReceiver;
  mesh: LocalMesh;
}
const test = anyTest.serial as TestFn<Ctx>;

test.before(async (t) => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'weft-trace-e2e-'));
  const rx = await OtlpReceiver.start();
  t.context = { tmp, rx } as Ctx;
  const dir = path.join(tmp, 'world');
  await mkdir(dir);
  await writeFile(path.join(dir, 'world.yaml'), manifests);
  const began = performance.now();
  t.context.mesh = await startLocalMesh({
    dir,
    stateDir: path.join(tmp, 'state'),
    portOffset: OFFSET,
    node: process.execPath,
    weftBin: path.join(root, 'bin/weft.ts'),
    pushPort: 0,
    caPort: 0,
    adminPort: 0,
    stopGraceMs: 2000,
    tracing: { endpoint: rx.url },
  });
  await t.context.mesh.whenReady();
  t.log(`ready in ${Math.round(performance.now() - began)} ms`);
});

test.after.always(async (t) => {
  await t.context.mesh?.close();
  await t.context.rx?.close();
  if (t.context.tmp) await rm(t.context.tmp, { recursive: true, force: true });
});

interface EchoReply {
  headers: Record<string, string[]>;
  pod: string;
  call?: { status?: number; body?: EchoReply; error?: string };
}

function get(
  address: string,
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path: '/order?id=7', headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

const spiffe = (sa: string) => `spiffe://cluster.local/ns/${NS}/sa/${sa}`;

test('one request through edge → sidecar A → app A → sidecar A → sidecar B → app B is one trace of eight chained spans', async (t) => {
  const { mesh, rx } = t.context;
  const gw = mesh.state().gateways.find((g) => g.name === 'trace-edge')!;
  const port = gw.listeners.find((l) => l.port === 80)!.localPort;
  const traceId = '5b8efff798038103d269b633813fc60c';
  const callerSpan = 'eee19b7ec3c1b174';
  const r = await get(gw.address!, port, {
    host: 'front.example',
    traceparent: `00-${traceId}-${callerSpan}-01`,
    tracestate: 'weft=e2e',
    'x-echo-call': `http://svc-b.${NS}:8080/inventory`,
  });
  t.is(r.status, 200, r.body);
  const reply = JSON.parse(r.body) as EchoReply;
  t.is(reply.pod, 'a-0');
  t.is(reply.call?.status, 200, JSON.stringify(reply.call));
  const atB = reply.call!.body!;
  t.is(atB.pod, 'b-0');

  await rx.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= 8, 15_000);
  const spans = rx.trace(traceId);
  t.is(spans.length, 8, JSON.stringify(spans.map((s) => [s.resource['service.name'], s.name])));
  // Walk the chain from the span whose parent is the caller's.
  const chain: ReceivedSpan[] = spans.filter((s) => s.parentSpanId === callerSpan);
  t.is(chain.length, 1);
  for (;;) {
    const next = spans.filter((s) => s.parentSpanId === chain[chain.length - 1].spanId);
    if (next.length === 0) break;
    t.is(next.length, 1);
    chain.push(next[0]);
  }
  t.is(chain.length, 8);
  const edge = 'edge:trace-e2e/trace-edge';
  const a = 'sidecar:trace-e2e/a-0';
  const b = 'sidecar:trace-e2e/b-0';
  t.deepEqual(
    chain.map((s) => [s.resource['service.name'], s.kind, s.attributes['weft.listener.kind']]),
    [
      [edge, SPAN_KIND_SERVER, 'gateway'],
      [edge, SPAN_KIND_CLIENT, undefined],
      [a, SPAN_KIND_SERVER, 'mesh'],
      [a, SPAN_KIND_CLIENT, undefined],
      [a, SPAN_KIND_SERVER, 'outbound'],
      [a, SPAN_KIND_CLIENT, undefined],
      [b, SPAN_KIND_SERVER, 'mesh'],
      [b, SPAN_KIND_CLIENT, undefined],
    ],
  );
  const [edgeIn, edgeOut, aIn, aToApp, aOut, aToB, bIn, bToApp] = chain;

  // The traceparent each app received names the client span that delivered it; tracestate crossed every hop.
  const atA = TRACEPARENT.exec(reply.headers.Traceparent?.[0] ?? '');
  t.deepEqual([atA?.[1], atA?.[2]], [traceId, aToApp.spanId]);
  const atBParent = TRACEPARENT.exec(atB.headers.Traceparent?.[0] ?? '');
  t.deepEqual([atBParent?.[1], atBParent?.[2]], [traceId, bToApp.spanId]);
  t.deepEqual(reply.headers.Tracestate, ['weft=e2e']);
  t.deepEqual(atB.headers.Tracestate, ['weft=e2e']);

  for (const s of chain) {
    t.is(s.attributes['http.request.method'], 'GET', s.name);
    t.is(s.attributes['http.response.status_code'], 200, s.name);
    t.is(s.statusCode, 0, s.name);
    t.true(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano), s.name);
  }
  t.is(edgeIn.name, `GET ${NS}/front`);
  t.like(edgeIn.attributes, {
    'url.path': '/order',
    'url.scheme': 'http',
    'server.address': 'front.example',
    'weft.route': `${NS}/front`,
    'weft.rule': 'to-a',
    'weft.gateway': `${NS}/trace-edge`,
    'weft.gateway.listener': 'web',
    'weft.proxy.id': edge,
  });
  t.like(edgeOut.attributes, {
    'server.address': A_IP,
    'server.port': 15008,
    'weft.route': `${NS}/front`,
    'weft.rule': 'to-a',
    'weft.backend.service': `${NS}/svc-a`,
    'weft.endpoint': `${A_IP}:15008`,
    'weft.endpoint.pod': `${NS}/a-0`,
    'weft.peer.identity': spiffe('sa-a'),
  });
  t.truthy(edgeOut.attributes['weft.backend']);
  // A's mesh listener verified the edge's certificate; B's verified A's.
  t.regex(String(aIn.attributes['weft.peer.identity']), new RegExp(`^spiffe://cluster\\.local/ns/${NS}/sa/`));
  t.like(aIn.attributes, { 'url.path': '/order', 'weft.proxy.id': a });
  t.like(aToApp.attributes, { 'server.address': A_IP, 'server.port': 8080, 'weft.endpoint': `${A_IP}:8080` });
  t.like(aOut.attributes, {
    'url.path': '/inventory',
    'server.address': `svc-b.${NS}`,
    'server.port': 8080,
    'weft.service': `${NS}/svc-b`,
    'weft.route': `${NS}/b-route`,
    'weft.rule': 'main',
  });
  t.like(aToB.attributes, {
    'server.address': B_IP,
    'weft.backend.service': `${NS}/svc-b`,
    'weft.endpoint.pod': `${NS}/b-0`,
    'weft.peer.identity': spiffe('sa-b'),
    'weft.route': `${NS}/b-route`,
  });
  t.like(bIn.attributes, { 'weft.peer.identity': spiffe('sa-a'), 'weft.proxy.id': b, 'url.path': '/inventory' });
  t.like(bToApp.attributes, { 'weft.endpoint': `${B_IP}:8080` });
  for (const s of chain) t.false('weft.retry' in s.attributes || 'weft.mirror' in s.attributes);
});

test('the control plane traces its translations and the pushes each made, ended by the acks', async (t) => {
  const { rx } = t.context;
  const proxies = ['edge:trace-e2e/trace-edge', 'sidecar:trace-e2e/a-0', 'sidecar:trace-e2e/b-0'];
  await rx.waitFor(
    (s) =>
      proxies.every((id) =>
        s.some((x) => x.name === 'push' && x.attributes['weft.proxy.id'] === id && x.parentSpanId !== ''),
      ),
    15_000,
  );
  const cp = rx.spans.filter((s) => s.resource['service.name'] === 'weft-controlplane');
  const translations = cp.filter((s) => s.name === 'translate');
  t.true(translations.length >= 1);
  for (const id of proxies) {
    const push = cp.find((s) => s.name === 'push' && s.attributes['weft.proxy.id'] === id && s.parentSpanId !== '')!;
    const parent = translations.find((s) => s.spanId === push.parentSpanId);
    t.truthy(parent, `${id}: its push's parent is a translate span`);
    t.is(push.traceId, parent!.traceId);
    t.like(push.attributes, { 'weft.push.result': 'ack' });
    t.regex(String(push.attributes['weft.config.version']), /^[0-9a-f]+/);
    t.true(Number(push.attributes['weft.push.latency_ms']) >= 0);
  }
  // The translation that made the first configs: the whole world, three proxies, nothing wrong with the routes.
  const first = translations.find((s) => s.attributes['weft.proxies.changed'] === 3)!;
  t.truthy(first, JSON.stringify(translations.map((s) => s.attributes)));
  t.like(first.attributes, {
    'weft.proxies': 3,
    'weft.snapshot.Pod': 2,
    'weft.snapshot.HTTPRoute': 2,
    'weft.snapshot.Gateway': 1,
    'weft.status.problems': 0,
  });
  t.true(Number(first.attributes['weft.snapshot.resources']) >= 10);
  t.true(Number(first.attributes['weft.translate.duration_ms']) >= 0);
});

test('the echo server calls through its HTTP proxy with the trace headers of the request it serves', async (t) => {
  const callee = await startEchoServer({ ports: [0], log: () => {} });
  const seen: string[] = [];
  // A stand-in for the sidecar's outbound listener: an absolute-form HTTP proxy that forwards to the callee.
  const { createServer } = await import('node:http');
  const proxy = createServer((req, res) => {
    seen.push(req.url!);
    const out = request(
      { host: '127.0.0.1', port: callee.addresses[0].port, path: new URL(req.url!).pathname, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      },
    );
    out.end();
  }).listen(0, '127.0.0.1');
  await new Promise((r) => proxy.once('listening', r));
  const proxyPort = (proxy.address() as { port: number }).port;
  const caller = await startEchoServer({ ports: [0], log: () => {}, proxy: `http://127.0.0.1:${proxyPort}` });
  t.teardown(async () => {
    proxy.close();
    await Promise.all([callee.close(), caller.close()]);
  });
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const r = await get('127.0.0.1', caller.addresses[0].port, {
    traceparent: tp,
    b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1',
    'x-echo-call': 'http://svc-b.example:8080/next?x=1',
    'x-secret': 'not passed on',
  });
  t.is(r.status, 200);
  t.deepEqual(seen, ['http://svc-b.example:8080/next?x=1']);
  const body = JSON.parse(r.body) as EchoReply;
  t.deepEqual(body.call?.body?.headers.Traceparent, [tp]);
  t.truthy(body.call?.body?.headers.B3);
  t.false('X-Secret' in (body.call?.body?.headers ?? {}));
  t.false('X-Echo-Call' in (body.call?.body?.headers ?? {}));
  const bad = await get('127.0.0.1', caller.addresses[0].port, { 'x-echo-call': 'ftp://x' });
  t.is(bad.status, 400);
});

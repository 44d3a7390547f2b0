// Tracing end to end in `weft local`: every proxy and the control plane export to an OTLP/HTTP receiver run by the
// test (it decodes the OTLP JSON the exporters send), on examples/tracing. One request with a W3C traceparent goes
// in at the edge: Gateway → HTTPRoute → Service web (meshed: the edge reaches web-0's sidecar over mTLS), whose app
// calls Service inventory through its sidecar (the echo server's X-Echo-Call, passing the trace headers on as an
// instrumented app does); inventory-0's sidecar hands it to its app. Asserted: one trace of eight proxy spans (server and client at the edge, at A's
// mesh listener, at A's outbound listener, at B's mesh listener), each the child of the one before, with the HTTP
// and weft attributes; the traceparent each app received names the client span that delivered it; tracestate
// crosses every hop; and the control plane's translate and push spans, the pushes children of the translation.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { type LocalMesh, startLocalMesh } from '../../controlplane/local/mesh.ts';
import { startEchoServer } from '../../controlplane/local/echo-server.ts';
import { OtlpReceiver, type ReceivedSpan, SPAN_KIND_CLIENT, SPAN_KIND_SERVER } from '../helpers/otlp-receiver.ts';
import { root, testMeshOptions } from './support.ts';

// Ports below 1024 move up by this much; pods get addresses no other test uses.
const OFFSET = 41_000;
const NS = 'shop';
const A_IP = '127.77.1.1';
const B_IP = '127.77.1.2';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/** examples/tracing (what docs/tracing.md runs), its pods moved to addresses no other test uses. */
async function world(): Promise<string> {
  const text = await readFile(path.join(root, 'examples/tracing/shop.yaml'), 'utf8');
  return text.replaceAll('127.20.200.1', A_IP).replaceAll('127.20.200.2', B_IP);
}

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
  await writeFile(path.join(dir, 'world.yaml'), await world());
  const began = performance.now();
  t.context.mesh = await startLocalMesh(
    testMeshOptions(dir, path.join(tmp, 'state'), { portOffset: OFFSET, tracing: { endpoint: rx.url } }),
  );
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

test('one request through edge → sidecar → app → sidecar → sidecar → app is one trace of eight chained spans', async (t) => {
  const { mesh, rx } = t.context;
  const gw = mesh.state().gateways.find((g) => g.name === 'edge')!;
  const port = gw.listeners.find((l) => l.port === 80)!.localPort;
  const traceId = '5b8efff798038103d269b633813fc60c';
  const callerSpan = 'eee19b7ec3c1b174';
  const r = await get(gw.address!, port, {
    host: 'shop.example',
    traceparent: `00-${traceId}-${callerSpan}-01`,
    tracestate: 'weft=e2e',
    'x-echo-call': `http://inventory.${NS}:8080/stock`,
  });
  t.is(r.status, 200, r.body);
  const reply = JSON.parse(r.body) as EchoReply;
  t.is(reply.pod, 'web-0');
  t.is(reply.call?.status, 200, JSON.stringify(reply.call));
  const atB = reply.call!.body!;
  t.is(atB.pod, 'inventory-0');

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
  const edge = `edge:${NS}/edge`;
  const a = `sidecar:${NS}/web-0`;
  const b = `sidecar:${NS}/inventory-0`;
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
    'server.address': 'shop.example',
    'weft.route': `${NS}/front`,
    'weft.rule': 'to-web',
    'weft.gateway': `${NS}/edge`,
    'weft.gateway.listener': 'web',
    'weft.proxy.id': edge,
  });
  t.like(edgeOut.attributes, {
    'server.address': A_IP,
    'server.port': 15008,
    'weft.route': `${NS}/front`,
    'weft.rule': 'to-web',
    'weft.backend.service': `${NS}/web`,
    'weft.endpoint': `${A_IP}:15008`,
    'weft.endpoint.pod': `${NS}/web-0`,
    'weft.peer.identity': spiffe('web'),
  });
  t.truthy(edgeOut.attributes['weft.backend']);
  // web-0's mesh listener verified the edge's certificate (the Gateway's ServiceAccount); inventory-0's, web's.
  t.is(aIn.attributes['weft.peer.identity'], spiffe('edge-weft'));
  t.like(aIn.attributes, { 'url.path': '/order', 'weft.proxy.id': a });
  t.like(aToApp.attributes, { 'server.address': A_IP, 'server.port': 8080, 'weft.endpoint': `${A_IP}:8080` });
  t.like(aOut.attributes, {
    'url.path': '/stock',
    'server.address': `inventory.${NS}`,
    'server.port': 8080,
    'weft.service': `${NS}/inventory`,
    'weft.route': `${NS}/inventory`,
    'weft.rule': 'main',
  });
  t.like(aToB.attributes, {
    'server.address': B_IP,
    'weft.backend.service': `${NS}/inventory`,
    'weft.endpoint.pod': `${NS}/inventory-0`,
    'weft.peer.identity': spiffe('inventory'),
    'weft.route': `${NS}/inventory`,
  });
  t.like(bIn.attributes, { 'weft.peer.identity': spiffe('web'), 'weft.proxy.id': b, 'url.path': '/stock' });
  t.like(bToApp.attributes, { 'weft.endpoint': `${B_IP}:8080` });
  for (const s of chain) t.false('weft.retry' in s.attributes || 'weft.mirror' in s.attributes);
});

test('the control plane traces its translations and the pushes each made, ended by the acks', async (t) => {
  const { rx } = t.context;
  const proxies = [`edge:${NS}/edge`, `sidecar:${NS}/web-0`, `sidecar:${NS}/inventory-0`];
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

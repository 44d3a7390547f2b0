// The app probes the proxy performs for kubelet: kubelet's GET on `/app-health/<container>/<probe>` of the admin
// port runs the original probe against a real app on loopback (HTTP, HTTPS, TCP, gRPC health) and answers 200 or
// 503 with the reason. Also the hand-over: what the injector writes is what the proxy accepts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { injectPod } from '../../injector/inject.ts';
import { healthCheckFrame, readServingStatus } from '../../sidecar/app-health.ts';
import { runProxyCli } from '../../sidecar/cli.ts';
import { APP_PROBES_ANNOTATION } from '../../injector/annotations.ts';
import { type AppProbe, type AppProbes, parseAppProbes } from '../../sidecar/config/app-probes.ts';
import { type RunningProxy, startProxy } from '../../sidecar/proxy.ts';
import { closedPort } from '../helpers/run-weft.ts';
import { selfSigned } from '../helpers/self-signed.ts';
import { pod, settings } from '../injector/support.ts';
import { MINIMAL_SIDECAR_CONFIG } from './app-health-support.ts';

const listen = async (s: NetServer): Promise<number> => {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as { port: number }).port;
};

/** An app that answers `status` (and `body`) on every path, recording what it was sent. */
async function httpApp(t: { teardown(f: () => unknown): void }, status: number, body = '') {
  const seen: { path: string; headers: IncomingHttpHeaders; raw: string[] }[] = [];
  const server = createHttpServer((req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers, raw: req.rawHeaders });
    res.writeHead(status, status >= 300 && status < 400 ? { location: '/elsewhere' } : {});
    res.end(body);
  });
  const port = await listen(server);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port, seen };
}

/** A proxy with no config (its admin port serves app probes regardless) and these probes. */
async function proxyWith(t: { teardown(f: () => unknown): void }, appProbes?: AppProbes) {
  const proxy: RunningProxy = await startProxy({
    adminPort: 0,
    adminAddress: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    appProbes,
  });
  t.teardown(() => proxy.close());
  const base = `http://127.0.0.1:${proxy.addresses.admin.port}`;
  /** kubelet's GET, with kubelet's User-Agent. */
  const probe = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: { 'user-agent': 'kube-probe/1.35' } });
    return { status: res.status, body: await res.text() };
  };
  return { proxy, probe };
}

/**
 * The timeout of probes expected to be answered: long, as an answer ends a probe at once and only a loaded machine
 * ever waits on it. The one test of the timeout itself uses 1 s.
 */
const T = 30;

const one = (probe: AppProbe, path = '/app-health/web/readyz'): AppProbes => ({ [path]: probe });

test('httpGet: the original path, query, headers and Host reach the app; 200 answers 200', async (t) => {
  const app = await httpApp(t, 200, 'fine');
  const { probe } = await proxyWith(
    t,
    one({
      httpGet: {
        port: app.port,
        path: '/healthz?deep=1',
        httpHeaders: [
          { name: 'X-Probe', value: 'a' },
          { name: 'X-Probe', value: 'b' },
          { name: 'Host', value: 'web.internal' },
        ],
      },
      timeoutSeconds: T,
    }),
  );
  const r = await probe('/app-health/web/readyz');
  t.is(r.status, 200);
  t.regex(r.body, /HTTP 200/);
  t.is(app.seen.length, 1);
  const [seen] = app.seen;
  t.is(seen.path, '/healthz?deep=1');
  t.is(seen.headers.host, 'web.internal');
  t.is(seen.headers['x-probe'], 'a, b');
  t.is(seen.headers['user-agent'], 'kube-probe/1.35', "kubelet's User-Agent is passed on");
});

test('httpGet: 3xx passes (kubelet counts 200–399), 4xx and 5xx fail with the status and the start of the body', async (t) => {
  const redirect = await httpApp(t, 302);
  const broken = await httpApp(t, 500, 'database\n unreachable');
  const missing = await httpApp(t, 404);
  const { probe } = await proxyWith(t, {
    '/app-health/a/livez': { httpGet: { port: redirect.port }, timeoutSeconds: T },
    '/app-health/b/livez': { httpGet: { port: broken.port, path: 'health' }, timeoutSeconds: T },
    '/app-health/c/livez': { httpGet: { port: missing.port }, timeoutSeconds: T },
  });
  t.is((await probe('/app-health/a/livez')).status, 200);
  const b = await probe('/app-health/b/livez');
  t.is(b.status, 503);
  t.true(b.body.includes(`GET http://127.0.0.1:${broken.port}/health: HTTP 500: database unreachable`), b.body);
  t.is(broken.seen[0].path, '/health', 'a path without a leading slash gets one, as kubelet does');
  const c = await probe('/app-health/c/livez');
  t.is(c.status, 503);
  t.regex(c.body, /HTTP 404/);
});

test('httpGet: nothing listening answers 503 with the connection error', async (t) => {
  const port = await closedPort();
  const { probe } = await proxyWith(t, one({ httpGet: { port }, timeoutSeconds: T }));
  const r = await probe('/app-health/web/readyz');
  t.is(r.status, 503);
  t.regex(r.body, /ECONNREFUSED/);
});

test('httpGet: an app that never answers fails after the probe timeout', async (t) => {
  const held: Socket[] = [];
  const silent = createNetServer((s) => held.push(s));
  const port = await listen(silent);
  t.teardown(() => {
    for (const s of held) s.destroy();
    return new Promise<void>((r) => silent.close(() => r()));
  });
  const { probe } = await proxyWith(t, one({ httpGet: { port }, timeoutSeconds: 1 }));
  const r = await probe('/app-health/web/readyz');
  t.is(r.status, 503);
  t.regex(r.body, /no answer within 1 s \(timeoutSeconds\)/);
});

test('httpGet with scheme HTTPS: the app’s self-signed certificate is not verified, as by kubelet', async (t) => {
  const cert = selfSigned('web.internal');
  const server = createHttpsServer({ cert: cert.certChain, key: cert.privateKey }, (_req, res) => res.end('ok'));
  const port = await listen(server);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const { probe } = await proxyWith(t, one({ httpGet: { port, scheme: 'HTTPS', path: '/ready' }, timeoutSeconds: T }));
  const r = await probe('/app-health/web/readyz');
  t.is(r.status, 200, r.body);
  t.true(r.body.includes(`GET https://127.0.0.1:${port}/ready: HTTP 200`), r.body);
});

test('tcpSocket: a listening port passes, a closed one fails', async (t) => {
  const open = createNetServer((s) => s.destroy());
  const openPort = await listen(open);
  t.teardown(() => new Promise<void>((r) => open.close(() => r())));
  const closed = await closedPort();
  const { probe } = await proxyWith(t, {
    '/app-health/web/livez': { tcpSocket: { port: openPort }, timeoutSeconds: T },
    '/app-health/web/readyz': { tcpSocket: { port: closed }, timeoutSeconds: T },
  });
  const up = await probe('/app-health/web/livez');
  t.is(up.status, 200);
  t.is(up.body, `tcp 127.0.0.1:${openPort}: connected\n`);
  const down = await probe('/app-health/web/readyz');
  t.is(down.status, 503);
  t.regex(down.body, new RegExp(`connect to tcp 127.0.0.1:${closed}: ECONNREFUSED`));
});

/** A gRPC server implementing grpc.health.v1.Health/Check over h2c, with a status per service name. */
async function grpcHealthApp(t: { teardown(f: () => unknown): void }, statuses: Record<string, number>) {
  const asked: string[] = [];
  const server: Http2Server = createHttp2Server();
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== '/grpc.health.v1.Health/Check') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      // HealthCheckRequest { string service = 1 }: tag 0x0a, one-byte length (names here are short).
      const message = body.subarray(5);
      const service = message.length === 0 ? '' : message.subarray(2, 2 + message[1]).toString('utf8');
      asked.push(service);
      const status = statuses[service];
      if (status === undefined) {
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '5',
            'grpc-message': 'unknown%20service',
          },
          { endStream: true },
        );
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // HealthCheckResponse { ServingStatus status = 1 } in a gRPC frame.
      const reply = Buffer.from([0, 0, 0, 0, 2, 0x08, status]);
      stream.end(reply);
    });
  });
  const port = await listen(server);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port, asked };
}

test('grpc: grpc.health.v1 Check — SERVING passes; NOT_SERVING, an unknown service and a non-gRPC port fail', async (t) => {
  const app = await grpcHealthApp(t, { '': 1, 'shop.Cart': 1, 'shop.Down': 2 });
  const http1 = await httpApp(t, 200);
  const { probe } = await proxyWith(t, {
    '/app-health/a/livez': { grpc: { port: app.port }, timeoutSeconds: T },
    '/app-health/a/readyz': { grpc: { port: app.port, service: 'shop.Cart' }, timeoutSeconds: T },
    '/app-health/b/livez': { grpc: { port: app.port, service: 'shop.Down' }, timeoutSeconds: T },
    '/app-health/b/readyz': { grpc: { port: app.port, service: 'shop.Gone' }, timeoutSeconds: T },
    '/app-health/c/livez': { grpc: { port: http1.port }, timeoutSeconds: T },
  });
  const a = await probe('/app-health/a/livez');
  t.is(a.status, 200, a.body);
  t.regex(a.body, /SERVING/);
  t.is((await probe('/app-health/a/readyz')).status, 200);
  const down = await probe('/app-health/b/livez');
  t.is(down.status, 503);
  t.regex(down.body, /service "shop\.Down": NOT_SERVING/);
  const gone = await probe('/app-health/b/readyz');
  t.is(gone.status, 503);
  t.regex(gone.body, /grpc-status 5 NOT_FOUND: unknown service/);
  t.deepEqual(app.asked, ['', 'shop.Cart', 'shop.Down', 'shop.Gone'], 'the service name reached the app');
  const notGrpc = await probe('/app-health/c/livez');
  t.is(notGrpc.status, 503, notGrpc.body);
});

test('grpc frames: the request encodes the service name, the response decoder reads status and skips other fields', (t) => {
  t.deepEqual([...healthCheckFrame('')], [0, 0, 0, 0, 0]);
  t.deepEqual([...healthCheckFrame('ab')], [0, 0, 0, 0, 4, 0x0a, 2, 0x61, 0x62]);
  const long = healthCheckFrame('x'.repeat(200));
  t.deepEqual([...long.subarray(5, 8)], [0x0a, 0xc8, 0x01], 'a length over 127 is a two-byte varint');
  // field 2 (a string) before field 1 = 2 (NOT_SERVING)
  t.is(readServingStatus(Buffer.from([0, 0, 0, 0, 5, 0x12, 1, 0x7a, 0x08, 2])), 2);
  t.is(readServingStatus(Buffer.from([0, 0, 0, 0, 0])), 0, 'an empty message is UNKNOWN');
  t.is(readServingStatus(Buffer.from([1, 0, 0, 0, 0])), 'compressed response (none was asked for)');
  t.is(readServingStatus(Buffer.alloc(0)), 'no response message');
});

test('a path with no probe behind it is 404, and so is every /app-health path of a proxy without probes', async (t) => {
  const app = await httpApp(t, 200);
  const { probe } = await proxyWith(t, one({ httpGet: { port: app.port }, timeoutSeconds: T }));
  const r = await probe('/app-health/other/readyz');
  t.is(r.status, 404);
  t.is(r.body, 'no app probe at /app-health/other/readyz\n');
  const bare = await proxyWith(t);
  t.is((await bare.probe('/app-health/web/readyz')).status, 404);
  t.is(app.seen.length, 0);
});

test('parseAppProbes: empty means none; bad JSON, paths, schemes, headers and ports are refused with the reason', (t) => {
  t.deepEqual(parseAppProbes(''), {});
  t.deepEqual(parseAppProbes('{"/app-health/web/livez":{"tcpSocket":{"port":8080}}}'), {
    '/app-health/web/livez': { tcpSocket: { port: 8080 }, timeoutSeconds: 1 },
  });
  const refused: [string, RegExp][] = [
    ['{', /not JSON/],
    ['{"/healthz":{"tcpSocket":{"port":8080},"timeoutSeconds":1}}', /want \/app-health\/<container>/],
    ['{"/app-health/web/livez":{"httpGet":{"port":8080,"scheme":"FTP"}}}', /scheme/],
    ['{"/app-health/web/livez":{"httpGet":{"port":8080,"httpHeaders":[{"name":"a b","value":"x"}]}}}', /header name/],
    ['{"/app-health/web/livez":{"httpGet":{"port":8080,"httpHeaders":[{"name":"a","value":"x\\r\\ny"}]}}}', /CR, LF/],
    ['{"/app-health/web/livez":{"tcpSocket":{"port":70000}}}', /invalid app probes/],
    ['{"/app-health/web/livez":{"exec":{"command":["true"]}}}', /invalid app probes/],
  ];
  for (const [text, why] of refused) {
    const err = t.throws(() => parseAppProbes(text), undefined, text);
    t.is((err as { code?: string }).code, 'WEFT_ERR_APP_PROBES');
    t.regex(err!.message, why, text);
  }
});

test('the hand-over: the probes the injector writes into weft.dev/app-probes are the ones the proxy accepts', (t) => {
  const injected = injectPod(
    pod((p) => {
      const c = p.spec.containers[0];
      c.livenessProbe = { httpGet: { port: 'http', path: '/healthz', httpHeaders: [{ name: 'X-A', value: '1' }] } };
      c.readinessProbe = { tcpSocket: { port: 8080 }, timeoutSeconds: 3 };
      c.startupProbe = { grpc: { port: 9090, service: 'web.Health' } };
      // The proxy would refuse this header name: the injector leaves the probe to kubelet rather than hand it over.
      p.spec.containers.push({
        name: 'side',
        readinessProbe: { httpGet: { port: 8081, httpHeaders: [{ name: 'bad name', value: 'x' }] } },
      });
    }),
    settings(),
  );
  const probes = parseAppProbes(injected.metadata?.annotations?.[APP_PROBES_ANNOTATION] ?? '');
  t.deepEqual(probes, {
    '/app-health/web/livez': {
      httpGet: { port: 8080, path: '/healthz', httpHeaders: [{ name: 'X-A', value: '1' }] },
      timeoutSeconds: 1,
    },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 }, timeoutSeconds: 3 },
    '/app-health/web/startupz': { grpc: { port: 9090, service: 'web.Health' }, timeoutSeconds: 1 },
  });
  const side = injected.spec.containers.find((c) => c.name === 'side');
  t.is(side?.readinessProbe?.httpGet?.port, 8081, 'a probe the proxy would refuse is not rewritten');
});

test.serial('weft proxy reads the probes from WEFT_APP_PROBES, and refuses to start on a bad value', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-app-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.json');
  await writeFile(config, JSON.stringify(MINIMAL_SIDECAR_CONFIG));
  const app = await httpApp(t, 200);
  const args = ['--mode', 'sidecar', '--config', config, '--admin-port', '0', '--log-level', 'silent'];
  const before = process.env.WEFT_APP_PROBES;
  t.teardown(() => {
    if (before === undefined) delete process.env.WEFT_APP_PROBES;
    else process.env.WEFT_APP_PROBES = before;
  });

  process.env.WEFT_APP_PROBES = JSON.stringify(one({ httpGet: { port: app.port }, timeoutSeconds: T }));
  const handle = await runProxyCli(args);
  try {
    const res = await fetch(`http://127.0.0.1:${handle.proxy.addresses.admin.port}/app-health/web/readyz`);
    t.is(res.status, 200, await res.text());
    t.is(app.seen.length, 1);
  } finally {
    await handle.stop();
  }

  process.env.WEFT_APP_PROBES = '{"/app-health/web/readyz":{"tcpSocket":{"port":0}}}';
  const stderr: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    await t.throwsAsync(runProxyCli(args));
  } finally {
    process.stderr.write = write;
  }
  t.regex(stderr.join(''), /WEFT_APP_PROBES.*invalid app probes/s);
});

test('a HEAD from kubelet gets the status alone', async (t) => {
  const app = await httpApp(t, 200);
  const { proxy } = await proxyWith(t, one({ httpGet: { port: app.port }, timeoutSeconds: T }));
  const head = await fetch(`http://127.0.0.1:${proxy.addresses.admin.port}/app-health/web/readyz`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  t.is(app.seen.length, 1);
});

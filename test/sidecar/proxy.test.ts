// The proxy as a whole: hot swap (atomic, in-flight requests finish on the old config, bad
// configs refused whole), the admin port, the file feed and the CLI entry.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { runProxyCli } from '../../sidecar/cli.ts';
import { watchConfigFile } from '../../sidecar/config-file.ts';
import { startEchoServer } from '../helpers/echo-server.ts';
import { selfSigned } from '../helpers/self-signed.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from './harness.ts';
import { closedPort } from '../helpers/run-weft.ts';

const exact = (value: string) => ({ path: { type: 'Exact' as const, value } });

async function admin(port: number, path: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

test('update swaps the routes; a request in flight finishes on the config it started with', async (t) => {
  const v1 = await startEchoServer({ pod: 'v1' });
  const v2 = await startEchoServer({ pod: 'v2' });
  const clusters = { 'ns/v1': cluster('ns/v1', v1), 'ns/v2': cluster('ns/v2', v2) };
  const p = await startTestProxy(
    edgeConfig({ clusters, routes: [route({ match: exact('/a'), backends: to('ns/v1') })] }),
  );
  t.teardown(() => Promise.all([p.close(), v1.close(), v2.close()]));

  const inFlight = send(p.port, { path: '/a', headers: { 'x-echo-delay-ms': '300' } });
  await v1.waitForRequests(1);
  await p.proxy.update(edgeConfig({ clusters, routes: [route({ match: exact('/b'), backends: to('ns/v2') })] }));
  const old = await inFlight;
  t.is(old.status, 200);
  t.is(old.json().pod, 'v1');
  t.is((await send(p.port, { path: '/a' })).status, 404);
  t.is((await send(p.port, { path: '/b' })).json().pod, 'v2');
});

test('a request routed on the old config still reaches an endpoint the new config dropped', async (t) => {
  const v1 = await startEchoServer({ pod: 'v1' });
  const v2 = await startEchoServer({ pod: 'v2' });
  // A retry makes the proxy buffer the body, so the exchange starts only when the body is in.
  const old = edgeConfig({
    clusters: { 'ns/v1': cluster('ns/v1', v1) },
    routes: [route({ retry: { attempts: 1 }, backends: to('ns/v1') })],
  });
  const p = await startTestProxy(old);
  t.teardown(() => Promise.all([p.close(), v1.close(), v2.close()]));
  const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: p.port,
        method: 'POST',
        path: '/slow-body',
        headers: { host: 'x', 'content-length': '4' },
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.write('ab');
    // Let the proxy route the request on the old config, then swap, then finish the body.
    setTimeout(async () => {
      await p.proxy.update(
        edgeConfig({ clusters: { 'ns/v2': cluster('ns/v2', v2) }, routes: [route({ backends: to('ns/v2') })] }),
      );
      req.end('cd');
    }, 200);
  });
  const r = await reply;
  t.is(r.status, 200);
  t.is(JSON.parse(r.body).pod, 'v1');
  t.is(JSON.parse(r.body).body, 'abcd');
  t.is((await send(p.port, { path: '/' })).json().pod, 'v2');
});

test('an invalid config is refused whole and the old one keeps serving', async (t) => {
  const v1 = await startEchoServer({ pod: 'v1' });
  const good = edgeConfig({ clusters: { 'ns/v1': cluster('ns/v1', v1) }, routes: [route({ backends: to('ns/v1') })] });
  const p = await startTestProxy(good);
  t.teardown(() => Promise.all([p.close(), v1.close()]));
  const dumpBefore = (await admin(p.adminPort, '/config_dump')).body;

  // Schema: an unknown field.
  await t.throwsAsync(p.proxy.update({ ...good, extra: true }), { message: /invalid ProxyConfig/ });
  // Cross-reference: a route to a cluster that does not exist.
  const dangling = edgeConfig({ clusters: {}, routes: [route({ backends: to('ns/missing') })] });
  await t.throwsAsync(p.proxy.update(dangling), { message: /unknown cluster/ });
  // Compilation: a certificate that does not parse.
  const badCert = edgeConfig({
    protocol: 'HTTPS',
    clusters: { 'ns/v1': cluster('ns/v1', v1) },
    routes: [route({ backends: to('ns/v1') })],
    hosts: [{ listener: 'ns/gw/web', routeTable: 'rt', certificates: ['ns/cert'] }],
    tlsCertificates: {
      'ns/cert': {
        certChain: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
        privateKey: selfSigned('x.example').privateKey,
      },
    },
  });
  await t.throwsAsync(p.proxy.update(badCert), { code: 'WEFT_ERR_CONFIG_COMPILE' } as never);

  t.is((await send(p.port, { path: '/still' })).json().pod, 'v1');
  t.is((await admin(p.adminPort, '/config_dump')).body, dumpBefore);
});

test('a config whose new listener cannot bind is refused; nothing of it is applied', async (t) => {
  const v1 = await startEchoServer({ pod: 'v1' });
  const v2 = await startEchoServer({ pod: 'v2' });
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const busyPort = (busy.address() as AddressInfo).port;
  const first = edgeConfig({ clusters: { 'ns/v1': cluster('ns/v1', v1) }, routes: [route({ backends: to('ns/v1') })] });
  const p = await startTestProxy(first, { listenPort: (l) => (l.name === 'ns/gw/busy' ? busyPort : 0) });
  t.teardown(() => Promise.all([p.close(), v1.close(), v2.close(), new Promise((r) => busy.close(r))]));
  const second = edgeConfig({
    clusters: { 'ns/v2': cluster('ns/v2', v2) },
    routes: [route({ backends: to('ns/v2') })],
  });
  second.listeners.push({
    kind: 'gateway',
    name: 'ns/gw/busy',
    port: 9090,
    protocol: 'HTTP',
    hosts: [{ listener: 'ns/gw/busy', routeTable: 'rt' }],
  });
  await t.throwsAsync(p.proxy.update(second), { message: /listener ns\/gw\/busy/ });
  t.is((await send(p.port, { path: '/' })).json().pod, 'v1');
  t.deepEqual(Object.keys(p.proxy.addresses.listeners), ['ns/gw/web']);
});

test('a proxy started for one mode refuses a config for the other', async (t) => {
  const config = edgeConfig({ routes: [] });
  await t.throwsAsync(startTestProxy(config, { mode: 'sidecar' }), { message: /edge proxy/ });
});

test('admin: /live, /ready (only with a config), /config_dump with private keys redacted', async (t) => {
  const p = await startTestProxy(undefined);
  t.teardown(() => p.close());
  t.is((await admin(p.adminPort, '/live')).status, 200);
  t.is((await admin(p.adminPort, '/ready')).status, 503);
  t.is((await admin(p.adminPort, '/config_dump')).status, 503);
  const cert = selfSigned('example.com');
  await p.proxy.update(
    edgeConfig({
      protocol: 'HTTPS',
      routes: [route({ directResponse: { status: 200 } })],
      hosts: [{ listener: 'ns/gw/web', routeTable: 'rt', certificates: ['ns/cert'] }],
      tlsCertificates: { 'ns/cert': cert },
    }),
  );
  t.is((await admin(p.adminPort, '/ready')).status, 200);
  const dump = await admin(p.adminPort, '/config_dump');
  t.is(dump.status, 200);
  const config = JSON.parse(dump.body);
  t.is(config.tlsCertificates['ns/cert'].privateKey, '[redacted]');
  t.is(config.tlsCertificates['ns/cert'].certChain, cert.certChain);
  t.false(dump.body.includes('PRIVATE KEY'));
  t.is((await admin(p.adminPort, '/nope')).status, 404);
});

test('the file feed applies a changed file and keeps the old config when the new one is bad', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-proxy-'));
  const file = join(dir, 'config.yaml');
  const v1 = await startEchoServer({ pod: 'v1' });
  const v2 = await startEchoServer({ pod: 'v2' });
  const clusters = { 'ns/v1': cluster('ns/v1', v1), 'ns/v2': cluster('ns/v2', v2) };
  const p = await startTestProxy(edgeConfig({ clusters, routes: [route({ backends: to('ns/v1') })] }));
  const outcomes: unknown[] = [];
  let notify: () => void = () => {};
  const watch = watchConfigFile(file, p.proxy, pino({ level: 'silent' }), (err) => {
    outcomes.push(err);
    notify();
  });
  const next = () => new Promise<void>((r) => (notify = r));
  t.teardown(async () => {
    await watch.close();
    await Promise.all([p.close(), v1.close(), v2.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  // chokidar needs a moment to set up; the first write can be missed, so write until seen.
  let applied = next();
  const json = JSON.stringify(edgeConfig({ clusters, routes: [route({ backends: to('ns/v2') })] }));
  await writeFile(file, json);
  const retry = setInterval(() => void writeFile(file, json), 500);
  await applied;
  clearInterval(retry);
  t.is(outcomes.at(-1), undefined);
  t.is((await send(p.port, { path: '/' })).json().pod, 'v2');

  applied = next();
  await writeFile(`${file}.tmp`, 'apiVersion: weft.dev/v1alpha1\nproxy: [not, valid]\n');
  await rename(`${file}.tmp`, file);
  await applied;
  t.truthy(outcomes.at(-1));
  t.is((await send(p.port, { path: '/' })).json().pod, 'v2');
});

test('runProxyCli starts the proxy on a config file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  const file = join(dir, 'config.json');
  const v1 = await startEchoServer({ pod: 'v1' });
  const port = await closedPort();
  const config = edgeConfig({
    port,
    clusters: { 'ns/v1': cluster('ns/v1', v1) },
    routes: [route({ backends: to('ns/v1') })],
  });
  config.listeners[0] = { ...config.listeners[0], address: '127.0.0.1' } as (typeof config.listeners)[0];
  await writeFile(file, JSON.stringify(config));
  const cli = await runProxyCli(['--mode', 'edge', '--config', file, '--admin-port', '0', '--log-level', 'silent']);
  t.teardown(async () => {
    await cli.stop();
    await v1.close();
    await rm(dir, { recursive: true, force: true });
  });
  t.is((await send(port, { path: '/' })).json().pod, 'v1');
  t.is((await admin(cli.proxy.addresses.admin.port, '/ready')).status, 200);
  await t.throwsAsync(runProxyCli(['--mode', 'both', '--config', file]));
});

test('a flag without the flag it goes with is a usage error, not silently ignored', async (t) => {
  const usage = (args: string[]) => runProxyCli(['--mode', 'edge', '--config', 'x.yaml', ...args]);
  await t.throwsAsync(usage(['--trace-sample-ratio', '0.5']), { message: /--trace-sample-ratio goes with --otlp/ });
  await t.throwsAsync(usage(['--trace-service-name', 'x']), { message: /--trace-service-name goes with --otlp/ });
  await t.throwsAsync(usage(['--proxy-id', 'edge:ns/gw']), { message: /--proxy-id goes with --push/ });
  await t.throwsAsync(usage(['--push-server-name', 'cp']), { message: /--push-server-name goes with --push/ });
  await t.throwsAsync(usage(['--trust-domain', 'example.org']), { message: /--trust-domain goes with --ca-url/ });
  await t.throwsAsync(usage(['--token-file', 't']), { message: /--token-file goes with --ca-url/ });
  await t.throwsAsync(usage(['--service-account', 'sa']), { message: /--service-account goes with --ca-url/ });
  await t.throwsAsync(usage(['--ca-server-name', 'ca']), { message: /--ca-server-name goes with --ca-url/ });
});

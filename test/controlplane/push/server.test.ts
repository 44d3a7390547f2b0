// Config push over real TLS sockets on port 0, certificates from a MeshCA: a proxy gets its config and acks, a
// change is pushed, a config the proxy's validator rejects is nacked and counted while the proxy keeps the old one,
// identities that do not own the proxy are refused, a missing client certificate fails the handshake, oversized
// and out-of-order frames are protocol errors, and a proxy never receives another proxy's config.
import test, { type ExecutionContext } from 'ava';
import { snapshotAuthorizer } from '../../../controlplane/push/identity.ts';
import { type PushServer, type PushServerOptions, startPushServer } from '../../../controlplane/push/server.ts';
import type { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';
import type { VersionedConfig } from '../../../controlplane/runtime/pipeline.ts';
import { WatchableMap } from '../../../controlplane/runtime/watchable.ts';
import type { ProxyConfig } from '../../../sidecar/config/proxy-config.ts';
import { encodeFrame } from '../../../sidecar/config/push-api.ts';
import { PushClient, type PushClientOptions } from '../../../sidecar/push/client.ts';
import { startProxy } from '../../../sidecar/proxy.ts';
import {
  captureLogs,
  ca,
  foreignCa,
  invalidSidecarConfig,
  rawPeer,
  sidecarConfig,
  snapshotOf,
  spiffe,
  TD,
  versioned,
  workloadCredentials,
} from './support.ts';

const webCreds = workloadCredentials('shop', 'web');
const apiCreds = workloadCredentials('shop', 'api');

interface Setup {
  server: PushServer;
  configs: WatchableMap<string, VersionedConfig>;
  lines: Record<string, unknown>[];
  setSnapshot(s: ResourceSnapshot): void;
}

async function setup(t: ExecutionContext, o: Partial<PushServerOptions> = {}): Promise<Setup> {
  const { logger, lines } = captureLogs();
  let snapshot = snapshotOf(
    [
      { namespace: 'shop', name: 'web-1', serviceAccount: 'web' },
      { namespace: 'shop', name: 'web-2', serviceAccount: 'web' },
      { namespace: 'shop', name: 'api-1', serviceAccount: 'api' },
      { namespace: 'shop', name: 'plain-1' },
    ],
    [{ namespace: 'infra', name: 'edge' }],
  );
  const configs = o.configs ?? new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  const server = await startPushServer({
    configs,
    authorize: snapshotAuthorizer({ snapshot: () => snapshot, trustDomain: TD }),
    ca,
    port: 0,
    logger,
    ...o,
  });
  t.teardown(() => server.close());
  return {
    server,
    configs,
    lines,
    setSnapshot: (s) => {
      snapshot = s;
    },
  };
}

function client(t: ExecutionContext, server: PushServer, o: Partial<PushClientOptions> & { proxyId: string }) {
  const applied: { version: string; config: ProxyConfig }[] = [];
  const c = new PushClient({
    host: '127.0.0.1',
    port: server.port,
    nodeVersion: 'weft-test/1',
    credentials: () => webCreds,
    apply: (config, version) => {
      applied.push({ version, config });
    },
    backoff: { initialMs: 20, maxMs: 200 },
    logger: captureLogs().logger,
    ...o,
  });
  t.teardown(() => c.close());
  return { client: c, applied };
}

const once = <T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string) =>
  new Promise<T>((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args as T)));

/** The first `event` whose arguments satisfy `pred`. */
const until = <T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, pred: (...args: T) => boolean) =>
  new Promise<T>((resolve) => {
    const on = (...args: unknown[]) => {
      if (!pred(...(args as T))) return;
      emitter.off(event, on);
      resolve(args as T);
    };
    emitter.on(event, on);
  });

test('a proxy gets its config on hello, applies it and acks; the record shows it', async (t) => {
  const { server, configs } = await setup(t);
  const v1 = versioned(sidecarConfig('shop', 'web-1', 'web'));
  configs.store('sidecar:shop/web-1', v1);
  configs.store('sidecar:shop/api-1', versioned(sidecarConfig('shop', 'api-1', 'api')));
  const acked = once<[string, string]>(server, 'ack');
  const { client: c, applied } = client(t, server, { proxyId: 'sidecar:shop/web-1' });
  c.start();
  t.deepEqual(await acked, ['sidecar:shop/web-1', v1.version]);
  t.is(c.appliedVersion, v1.version);
  t.deepEqual(
    applied.map((a) => a.version),
    [v1.version],
  );
  t.is(applied[0].config.proxy.id, 'sidecar:shop/web-1');
  const [rec] = server.records();
  t.like(rec, {
    proxyId: 'sidecar:shop/web-1',
    identity: spiffe('shop', 'web'),
    nodeVersion: 'weft-test/1',
    connected: true,
    currentVersion: v1.version,
    lastSentVersion: v1.version,
    lastAckedVersion: v1.version,
    nacks: 0,
  });
  t.regex(rec.remoteAddress, /^127\.0\.0\.1:\d+$/);
  t.false(Number.isNaN(Date.parse(rec.connectedSince)));
  t.is(typeof rec.lastAckLatencyMs, 'number');
  t.is(server.records().length, 1, 'only the connected proxy has a record');
});

test('a change is pushed (once), and a change to another proxy is not sent to this one', async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web')));
  const { client: c, applied } = client(t, server, { proxyId: 'sidecar:shop/web-1' });
  const first = once(c, 'applied');
  c.start();
  await first;
  const v2 = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v2' }));
  const second = once<[string]>(c, 'applied');
  configs.store('sidecar:shop/web-2', versioned(sidecarConfig('shop', 'web-2', 'web', { marker: 'other' })));
  configs.store('sidecar:shop/web-1', v2);
  t.is((await second)[0], v2.version);
  // The same version again is not sent: only the two configs of this proxy went out.
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v2' })));
  const v3 = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v3' }));
  const third = once<[string]>(c, 'applied');
  const ackedByServer = until<[string, string]>(server, 'ack', (_id, version) => version === v3.version);
  configs.store('sidecar:shop/web-1', v3);
  t.is((await third)[0], v3.version);
  await ackedByServer;
  t.deepEqual(
    applied.map((a) => a.config.proxy.id),
    ['sidecar:shop/web-1', 'sidecar:shop/web-1', 'sidecar:shop/web-1'],
  );
  t.is(server.stats.configsSent, 3);
  t.is(server.records()[0].lastAckedVersion, v3.version);
});

test('a config the proxy validator rejects is nacked and counted; the real proxy keeps serving the old one', async (t) => {
  const { server, configs, lines } = await setup(t);
  const proxy = await startProxy({ adminPort: 0, listenPort: () => 0, logger: captureLogs().logger });
  t.teardown(() => proxy.close());
  const good = versioned(sidecarConfig('shop', 'web-1', 'web', { inboundPort: 15006 }));
  configs.store('sidecar:shop/web-1', good);
  const { client: c } = client(t, server, {
    proxyId: 'sidecar:shop/web-1',
    apply: (config) => proxy.update(config),
  });
  const applied = once(c, 'applied');
  c.start();
  await applied;
  t.is(proxy.config?.routeTables['marker/v1'] !== undefined, true);

  const bad = versioned(invalidSidecarConfig('shop', 'web-1', 'web'));
  const nacked = once<[string, string, string]>(server, 'nack');
  const rejected = once<[string, { path: string; reason: string }[]]>(c, 'rejected');
  configs.store('sidecar:shop/web-1', bad);
  const [proxyId, version, reason] = await nacked;
  t.is(proxyId, 'sidecar:shop/web-1');
  t.is(version, bad.version);
  t.regex(reason, /^listeners\[0\]\.port: port 15020 is the admin port/);
  const [, issues] = await rejected;
  t.deepEqual(issues[0], { path: 'listeners[0].port', reason: 'port 15020 is the admin port (admin.port)' });
  t.is(c.appliedVersion, good.version, 'the client still runs the good version');
  t.truthy(proxy.config?.routeTables['marker/v1'], 'the proxy still serves the good config');
  t.falsy(proxy.config?.routeTables['marker/broken']);
  t.is(server.stats.nacks, 1);
  const [rec] = server.records();
  t.like(rec, { nacks: 1, lastAckedVersion: good.version, lastSentVersion: bad.version });
  t.like(rec.lastNack, { version: bad.version });
  t.like(
    lines.find((l) => l.event === 'config.rejected'),
    { level: 40, proxyId: 'sidecar:shop/web-1', nacks: 1 },
  );

  // The next good config is applied again.
  const fixed = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'fixed', inboundPort: 15006 }));
  const again = once<[string]>(c, 'applied');
  configs.store('sidecar:shop/web-1', fixed);
  t.is((await again)[0], fixed.version);
  t.truthy(proxy.config?.routeTables['marker/fixed']);
});

test('a config whose apply fails (the proxy cannot bind) is nacked with the reason', async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web')));
  const { client: c } = client(t, server, {
    proxyId: 'sidecar:shop/web-1',
    apply: () => {
      throw new Error('listen EADDRINUSE 0.0.0.0:15006');
    },
  });
  const nacked = once<[string, string, string]>(server, 'nack');
  c.start();
  t.is((await nacked)[2], '(root): listen EADDRINUSE 0.0.0.0:15006');
  t.is(c.appliedVersion, undefined);
});

test("a proxy presenting another workload's identity is refused and gets nothing", async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web')));
  const { client: c, applied } = client(t, server, {
    proxyId: 'sidecar:shop/web-1',
    credentials: () => apiCreds,
  });
  const refused = once<[string, string]>(c, 'refused');
  const serverRefused = once<[string, string, string]>(server, 'refused');
  c.start();
  const [code, message] = await refused;
  t.is(code, 'WEFT_ERR_PUSH_IDENTITY');
  t.is(
    message,
    `${spiffe('shop', 'api')} may not receive the config of sidecar:shop/web-1 (it belongs to ${spiffe('shop', 'web')})`,
  );
  t.like(await serverRefused, [code, message, 'sidecar:shop/web-1']);
  await c.close();
  t.deepEqual(applied, []);
  t.deepEqual(server.records(), []);
  t.true((server.stats.refusals.WEFT_ERR_PUSH_IDENTITY ?? 0) >= 1);
});

test('a pod without a serviceAccountName is owned by the "default" service account', async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/plain-1', versioned(sidecarConfig('shop', 'plain-1', 'default')));
  const ok = client(t, server, {
    proxyId: 'sidecar:shop/plain-1',
    credentials: () => workloadCredentials('shop', 'default'),
  });
  const applied = once(ok.client, 'applied');
  ok.client.start();
  await applied;
  t.pass();
});

test('an edge proxy must present <gateway>-weft of its namespace', async (t) => {
  const { server } = await setup(t);
  const peer = await rawPeer(server.port, workloadCredentials('infra', 'edge-weft'));
  peer.send(encodeFrame({ type: 'hello', proxyId: 'edge:infra/edge', nodeVersion: 'raw' }));
  peer.send(encodeFrame({ type: 'ping' }));
  t.deepEqual(await peer.next(), { type: 'pong' });
  peer.socket.end();

  const wrong = await rawPeer(server.port, workloadCredentials('infra', 'edge'));
  wrong.send(encodeFrame({ type: 'hello', proxyId: 'edge:infra/edge', nodeVersion: 'raw' }));
  t.like(await wrong.next(), { type: 'error', code: 'WEFT_ERR_PUSH_IDENTITY' });
  await wrong.closed;
});

test('an unknown pod or Gateway is refused with WEFT_ERR_PUSH_UNKNOWN_PROXY', async (t) => {
  const { server, setSnapshot } = await setup(t);
  for (const proxyId of ['sidecar:shop/ghost', 'edge:infra/nope']) {
    const peer = await rawPeer(server.port, webCreds);
    peer.send(encodeFrame({ type: 'hello', proxyId, nodeVersion: 'raw' }));
    t.like(await peer.next(), { type: 'error', code: 'WEFT_ERR_PUSH_UNKNOWN_PROXY' });
    await peer.closed;
  }
  // Once the pod appears in the snapshot, the same proxy is accepted.
  setSnapshot(snapshotOf([{ namespace: 'shop', name: 'ghost', serviceAccount: 'web' }]));
  const peer = await rawPeer(server.port, webCreds);
  peer.send(`${encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/ghost', nodeVersion: 'raw' })}{"type":"ping"}\n`);
  t.deepEqual(await peer.next(), { type: 'pong' });
  peer.socket.end();
});

test('no client certificate: refused at the TLS handshake, before any frame', async (t) => {
  const { server } = await setup(t);
  const refused = new Promise<Error>((resolve, reject) => {
    rawPeer(server.port, undefined).then(
      (peer) => {
        peer.socket.once('error', resolve);
        peer.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' }));
        peer.closed.then(() => reject(new Error('closed without a TLS error')));
      },
      (err: Error) => resolve(err),
    );
  });
  const err = (await refused) as NodeJS.ErrnoException;
  t.is(err.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
  t.deepEqual(server.records(), []);
  t.is(server.stats.tlsFailures, 1);
});

test('a client certificate from another CA is refused at the TLS handshake', async (t) => {
  const { server } = await setup(t);
  const refusedTls = once(server, 'tlsRefused');
  // The server drops the connection once the chain fails to verify; the client may see a reset or a close.
  const frames = await rawPeer(server.port, workloadCredentials('shop', 'web', foreignCa)).then(
    async (peer) => {
      peer.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' }));
      await peer.closed;
      return peer.frames;
    },
    () => [],
  );
  await refusedTls;
  t.deepEqual(frames, []);
  t.is(server.stats.tlsFailures, 1);
  t.deepEqual(server.records(), []);
});

test('an oversized frame is a protocol error (WEFT_ERR_PUSH_FRAME_TOO_LARGE) and closes the connection', async (t) => {
  const { server, lines } = await setup(t, { maxFrameBytes: 1024 });
  const peer = await rawPeer(server.port, webCreds);
  peer.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'x'.repeat(200) }));
  peer.send(encodeFrame({ type: 'ping' }));
  t.deepEqual(await peer.next(), { type: 'pong' }, 'frames under the limit are fine');
  // 2 KiB without a newline yet: refused before the line ends.
  peer.send(`{"type":"ping","pad":"${'x'.repeat(2048)}`);
  t.like(await peer.next((f) => f.type === 'error'), {
    code: 'WEFT_ERR_PUSH_FRAME_TOO_LARGE',
    message: 'a frame is longer than 1024 bytes',
  });
  await peer.closed;
  t.is(server.stats.refusals.WEFT_ERR_PUSH_FRAME_TOO_LARGE, 1);
  t.like(
    lines.find((l) => l.event === 'proxy.refused'),
    { code: 'WEFT_ERR_PUSH_FRAME_TOO_LARGE', proxyId: 'sidecar:shop/web-1' },
  );
});

test('the client refuses a config frame over its own limit and reconnects', async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web')));
  const { client: c, applied } = client(t, server, { proxyId: 'sidecar:shop/web-1', maxFrameBytes: 200 });
  const ended = once<[{ code: string }, number]>(c, 'disconnected');
  c.start();
  const [err, retryInMs] = await ended;
  t.is(err.code, 'WEFT_ERR_PUSH_FRAME_TOO_LARGE');
  t.true(retryInMs > 0);
  t.deepEqual(applied, []);
});

test('frames out of order or malformed are protocol errors', async (t) => {
  const { server } = await setup(t);
  const cases: [string, RegExp][] = [
    [encodeFrame({ type: 'ping' }), /"ping" before hello/],
    ['not json\n', /frame is not JSON/],
    ['{"type":"hello","proxyId":"Sidecar:x","nodeVersion":"1"}\n', /bad "hello" frame: proxyId/],
    ['{"type":"subscribe"}\n', /bad "subscribe" frame/],
    [
      `${encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: '1' })}${encodeFrame({
        type: 'hello',
        proxyId: 'sidecar:shop/web-2',
        nodeVersion: '1',
      })}`,
      /a second hello/,
    ],
  ];
  for (const [text, message] of cases) {
    const peer = await rawPeer(server.port, webCreds);
    peer.send(text);
    const f = await peer.next((x) => x.type === 'error');
    t.is(f.code, 'WEFT_ERR_PUSH_PROTOCOL');
    t.regex(String(f.message), message);
    await peer.closed;
  }
});

test('a silent connection is closed (hello timeout, then idle timeout)', async (t) => {
  const { server } = await setup(t, { helloTimeoutMs: 50, idleTimeoutMs: 100 });
  const silent = await rawPeer(server.port, webCreds);
  t.like(await silent.next(), { type: 'error', code: 'WEFT_ERR_PUSH_HELLO_TIMEOUT' });
  await silent.closed;
  const idle = await rawPeer(server.port, webCreds);
  const gone = once(server, 'disconnect');
  idle.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' }));
  t.like(await idle.next(), { type: 'error', code: 'WEFT_ERR_PUSH_IDLE_TIMEOUT' });
  await idle.closed;
  await gone;
  t.false(server.records()[0].connected);
});

test('a second connection for the same proxy supersedes the first', async (t) => {
  const { server, configs } = await setup(t);
  configs.store('sidecar:shop/web-1', versioned(sidecarConfig('shop', 'web-1', 'web')));
  const first = await rawPeer(server.port, webCreds);
  first.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' }));
  await first.next((f) => f.type === 'config');
  const second = await rawPeer(server.port, webCreds);
  second.send(encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' }));
  t.like(await first.next((f) => f.type === 'error'), { code: 'WEFT_ERR_PUSH_SUPERSEDED' });
  await first.closed;
  t.like(await second.next(), { type: 'config' });
  const records = server.records();
  t.is(records.length, 1);
  t.true(records[0].connected);
});

test('a proxy that says hello with the current version is not sent it again', async (t) => {
  const { server, configs } = await setup(t);
  const v1 = versioned(sidecarConfig('shop', 'web-1', 'web'));
  configs.store('sidecar:shop/web-1', v1);
  const peer = await rawPeer(server.port, webCreds);
  peer.send(
    encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw', configVersion: v1.version }),
  );
  peer.send(encodeFrame({ type: 'ping' }));
  await peer.next((f) => f.type === 'pong');
  t.deepEqual(peer.frames, [{ type: 'pong' }]);
  t.like(server.records()[0], { lastAckedVersion: v1.version, lastSentVersion: undefined });
  peer.socket.end();
});

test('close tells connected proxies (WEFT_ERR_PUSH_SHUTDOWN) and ends their connections', async (t) => {
  const { server } = await setup(t);
  const peer = await rawPeer(server.port, webCreds);
  peer.send(`${encodeFrame({ type: 'hello', proxyId: 'sidecar:shop/web-1', nodeVersion: 'raw' })}{"type":"ping"}\n`);
  await peer.next((f) => f.type === 'pong');
  await server.close();
  t.like(await peer.next((f) => f.type === 'error'), { code: 'WEFT_ERR_PUSH_SHUTDOWN' });
  await peer.closed;
});

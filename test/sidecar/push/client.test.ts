// The proxy's push client against the real push server (and, for heartbeats, a TLS server that never answers):
// reconnect after a server restart without a re-send, credentials read again on each attempt (rotation), capped
// jittered backoff, coalesced applies, a config for another proxy refused, close() ends everything.
import { createServer as createTlsServer } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { snapshotAuthorizer } from '../../../controlplane/push/identity.ts';
import { type PushServer, startPushServer } from '../../../controlplane/push/server.ts';
import type { VersionedConfig } from '../../../controlplane/runtime/pipeline.ts';
import { WatchableMap } from '../../../controlplane/runtime/watchable.ts';
import type { ProxyConfig } from '../../../sidecar/config/proxy-config.ts';
import { PUSH_ALPN } from '../../../sidecar/config/push-api.ts';
import {
  type PushClientOptions,
  PushClient,
  type PushConnectionError,
  type PushCredentials,
  reconnectDelay,
} from '../../../sidecar/push/client.ts';
import {
  ca,
  captureLogs,
  sidecarConfig,
  snapshotOf,
  TD,
  versioned,
  workloadCredentials,
} from '../../controlplane/push/support.ts';

const webCreds = workloadCredentials('shop', 'web');
const snapshot = snapshotOf([{ namespace: 'shop', name: 'web-1', serviceAccount: 'web' }]);
const ID = 'sidecar:shop/web-1';

const newMap = () => new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });

async function server(t: ExecutionContext, configs = newMap(), port = 0): Promise<PushServer> {
  const s = await startPushServer({
    configs,
    authorize: snapshotAuthorizer({ snapshot: () => snapshot, trustDomain: TD }),
    ca,
    port,
    logger: captureLogs().logger,
  });
  t.teardown(() => s.close());
  return s;
}

function client(t: ExecutionContext, port: number, o: Partial<PushClientOptions> = {}) {
  const applied: string[] = [];
  const c = new PushClient({
    host: '127.0.0.1',
    port,
    proxyId: ID,
    nodeVersion: 'weft-test/1',
    credentials: () => webCreds,
    apply: (_config, version) => {
      applied.push(version);
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

const until = <T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, pred: (...args: T) => boolean) =>
  new Promise<T>((resolve) => {
    const on = (...args: unknown[]) => {
      if (!pred(...(args as T))) return;
      emitter.off(event, on);
      resolve(args as T);
    };
    emitter.on(event, on);
  });

test('reconnectDelay doubles, caps and jitters within [step/2, step]', (t) => {
  const b = { initialMs: 100, maxMs: 800 };
  t.deepEqual(
    [1, 2, 3, 4, 5].map((n) => reconnectDelay(n, () => 1, b)),
    [100, 200, 400, 800, 800],
  );
  t.deepEqual(
    [1, 2, 3, 4, 5].map((n) => reconnectDelay(n, () => 0, b)),
    [50, 100, 200, 400, 400],
  );
});

test('after a server restart the client reconnects, says which version it runs, and is not sent it again', async (t) => {
  const configs = newMap();
  const v1 = versioned(sidecarConfig('shop', 'web-1', 'web'));
  configs.store(ID, v1);
  const first = await server(t, configs);
  const port = first.port;
  const { client: c, applied } = client(t, port);
  const gotV1 = once(c, 'applied');
  c.start();
  await gotV1;

  const dropped = once<[PushConnectionError, number]>(c, 'disconnected');
  await first.close();
  const [err, retryInMs] = await dropped;
  t.is(err.code, 'WEFT_ERR_PUSH_SHUTDOWN');
  t.true(retryInMs >= 10 && retryInMs <= 20, 'a working session reset the backoff to its first step');

  const second = await server(t, configs, port);
  const reconnected = once(second, 'hello');
  await reconnected;
  t.like(second.records()[0], { proxyId: ID, lastAckedVersion: v1.version });
  const v2 = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v2' }));
  const gotV2 = until<[string, string]>(second, 'ack', (_id, v) => v === v2.version);
  configs.store(ID, v2);
  await gotV2;
  t.deepEqual(applied, [v1.version, v2.version]);
  t.is(second.stats.configsSent, 1, 'only v2 went out on the new server');
});

test('credentials are read on every attempt: none yet, then a wrong identity, then the right one', async (t) => {
  const configs = newMap();
  configs.store(ID, versioned(sidecarConfig('shop', 'web-1', 'web')));
  const s = await server(t, configs);
  const sequence: (PushCredentials | undefined)[] = [undefined, workloadCredentials('shop', 'other'), webCreds];
  let calls = 0;
  const errors: string[] = [];
  const { client: c, applied } = client(t, s.port, {
    credentials: () => sequence[Math.min(calls++, sequence.length - 1)],
  });
  c.on('disconnected', (e) => errors.push(e.code));
  const done = once(c, 'applied');
  c.start();
  await done;
  t.is(calls, 3);
  t.deepEqual(errors, ['WEFT_ERR_PUSH_CREDENTIALS', 'WEFT_ERR_PUSH_IDENTITY']);
  t.is(applied.length, 1);
});

test('with no server, attempts back off exponentially up to the cap; close() stops them', async (t) => {
  const s = await server(t);
  const port = s.port;
  await s.close();
  const { client: c } = client(t, port, { backoff: { initialMs: 5, maxMs: 20 }, random: () => 1 });
  const delays: number[] = [];
  const fifth = new Promise<void>((resolve) =>
    c.on('disconnected', (e, retryInMs) => {
      if (retryInMs === undefined) return;
      t.is(e.code, 'ECONNREFUSED');
      delays.push(retryInMs);
      if (delays.length === 5) resolve();
    }),
  );
  c.start();
  await fifth;
  await c.close();
  t.deepEqual(delays, [5, 10, 20, 20, 20]);
  t.false(c.connected);
});

test('a server that stops answering pings is left, and the client reconnects', async (t) => {
  const serving = ca.issueServing({ dnsNames: ['weft-controlplane'], ips: [] });
  let connections = 0;
  const sockets = new Set<import('node:tls').TLSSocket>();
  const mute = createTlsServer(
    {
      key: serving.keyPem,
      cert: serving.certChainPem,
      ca: ca.rootCAsPem,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [PUSH_ALPN],
    },
    (socket) => {
      connections++;
      sockets.add(socket);
      socket.on('data', () => {}); // reads, never answers
    },
  );
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        mute.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  );
  const port = (mute.address() as { port: number }).port;
  const { client: c } = client(t, port, { pingIntervalMs: 30 });
  const dropped = once<[PushConnectionError, number]>(c, 'disconnected');
  c.start();
  const [err] = await dropped;
  t.is(err.code, 'WEFT_ERR_PUSH_HEARTBEAT');
  await until(c, 'connected', () => connections >= 2);
  await c.close();
  t.true(connections >= 2);
});

test('configs arriving during a slow apply coalesce: only the newest is applied next', async (t) => {
  const configs = newMap();
  const v1 = versioned(sidecarConfig('shop', 'web-1', 'web'));
  configs.store(ID, v1);
  const s = await server(t, configs);
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const { client: c, applied } = client(t, s.port, {
    apply: async (_config, version) => {
      applied.push(version);
      if (version === v1.version) await gate;
    },
  });
  const v2 = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v2' }));
  const v3 = versioned(sidecarConfig('shop', 'web-1', 'web', { marker: 'v3' }));
  const gotV1 = until<[string]>(c, 'received', (v) => v === v1.version);
  c.start();
  await gotV1;
  const gotV2 = until<[string]>(c, 'received', (v) => v === v2.version);
  configs.store(ID, v2);
  await gotV2;
  const gotV3 = until<[string]>(c, 'received', (v) => v === v3.version);
  configs.store(ID, v3);
  await gotV3;
  const ackedV3 = until<[string, string]>(s, 'ack', (_id, v) => v === v3.version);
  release();
  await ackedV3;
  t.deepEqual(applied, [v1.version, v3.version]);
  t.is(s.records()[0].lastAckedVersion, v3.version);
});

test('a config naming another proxy is nacked and not applied', async (t) => {
  const configs = newMap();
  const foreign: ProxyConfig = sidecarConfig('shop', 'web-2', 'web');
  configs.store(ID, versioned(foreign));
  const s = await server(t, configs);
  const { client: c, applied } = client(t, s.port);
  const nacked = once<[string, string, string]>(s, 'nack');
  c.start();
  const [, , reason] = await nacked;
  t.is(reason, 'proxy.id: is "sidecar:shop/web-2", this proxy is sidecar:shop/web-1');
  t.deepEqual(applied, []);
});

// `weft proxy --push … --ca-url … --token-file …`: the proxy gets its certificate from a real mesh CA server with the
// token read from a file (a rewritten file is used on the next request), connects to a real push server with it,
// starts with no listeners and unready, serves once the first config arrives, and refuses a bad config while the old
// one keeps serving. `--config` with `--push` is a usage error.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { BootstrapTokens } from '../../controlplane/certs/tokens.ts';
import { type CAServer, startCAServer } from '../../controlplane/certs/server.ts';
import { snapshotAuthorizer } from '../../controlplane/push/identity.ts';
import { type PushServer, startPushServer } from '../../controlplane/push/server.ts';
import type { VersionedConfig } from '../../controlplane/runtime/pipeline.ts';
import { WatchableMap } from '../../controlplane/runtime/watchable.ts';
import { runProxyCli } from '../../sidecar/cli.ts';
import { startEchoServer } from '../helpers/echo-server.ts';
import {
  ca,
  captureLogs,
  invalidSidecarConfig,
  sidecarConfig,
  snapshotOf,
  TD,
  versioned,
} from '../controlplane/push/support.ts';

const test = anyTest.serial as TestFn<{ dir: string; cleanup: (() => Promise<unknown>)[] }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-push-cli-'));
  t.context.cleanup = [];
});

test.afterEach.always(async (t) => {
  for (const c of t.context.cleanup.reverse()) await c().catch(() => {});
  await rm(t.context.dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const usage = async (args: string[]) =>
  (
    await runProxyCli(args).then(
      () => undefined,
      (e: Error) => e,
    )
  )?.message;

test('--config and --push are mutually exclusive; --push needs a proxy id and a certificate source', async (t) => {
  t.regex(
    (await usage(['--mode', 'sidecar', '--config', 'x.yaml', '--push', '127.0.0.1:15010'])) ?? '',
    /--config and --push are mutually exclusive/,
  );
  t.regex((await usage(['--mode', 'sidecar'])) ?? '', /--config FILE or --push/);
  t.regex((await usage(['--mode', 'sidecar', '--push', '127.0.0.1:15010'])) ?? '', /--proxy-id/);
  t.regex(
    (await usage(['--mode', 'edge', '--push', '127.0.0.1:15010', '--proxy-id', 'sidecar:shop/web-1'])) ?? '',
    /not a edge proxy/,
  );
  t.regex(
    (await usage(['--mode', 'sidecar', '--push', '127.0.0.1:15010', '--proxy-id', 'sidecar:shop/web-1'])) ?? '',
    /needs a certificate/,
  );
  t.regex((await usage(['--mode', 'sidecar', '--push', 'a:b:c'])) ?? '', /HOST:PORT/);
});

test('--push with --ca-url: certificate from the CA, config from the push server, a nack keeps the old config', async (t) => {
  const { dir, cleanup } = t.context;
  const { logger } = captureLogs('warn');
  const tokens = new BootstrapTokens({ secret: Buffer.alloc(32, 7) });
  const caServer: CAServer = await startCAServer({ ca, verifier: tokens, port: 0, host: '127.0.0.1', logger });
  cleanup.push(() => caServer.close());
  const configs = new WatchableMap<string, VersionedConfig>({ equals: (a, b) => a.version === b.version });
  const snapshot = snapshotOf([{ namespace: 'shop', name: 'web-1', serviceAccount: 'web' }]);
  const push: PushServer = await startPushServer({
    configs,
    authorize: snapshotAuthorizer({ snapshot: () => snapshot, trustDomain: TD }),
    ca,
    port: 0,
    logger,
  });
  cleanup.push(() => push.close());
  const echo = await startEchoServer({ pod: 'web-1', namespace: 'shop' });
  cleanup.push(() => echo.close());

  const tokenFile = path.join(dir, 'token');
  const rootsFile = path.join(dir, 'roots.pem');
  // First a token the CA refuses: the identity retries, reading the file again, and succeeds once it is rewritten.
  await writeFile(tokenFile, 'not-a-token\n');
  await writeFile(rootsFile, ca.rootCAsPem);
  const handle = await runProxyCli([
    '--mode',
    'sidecar',
    '--push',
    `127.0.0.1:${push.port}`,
    '--proxy-id',
    'sidecar:shop/web-1',
    '--ca-url',
    caServer.url,
    '--token-file',
    tokenFile,
    '--roots',
    rootsFile,
    '--service-account',
    'web',
    '--admin-port',
    '0',
    '--log-level',
    'silent',
  ]);
  cleanup.push(() => handle.stop());
  const admin = `http://127.0.0.1:${handle.proxy.addresses.admin.port}`;
  t.deepEqual(Object.keys(handle.proxy.addresses.listeners), [], 'no listeners before the first config');
  t.is((await fetch(`${admin}/ready`)).status, 503, 'not ready before the first config');

  const [refusal] = await once(handle.workloadIdentity!, 'renewalFailed');
  t.regex(String((refusal as Error).message), /CA refused/);
  await writeFile(tokenFile, `${tokens.mint({ namespace: 'shop', serviceAccount: 'web', pod: 'web-1' })}\n`);
  handle.workloadIdentity!.renewNow();
  await once(handle.push!, 'connected');

  const inboundPort = await freePort();
  const good = versioned(sidecarConfig('shop', 'web-1', 'web', { inboundPort, appPort: echo.port }));
  const applied = once(handle.push!, 'applied');
  configs.store('sidecar:shop/web-1', good);
  t.is((await applied)[0], good.version);
  t.is((await fetch(`${admin}/ready`)).status, 200);
  t.is((await fetch(`http://127.0.0.1:${inboundPort}/hello`)).status, 200);
  const record = push.records().find((r) => r.proxyId === 'sidecar:shop/web-1');
  t.is(record?.identity, 'spiffe://cluster.local/ns/shop/sa/web');

  const bad = versioned(invalidSidecarConfig('shop', 'web-1', 'web'));
  const rejected = once(handle.push!, 'rejected');
  const nacked = once(push, 'nack');
  configs.store('sidecar:shop/web-1', bad);
  t.is((await rejected)[0], bad.version);
  await nacked;
  t.is(handle.push!.appliedVersion, good.version);
  t.is((await fetch(`http://127.0.0.1:${inboundPort}/again`)).status, 200, 'the old config keeps serving');
  const after = push.records().find((r) => r.proxyId === 'sidecar:shop/web-1');
  t.is(after?.lastNack?.version, bad.version);
  t.is(after?.lastAckedVersion, good.version);
});

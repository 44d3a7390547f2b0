// Workload credentials from files (`weft proxy --cert --key --roots`): checked together before use, reloaded when
// they change, a bad set refused while the previous certificate keeps serving.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { runProxyCli } from '../../../sidecar/cli.ts';
import { FileIdentitySource } from '../../../sidecar/upstream/mtls-files.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { HOUR, type Minted, meshRequest, mint, newCa, ready, serverConfig } from './support.ts';
import { closedPort } from '../../helpers/run-weft.ts';

const ca = newCa();
const silent = pino({ level: 'silent' });
const serial = (s: string) => s.toLowerCase().replace(/^0+/, '');

async function files(t: import('ava').ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'weft-mtls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), rootsFile: join(dir, 'ca.crt') };
  /** Writes a set the way a Secret volume update does: each file replaced by rename. */
  const write = async (c: { certChain: string; key: string; rootCAs: string }) => {
    for (const [file, text] of [
      [paths.keyFile, c.key],
      [paths.certFile, c.certChain],
      [paths.rootsFile, c.rootCAs],
    ] as const) {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    }
  };
  return { dir, paths, write };
}

test('open() checks the set; a change is picked up, a bad set is refused and the previous one kept', async (t) => {
  const { paths, write } = await files(t);
  const first = mint(ca, 'b', 'b');
  await write(first);
  const source = await FileIdentitySource.open({ ...paths, log: silent, pollIntervalMs: 0 });
  t.teardown(() => source.close());
  t.is(source.current()?.spiffeId, 'spiffe://cluster.local/ns/b/sa/b');
  t.is(source.current()?.serialNumber.toLowerCase(), first.serialNumber);

  // A key that is not the certificate's: refused, the first set stays.
  await writeFile(paths.keyFile, mint(ca, 'b', 'b').key);
  t.false(await source.reload());
  t.is(source.current()?.serialNumber.toLowerCase(), first.serialNumber);

  // A new valid set arrives through the watcher.
  const second = mint(ca, 'b', 'b');
  const changed = new Promise<void>((resolve) => source.once('change', () => resolve()));
  await write(second);
  await changed;
  t.is(source.current()?.serialNumber.toLowerCase(), second.serialNumber);
});

test('open() rejects a set that does not check out, naming the files', async (t) => {
  const { paths, write } = await files(t);
  const good = mint(ca, 'b', 'b');
  const cases: [string, Minted, RegExp][] = [
    ['key of another certificate', { ...good, key: mint(ca, 'b', 'b').key }, /not for this proxy’s key/],
    ['roots that did not issue it', { ...good, rootCAs: newCa().rootCAsPem }, /trusted root/],
    ['expired', mint(newCa({ backdateMs: 2 * HOUR }), 'b', 'b', HOUR), /expired/],
  ];
  for (const [what, creds, message] of cases) {
    await write(creds);
    const err = await t.throwsAsync(FileIdentitySource.open({ ...paths, pollIntervalMs: 0 }), undefined, what);
    t.regex(err?.message ?? '', message, what);
    t.true(err?.message.includes(paths.certFile), what);
  }
  await t.throwsAsync(FileIdentitySource.open({ ...paths, certFile: join(paths.certFile, 'missing') }), {
    message: /cannot read/,
  });
});

test('weft proxy --cert --key --roots: the mesh listener serves the file certificate and follows it when it changes', async (t) => {
  const { dir, paths, write } = await files(t);
  const app = await startEchoServer();
  const first = mint(ca, 'b', 'b');
  await write(first);
  const config = serverConfig([app.port]);
  const [meshPort, inboundPort] = [await closedPort(), await closedPort()];
  config.listeners = config.listeners.map((l, i) => ({
    ...l,
    address: '127.0.0.1',
    port: i === 0 ? meshPort : inboundPort,
  }));
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify(config));
  const argv = ['--mode', 'sidecar', '--config', file, '--admin-port', '0', '--log-level', 'silent'];
  await t.throwsAsync(runProxyCli([...argv, '--cert', paths.certFile]), { message: /go together/ });
  const cli = await runProxyCli([
    ...argv,
    '--cert',
    paths.certFile,
    '--key',
    paths.keyFile,
    '--roots',
    paths.rootsFile,
  ]);
  t.teardown(async () => {
    await cli.stop();
    await app.close();
  });
  t.is(await ready(cli.proxy.addresses.admin.port), 200);
  const caller = mint(ca, 'a', 'a');
  const probe = () =>
    meshRequest(meshPort, { creds: caller, ca: ca.rootCAsPem, headers: { 'x-weft-target-port': String(app.port) } });
  const before = await probe();
  t.is(before.status, 200);
  t.is(serial(before.serverSerial), serial(first.serialNumber));

  const second = mint(ca, 'b', 'b');
  await write(second);
  // The watcher reloads within a moment; every probe meanwhile must still succeed.
  let after = await probe();
  for (let i = 0; i < 100 && serial(after.serverSerial) !== serial(second.serialNumber); i++) {
    t.is(after.status, 200);
    await new Promise((r) => setTimeout(r, 50));
    after = await probe();
  }
  t.is(serial(after.serverSerial), serial(second.serialNumber));
  t.is(after.status, 200);
});

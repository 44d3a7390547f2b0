// The whole chain with the real pieces: each proxy's WorkloadIdentity gets its certificate from the CA server with
// a bootstrap token; the proxies are unready until then, serve A → B → app after, and a renewal is picked up by the
// mesh listener without a restart.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import test from 'ava';
import { BootstrapTokens, generateRoot, MeshCA, startCAServer } from '../../../controlplane/certs/index.ts';
import { WorkloadIdentity } from '../../../sidecar/identity/index.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { captureLogs } from '../../controlplane/certs/support.ts';
import { send } from '../harness.ts';
import { HOUR, meshRequest, ready, spiffe, startClientSidecar, startServerSidecar, TRUST_DOMAIN } from './support.ts';

test('WorkloadIdentity from the CA → proxies ready → A → B → app; a renewal reaches new handshakes', async (t) => {
  const root = generateRoot(TRUST_DOMAIN, Date.now() - HOUR);
  const tokens = new BootstrapTokens({ secret: randomBytes(32) });
  const server = await startCAServer({
    ca: MeshCA.fromPem(root, { trustDomain: TRUST_DOMAIN }),
    verifier: tokens,
    port: 0,
    logger: captureLogs().logger,
  });
  const identity = (ns: string, sa: string) =>
    new WorkloadIdentity({
      ca: { url: server.url, rootsPem: root.certPem, serverName: 'weft-ca' },
      trustDomain: TRUST_DOMAIN,
      namespace: ns,
      serviceAccount: sa,
      token: () => tokens.mint({ namespace: ns, serviceAccount: sa }),
    });
  const aId = identity('a', 'a');
  const bId = identity('b', 'b');
  const app = await startEchoServer();
  const b = await startServerSidecar([app.port], { identity: bId });
  const a = await startClientSidecar([{ port: app.port, meshPort: b.meshPort, identity: spiffe('b', 'b') }], {
    identity: aId,
  });
  t.teardown(async () => {
    aId.close();
    bId.close();
    await Promise.all([a.close(), b.close(), app.close(), server.close()]);
  });
  t.is(await ready(a.adminPort), 503);
  t.is(await ready(b.adminPort), 503);
  t.is((await send(a.port, { host: 'echo.b' })).headers['x-weft-error'], 'WEFT_ERR_NO_CERTIFICATE');

  await Promise.all([aId.start(), bId.start()]);
  t.is(await ready(a.adminPort), 200);
  t.is(await ready(b.adminPort), 200);
  const r = await send(a.port, { host: 'echo.b' });
  t.is(r.status, 200, r.body);
  t.is(r.json().headers['x-weft-peer-identity'], spiffe('a', 'a'));

  const probe = () =>
    meshRequest(b.meshPort, {
      creds: aId.current()!,
      ca: root.certPem,
      headers: { 'x-weft-target-port': String(app.port) },
    });
  const before = (await probe()).serverSerial.toLowerCase();
  t.is(before.replace(/^0+/, ''), bId.current()!.serialNumber.toLowerCase().replace(/^0+/, ''));
  const renewed = once(bId, 'change');
  bId.renewNow();
  await renewed;
  const after = await probe();
  t.is(after.status, 200);
  t.not(after.serverSerial.toLowerCase(), before);
  t.is(
    after.serverSerial.toLowerCase().replace(/^0+/, ''),
    bId.current()!.serialNumber.toLowerCase().replace(/^0+/, ''),
  );
  t.is((await send(a.port, { host: 'echo.b' })).status, 200);
});

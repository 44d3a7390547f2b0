// h2c in the mesh: sidecar A → sidecar B stays HTTP/1.1 over mTLS; B speaks h2c (prior knowledge) to its app on a
// port whose appProtocol is kubernetes.io/h2c, and the app sees A's identity, the Host as :authority and the body.
import test from 'ava';
import { StaticIdentity } from '../../sidecar/upstream/mtls.ts';
import { send, startTestProxy } from './harness.ts';
import { h2Backend } from './h2c-support.ts';
import { clientConfig, mint, newCa, serverConfig, spiffe } from './mesh/support.ts';

test('A → B over mTLS, then h2c from B to its app', async (t) => {
  const ca = newCa();
  const app = await h2Backend(t);
  const server = serverConfig([app.port]);
  for (const l of server.listeners)
    if (l.kind === 'mesh' || l.kind === 'inbound') l.appPorts = [{ port: app.port, appProtocol: 'kubernetes.io/h2c' }];
  const b = await startTestProxy(server, { mode: 'sidecar', identity: new StaticIdentity(mint(ca, 'b', 'b')) });
  t.teardown(() => b.close());
  const meshPort = b.proxy.addresses.listeners.mesh.port;
  const client = clientConfig({ port: app.port, meshPort, identity: spiffe('b', 'b') });
  client.clusters.c.protocol = 'h2c';
  const a = await startTestProxy(client, { mode: 'sidecar', identity: new StaticIdentity(mint(ca, 'a', 'a')) });
  t.teardown(() => a.close());
  for (let i = 0; i < 3; i++) {
    const r = await send(a.port, { host: 'echo.b', path: `/echo?i=${i}`, method: 'POST', body: 'hi' });
    t.is(r.status, 200, r.body);
    const seen = JSON.parse(r.body);
    t.is(seen.headers[':authority'], 'echo.b');
    t.is(seen.headers[':path'], `/echo?i=${i}`);
    t.is(seen.headers['x-weft-peer-identity'], spiffe('a', 'a'));
    t.is(seen.headers['x-weft-target-port'], undefined);
    t.is(seen.length, 2);
  }
  // B keeps one session to its app.
  t.is(app.sessions.length, 1);
});

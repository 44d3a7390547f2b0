// Requests to a pod IP rather than a Service (conformance MeshFrontend "Send to pod IP"): sidecar A passes them
// through without the Service's routes — over mTLS to B's proxy when the config lists the address among
// `meshedPods` (B must present that identity), in plaintext to anything else it was captured on its way to — and an
// explicit-proxy request for an address it knows nothing of gets a clear 404.
import test from 'ava';
import type { ProxyConfigInput } from '../../../sidecar/config/proxy-config.ts';
import type { OriginalDestination } from '../../../sidecar/listeners/outbound.ts';
import { StaticIdentity } from '../../../sidecar/upstream/mtls.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { send, startTestProxy } from '../harness.ts';
import { clientConfig, mint, newCa, spiffe, startServerSidecar } from './support.ts';

const ca = newCa();
const aCreds = mint(ca, 'a', 'a');
const bCreds = mint(ca, 'b', 'b');

/** A's config: Service echo.b (its route sets x-header-set) and B's pod at 127.0.0.1 with `identity`. */
function config(appPort: number, meshPort: number, identity = spiffe('b', 'b')): ProxyConfigInput {
  const c = clientConfig({ port: appPort, meshPort, identity: spiffe('b', 'b') });
  const listener = c.listeners[0] as Extract<ProxyConfigInput['listeners'][number], { kind: 'outbound' }>;
  listener.meshedPods = [{ address: '127.0.0.1', pod: 'b/b-0', identity, meshPort }];
  const route = c.routeTables.rt.virtualHosts[0].routes[0];
  route.filters = { responseHeaders: { set: [{ name: 'x-header-set', value: 'set' }] } };
  return c;
}

async function world(t: import('ava').ExecutionContext, identity?: string) {
  const app = await startEchoServer({ pod: 'b-0' });
  // Not a meshed pod: reached in plaintext when a captured request was going there.
  const plain = await startEchoServer({ pod: 'plain-0', address: '127.0.0.2' });
  const b = await startServerSidecar([app.port], { identity: new StaticIdentity(bCreds) });
  // What SO_ORIGINAL_DST would say; undefined: the request came to A as to an explicit proxy.
  const captured: { dst: OriginalDestination | undefined } = { dst: undefined };
  const a = await startTestProxy(config(app.port, b.meshPort, identity), {
    mode: 'sidecar',
    identity: new StaticIdentity(aCreds),
    originalDestination: () => captured.dst,
  });
  t.teardown(() => Promise.all([a.close(), b.close(), app.close(), plain.close()]));
  return { app, plain, b, a, captured };
}

test('to the Service: its route applies; to the pod IP: passed through over mTLS, no route', async (t) => {
  const { app, a } = await world(t);
  const viaService = await send(a.port, { host: 'echo.b' });
  t.is(viaService.status, 200, viaService.body);
  t.is(viaService.headers['x-header-set'], 'set');

  const host = `127.0.0.1:${app.port}`;
  const direct = await send(a.port, { host, path: '/direct' });
  t.is(direct.status, 200, direct.body);
  t.is(direct.headers['x-header-set'], undefined, "the Service's route is not applied");
  const seen = direct.json();
  t.is(seen.pod, 'b-0');
  t.is(seen.host, host);
  t.is(seen.path, '/direct');
  // B's mesh listener passed on the identity it verified: the hop was mTLS.
  t.is(seen.headers['x-weft-peer-identity'], aCreds.spiffeId);
});

test('captured: a meshed destination over mTLS, any other in plaintext, whatever the Host says', async (t) => {
  const { app, plain, a, captured } = await world(t);
  captured.dst = { address: '127.0.0.1', port: app.port };
  const meshed = await send(a.port, { host: 'somewhere.example' });
  t.is(meshed.status, 200, meshed.body);
  t.is(meshed.json().pod, 'b-0');
  t.is(meshed.json().headers['x-weft-peer-identity'], aCreds.spiffeId);

  captured.dst = { address: '127.0.0.2', port: plain.port };
  const other = await send(a.port, { host: `127.0.0.2:${plain.port}` });
  t.is(other.status, 200, other.body);
  t.is(other.json().pod, 'plain-0');
  t.false('x-weft-peer-identity' in other.json().headers, 'plaintext: no mesh hop');
  t.is(other.headers['x-header-set'], undefined);
});

test('the pod must present the identity the config lists for its IP', async (t) => {
  const { app, a } = await world(t, spiffe('b', 'someone-else'));
  const r = await send(a.port, { host: `127.0.0.1:${app.port}` });
  t.is(r.status, 503);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_IDENTITY');
  t.is(app.requests.length, 0);
});

test('explicit proxy to an address that is neither a Service nor a meshed pod: 404 naming it', async (t) => {
  const { plain, a } = await world(t);
  const r = await send(a.port, { host: `127.0.0.2:${plain.port}` });
  t.is(r.status, 404);
  t.is(r.headers['x-weft-error'], 'WEFT_ERR_UNKNOWN_SERVICE');
  t.regex(r.body, /no Service or meshed pod known as 127\.0\.0\.2/);
  t.is(plain.requests.length, 0);
});

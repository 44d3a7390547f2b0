import test from 'ava';
import { startEchoServer } from '../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from './harness.ts';

test('forwards to the echo backend', async (t) => {
  const echo = await startEchoServer({ pod: 'v1' });
  const p = await startTestProxy(
    edgeConfig({ clusters: { 'ns/v1': cluster('ns/v1', echo) }, routes: [route({ backends: to('ns/v1') })] }),
  );
  t.teardown(() => Promise.all([p.close(), echo.close()]));
  const r = await send(p.port, { path: '/hello?x=1', host: 'example.com' });
  t.is(r.status, 200, r.body);
  t.is(r.json().path, '/hello?x=1');
  t.is(r.json().host, 'example.com');
});

// The access log (`--access-log`): at ratio 1 one JSON line per request — forwarded, answered by the proxy, failed —
// with the route, backend, upstream endpoint, trace id and bytes; at ratio 0 none; off by default; written even when
// the proxy's log level hides info events.
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { runProxyCli } from '../../../sidecar/cli.ts';
import { captureLogs } from '../../controlplane/push/support.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { cluster, edgeConfig, route, send, startTestProxy, to } from '../harness.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

async function proxyWithLog(ratio: number | undefined) {
  const echo = await startEchoServer({ pod: 'a' });
  // `warn`: the access log has its own level, so it is written anyway.
  const { logger, lines } = captureLogs('warn');
  const config = edgeConfig({
    clusters: { 'ns/a': cluster('ns/a', echo) },
    routes: [
      route({ route: 'ns/api', match: { path: { type: 'PathPrefix', value: '/api' } }, backends: to('ns/a') }),
      route({
        route: 'ns/moved',
        rule: 1,
        match: { path: { type: 'Exact', value: '/old' } },
        directResponse: { status: 204 },
      }),
    ],
  });
  const p = await startTestProxy(config, {
    logger,
    accessLog: ratio === undefined ? undefined : { sampleRatio: ratio },
  });
  return { p, echo, lines, close: () => Promise.all([p.close(), echo.close()]) };
}

async function traffic(port: number): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const r = await send(port, { path: `/api/${i}?q=1`, host: 'shop.example', headers: { traceparent: TRACEPARENT } });
    if (r.status !== 200) throw new Error(`status ${r.status}`);
  }
  if ((await send(port, { path: '/old' })).status !== 204) throw new Error('no direct response');
  if ((await send(port, { path: '/nowhere' })).status !== 404) throw new Error('no 404');
}

const access = (lines: Record<string, unknown>[]) => lines.filter((l) => l.event === 'access');

test('ratio 1: one line per request with what happened to it', async (t) => {
  const { p, echo, lines, close } = await proxyWithLog(1);
  t.teardown(close);
  await traffic(p.port);
  for (let i = 0; i < 100 && access(lines).length < 5; i++) await sleep(10);
  const got = access(lines);
  t.is(got.length, 5);
  const api = got.filter((l) => l.route === 'ns/api');
  t.is(api.length, 3);
  t.like(api[0], {
    component: 'access',
    msg: 'access',
    listener: 'ns/gw/web',
    method: 'GET',
    authority: 'shop.example',
    path: '/api/0?q=1',
    status: 200,
    rule: '0',
    backend: 'ns/a',
    upstream: `http://${echo.address}:${echo.port}`,
    traceId: TRACE_ID,
  });
  t.is(typeof api[0].durationMs, 'number');
  t.true((api[0].bytesSent as number) > 0);
  t.is(typeof api[0].time, 'number');
  t.is(api[0].error, undefined);
  t.like(
    got.find((l) => l.path === '/old'),
    { status: 204, route: 'ns/moved', rule: '1', backend: 'none', upstream: undefined },
  );
  t.like(
    got.find((l) => l.path === '/nowhere'),
    { status: 404, route: 'none', error: 'WEFT_ERR_NO_ROUTE', reason: 'no_route' },
  );
  // Nothing else was logged at `warn` by these requests.
  t.is(lines.length, got.length);
});

test('ratio 0 and no access log: no line at all', async (t) => {
  for (const ratio of [0, undefined]) {
    const { p, lines, close } = await proxyWithLog(ratio);
    await traffic(p.port);
    await sleep(50);
    t.is(access(lines).length, 0, String(ratio));
    await close();
  }
});

test('--access-log-sample-ratio needs --access-log and a ratio between 0 and 1', async (t) => {
  const usage = (args: string[]) => runProxyCli(['--mode', 'edge', '--config', 'x.yaml', ...args]);
  await t.throwsAsync(usage(['--access-log-sample-ratio', '0.5']), { message: /goes with --access-log/ });
  await t.throwsAsync(usage(['--access-log', '--access-log-sample-ratio', '2']), { message: /ratio between 0 and 1/ });
});

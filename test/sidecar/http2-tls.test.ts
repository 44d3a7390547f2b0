// HTTPS Gateway listeners offer HTTP/2 by ALPN (h2, then http/1.1) and, since one HTTP/2
// connection may carry requests for every name its certificate covers (coalescing), answer 421
// when a request's :authority belongs to another listener of the port than the SNI chose —
// the cases of the conformance test HTTPRouteHTTPSListenerDetectMisdirectedRequests.
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import test from 'ava';
import { type EchoServer, startEchoServer } from '../helpers/echo-server.ts';
import { selfSigned } from '../helpers/self-signed.ts';
import { type Http2Target, once, openSession, request } from './http2-client.ts';
import { cluster, edgeConfig, route, startTestProxy, type TestProxy, to } from './harness.ts';

let echo: EchoServer;
let p: TestProxy;

// The conformance Gateway: four HTTPS listeners on one port, one certificate for all
// (SANs *, *.org, *.wildcard.org there; any certificate here, the client does not verify it).
test.before(async () => {
  echo = await startEchoServer({ pod: 'echo' });
  const answer = (body: string) => ({
    virtualHosts: [{ domains: ['*'], routes: [route({ directResponse: { status: 200, body } })] }],
  });
  const cert = selfSigned('example.org', '*.wildcard.org', 'second-example.org');
  p = await startTestProxy(
    edgeConfig({
      protocol: 'HTTPS',
      port: 443,
      clusters: { 'ns/echo': cluster('ns/echo', echo) },
      hosts: [
        { listener: 'ns/gw/https', routeTable: 'rt-https', certificates: ['ns/cert'] },
        {
          listener: 'ns/gw/second',
          hostname: 'second-example.org',
          routeTable: 'rt-second',
          certificates: ['ns/cert'],
        },
        { listener: 'ns/gw/wild', hostname: '*.wildcard.org', routeTable: 'rt-wild', certificates: ['ns/cert'] },
        {
          listener: 'ns/gw/fourth',
          hostname: 'fourth-example.wildcard.org',
          routeTable: 'rt-fourth',
          certificates: ['ns/cert'],
        },
      ],
      routeTables: {
        // The route of the hostname-less listener names example.org: other names find no route there.
        'rt-https': {
          virtualHosts: [
            {
              domains: ['example.org'],
              routes: [
                route({ match: { path: { type: 'PathPrefix', value: '/echo' } }, backends: to('ns/echo') }),
                route({ directResponse: { status: 200, body: 'v1' } }),
              ],
            },
          ],
        },
        'rt-second': answer('v2'),
        'rt-wild': answer('v3'),
        'rt-fourth': answer('v1-fourth'),
      },
      tlsCertificates: { 'ns/cert': cert },
    }),
  );
});

test.after.always(async () => {
  await p?.close();
  await echo?.close();
});

const tls = (servername: string): Http2Target => ({ port: p.port, servername });

test('ALPN: h2 when the client offers it, http/1.1 when it offers only that, HTTP/1.1 without ALPN', async (t) => {
  const negotiate = (protocols: string[] | undefined) =>
    new Promise<string | false>((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: p.port,
        servername: 'example.org',
        rejectUnauthorized: false,
        ALPNProtocols: protocols,
      });
      socket.once('secureConnect', () => {
        resolve(socket.alpnProtocol ?? false);
        socket.destroy();
      });
      socket.once('error', reject);
    });
  t.is(await negotiate(['h2', 'http/1.1']), 'h2');
  t.is(await negotiate(['h2']), 'h2');
  t.is(await negotiate(['http/1.1', 'h2']), 'h2');
  t.is(await negotiate(['http/1.1']), 'http/1.1');
  t.is(await negotiate(undefined), false);
  // And HTTP/1.1 still answers on the port.
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: p.port,
        servername: 'second-example.org',
        headers: { host: 'second-example.org' },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.is(status, 200);
});

test('h2 over TLS reaches a backend through routing, as https', async (t) => {
  const r = await once(tls('example.org'), { ':path': '/echo/h2', ':authority': 'example.org', ':scheme': 'https' });
  t.is(r.status, 200, r.body);
  const seen = JSON.parse(r.body);
  t.is(seen.path, '/echo/h2');
  t.is(seen.host, 'example.org');
  t.is(seen.headers['x-forwarded-proto'], 'https');
});

// [SNI, :authority, status, body] — the conformance test's table.
const cases: [string, string, number, string?][] = [
  ['example.org', 'example.org', 200, 'v1'],
  ['example.org', 'second-example.org', 421],
  ['example.org', 'unknown-example.org', 404],
  ['second-example.org', 'second-example.org', 200, 'v2'],
  ['second-example.org', 'example.org', 421],
  ['second-example.org', 'unknown-example.org', 421],
  ['third-example.wildcard.org', 'third-example.wildcard.org', 200, 'v3'],
  ['third-example.wildcard.org', 'fith-example.wildcard.org', 200, 'v3'],
  ['third-example.wildcard.org', 'fourth-example.wildcard.org', 421],
  ['third-example.wildcard.org', 'second-example.org', 421],
  ['third-example.wildcard.org', 'unknown-example.org', 421],
  ['fourth-example.wildcard.org', 'fourth-example.wildcard.org', 200, 'v1-fourth'],
  ['fourth-example.wildcard.org', 'fith-example.wildcard.org', 421],
  ['unknown-example.org', 'example.org', 200, 'v1'],
  ['unknown-example.org', 'unknown-example.org', 404],
];

test('misdirected requests on one HTTP/2 connection per SNI: 421, and the connection keeps serving', async (t) => {
  for (const sni of new Set(cases.map(([s]) => s))) {
    const session = await openSession(tls(sni));
    try {
      for (const [, authority, status, body] of cases.filter(([s]) => s === sni)) {
        const r = await request(session, {
          ':path': '/detect-misdirected-requests',
          ':authority': authority,
          ':scheme': 'https',
        });
        const what = `SNI ${sni}, :authority ${authority}`;
        t.is(r.status, status, what);
        if (body !== undefined) t.is(r.body, body, what);
        if (status === 421) t.is(r.headers['x-weft-error'], 'WEFT_ERR_MISDIRECTED', what);
      }
    } finally {
      session.close();
    }
  }
});

test('a Host no listener serves is 404 whatever the SNI when no listener takes every name', async (t) => {
  const own = await startTestProxy(
    edgeConfig({
      protocol: 'HTTPS',
      port: 443,
      hosts: [
        { listener: 'ns/gw/a', hostname: 'a.example', routeTable: 'rt', certificates: ['ns/cert'] },
        { listener: 'ns/gw/wild', hostname: '*.wild.example', routeTable: 'rt', certificates: ['ns/cert'] },
      ],
      routes: [route({ directResponse: { status: 200, body: 'ok' } })],
      tlsCertificates: { 'ns/cert': selfSigned('a.example') },
    }),
  );
  t.teardown(() => own.close());
  const target = { port: own.port, servername: 'a.example' };
  t.is((await once(target, { ':authority': 'a.example', ':scheme': 'https' })).status, 200);
  t.is((await once(target, { ':authority': 'x.wild.example', ':scheme': 'https' })).status, 421);
  const unknown = await once(target, { ':authority': 'unknown.example', ':scheme': 'https' });
  t.is(unknown.status, 404);
  t.is(unknown.headers['x-weft-error'], 'WEFT_ERR_NO_ROUTE');
});

test('a client that closes its TLS connection mid-request has the backend request cut', async (t) => {
  const slow = await startEchoServer({ pod: 'slow' });
  const own = await startTestProxy(
    edgeConfig({
      protocol: 'HTTPS',
      clusters: { 'ns/slow': cluster('ns/slow', slow) },
      hosts: [{ listener: 'ns/gw/https', routeTable: 'rt', certificates: ['ns/cert'] }],
      routes: [route({ backends: to('ns/slow') })],
      tlsCertificates: { 'ns/cert': selfSigned('example.org') },
    }),
  );
  t.teardown(() => Promise.all([own.close(), slow.close()]));
  const session = await openSession({ port: own.port, servername: 'example.org' });
  const stream = session.request({ ':path': '/leaving', ':authority': 'example.org', 'x-echo-delay-ms': '5000' });
  stream.on('error', () => {});
  stream.end();
  await slow.waitForRequests(1);
  session.destroy();
  await slow.waitForAborts(1);
  t.is(slow.aborted[0]?.path, '/leaving');
});

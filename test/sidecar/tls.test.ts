// HTTPS gateway listeners: the certificate chosen by SNI (exact, longest wildcard, then the
// listener without hostname), and 421 when the Host selects another listener than the SNI.
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { selfSigned } from '../helpers/self-signed.ts';
import { edgeConfig, route, startTestProxy, type TestProxy } from './harness.ts';

let p: TestProxy;

test.before(async () => {
  const answer = (body: string) => [route({ directResponse: { status: 200, body } })];
  p = await startTestProxy(
    edgeConfig({
      protocol: 'HTTPS',
      port: 443,
      hosts: [
        { listener: 'ns/gw/any', routeTable: 'rt-any', certificates: ['ns/default'] },
        { listener: 'ns/gw/wild', hostname: '*.wild.example', routeTable: 'rt-wild', certificates: ['ns/wild'] },
        { listener: 'ns/gw/a', hostname: 'a.example', routeTable: 'rt-a', certificates: ['ns/a'] },
      ],
      routeTables: {
        'rt-a': {
          virtualHosts: [
            {
              domains: ['*'],
              routes: [
                route({
                  match: { path: { type: 'Exact', value: '/redirect' } },
                  filters: { redirect: { statusCode: 302, hostname: 'b.example' } },
                }),
                ...answer('a'),
              ],
            },
          ],
        },
        'rt-wild': { virtualHosts: [{ domains: ['*'], routes: answer('wild') }] },
        'rt-any': { virtualHosts: [{ domains: ['*'], routes: answer('any') }] },
      },
      tlsCertificates: {
        'ns/a': selfSigned('a.example'),
        'ns/wild': selfSigned('*.wild.example'),
        'ns/default': selfSigned('default.example'),
      },
    }),
  );
});

test.after.always(() => p?.close());

interface TlsReply {
  status: number;
  body: string;
  location: string | undefined;
  /** The DNS names of the certificate the proxy presented. */
  certNames: string;
}

function get(sni: string | undefined, host: string, path = '/'): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: p.port,
        path,
        headers: { host },
        // An IP address as servername sends no SNI; '' does the same explicitly.
        servername: sni ?? '',
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            location: res.headers.location,
            certNames: (res.socket as TLSSocket).getPeerCertificate().subjectaltname ?? '',
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('exact SNI gets its certificate and its routes', async (t) => {
  const r = await get('a.example', 'a.example');
  t.is(r.status, 200);
  t.is(r.body, 'a');
  t.is(r.certNames, 'DNS:a.example');
});

test('wildcard SNI gets the wildcard certificate', async (t) => {
  const r = await get('x.y.wild.example', 'x.y.wild.example');
  t.is(r.body, 'wild');
  t.is(r.certNames, 'DNS:*.wild.example');
});

test('an SNI no listener names gets the hostname-less listener and its certificate', async (t) => {
  const r = await get('other.example', 'other.example');
  t.is(r.body, 'any');
  t.is(r.certNames, 'DNS:default.example');
});

test('no SNI: the default certificate, routes chosen by Host', async (t) => {
  const r = await get(undefined, 'a.example');
  t.is(r.status, 200);
  t.is(r.body, 'a');
  t.is(r.certNames, 'DNS:default.example');
});

test('Host compared without case and port against the SNI', async (t) => {
  const r = await get('a.example', 'A.Example:443');
  t.is(r.status, 200);
  t.is(r.body, 'a');
});

test('a Host that selects another listener than the SNI → 421', async (t) => {
  t.is((await get('a.example', 'x.wild.example')).status, 421);
  t.is((await get('x.wild.example', 'a.example')).status, 421);
  t.is((await get('a.example', 'other.example')).status, 421);
  // Two names under the same wildcard listener are the same listener: no 421.
  t.is((await get('x.wild.example', 'y.wild.example')).status, 200);
});

test('redirects from an HTTPS listener keep the https scheme and omit :443', async (t) => {
  const r = await get('a.example', 'a.example', '/redirect');
  t.is(r.status, 302);
  t.is(r.location, 'https://b.example/redirect');
});

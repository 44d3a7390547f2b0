import test from 'ava';
import { CorsSchema } from '../../../sidecar/config/proxy-config.ts';
import { addCorsResponseHeaders, compileCors, originAllowed, preflightHeaders } from '../../../sidecar/filters/cors.ts';
import type { HeaderMap } from '../../../sidecar/filters/header-modifier.ts';

const cors = (input: unknown) => compileCors(CorsSchema.parse(input))!;

test('origins: exact, host wildcard greedy to the left, default ports', (t) => {
  const c = cors({ allowOrigins: ['https://www.foo.com', 'https://*.bar.com', 'http://a.com:8080'] });
  t.true(originAllowed(c, 'https://www.foo.com'));
  t.true(originAllowed(c, 'https://www.foo.com:443'));
  t.true(originAllowed(c, 'https://x.bar.com'));
  t.true(originAllowed(c, 'https://a.b.bar.com'));
  t.true(originAllowed(c, 'http://a.com:8080'));
  t.false(originAllowed(c, 'http://www.foo.com'));
  t.false(originAllowed(c, 'https://foobar.com'));
  t.false(originAllowed(c, 'https://bar.com.evil.org'));
  t.false(originAllowed(c, 'http://a.com'));
  t.true(originAllowed(cors({ allowOrigins: ['*'] }), 'https://anything:12345'));
});

test('preflight of an allowed origin lists methods, headers, exposure, max age and credentials', (t) => {
  const c = cors({
    allowOrigins: ['https://www.foo.com'],
    allowMethods: ['GET', 'OPTIONS'],
    allowHeaders: ['x-header-1', 'x-header-2'],
    exposeHeaders: ['x-header-3'],
    allowCredentials: true,
    maxAge: 3600,
  });
  t.deepEqual(preflightHeaders(c, 'https://www.foo.com', 'GET', 'x-header-1'), {
    vary: 'Origin',
    'access-control-allow-origin': 'https://www.foo.com',
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': 'GET, OPTIONS',
    'access-control-allow-headers': 'x-header-1, x-header-2',
    'access-control-expose-headers': 'x-header-3',
    'access-control-max-age': '3600',
  });
});

test('preflight of an origin not allowed gets no CORS headers', (t) => {
  const c = cors({ allowOrigins: ['https://www.foo.com'], allowMethods: ['GET'] });
  t.deepEqual(preflightHeaders(c, 'https://evil.com', 'GET', undefined), { vary: 'Origin' });
});

test('wildcard methods and headers echo the request, never "*"; max age defaults to 5', (t) => {
  const c = cors({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true });
  const h = preflightHeaders(c, 'https://o.com', 'PUT', 'x-a, x-b');
  t.is(h['access-control-allow-origin'], 'https://o.com');
  t.is(h['access-control-allow-methods'], 'PUT');
  t.is(h['access-control-allow-headers'], 'x-a, x-b');
  t.is(h['access-control-max-age'], '5');
});

test('actual requests: origin echoed, credentials, Vary appended', (t) => {
  const c = cors({ allowOrigins: ['https://www.foo.com'], allowCredentials: true, exposeHeaders: ['x-e'] });
  const headers: HeaderMap = { vary: 'Accept' };
  addCorsResponseHeaders(c, 'https://www.foo.com', headers);
  t.deepEqual(headers, {
    vary: 'Accept, Origin',
    'access-control-allow-origin': 'https://www.foo.com',
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': 'x-e',
  });
  const other: HeaderMap = {};
  addCorsResponseHeaders(c, 'https://foobar.com', other);
  t.deepEqual(other, {});
});

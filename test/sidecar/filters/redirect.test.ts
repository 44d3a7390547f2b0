import test from 'ava';
import type { Redirect } from '../../../sidecar/config/proxy-config.ts';
import { replacePrefix, trimPrefix } from '../../../sidecar/filters/path-modifier.ts';
import { type RedirectInput, redirectLocation } from '../../../sidecar/filters/redirect.ts';

// The table in the Gateway API's HTTPPathModifier.ReplacePrefixMatch documentation.
const prefixTable: [string, string, string, string][] = [
  ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
  ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
  ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
  ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
  ['/foo', '/foo', '/xyz', '/xyz'],
  ['/foo/', '/foo', '/xyz', '/xyz/'],
  ['/foo/bar', '/foo', '', '/bar'],
  ['/foo/', '/foo', '', '/'],
  ['/foo', '/foo', '', '/'],
  ['/foo/', '/foo', '/', '/'],
  ['/foo', '/foo', '/', '/'],
  // A prefix of `/` matches everything: the replacement is put in front.
  ['/a/b', '/', '/xyz', '/xyz/a/b'],
  ['/', '/', '/xyz', '/xyz/'],
];

for (const [path, prefix, replacement, expected] of prefixTable) {
  test(`ReplacePrefixMatch ${path} | ${prefix} | ${JSON.stringify(replacement)} → ${expected}`, (t) => {
    t.is(replacePrefix(path, trimPrefix(prefix), replacement), expected);
  });
}

const req = (o: Partial<RedirectInput> = {}): RedirectInput => ({
  scheme: 'http',
  host: 'example.org',
  listenerPort: 80,
  path: '/p',
  query: '',
  prefix: '',
  ...o,
});
const r = (o: Partial<Redirect>): Redirect => ({ statusCode: 302, ...o });

// The HTTPRouteRedirectPortAndScheme conformance table.
const portScheme: [string, Partial<Redirect>, Partial<RedirectInput>, string][] = [
  ['scheme nil, port nil, on :80', {}, {}, 'http://example.org/p'],
  ['scheme nil, port 80, on :80', { port: 80 }, {}, 'http://example.org/p'],
  ['scheme nil, port 8080, on :80', { port: 8080 }, {}, 'http://example.org:8080/p'],
  ['scheme https, port nil, on :80', { scheme: 'https' }, {}, 'https://example.org/p'],
  ['scheme nil, port nil, on :8080', {}, { listenerPort: 8080 }, 'http://example.org:8080/p'],
  ['scheme nil, port 80, on :8080', { port: 80 }, { listenerPort: 8080 }, 'http://example.org/p'],
  ['scheme nil, port nil, https :443', {}, { scheme: 'https', listenerPort: 443 }, 'https://example.org/p'],
  ['scheme nil, port 443, https :443', { port: 443 }, { scheme: 'https', listenerPort: 443 }, 'https://example.org/p'],
  [
    'scheme nil, port 8443, https :443',
    { port: 8443 },
    { scheme: 'https', listenerPort: 443 },
    'https://example.org:8443/p',
  ],
  [
    'scheme http, port nil, https :443',
    { scheme: 'http' },
    { scheme: 'https', listenerPort: 443 },
    'http://example.org/p',
  ],
  [
    'scheme http, port 80, https :443',
    { scheme: 'http', port: 80 },
    { scheme: 'https', listenerPort: 443 },
    'http://example.org/p',
  ],
  ['scheme https, port nil, on :8080', { scheme: 'https' }, { listenerPort: 8080 }, 'https://example.org/p'],
  ['scheme http, port 443', { scheme: 'http', port: 443 }, {}, 'http://example.org:443/p'],
];

for (const [name, redirect, input, expected] of portScheme) {
  test(`redirect Location: ${name}`, (t) => {
    t.is(redirectLocation(r(redirect), req(input)), expected);
  });
}

test('redirect hostname, full path and prefix replacement; the query string is kept', (t) => {
  t.is(redirectLocation(r({ hostname: 'other.org' }), req({ query: '?a=1' })), 'http://other.org/p?a=1');
  t.is(
    redirectLocation(r({ path: { type: 'ReplaceFullPath', value: '/new' } }), req({ path: '/old/x', query: '?q' })),
    'http://example.org/new?q',
  );
  t.is(
    redirectLocation(
      r({ path: { type: 'ReplacePrefixMatch', value: '/new' } }),
      req({ path: '/old/x', prefix: '/old' }),
    ),
    'http://example.org/new/x',
  );
});

// Hostname rules of the Gateway API (HTTPRouteSpec.hostnames, Listener.hostname): `*.` is a suffix match on one or
// more labels, never the bare suffix; a listener and a route hostname must intersect for the route to attach.
import test from 'ava';
import {
  covers,
  effectiveHostnames,
  hostMatches,
  intersectHostnames,
  isWildcard,
} from '../../../controlplane/translate/hostnames.ts';

const wildcard: [string, boolean][] = [
  ['*.example.com', true],
  ['*.com', true],
  ['example.com', false],
  ['a.example.com', false],
  ['*example.com', false],
  ['a.*.example.com', false],
  ['*', false],
];
for (const [h, want] of wildcard)
  test(`isWildcard("${h}") is ${want}`, (t) => {
    t.is(isWildcard(h), want);
  });

const matches: [string, string, boolean][] = [
  ['example.com', 'example.com', true],
  ['example.com', 'a.example.com', false],
  ['a.example.com', 'example.com', false],
  // "a match for *.example.com would match both test.example.com, and foo.test.example.com, but not example.com"
  ['*.example.com', 'test.example.com', true],
  ['*.example.com', 'foo.test.example.com', true],
  ['*.example.com', 'example.com', false],
  ['*.example.com', 'test.example.net', false],
  ['*.example.com', 'testexample.com', false],
  ['*.example.com', '.example.com', false],
  ['*.com', 'example.com', true],
];
for (const [pattern, host, want] of matches)
  test(`hostMatches("${pattern}", "${host}") is ${want}`, (t) => {
    t.is(hostMatches(pattern, host), want);
  });

const intersections: [string | undefined, string, string | undefined][] = [
  // A listener without hostname serves whatever the route names.
  [undefined, 'foo.example.com', 'foo.example.com'],
  [undefined, '*.example.com', '*.example.com'],
  ['foo.example.com', 'foo.example.com', 'foo.example.com'],
  ['foo.example.com', 'bar.example.com', undefined],
  // "A Listener with test.example.com ... matches HTTPRoutes that have specified ... *.example.com": the result is
  // the more specific name.
  ['test.example.com', '*.example.com', 'test.example.com'],
  ['example.com', '*.example.com', undefined],
  // "A Listener with *.example.com ... *.example.com, test.example.com, and foo.test.example.com would all match.
  // On the other hand, example.com and test.example.net would not match."
  ['*.example.com', '*.example.com', '*.example.com'],
  ['*.example.com', 'test.example.com', 'test.example.com'],
  ['*.example.com', 'foo.test.example.com', 'foo.test.example.com'],
  ['*.example.com', 'example.com', undefined],
  ['*.example.com', 'test.example.net', undefined],
  // wildcard × wildcard: the narrower of two nested wildcards, or nothing.
  ['*.example.com', '*.foo.example.com', '*.foo.example.com'],
  ['*.foo.example.com', '*.example.com', '*.foo.example.com'],
  ['*.example.com', '*.example.net', undefined],
  ['*.example.com', '*.xexample.com', undefined],
  ['*.com', '*.example.com', '*.example.com'],
];
for (const [listener, route, want] of intersections)
  test(`intersectHostnames(${listener ?? 'none'}, "${route}") is ${want ?? 'none'}`, (t) => {
    t.is(intersectHostnames(listener, route), want);
  });

const effective: [string | undefined, string[] | undefined, string[] | undefined, string][] = [
  [undefined, undefined, undefined, 'neither names a host: any host'],
  [undefined, [], undefined, 'an empty list is no hostnames'],
  ['foo.example.com', undefined, ['foo.example.com'], 'a route without hostnames takes the listener hostname'],
  ['*.example.com', [], ['*.example.com'], 'a wildcard listener hostname is kept as is'],
  [undefined, ['a.example.com', 'b.example.com'], ['a.example.com', 'b.example.com'], 'route hostnames in order'],
  [undefined, ['A.Example.COM'], ['a.example.com'], 'hostnames compare case-insensitively (lower-cased)'],
  [
    '*.example.com',
    ['test.example.com', 'test.example.net'],
    ['test.example.com'],
    'non-intersecting route hostnames are ignored',
  ],
  ['foo.example.com', ['bar.example.com'], [], 'no intersection: [] (the route cannot attach)'],
  ['foo.example.com', ['*.example.com', 'foo.example.com'], ['foo.example.com'], 'duplicate intersections collapse'],
  ['*.example.com', ['*.example.com', 'a.example.com'], ['*.example.com', 'a.example.com'], 'input order is kept'],
];
for (const [listener, route, want, why] of effective)
  test(`effectiveHostnames: ${why}`, (t) => {
    t.deepEqual(effectiveHostnames(listener, route), want);
  });

const covering: [string, string, boolean][] = [
  ['foo.example.com', 'foo.example.com', true],
  ['foo.example.com', 'bar.example.com', false],
  ['*.example.com', 'foo.example.com', true],
  ['*.example.com', 'a.b.example.com', true],
  ['*.example.com', 'example.com', false],
  ['*.example.com', '*.example.com', true],
  ['*.example.com', '*.foo.example.com', true],
  ['*.foo.example.com', '*.example.com', false],
  ['foo.example.com', '*.example.com', false],
  ['*.example.com', '*.example.net', false],
];
for (const [pattern, domain, want] of covering)
  test(`covers("${pattern}", "${domain}") is ${want}`, (t) => {
    t.is(covers(pattern, domain), want);
  });

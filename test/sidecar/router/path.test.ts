import test from 'ava';
import { normalizePath } from '../../../sidecar/router/path.ts';

const cases: [string, string | null][] = [
  // Already normal: returned as is.
  ['/', '/'],
  ['/foo/bar', '/foo/bar'],
  ['/foo/bar/', '/foo/bar/'],
  // Unreserved escapes decoded, hex case normalised for the rest.
  ['/%7Efoo', '/~foo'],
  ['/a%2db', '/a-b'],
  ['/%41%42c', '/ABc'],
  ['/a%2fb', '/a%2Fb'],
  ['/a%2Fb', '/a%2Fb'],
  ['/a%5cb', '/a%5Cb'],
  ['/a%20b', '/a%20b'],
  ['/%e2%82%ac', '/%E2%82%AC'],
  // Dot segments and empty segments.
  ['/a/./b', '/a/b'],
  ['/a/../b', '/b'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/a//b', '/a/b'],
  ['//a', '/a'],
  ['///', '/'],
  ['/a/b/../../c', '/c'],
  ['/a/%2e%2e/b', '/b'],
  ['/a/%2E/b', '/a/b'],
  ['/a/.%2e/b', '/b'],
  ['/..a/b', '/..a/b'],
  ['/a/...', '/a/...'],
  // %2F never acts as a separator, so `..%2F` is not a dot segment.
  ['/a/..%2Fb', '/a/..%2Fb'],
  ['/a/%2e%2e%2fetc', '/a/..%2Fetc'],
  // Refused: escaping the root.
  ['/..', null],
  ['/../etc/passwd', null],
  ['/a/../../etc', null],
  ['/%2e%2e/x', null],
  ['/%2E%2E', null],
  ['//../x', null],
  // Refused: NUL, controls, backslash, space, non-ASCII, fragment, bad escapes, relative.
  ['/a%00b', null],
  ['/a\u0000b', null],
  ['/a\u0001b', null],
  ['/a\tb', null],
  ['/a\rb', null],
  ['/a\nb', null],
  ['/a\u007fb', null],
  ['/a\\b', null],
  ['/a\\..\\b', null],
  ['/a b', null],
  ['/caf\u00e9', null],
  ['/a#b', null],
  ['/a%', null],
  ['/a%4', null],
  ['/a%zz', null],
  ['/a%g1', null],
  ['a/b', null],
  ['', null],
  ['*', null],
];

for (const [input, expected] of cases) {
  test(`normalizePath(${JSON.stringify(input)}) → ${JSON.stringify(expected)}`, (t) => {
    t.is(normalizePath(input), expected);
  });
}

test('a normal path is returned without copying', (t) => {
  const p = '/api/v1/items/42';
  t.is(normalizePath(p), p);
});

test('normalisation is idempotent', (t) => {
  for (const [input, expected] of cases) {
    if (expected === null) continue;
    t.is(normalizePath(expected), expected, input);
  }
});

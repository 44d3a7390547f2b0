// compareMatches ranks HTTPRoute matches in the order the Gateway API gives (HTTPRouteSpec.hostnames, then
// HTTPRouteRule.matches in apis/v1/httproute_types.go). Each tier test pits a match that wins on that tier against
// one that wins on every later tier, so a comparator that checks tiers in the wrong order fails it.
import test from 'ava';
import type { RouteMatch } from '../../../sidecar/config/proxy-config.ts';
import { compareMatches, type MatchSummary, summarize } from '../../../controlplane/translate/precedence.ts';

function summary(over: Partial<MatchSummary>): MatchSummary {
  return {
    hostExactChars: 0,
    hostChars: 0,
    pathRank: 1,
    pathLength: 1,
    hasMethod: false,
    headerCount: 0,
    queryCount: 0,
    created: '2024-01-01T00:00:00Z',
    routeKey: 'default/r',
    rule: 0,
    match: 0,
    ...over,
  };
}

/** Every later tier in favour of the loser: more headers, queries, a method, older, earlier name, first rule. */
const strongLowerTiers: Partial<MatchSummary> = {
  hasMethod: true,
  headerCount: 5,
  queryCount: 5,
  created: '2000-01-01T00:00:00Z',
  routeKey: 'aaa/aaa',
  rule: 0,
  match: 0,
};

function match(m: Partial<RouteMatch>): RouteMatch {
  return { headers: [], queryParams: [], ...m };
}

function assertBefore(t: import('ava').ExecutionContext, winner: MatchSummary, loser: MatchSummary): void {
  t.true(compareMatches(winner, loser) < 0, 'winner sorts first');
  t.true(compareMatches(loser, winner) > 0, 'loser sorts after (antisymmetric)');
  t.is(compareMatches(winner, winner), 0, 'equal to itself');
}

const at = { routeKey: 'default/r', rule: 0, match: 0 };

test('tier 1: characters in the matching non-wildcard hostname (exact host beats a longer wildcard)', (t) => {
  const exact = summarize(match({}), { ...at, hostname: 'a.example.com' });
  const wildcard = summarize(match({ path: { type: 'Exact', value: '/x' }, method: 'GET' }), {
    ...at,
    hostname: '*.very.long.example.com',
  });
  t.is(exact.hostExactChars, 'a.example.com'.length);
  t.is(wildcard.hostExactChars, 0);
  t.true(wildcard.hostChars > exact.hostChars);
  assertBefore(t, exact, { ...wildcard, ...strongLowerTiers, pathRank: 3 });
});

test('tier 1: a longer exact hostname beats a shorter one', (t) => {
  assertBefore(
    t,
    summary({ hostExactChars: 15, hostChars: 15 }),
    summary({ hostExactChars: 5, hostChars: 5, pathRank: 3, ...strongLowerTiers }),
  );
});

test('tier 2: characters in the matching hostname (longer wildcard beats shorter wildcard beats none)', (t) => {
  const long = summarize(match({}), { ...at, hostname: '*.foo.example.com' });
  const short = summarize(match({ path: { type: 'Exact', value: '/x' } }), { ...at, hostname: '*.example.com' });
  const none = summarize(match({ path: { type: 'Exact', value: '/x' } }), at);
  t.is(none.hostChars, 0);
  assertBefore(t, long, { ...short, ...strongLowerTiers });
  assertBefore(t, short, { ...none, ...strongLowerTiers });
});

test('tier 3: an Exact path beats any PathPrefix, even a longer one', (t) => {
  const exact = summarize(match({ path: { type: 'Exact', value: '/a' } }), at);
  const prefix = summarize(match({ path: { type: 'PathPrefix', value: '/a/very/long/prefix' } }), at);
  assertBefore(t, exact, { ...prefix, ...strongLowerTiers });
});

test('tier 3: an Exact path beats a RegularExpression path', (t) => {
  const exact = summarize(match({ path: { type: 'Exact', value: '/a' } }), at);
  const regex = summarize(match({ path: { type: 'RegularExpression', value: '/a/[a-z]+/long' } }), at);
  assertBefore(t, exact, { ...regex, ...strongLowerTiers });
});

test('tier 4: a RegularExpression path beats a PathPrefix (implementation-specific: weft ranks it second)', (t) => {
  const regex = summarize(match({ path: { type: 'RegularExpression', value: '/.*' } }), at);
  const prefix = summarize(match({ path: { type: 'PathPrefix', value: '/a/much/longer/prefix' } }), at);
  t.true(regex.pathRank > prefix.pathRank);
  assertBefore(t, regex, { ...prefix, ...strongLowerTiers });
});

test('tier 5: the PathPrefix with the most characters wins', (t) => {
  const long = summarize(match({ path: { type: 'PathPrefix', value: '/foo/bar' } }), at);
  const short = summarize(match({ path: { type: 'PathPrefix', value: '/foo' } }), at);
  assertBefore(t, long, { ...short, ...strongLowerTiers });
});

test('tier 5: no path is a PathPrefix "/" (the default match), shorter than any other prefix', (t) => {
  const none = summarize(match({}), at);
  const slash = summarize(match({ path: { type: 'PathPrefix', value: '/' } }), at);
  const foo = summarize(match({ path: { type: 'PathPrefix', value: '/foo' } }), at);
  t.is(compareMatches(none, slash), 0);
  assertBefore(t, foo, { ...none, ...strongLowerTiers });
});

test('tier 6: a method match beats no method match', (t) => {
  const method = summarize(match({ method: 'POST' }), at);
  const plain = summarize(match({}), at);
  assertBefore(t, method, { ...plain, ...strongLowerTiers, hasMethod: false });
});

test('tier 7: the largest number of header matches wins', (t) => {
  const two = summarize(
    match({
      headers: [
        { type: 'Exact', name: 'a', value: '1' },
        { type: 'Exact', name: 'b', value: '2' },
      ],
    }),
    at,
  );
  const one = summarize(match({ headers: [{ type: 'Exact', name: 'a', value: '1' }] }), at);
  assertBefore(t, two, { ...one, ...strongLowerTiers, hasMethod: false, headerCount: 1 });
});

test('tier 8: the largest number of query param matches wins', (t) => {
  const two = summarize(
    match({
      queryParams: [
        { type: 'Exact', name: 'a', value: '1' },
        { type: 'Exact', name: 'b', value: '2' },
      ],
    }),
    at,
  );
  const one = summarize(match({ queryParams: [{ type: 'Exact', name: 'a', value: '1' }] }), at);
  assertBefore(t, two, { ...one, ...strongLowerTiers, hasMethod: false, headerCount: 0, queryCount: 1 });
});

test('tier 9: the oldest Route by creation timestamp wins', (t) => {
  const older = summary({ created: '2024-01-01T00:00:00Z', routeKey: 'zzz/zzz', rule: 9, match: 9 });
  const newer = summary({ created: '2024-01-01T00:00:01Z', routeKey: 'aaa/aaa', rule: 0, match: 0 });
  assertBefore(t, older, newer);
});

test('tier 9: timestamps compare as times, not text (offsets and fractions)', (t) => {
  // 10:00+02:00 is 08:00Z: older than 09:00Z although it sorts after it as a string.
  assertBefore(t, summary({ created: '2024-01-01T10:00:00+02:00' }), summary({ created: '2024-01-01T09:00:00Z' }));
  assertBefore(t, summary({ created: '2024-01-01T00:00:00.5Z' }), summary({ created: '2024-01-01T00:00:01Z' }));
});

test('tier 9: an unknown creation timestamp sorts after every known one', (t) => {
  const known = summary({ created: '2030-01-01T00:00:00Z', routeKey: 'zzz/zzz' });
  const unknown = summary({ created: '', routeKey: 'aaa/aaa' });
  assertBefore(t, known, unknown);
  t.is(compareMatches(summary({ created: '' }), summary({ created: '' })), 0);
});

test('tier 10: then "{namespace}/{name}" in alphabetical order', (t) => {
  const a = summary({ routeKey: 'apps/zeta', rule: 3, match: 3 });
  const b = summary({ routeKey: 'bpps/alpha', rule: 0, match: 0 });
  assertBefore(t, a, b);
  // The namespace decides before the name: "a/z" < "b/a".
  assertBefore(t, summary({ routeKey: 'a/z' }), summary({ routeKey: 'b/a' }));
});

test('tier 11: within a route, the first rule in list order wins', (t) => {
  assertBefore(t, summary({ rule: 0, match: 5 }), summary({ rule: 1, match: 0 }));
});

test('tier 12: within a rule, the first match in list order wins', (t) => {
  assertBefore(t, summary({ rule: 2, match: 0 }), summary({ rule: 2, match: 1 }));
});

test('a shuffled list sorts into spec order', (t) => {
  // Listed in the expected order; each differs from the next on exactly one tier.
  const expected: [string, MatchSummary][] = [
    ['exact host, long', summary({ hostExactChars: 15, hostChars: 15 })],
    ['exact host, short', summary({ hostExactChars: 5, hostChars: 5 })],
    ['long wildcard', summary({ hostChars: 17, pathRank: 3 })],
    ['short wildcard, Exact path', summary({ hostChars: 13, pathRank: 3 })],
    ['short wildcard, regex', summary({ hostChars: 13, pathRank: 2, pathLength: 3 })],
    ['short wildcard, long prefix', summary({ hostChars: 13, pathLength: 9 })],
    ['any host, Exact', summary({ pathRank: 3, pathLength: 2 })],
    ['any host, regex', summary({ pathRank: 2, pathLength: 4 })],
    ['any host, /foo/bar', summary({ pathLength: 8 })],
    ['any host, /foo with method', summary({ pathLength: 4, hasMethod: true })],
    ['any host, /foo, 2 headers', summary({ pathLength: 4, headerCount: 2, queryCount: 0 })],
    ['any host, /foo, 1 header, 3 queries', summary({ pathLength: 4, headerCount: 1, queryCount: 3 })],
    ['any host, /foo, 1 header, 1 query', summary({ pathLength: 4, headerCount: 1, queryCount: 1 })],
    ['/, oldest', summary({ created: '2020-01-01T00:00:00Z', routeKey: 'z/z' })],
    ['/, a/a', summary({ created: '2024-01-01T00:00:00Z', routeKey: 'a/a', rule: 3 })],
    ['/, b/b rule 0 match 0', summary({ created: '2024-01-01T00:00:00Z', routeKey: 'b/b', rule: 0, match: 0 })],
    ['/, b/b rule 0 match 1', summary({ created: '2024-01-01T00:00:00Z', routeKey: 'b/b', rule: 0, match: 1 })],
    ['/, b/b rule 1 match 0', summary({ created: '2024-01-01T00:00:00Z', routeKey: 'b/b', rule: 1, match: 0 })],
    ['/, unknown age', summary({ created: '', routeKey: 'a/a' })],
  ];
  // A fixed permutation (deterministic): a linear congruential shuffle with a constant seed.
  const shuffled = [...expected];
  let seed = 20240101;
  for (let i = shuffled.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  t.notDeepEqual(
    shuffled.map(([n]) => n),
    expected.map(([n]) => n),
  );
  const sorted = [...shuffled].sort(([, a], [, b]) => compareMatches(a, b));
  t.deepEqual(
    sorted.map(([n]) => n),
    expected.map(([n]) => n),
  );
  // Reversed input gives the same order too: the comparator is a total order on these.
  const fromReversed = [...expected].reverse().sort(([, a], [, b]) => compareMatches(a, b));
  t.deepEqual(
    fromReversed.map(([n]) => n),
    expected.map(([n]) => n),
  );
});

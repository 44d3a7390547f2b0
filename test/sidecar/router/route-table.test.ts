import test from 'ava';
import { type RouteTable, RouteTableSchema } from '../../../sidecar/config/proxy-config.ts';
import { ConfigCompileError } from '../../../sidecar/errors.ts';
import type { RequestFacts } from '../../../sidecar/router/request-facts.ts';
import { headerValue, parseQuery } from '../../../sidecar/router/request-facts.ts';
import { CompiledRouteTable } from '../../../sidecar/router/route-table.ts';
import type { CompiledCluster } from '../../../sidecar/upstream/cluster.ts';

const clusters = new Map<string, CompiledCluster>([
  ['c', { key: 'c', service: 'ns/c', protocol: 'http1', endpoints: [] }],
]);

function table(input: unknown): CompiledRouteTable {
  return new CompiledRouteTable(RouteTableSchema.parse(input) as RouteTable, clusters);
}

/** Route tables where each route is named by `route` so the test can see which one won. */
function routes(...list: { name: string; match: object }[]) {
  return table({
    virtualHosts: [
      {
        domains: ['*'],
        routes: list.map((r) => ({ route: r.name, rule: 0, match: r.match, backends: [{ cluster: 'c', weight: 1 }] })),
      },
    ],
  });
}

function facts(path: string, o: { method?: string; query?: string; headers?: string[] } = {}): RequestFacts {
  return { method: o.method ?? 'GET', path, query: o.query ?? '', rawHeaders: o.headers ?? [] };
}

function winner(t: CompiledRouteTable, f: RequestFacts, host = 'example.com'): string | undefined {
  return t.match(host, f)?.source.route;
}

test('Exact path matches only the same path, case-sensitive', (t) => {
  const rt = routes({ name: 'exact', match: { path: { type: 'Exact', value: '/abc' } } });
  t.is(winner(rt, facts('/abc')), 'exact');
  for (const p of ['/abc/', '/Abc', '/abcd', '/ab', '/abc/d']) t.is(winner(rt, facts(p)), undefined, p);
});

test('PathPrefix matches element-wise', (t) => {
  const rt = routes({ name: 'prefix', match: { path: { type: 'PathPrefix', value: '/foo' } } });
  for (const p of ['/foo', '/foo/', '/foo/bar', '/foo/bar/baz']) t.is(winner(rt, facts(p)), 'prefix', p);
  for (const p of ['/foobar', '/fo', '/', '/bar/foo', '/Foo']) t.is(winner(rt, facts(p)), undefined, p);
});

test('a trailing slash in a PathPrefix is not significant', (t) => {
  const rt = routes({ name: 'prefix', match: { path: { type: 'PathPrefix', value: '/foo/' } } });
  for (const p of ['/foo', '/foo/', '/foo/bar']) t.is(winner(rt, facts(p)), 'prefix', p);
  t.is(winner(rt, facts('/foobar')), undefined);
});

test('PathPrefix / matches every path; no path match matches every path', (t) => {
  const rt = routes({ name: 'root', match: { path: { type: 'PathPrefix', value: '/' } } });
  for (const p of ['/', '/a', '/a/b/']) t.is(winner(rt, facts(p)), 'root', p);
  const any = routes({ name: 'any', match: {} });
  t.is(winner(any, facts('/x/y')), 'any');
});

test('path match values are compared in normal form', (t) => {
  const rt = routes({ name: 'tilde', match: { path: { type: 'Exact', value: '/%7Euser' } } });
  t.is(winner(rt, facts('/~user')), 'tilde');
});

test('RegularExpression must match the whole path', (t) => {
  const rt = routes({ name: 're', match: { path: { type: 'RegularExpression', value: '/v[0-9]+/items' } } });
  t.is(winner(rt, facts('/v2/items')), 're');
  t.is(winner(rt, facts('/v2/items/3')), undefined);
  t.is(winner(rt, facts('/x/v2/items')), undefined);
});

test('a RegularExpression outside the dialect fails compilation', (t) => {
  t.throws(() => routes({ name: 're', match: { path: { type: 'RegularExpression', value: '(?=x)' } } }), {
    instanceOf: ConfigCompileError,
  });
});

test('header matches: names case-insensitive, values exact and case-sensitive', (t) => {
  const rt = routes({ name: 'h', match: { headers: [{ type: 'Exact', name: 'X-Env', value: 'canary' }] } });
  t.is(winner(rt, facts('/', { headers: ['x-env', 'canary'] })), 'h');
  t.is(winner(rt, facts('/', { headers: ['X-ENV', 'canary'] })), 'h');
  t.is(winner(rt, facts('/', { headers: ['x-env', 'Canary'] })), undefined);
  t.is(winner(rt, facts('/', { headers: [] })), undefined);
});

test('header matches: several are ANDed; the first entry of a name counts', (t) => {
  const rt = routes({
    name: 'h',
    match: {
      headers: [
        { type: 'Exact', name: 'a', value: '1' },
        { type: 'Exact', name: 'B', value: '2' },
        { type: 'Exact', name: 'b', value: 'ignored' },
      ],
    },
  });
  t.is(winner(rt, facts('/', { headers: ['A', '1', 'b', '2'] })), 'h');
  t.is(winner(rt, facts('/', { headers: ['A', '1'] })), undefined);
  t.is(winner(rt, facts('/', { headers: ['A', '1', 'b', 'ignored'] })), undefined);
});

test('a repeated request header is matched as its values joined with ","', (t) => {
  const rt = routes({ name: 'h', match: { headers: [{ type: 'Exact', name: 'x', value: 'a,b' }] } });
  t.is(winner(rt, facts('/', { headers: ['x', 'a', 'X', 'b'] })), 'h');
  t.is(headerValue(['x', 'a', 'y', 'q', 'X', 'b'], 'x'), 'a,b');
  t.is(headerValue(['x', 'a'], 'y'), undefined);
});

test('header RegularExpression matches the whole value', (t) => {
  const rt = routes({ name: 'h', match: { headers: [{ type: 'RegularExpression', name: 'v', value: '1\\.[0-9]+' }] } });
  t.is(winner(rt, facts('/', { headers: ['v', '1.12'] })), 'h');
  t.is(winner(rt, facts('/', { headers: ['v', '1.12-beta'] })), undefined);
});

test('query parameter matches: exact, case-sensitive names, the first value of a repeated parameter', (t) => {
  const rt = routes({ name: 'q', match: { queryParams: [{ type: 'Exact', name: 'animal', value: 'whale' }] } });
  t.is(winner(rt, facts('/', { query: 'animal=whale' })), 'q');
  t.is(winner(rt, facts('/', { query: 'x=1&animal=whale&y' })), 'q');
  t.is(winner(rt, facts('/', { query: 'animal=whale&animal=dolphin' })), 'q');
  t.is(winner(rt, facts('/', { query: 'animal=dolphin&animal=whale' })), undefined);
  t.is(winner(rt, facts('/', { query: 'Animal=whale' })), undefined);
  t.is(winner(rt, facts('/', { query: 'animal=Whale' })), undefined);
  t.is(winner(rt, facts('/', { query: '' })), undefined);
});

test('query values are %-decoded before comparison', (t) => {
  const rt = routes({ name: 'q', match: { queryParams: [{ type: 'Exact', name: 'q', value: 'a b/c' }] } });
  t.is(winner(rt, facts('/', { query: 'q=a%20b%2Fc' })), 'q');
  t.is(winner(rt, facts('/', { query: 'q=a+b/c' })), 'q');
  t.deepEqual(
    [...parseQuery('a=1&b&a=2&=x&c=%zz')],
    [
      ['a', '1'],
      ['b', ''],
      ['', 'x'],
      ['c', '%zz'],
    ],
  );
});

test('method match', (t) => {
  const rt = routes({ name: 'post', match: { method: 'POST' } });
  t.is(winner(rt, facts('/', { method: 'POST' })), 'post');
  t.is(winner(rt, facts('/', { method: 'GET' })), undefined);
});

test('routes are tried in the order given: the first match wins', (t) => {
  const rt = routes(
    {
      name: 'first',
      match: { path: { type: 'PathPrefix', value: '/a' }, headers: [{ type: 'Exact', name: 'x', value: '1' }] },
    },
    { name: 'second', match: { path: { type: 'PathPrefix', value: '/a/b' } } },
    { name: 'third', match: { path: { type: 'PathPrefix', value: '/' } } },
  );
  t.is(winner(rt, facts('/a/b', { headers: ['x', '1'] })), 'first');
  t.is(winner(rt, facts('/a/b')), 'second');
  t.is(winner(rt, facts('/a')), 'third');
  t.is(winner(rt, facts('/z')), 'third');
});

test('virtual hosts: exact, then the longest wildcard, then *', (t) => {
  const vh = (domains: string[], name: string) => ({
    domains,
    routes: [{ route: name, rule: 0, match: {}, backends: [{ cluster: 'c', weight: 1 }] }],
  });
  const rt = table({
    virtualHosts: [
      vh(['*'], 'any'),
      vh(['*.example.com'], 'wild'),
      vh(['*.api.example.com'], 'longer-wild'),
      vh(['www.example.com'], 'exact'),
    ],
  });
  const f = facts('/');
  t.is(winner(rt, f, 'www.example.com'), 'exact');
  t.is(winner(rt, f, 'foo.example.com'), 'wild');
  t.is(winner(rt, f, 'a.b.example.com'), 'wild');
  t.is(winner(rt, f, 'x.api.example.com'), 'longer-wild');
  t.is(winner(rt, f, 'example.com'), 'any');
  t.is(winner(rt, f, 'other.org'), 'any');
});

test('no virtual host and no route give undefined; noMatchStatus defaults to 404', (t) => {
  const rt = table({
    virtualHosts: [
      {
        domains: ['a.example'],
        routes: [{ route: 'r', rule: 0, match: { method: 'PUT' }, backends: [], directResponse: { status: 200 } }],
      },
    ],
  });
  t.is(rt.noMatchStatus, 404);
  t.is(winner(rt, facts('/'), 'b.example'), undefined);
  t.is(winner(rt, facts('/'), 'a.example'), undefined);
});

test('a backend naming an unknown cluster fails compilation', (t) => {
  t.throws(
    () =>
      table({
        virtualHosts: [
          { domains: ['*'], routes: [{ route: 'r', rule: 0, match: {}, backends: [{ cluster: 'nope', weight: 1 }] }] },
        ],
      }),
    { instanceOf: ConfigCompileError },
  );
});

test('the index of long route lists picks exactly what a scan in order picks', (t) => {
  // A deterministic generator, so a failure reproduces.
  let seed = 42;
  const rand = (n: number) => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) % n;
  };
  const segments = 'abcdefgh'.split('');
  const randomPath = (min: number, max: number) => {
    let p = '';
    const depth = min + rand(max - min + 1);
    for (let i = 0; i < depth; i++) p += `/${segments[rand(segments.length)]}`;
    return p === '' ? '/' : rand(4) === 0 ? `${p}/` : p;
  };
  // Mostly path-selective routes, so the lists the index picks decide the winner; the few
  // catch-alls (short prefixes, regex, no path) always carry another condition.
  const list = Array.from({ length: 120 }, (_, i) => {
    const kind = rand(20);
    const match: Record<string, unknown> = {};
    let selective = true;
    if (kind < 8) match.path = { type: 'Exact', value: randomPath(1, 3) };
    else if (kind < 16) match.path = { type: 'PathPrefix', value: randomPath(2, 3) };
    else if (kind < 18) {
      match.path = { type: 'PathPrefix', value: randomPath(0, 1) };
      selective = false;
    } else if (kind === 18) {
      match.path = { type: 'RegularExpression', value: `/${segments[rand(8)]}.*` };
      selective = false;
    } else selective = false;
    if (rand(3) === 0) match.method = rand(2) === 0 ? 'GET' : 'POST';
    if (!selective || rand(2) === 0) match.headers = [{ type: 'Exact', name: 'x', value: String(rand(4)) }];
    return { name: `r${i}`, match };
  });
  const indexed = routes(...list);
  t.truthy(indexed.virtualHost('h')!.index);
  // The reference: each route compiled alone (no index), tested in order.
  const single = list.map((r) => ({ name: r.name, table: routes(r) }));
  const scan = (f: RequestFacts) => single.find((r) => r.table.match('h', f))?.name;
  const picked = new Set<string | undefined>();
  for (let k = 0; k < 2000; k++) {
    const f = facts(randomPath(0, 3), {
      method: rand(2) === 0 ? 'GET' : 'POST',
      headers: rand(2) === 0 ? ['x', String(rand(4))] : [],
    });
    const expected = scan(f);
    picked.add(expected);
    t.is(winner(indexed, f), expected, JSON.stringify(f));
  }
  // The requests reached many different routes, so every list of the index was exercised.
  t.true(picked.size > 25, String(picked.size));
});

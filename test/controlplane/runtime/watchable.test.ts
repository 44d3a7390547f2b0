// WatchableMap: first delivery is the full state, later ones coalesce, equal values are not re-sent. Most tests
// drive deliveries with a manual scheduler (deterministic: a delivery happens exactly when the test runs it).
import test from 'ava';
import { canonicalChunks, canonicalJson, contentHash, hashChunks } from '../../../controlplane/runtime/canonical.ts';
import { type WatchBatch, WatchableMap, type WatchableMapOptions } from '../../../controlplane/runtime/watchable.ts';

function manual<V>(options: WatchableMapOptions<V> = {}) {
  const queue: (() => void)[] = [];
  const map = new WatchableMap<string, V>({ ...options, schedule: (run) => queue.push(run) });
  /** Runs every scheduled delivery (and those they schedule). */
  const flush = async () => {
    // A few microtask turns too, so settled async handlers get to schedule their next delivery.
    for (let turn = 0; turn < 10; turn++) {
      await Promise.resolve();
      while (queue.length > 0) {
        queue.shift()!();
        await Promise.resolve();
      }
    }
  };
  return { map, flush, queue };
}

function recorder<V>() {
  const batches: WatchBatch<string, V>[] = [];
  const handler = (b: WatchBatch<string, V>) => {
    batches.push(b);
  };
  return { batches, handler };
}

const asObject = <V>(b: WatchBatch<string, V>) => Object.fromEntries(b.updates.map((u) => [u.key, u.value]));

test('the first delivery is the full current state, even for a subscriber that joins late', async (t) => {
  const { map, flush } = manual<number>();
  map.store('a', 1);
  map.store('b', 2);
  const early = recorder<number>();
  map.subscribe(early.handler);
  await flush();
  map.store('c', 3);
  await flush();
  const late = recorder<number>();
  map.subscribe(late.handler);
  await flush();
  t.deepEqual(
    early.batches.map((b) => [b.initial, asObject(b)]),
    [
      [true, { a: 1, b: 2 }],
      [false, { c: 3 }],
    ],
  );
  t.deepEqual(
    late.batches.map((b) => [b.initial, asObject(b)]),
    [[true, { a: 1, b: 2, c: 3 }]],
  );
});

test('an empty map still delivers an (empty) initial batch', async (t) => {
  const { map, flush } = manual<number>();
  const r = recorder<number>();
  map.subscribe(r.handler);
  await flush();
  t.deepEqual(r.batches, [{ initial: true, updates: [] }]);
});

test('stores before the first delivery are part of it, not a second delivery', async (t) => {
  const { map, flush } = manual<number>();
  const r = recorder<number>();
  map.subscribe(r.handler);
  map.store('a', 1);
  map.store('a', 2);
  await flush();
  t.deepEqual(
    r.batches.map((b) => [b.initial, asObject(b)]),
    [[true, { a: 2 }]],
  );
});

test('rapid updates coalesce into one delivery with the latest value of each key', async (t) => {
  const { map, flush } = manual<number>();
  map.store('a', 0);
  map.store('k0', -1);
  const r = recorder<number>();
  map.subscribe(r.handler);
  await flush();
  for (let i = 1; i <= 100; i++) {
    map.store('a', i);
    map.store(`k${i % 3}`, i);
  }
  map.delete('k0');
  await flush();
  t.is(r.batches.length, 2);
  t.deepEqual(asObject(r.batches[1]), { a: 100, k1: 100, k2: 98, k0: undefined });
  t.false(r.batches[1].initial);
});

test('a value equal to the stored one is not stored nor re-sent (content hash by default)', async (t) => {
  const { map, flush } = manual<{ x: number; y: string[] }>();
  t.true(map.store('a', { x: 1, y: ['p'] }));
  const r = recorder<{ x: number; y: string[] }>();
  map.subscribe(r.handler);
  await flush();
  // Same content, other object and key order.
  t.false(map.store('a', { y: ['p'], x: 1 }));
  await flush();
  t.is(r.batches.length, 1);
  t.true(map.store('a', { x: 2, y: ['p'] }));
  await flush();
  t.is(r.batches.length, 2);
});

test('a key changed and changed back before a delivery is not sent', async (t) => {
  const { map, flush } = manual<number>();
  map.store('a', 1);
  map.store('b', 1);
  const r = recorder<number>();
  map.subscribe(r.handler);
  await flush();
  map.store('a', 2);
  map.store('a', 1);
  map.delete('b');
  map.store('b', 1);
  map.store('c', 1);
  map.delete('c');
  await flush();
  t.is(r.batches.length, 1, 'nothing the subscriber has not seen');
});

test('a supplied equals decides sameness', async (t) => {
  const { map, flush } = manual<{ version: string; payload: number }>({ equals: (a, b) => a.version === b.version });
  map.store('p', { version: 'v1', payload: 1 });
  const r = recorder<{ version: string; payload: number }>();
  map.subscribe(r.handler);
  await flush();
  t.false(map.store('p', { version: 'v1', payload: 2 }));
  t.is(map.load('p')?.payload, 1);
  t.true(map.store('p', { version: 'v2', payload: 2 }));
  await flush();
  t.deepEqual(
    r.batches.map((b) => asObject(b).p?.version),
    ['v1', 'v2'],
  );
});

test('an async handler gets the next batch only after it settles, coalesced', async (t) => {
  const { map, flush } = manual<number>();
  const seen: Record<string, number | undefined>[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  map.subscribe(async (b) => {
    seen.push(asObject(b));
    if (b.initial) await gate;
  });
  map.store('a', 1);
  await flush();
  t.deepEqual(seen, [{ a: 1 }]);
  map.store('a', 2);
  map.store('a', 3);
  await flush();
  t.is(seen.length, 1, 'the first handler has not settled');
  release();
  await gate;
  await flush();
  t.deepEqual(seen, [{ a: 1 }, { a: 3 }]);
});

test('a throwing handler does not stop deliveries to it or to others', async (t) => {
  const errors: unknown[] = [];
  const { map, flush } = manual<number>({ onHandlerError: (e) => errors.push(e) });
  const good = recorder<number>();
  let calls = 0;
  map.subscribe(() => {
    calls++;
    throw new Error('boom');
  });
  map.subscribe(good.handler);
  map.store('a', 1);
  await flush();
  map.store('a', 2);
  await flush();
  t.is(calls, 2);
  t.is(good.batches.length, 2);
  t.is(errors.length, 2);
});

test('unsubscribe stops deliveries', async (t) => {
  const { map, flush } = manual<number>();
  const r = recorder<number>();
  const off = map.subscribe(r.handler);
  await flush();
  off();
  map.store('a', 1);
  await flush();
  t.is(r.batches.length, 1);
  t.is(map.subscribers, 0);
});

test('with the default scheduler a burst of synchronous stores is one delivery', async (t) => {
  const map = new WatchableMap<string, number>();
  const batches: WatchBatch<string, number>[] = [];
  let wake!: () => void;
  let next = new Promise<void>((r) => {
    wake = r;
  });
  map.subscribe((b) => {
    batches.push(b);
    wake();
  });
  await next;
  next = new Promise<void>((r) => {
    wake = r;
  });
  for (let i = 0; i < 1000; i++) map.store('x', i);
  await next;
  t.is(batches.length, 2);
  t.deepEqual(batches[1].updates, [{ key: 'x', value: 999 }]);
});

test('undefined is refused as a value', (t) => {
  const map = new WatchableMap<string, number | undefined>();
  t.throws(() => map.store('a', undefined), { instanceOf: TypeError });
});

test('canonical JSON sorts keys at every depth and hashes equal content equally', (t) => {
  t.is(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
  t.is(contentHash({ a: 1, b: 2 }), contentHash({ b: 2, a: 1 }));
  t.not(contentHash({ a: 1 }), contentHash({ a: 2 }));
  t.regex(contentHash({}), /^[0-9a-f]{64}$/);
  const shared = { big: [1, 2, 3] };
  const cache = new WeakMap<object, string>();
  t.is(canonicalJson({ x: shared, y: shared }, cache), '{"x":{"big":[1,2,3]},"y":{"big":[1,2,3]}}');
  t.is(cache.get(shared), '{"big":[1,2,3]}');
});

test('canonical chunks are the canonical JSON bytes, and a shared big object is referenced, not copied', (t) => {
  const table = { routes: Array.from({ length: 500 }, (_, i) => ({ path: `/p${i}`, weight: i, ünï: 'ç' })) };
  const a = { id: 'a', tables: { shared: table }, listeners: [{ port: 1 }] };
  const b = { tables: { shared: table }, id: 'b', listeners: [] };
  const cache = new WeakMap();
  const ca = canonicalChunks(a, cache);
  const cb = canonicalChunks(b, cache);
  for (const [value, json] of [
    [a, ca],
    [b, cb],
  ] as const) {
    t.is(Buffer.concat(json.chunks).toString('utf8'), canonicalJson(value));
    t.is(json.byteLength, Buffer.byteLength(canonicalJson(value)));
    t.is(hashChunks(json), contentHash(value));
  }
  const shared = ca.chunks.filter((c) => cb.chunks.includes(c));
  t.true(shared.length > 0);
  t.true(shared.reduce((n, c) => n + c.length, 0) >= Buffer.byteLength(canonicalJson(table)));
  t.is(Buffer.concat(canonicalChunks(undefined).chunks).toString(), 'null');
});

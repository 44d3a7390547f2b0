// A typed map that stages of the control plane publish into and subscribe to (in the style of Envoy Gateway's
// watchable package). Three promises to a subscriber:
//   1. its first delivery is the whole current state (even when empty: it tells the subscriber it is in sync);
//   2. later deliveries are coalesced: any number of stores between two deliveries give one delivery carrying
//      only the latest value of each key touched (a slow subscriber simply gets bigger, rarer batches);
//   3. a value equal to the one already there is not stored, so it is never re-sent (and a key changed and
//      changed back before a delivery is not sent either).
// Deliveries run in a later macrotask (setImmediate), one at a time per subscriber: when a handler returns a
// promise, the next delivery waits for it to settle.
import { contentHash } from './canonical.ts';

/** One key of a delivery: its latest value, or `undefined` when it was deleted. */
export interface WatchUpdate<K, V> {
  key: K;
  value: V | undefined;
}

export interface WatchBatch<K, V> {
  /** True for a subscriber's first delivery, whose `updates` are every entry of the map. */
  initial: boolean;
  updates: WatchUpdate<K, V>[];
}

export type WatchHandler<K, V> = (batch: WatchBatch<K, V>) => void | Promise<void>;

export interface WatchableMapOptions<V> {
  /** When two values are the same. Default: equal sha256 of their canonical JSON (computed once per store). */
  equals?: (a: V, b: V) => boolean;
  /** Runs a delivery later. Default setImmediate (after pending I/O, so bursts of events coalesce). */
  schedule?: (run: () => void) => void;
  /** A handler threw or rejected. Default: a process warning (a subscriber's bug must not stop the others). */
  onHandlerError?: (err: unknown) => void;
}

interface Entry<V> {
  value: V;
  /** Content hash, only when no `equals` was supplied. */
  hash?: string;
}

interface Subscription<K, V> {
  handler: WatchHandler<K, V>;
  /** Before the first delivery: it sends everything, nothing is tracked. */
  initial: boolean;
  /** Keys touched since the last delivery → the entry the subscriber last saw (undefined: it saw none). */
  pending: Map<K, Entry<V> | undefined>;
  scheduled: boolean;
  running: boolean;
  active: boolean;
}

const defaultHandlerError = (err: unknown) => {
  process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'WatchableMapHandlerError');
};

export class WatchableMap<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  readonly #subs = new Set<Subscription<K, V>>();
  readonly #equals: ((a: V, b: V) => boolean) | undefined;
  readonly #schedule: (run: () => void) => void;
  readonly #onHandlerError: (err: unknown) => void;

  constructor(options: WatchableMapOptions<V> = {}) {
    this.#equals = options.equals;
    this.#schedule = options.schedule ?? ((run) => setImmediate(run));
    this.#onHandlerError = options.onHandlerError ?? defaultHandlerError;
  }

  /** Stores `value` under `key`; false (and nothing is sent) when an equal value is already there. */
  store(key: K, value: V): boolean {
    if (value === undefined) throw new TypeError('WatchableMap: undefined is not a value (use delete)');
    const prev = this.#entries.get(key);
    const entry: Entry<V> = this.#equals ? { value } : { value, hash: contentHash(value) };
    if (prev && this.#same(prev, entry)) return false;
    this.#entries.set(key, entry);
    this.#touch(key, prev);
    return true;
  }

  /** Removes `key`; false when it was not there. */
  delete(key: K): boolean {
    const prev = this.#entries.get(key);
    if (!prev) return false;
    this.#entries.delete(key);
    this.#touch(key, prev);
    return true;
  }

  load(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  keys(): K[] {
    return [...this.#entries.keys()];
  }

  /** A copy of the current entries, in insertion order. */
  entries(): [K, V][] {
    return [...this.#entries].map(([k, e]) => [k, e.value]);
  }

  /** Subscribes `handler`; its first delivery is the full state. Returns the unsubscribe function. */
  subscribe(handler: WatchHandler<K, V>): () => void {
    const sub: Subscription<K, V> = {
      handler,
      initial: true,
      pending: new Map(),
      scheduled: false,
      running: false,
      active: true,
    };
    this.#subs.add(sub);
    this.#wake(sub);
    return () => {
      sub.active = false;
      sub.pending.clear();
      this.#subs.delete(sub);
    };
  }

  /** Number of current subscribers. */
  get subscribers(): number {
    return this.#subs.size;
  }

  #same(a: Entry<V>, b: Entry<V>): boolean {
    if (a.value === b.value) return true;
    return this.#equals ? this.#equals(a.value, b.value) : a.hash === b.hash;
  }

  #touch(key: K, before: Entry<V> | undefined): void {
    for (const sub of this.#subs) {
      if (sub.initial) {
        this.#wake(sub);
        continue;
      }
      // Remember what the subscriber saw before the first change since its last delivery only.
      if (!sub.pending.has(key)) sub.pending.set(key, before);
      this.#wake(sub);
    }
  }

  #wake(sub: Subscription<K, V>): void {
    if (sub.scheduled || sub.running || !sub.active) return;
    sub.scheduled = true;
    this.#schedule(() => {
      sub.scheduled = false;
      this.#deliver(sub);
    });
  }

  #deliver(sub: Subscription<K, V>): void {
    if (!sub.active || sub.running) return;
    let batch: WatchBatch<K, V>;
    if (sub.initial) {
      sub.initial = false;
      sub.pending.clear();
      batch = { initial: true, updates: [...this.#entries].map(([key, e]) => ({ key, value: e.value })) };
    } else {
      const updates: WatchUpdate<K, V>[] = [];
      for (const [key, before] of sub.pending) {
        const now = this.#entries.get(key);
        if (now === undefined ? before === undefined : before !== undefined && this.#same(before, now)) continue;
        updates.push({ key, value: now?.value });
      }
      sub.pending.clear();
      if (updates.length === 0) return;
      batch = { initial: false, updates };
    }
    let result: void | Promise<void>;
    try {
      result = sub.handler(batch);
    } catch (err) {
      this.#onHandlerError(err);
      return;
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      sub.running = true;
      (result as Promise<void>).then(
        () => this.#settled(sub),
        (err: unknown) => {
          this.#onHandlerError(err);
          this.#settled(sub);
        },
      );
    }
  }

  #settled(sub: Subscription<K, V>): void {
    sub.running = false;
    if (sub.pending.size > 0) this.#wake(sub);
  }
}

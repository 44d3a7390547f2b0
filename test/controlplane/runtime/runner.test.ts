// Supervisor: restarts a failed runner with capped exponential backoff on a hand-driven clock, logs one JSON line
// per event, counts failures, and survives runners that throw anywhere. No sleeps, no timing assertions.
import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import {
  type Clock,
  type Runner,
  type RunnerContext,
  restartDelay,
  Supervisor,
} from '../../../controlplane/runtime/runner.ts';

class ManualClock implements Clock {
  t = 1_000_000;
  timers: { id: number; at: number; fn: () => void }[] = [];
  #id = 0;
  now = () => this.t;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.timers.push({ id, at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  /** Delays of pending timers from now. */
  pendingDelays(): number[] {
    return this.timers.map((x) => x.at - this.t);
  }
  /** Fires the earliest timer, moving time to it. */
  fireNext(): number {
    this.timers.sort((a, b) => a.at - b.at);
    const next = this.timers.shift();
    if (!next) throw new Error('no timer pending');
    const waited = next.at - this.t;
    this.t = next.at;
    next.fn();
    return waited;
  }
}

function logs() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/** Resolves at the supervisor's next `failed` event (its close has run by the time the timer is set). */
const nextFailure = (s: Supervisor) =>
  new Promise<{ name: string; err: Error; retryInMs: number }>((resolve) =>
    s.once('failed', (name, err, retryInMs) => resolve({ name, err, retryInMs })),
  );
const nextStart = (s: Supervisor) => new Promise<string>((resolve) => s.once('started', resolve));
/** Lets the supervisor finish closing a failed runner and arming its restart timer. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

test('restartDelay doubles from initialMs, is capped at maxMs and jittered within [step/2, step]', (t) => {
  const b = { initialMs: 100, maxMs: 1000 };
  t.deepEqual(
    [1, 2, 3, 4, 5, 10].map((n) => restartDelay(n, () => 0.999999, b)),
    [100, 200, 400, 800, 1000, 1000],
  );
  t.deepEqual(
    [1, 2, 3, 4, 5].map((n) => restartDelay(n, () => 0, b)),
    [50, 100, 200, 400, 500],
  );
});

test('a runner whose start throws is closed, logged, counted and restarted with growing, capped delays', async (t) => {
  const clock = new ManualClock();
  const { logger, lines } = logs();
  let starts = 0;
  let closes = 0;
  const flaky: Runner = {
    name: 'flaky',
    start() {
      starts++;
      if (starts <= 5) throw new Error(`attempt ${starts} failed`);
    },
    close() {
      closes++;
    },
  };
  const s = new Supervisor({ logger, clock, random: () => 1, backoff: { initialMs: 100, maxMs: 500 } });
  t.teardown(() => s.close());
  s.add(flaky);
  await s.start();
  await settle();
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) {
    t.deepEqual(clock.pendingDelays().length, 1);
    waits.push(clock.fireNext());
    await settle();
  }
  t.deepEqual(waits, [100, 200, 400, 500, 500]);
  t.is(starts, 6);
  t.is(closes, 5, 'closed after each failed start');
  const [st] = s.status();
  t.like(st, { name: 'flaky', state: 'running', failures: 5, restarts: 5, lastError: 'attempt 5 failed' });
  t.is(s.failures, 5);
  t.true(s.ready);
  const failed = lines.filter((l) => l.event === 'runner.failed');
  t.is(failed.length, 5);
  t.like(failed[4], { runner: 'flaky', failures: 5, retryInMs: 500, level: 50 });
  t.is((failed[0].err as { message: string }).message, 'attempt 1 failed');
  t.is(lines.filter((l) => l.event === 'runner.started').length, 1);
});

test('a failure reported after start restarts the runner; a failure of an old run is ignored', async (t) => {
  const clock = new ManualClock();
  const { logger } = logs();
  const contexts: RunnerContext[] = [];
  const s = new Supervisor({ logger, clock, random: () => 0.5, backoff: { initialMs: 40, maxMs: 1000 } });
  t.teardown(() => s.close());
  s.add({
    name: 'watcher',
    start(ctx) {
      contexts.push(ctx);
    },
    close() {},
  });
  await s.start();
  t.is(contexts.length, 1);
  const failure = nextFailure(s);
  contexts[0].fail(new Error('watch closed'));
  t.like(await failure, { name: 'watcher', retryInMs: 30 });
  t.true(contexts[0].signal.aborted);
  await settle();
  const started = nextStart(s);
  clock.fireNext();
  t.is(await started, 'watcher');
  t.is(contexts.length, 2);
  contexts[0].fail(new Error('stale'));
  await settle();
  t.is(s.status()[0].failures, 1);
  t.is(s.status()[0].state, 'running');
});

test('a run that stayed up for stableAfterMs starts the backoff over', async (t) => {
  const clock = new ManualClock();
  const contexts: RunnerContext[] = [];
  const s = new Supervisor({
    logger: logs().logger,
    clock,
    random: () => 1,
    backoff: { initialMs: 100, maxMs: 10_000 },
    stableAfterMs: 5000,
  });
  t.teardown(() => s.close());
  s.add({ name: 'r', start: (ctx) => void contexts.push(ctx), close() {} });
  await s.start();
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const f = nextFailure(s);
    contexts.at(-1)!.fail(new Error('x'));
    delays.push((await f).retryInMs);
    await settle();
    clock.fireNext();
    await settle();
  }
  clock.t += 5000;
  const f = nextFailure(s);
  contexts.at(-1)!.fail(new Error('x'));
  delays.push((await f).retryInMs);
  t.deepEqual(delays, [100, 200, 400, 100]);
});

test('throwing close, rejecting start and non-Error throws never escape', async (t) => {
  const clock = new ManualClock();
  const { logger, lines } = logs();
  const s = new Supervisor({ logger, clock, random: () => 0 });
  s.add({
    name: 'bad',
    start: () => Promise.reject('a string, not an Error'),
    close() {
      throw new Error('close broke too');
    },
  });
  await s.start();
  await settle();
  t.is(s.status()[0].state, 'backoff');
  t.is(s.status()[0].lastError, 'a string, not an Error');
  t.is(lines.filter((l) => l.event === 'runner.close-failed').length, 1);
  await s.close();
  t.is(s.status()[0].state, 'closed');
  t.deepEqual(clock.timers, [], 'close cancels the pending restart');
});

test('close closes running runners in reverse order and no restart happens afterwards', async (t) => {
  const clock = new ManualClock();
  const order: string[] = [];
  const contexts: RunnerContext[] = [];
  const s = new Supervisor({ logger: logs().logger, clock });
  for (const name of ['a', 'b', 'c'])
    s.add({
      name,
      start: (ctx) => {
        order.push(`start ${name}`);
        contexts.push(ctx);
      },
      close: () => void order.push(`close ${name}`),
    });
  await s.start();
  await s.close();
  contexts[0].fail(new Error('after close'));
  await settle();
  t.deepEqual(order, ['start a', 'start b', 'start c', 'close c', 'close b', 'close a']);
  t.is(s.failures, 0);
  t.deepEqual(clock.timers, []);
});

test('two runners with one name are refused', (t) => {
  const s = new Supervisor({ logger: logs().logger });
  s.add({ name: 'x', start() {}, close() {} });
  t.throws(() => s.add({ name: 'x', start() {}, close() {} }), { message: /already added/ });
});

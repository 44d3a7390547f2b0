// Endpoint choice between backends through a real proxy: two equal endpoints share the load
// whether requests come one at a time or twenty at once; a slower one gets less but is still
// measured, and wins its traffic back once it is fast again.
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { edgeConfig, route, startTestProxy, type TestProxy, to } from './harness.ts';

/** A backend that answers with its name after `delayMs` (changeable while it runs). */
interface Backend {
  readonly name: string;
  readonly port: number;
  delayMs: number;
  close(): Promise<void>;
}

async function backend(name: string, delayMs = 0): Promise<Backend> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = () => res.end(name);
      if (b.delayMs > 0) setTimeout(answer, b.delayMs);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const b: Backend = {
    name,
    port: (server.address() as AddressInfo).port,
    delayMs,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
  return b;
}

/** A proxy whose only route sends everything to one cluster made of `backends`. */
async function proxyFor(t: import('ava').ExecutionContext, ...backends: Backend[]): Promise<TestProxy> {
  const p = await startTestProxy(
    edgeConfig({
      clusters: {
        'ns/echo': {
          service: 'ns/echo',
          port: 80,
          endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port, pod: `ns/${b.name}` })),
        },
      },
      routes: [route({ backends: to('ns/echo') })],
    }),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  t.teardown(async () => {
    agent.destroy();
    await p.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  (p as TestProxy & { agent: Agent }).agent = agent;
  return p;
}

function get(p: TestProxy): Promise<string> {
  const agent = (p as TestProxy & { agent: Agent }).agent;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: p.port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends `total` requests, `concurrency` at a time; returns which backend answered each, in order of sending. */
async function run(p: TestProxy, total: number, concurrency: number): Promise<string[]> {
  const answers: string[] = new Array(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      answers[i] = await get(p);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answers;
}

function count(answers: readonly string[], name: string): number {
  let n = 0;
  for (const a of answers) if (a === name) n++;
  return n;
}

function share(answers: readonly string[], name: string): number {
  return count(answers, name) / answers.length;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

test('two equal endpoints, 1,000 sequential requests: each gets 35–65 %', async (t) => {
  const a = await backend('a');
  const b = await backend('b');
  const p = await proxyFor(t, a, b);
  const answers = await run(p, 1_000, 1);
  const sa = share(answers, 'a');
  t.log(`sequential: a ${pct(sa)}, b ${pct(share(answers, 'b'))}`);
  t.is(count(answers, 'a') + count(answers, 'b'), 1_000);
  t.true(sa >= 0.35 && sa <= 0.65, `a got ${pct(sa)}`);
});

test('two equal endpoints, 1,000 requests 20 at a time: each gets 35–65 %', async (t) => {
  const a = await backend('a');
  const b = await backend('b');
  const p = await proxyFor(t, a, b);
  const answers = await run(p, 1_000, 20);
  const sa = share(answers, 'a');
  t.log(`concurrency 20: a ${pct(sa)}, b ${pct(share(answers, 'b'))}`);
  t.is(count(answers, 'a') + count(answers, 'b'), 1_000);
  t.true(sa >= 0.35 && sa <= 0.65, `a got ${pct(sa)}`);
});

test('an endpoint 50 ms slower gets clearly less traffic, but still some', async (t) => {
  const fast = await backend('fast');
  const slow = await backend('slow', 50);
  const p = await proxyFor(t, fast, slow);
  const answers = await run(p, 1_000, 1);
  const sf = share(answers, 'fast');
  const ss = share(answers, 'slow');
  t.log(`fast ${pct(sf)}, slow ${pct(ss)}`);
  t.true(sf > 0.65, `fast got ${pct(sf)}`);
  t.true(ss > 0.01, `slow got ${pct(ss)}`);
});

test('a slow endpoint that becomes fast again wins back its share within a bounded number of requests', async (t) => {
  const steady = await backend('steady');
  const flaky = await backend('flaky', 50);
  const p = await proxyFor(t, steady, flaky);
  // Long enough for the slow endpoint's average to be well established.
  const before = await run(p, 300, 1);
  t.log(`while slow: flaky ${pct(share(before, 'flaky'))}`);
  t.true(share(before, 'flaky') < 0.3);
  flaky.delayMs = 0;
  // Recovered: within 1,000 requests there is a window of 100 where it gets at least 30 %.
  const after = await run(p, 1_000, 1);
  let recoveredBy = -1;
  for (let end = 100; end <= after.length; end += 10) {
    if (count(after.slice(end - 100, end), 'flaky') >= 30) {
      recoveredBy = end;
      break;
    }
  }
  t.log(`fast again: 30 % of a 100-request window reached after ${recoveredBy} requests`);
  t.true(recoveredBy > 0, `flaky got ${pct(share(after, 'flaky'))} of the 1,000 requests after it recovered`);
});

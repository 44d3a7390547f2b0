// The pipeline on a real FileProvider over a temp directory: the first translation, a re-translation after a file
// edit (only the changed configs get new versions), a translator that throws (counted, last good output kept),
// and coalescing (many snapshots while a translation is pending → the latest one is translated).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import anyTest, { type TestFn } from 'ava';
import { pino } from 'pino';
import { FileProvider } from '../../../controlplane/resources/files.ts';
import { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';
import type { Resource } from '../../../controlplane/resources/types.ts';
import { contentHash } from '../../../controlplane/runtime/canonical.ts';
import {
  Pipeline,
  type ProviderUpdate,
  type SnapshotProvider,
  statusKey,
  type TranslationEvent,
} from '../../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../../controlplane/runtime/runner.ts';
import { translate } from '../../../controlplane/translate/translate.ts';

const test = anyTest.serial as TestFn<{ dir: string; cleanup: (() => Promise<void>)[] }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-pipeline-'));
  t.context.cleanup = [];
});

test.afterEach.always(async (t) => {
  for (const c of t.context.cleanup.reverse()) await c();
  await rm(t.context.dir, { recursive: true, force: true });
});

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

const shop = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {weft.dev/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: web, containers: [{name: app, image: echo, ports: [{containerPort: 8080}]}]}
`;

const route = (prefix: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${prefix}}}]
    backendRefs: [{name: web, port: 80}]
`;

function nextTranslation(p: Pipeline): Promise<TranslationEvent> {
  return new Promise((resolve) => {
    const off = p.onTranslation((e) => {
      off();
      resolve(e);
    });
  });
}

async function startPipeline(t: { context: { dir: string; cleanup: (() => Promise<void>)[] } }, extra = {}) {
  const { logger, lines } = logs();
  const pipeline = new Pipeline({
    provider: () => new FileProvider({ paths: [t.context.dir], debounceMs: 10 }),
    translateOptions: { trustDomain: 'cluster.local' },
    logger,
    ...extra,
  });
  const supervisor = new Supervisor({ logger });
  for (const r of pipeline.runners) supervisor.add(r);
  t.context.cleanup.push(() => supervisor.close());
  const first = nextTranslation(pipeline);
  await supervisor.start();
  return { pipeline, supervisor, lines, first: await first };
}

test('translates the first load into versioned configs and statuses', async (t) => {
  await writeFile(path.join(t.context.dir, 'shop.yaml'), shop);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/'));
  const { pipeline, first, supervisor } = await startPipeline(t);
  t.true(first.ok);
  t.true(pipeline.ready);
  t.true(supervisor.ready);
  const ids = pipeline.proxies.keys().sort();
  t.is(ids.length, 2);
  t.true(ids.every((id) => id.startsWith('sidecar:shop/web-')));
  const vc = pipeline.proxies.load(ids[0])!;
  t.is(vc.version, contentHash(vc.config));
  t.is(vc.config.proxy.identity, 'spiffe://cluster.local/ns/shop/sa/web');
  // Same output as translating the provider's snapshot directly.
  const direct = translate(pipeline.snapshot!, { trustDomain: 'cluster.local' });
  t.deepEqual(pipeline.statuses.keys().sort(), direct.statuses.map(statusKey).sort());
  t.deepEqual(
    pipeline.statuses.load('HTTPRoute/shop/web'),
    direct.statuses.find((s) => s.kind === 'HTTPRoute'),
  );
});

test('a file edit re-translates; changed configs get new versions, and subscribers hear of exactly them', async (t) => {
  await writeFile(path.join(t.context.dir, 'shop.yaml'), shop);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/'));
  const { pipeline } = await startPipeline(t);
  const before = new Map(pipeline.proxies.entries());
  const heard: string[] = [];
  let initialSeen!: () => void;
  const initial = new Promise<void>((r) => {
    initialSeen = r;
  });
  const off = pipeline.proxies.subscribe((b) => {
    if (b.initial) initialSeen();
    else heard.push(...b.updates.map((u) => u.key));
  });
  t.context.cleanup.push(async () => off());
  await initial;

  const next = nextTranslation(pipeline);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/api'));
  const e = await next;
  t.true(e.ok);
  t.is(e.proxiesChanged, 2);
  for (const [id, vc] of pipeline.proxies.entries()) {
    t.not(vc.version, before.get(id)!.version);
    const table = Object.values(vc.config.routeTables).find((rt) =>
      rt.virtualHosts.some((vh) => vh.routes.some((r) => r.match.path?.value === '/api')),
    );
    t.truthy(table, 'the new prefix is in the config');
  }
  // Wait for the subscriber's delivery (it follows the translation in a later macrotask).
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  t.deepEqual(heard.sort(), [...before.keys()].sort());
});

test('an edit that changes nothing a proxy sees keeps every version', async (t) => {
  await writeFile(path.join(t.context.dir, 'shop.yaml'), shop);
  const { pipeline } = await startPipeline(t);
  const before = pipeline.proxies.entries();
  const next = nextTranslation(pipeline);
  // A ConfigMap is in the snapshot but in no proxy's config.
  await writeFile(
    path.join(t.context.dir, 'cm.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\ndata: {a: b}\n',
  );
  const e = await next;
  t.true(e.ok);
  t.is(e.proxiesChanged, 0);
  t.deepEqual(pipeline.proxies.entries(), before);
});

test('a translator that throws is logged and counted, and the last good configs stay', async (t) => {
  await writeFile(path.join(t.context.dir, 'shop.yaml'), shop);
  let explode = false;
  const { pipeline, lines } = await startPipeline(t, {
    translate: (s: ResourceSnapshot, o: object) => {
      if (explode) throw new Error('translator bug');
      return translate(s, o);
    },
  });
  const good = pipeline.proxies.entries();
  t.is(good.length, 2);
  explode = true;
  const failed = nextTranslation(pipeline);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/x'));
  const e = await failed;
  t.false(e.ok);
  t.is(e.error?.message, 'translator bug');
  t.is(pipeline.stats.translateFailures, 1);
  t.deepEqual(pipeline.proxies.entries(), good);
  const line = lines.find((l) => l.event === 'translate.failed');
  t.like(line, { level: 50, failures: 1, runner: 'translator' });
  explode = false;
  const recovered = nextTranslation(pipeline);
  await writeFile(path.join(t.context.dir, 'route.yaml'), route('/y'));
  t.true((await recovered).ok);
  t.not(pipeline.proxies.entries()[0][1].version, good[0][1].version);
});

/** A provider the test feeds by hand. */
class HandProvider implements SnapshotProvider {
  listeners = new Set<(u: ProviderUpdate) => void>();
  async start() {
    this.push([]);
  }
  async close() {}
  onUpdate(l: (u: ProviderUpdate) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  push(resources: Resource[]) {
    const snapshot = ResourceSnapshot.from(resources);
    for (const l of this.listeners) l({ snapshot });
  }
}

test('snapshots arriving faster than translation coalesce: only the latest is translated', async (t) => {
  const hand = new HandProvider();
  const translated: ResourceSnapshot[] = [];
  const { pipeline } = await startPipeline(t, {
    provider: () => hand,
    translate: (s: ResourceSnapshot, o: object) => {
      translated.push(s);
      return translate(s, o);
    },
  });
  t.is(translated.length, 1);
  const next = nextTranslation(pipeline);
  const cm = (i: number): Resource => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `c${i}`, namespace: 'default' },
  });
  for (let i = 0; i < 50; i++) hand.push([cm(i)]);
  await next;
  await new Promise((r) => setImmediate(r));
  t.is(translated.length, 2);
  t.deepEqual(
    translated[1].list('ConfigMap').map((c) => c.metadata.name),
    ['c49'],
  );
});

test('a provider whose start fails is restarted by the supervisor', async (t) => {
  let made = 0;
  const hand = new HandProvider();
  const { logger, lines } = logs();
  const pipeline = new Pipeline({
    provider: () => {
      made++;
      if (made === 1)
        return {
          start: () => Promise.reject(new Error('no files yet')),
          close: async () => {},
          onUpdate: (l) => hand.onUpdate(l),
        } satisfies SnapshotProvider;
      return hand;
    },
    logger,
  });
  const supervisor = new Supervisor({ logger, backoff: { initialMs: 5, maxMs: 5 } });
  t.context.cleanup.push(() => supervisor.close());
  for (const r of pipeline.runners) supervisor.add(r);
  const translatedOnce = nextTranslation(pipeline);
  await supervisor.start();
  t.true((await translatedOnce).ok);
  t.is(made, 2);
  t.is(supervisor.status().find((s) => s.name === 'provider')?.failures, 1);
  t.like(
    lines.find((l) => l.event === 'runner.failed'),
    { runner: 'provider' },
  );
});

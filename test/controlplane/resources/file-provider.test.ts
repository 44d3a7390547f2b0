// FileProvider against real files and a real watcher: every test awaits the provider's own
// events (update / reload), never a sleep.
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import {
  FileProvider,
  type FileProviderOptions,
  type FileProviderReload,
  type FileProviderUpdate,
} from '../../../controlplane/resources/files.ts';

const test = anyTest.serial as TestFn<{ dir: string; providers: FileProvider[] }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-provider-'));
  t.context.providers = [];
});

test.afterEach.always(async (t) => {
  for (const p of t.context.providers) await p.close();
  await rm(t.context.dir, { recursive: true, force: true });
});

function provider(t: { context: { providers: FileProvider[] } }, opts: FileProviderOptions): FileProvider {
  const p = new FileProvider(opts);
  t.context.providers.push(p);
  return p;
}

function nextUpdate(p: FileProvider): Promise<FileProviderUpdate> {
  return new Promise((resolve) => {
    const off = p.onUpdate((u) => {
      off();
      resolve(u);
    });
  });
}

function nextReload(p: FileProvider): Promise<FileProviderReload> {
  return new Promise((resolve) => {
    const off = p.onReload((r) => {
      off();
      resolve(r);
    });
  });
}

async function write(dir: string, rel: string, text: string): Promise<string> {
  const p = path.join(dir, rel);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, text);
  return p;
}

const svc = (name: string, port = 80) =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: app }\nspec: { selector: { app: ${name} }, ports: [{ port: ${port} }] }\n`;

const names = (u: FileProviderUpdate, kind: 'Service' | 'Pod' = 'Service') =>
  u.snapshot.list(kind).map((r) => r.metadata.name);

test('start() emits the first load, materialized by default', async (t) => {
  const { dir } = t.context;
  await write(
    dir,
    'web.yaml',
    `${svc('web')}---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: app }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template: { metadata: { labels: { app: web } }, spec: { containers: [{ name: c }] } }
`,
  );
  const p = provider(t, { paths: [dir] });
  const first = nextUpdate(p);
  await p.start();
  const u = await first;
  t.is(p.current, u);
  t.true(u.snapshotChanged);
  t.deepEqual(u.errors, []);
  t.is(u.snapshot.list('Pod').length, 2);
  t.truthy(u.snapshot.get('Service', 'app/web')?.spec.clusterIP);
  t.is(u.snapshot.list('EndpointSlice').length, 1);

  const raw = provider(t, { paths: [dir], materialize: false });
  await raw.start();
  t.is(raw.snapshot.list('Pod').length, 0);
  t.is(raw.snapshot.get('Service', 'app/web')?.spec.clusterIP, undefined);
});

test('an edit, an added file (in a new directory) and a deleted file each update the snapshot', async (t) => {
  const { dir } = t.context;
  const a = await write(dir, 'a.yaml', svc('a'));
  const p = provider(t, { paths: [`${dir}/`], materialize: false });
  await p.start();
  t.deepEqual(names(p.current!), ['a']);

  let next = nextUpdate(p);
  await writeFile(a, svc('a', 8080));
  let u = await next;
  t.is(u.snapshot.get('Service', 'app/a')?.spec.ports?.[0].port, 8080);

  next = nextUpdate(p);
  await write(dir, 'sub/deeper/b.yml', svc('b'));
  u = await next;
  t.deepEqual(names(u), ['a', 'b']);

  next = nextUpdate(p);
  await unlink(a);
  u = await next;
  t.deepEqual(names(u), ['b']);

  next = nextUpdate(p);
  await rm(path.join(dir, 'sub'), { recursive: true });
  u = await next;
  t.deepEqual(names(u), []);
});

test('a broken edit keeps the file’s last good objects and reports the error; fixing it clears the error', async (t) => {
  const { dir } = t.context;
  const a = await write(dir, 'a.yaml', `${svc('a')}---\n${svc('a2')}`);
  await write(dir, 'b.yaml', svc('b'));
  const p = provider(t, { paths: [dir], materialize: false });
  await p.start();
  const good = p.snapshot;

  let next = nextUpdate(p);
  await writeFile(
    a,
    `${svc('a')}---\napiVersion: v1\nkind: Service\nmetadata: { name: a2, namespace: app }\nspec: { ports: [{ port: "x" }] }\n`,
  );
  let u = await next;
  t.false(u.snapshotChanged);
  t.is(u.snapshot, good);
  t.deepEqual(names(u), ['a', 'a2', 'b']);
  t.is(u.errors.length, 1);
  t.is(String(u.errors[0]), `${a}:9:25: Service app/a2: spec.ports[0].port: expected integer, got string "x"`);

  next = nextUpdate(p);
  await writeFile(a, 'apiVersion: v1\nkind: Service\nmetadata: { name: [\n');
  u = await next;
  t.deepEqual(names(u), ['a', 'a2', 'b']);
  t.is(u.errors[0].code, 'WEFT_ERR_YAML_SYNTAX');

  next = nextUpdate(p);
  await writeFile(a, svc('a3'));
  u = await next;
  t.true(u.snapshotChanged);
  t.deepEqual(u.errors, []);
  t.deepEqual(names(u), ['a3', 'b']);
});

test('nothing is emitted when a change leaves the objects and diagnostics as they were', async (t) => {
  const { dir } = t.context;
  const a = await write(dir, 'a.yaml', svc('a'));
  const b = await write(dir, 'b.yaml', svc('b'));
  const p = provider(t, { paths: [dir], materialize: false });
  await p.start();
  const updates: FileProviderUpdate[] = [];
  p.onUpdate((u) => updates.push(u));

  let reload = nextReload(p);
  await writeFile(a, `# a comment only changes the text\n${svc('a')}`);
  t.deepEqual(await reload, { paths: [a], emitted: false });

  reload = nextReload(p);
  await writeFile(b, svc('b')); // same bytes
  t.deepEqual(await reload, { paths: [b], emitted: false });

  reload = nextReload(p);
  await writeFile(b, svc('b', 81));
  t.deepEqual(await reload, { paths: [b], emitted: true }, 'only the changed file is reloaded');
  t.is(updates.length, 1);
  t.is(updates[0].snapshot.get('Service', 'app/b')?.spec.ports?.[0].port, 81);
});

test('a burst of writes is handled as one reload', async (t) => {
  const { dir } = t.context;
  const p = provider(t, { paths: [dir], materialize: false, debounceMs: 300 });
  await p.start();
  const next = nextUpdate(p);
  await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => write(dir, `${n}.yaml`, svc(n))));
  const u = await next;
  t.deepEqual(names(u), ['a', 'b', 'c', 'd', 'e']);
});

test('duplicates across files: the later file in path order wins, with a warning', async (t) => {
  const { dir } = t.context;
  await write(dir, 'a.yaml', svc('web', 1));
  const p = provider(t, { paths: [dir], materialize: false });
  await p.start();
  const next = nextUpdate(p);
  const b = await write(dir, 'b.yaml', svc('web', 2));
  const u = await next;
  t.is(u.snapshot.get('Service', 'app/web')?.spec.ports?.[0].port, 2);
  t.is(u.warnings.length, 1);
  t.is(u.warnings[0].file, b);
});

test('explicit files are watched whatever their extension; a missing path is an error until it appears', async (t) => {
  const { dir } = t.context;
  const txt = await write(dir, 'routes.txt', svc('txt'));
  const later = path.join(dir, 'later.yaml');
  const p = provider(t, { paths: [txt, later], materialize: false });
  await p.start();
  t.deepEqual(names(p.current!), ['txt']);
  t.is(p.current!.errors.length, 1);
  t.is(p.current!.errors[0].code, 'WEFT_ERR_FILE_READ');

  let next = nextUpdate(p);
  await writeFile(txt, svc('txt2'));
  t.deepEqual(names(await next), ['txt2']);

  next = nextUpdate(p);
  await writeFile(later, svc('later'));
  const u = await next;
  t.deepEqual(names(u), ['txt2', 'later'].sort());
  t.deepEqual(u.errors, []);
});

test('close() stops the watcher and leaves no open handles', async (t) => {
  const { dir } = t.context;
  await write(dir, 'a.yaml', svc('a'));
  const count = () => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
  const before = count();
  const p = new FileProvider({ paths: [dir] });
  await p.start();
  t.true(count() > before, 'watching uses fs watchers');
  await p.close();
  // libuv releases closed handles over the next loop turns: wait a bounded number of turns, not a time.
  for (let turn = 0; turn < 100 && count() > before; turn++) await new Promise((r) => setImmediate(r));
  t.is(count(), before);
  t.false(process.getActiveResourcesInfo().includes('Timeout'), 'no debounce timer left');
  await t.throwsAsync(() => p.start(), { message: /closed/ });
});

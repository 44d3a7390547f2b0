// loadFiles / loadDirectory / loadText: what `kubectl apply -f` accepts loads, with every
// problem positioned at its file and line, and duplicates resolved in apply order.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { FileReadError, ResourceError, YamlSyntaxError } from '../../../controlplane/resources/errors.ts';
import {
  listManifestFiles,
  loadDirectory,
  loadFiles,
  loadSnapshot,
  loadText,
} from '../../../controlplane/resources/files.ts';
import { materialize } from '../../../controlplane/resources/materialize.ts';
import { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';

const test = anyTest as TestFn<{ dir: string }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-files-'));
});

test.afterEach.always(async (t) => {
  await rm(t.context.dir, { recursive: true, force: true });
});

async function write(dir: string, rel: string, text: string): Promise<string> {
  const p = path.join(dir, rel);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, text);
  return p;
}

const svc = (name: string, extra = '') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: app${extra}
spec:
  selector: { app: ${name} }
  ports: [{ port: 80 }]
`;

test('multi-document YAML: empty documents and comments are ignored, every object loads', (t) => {
  const text = `# leading comment
---
---
${svc('a')}---
# only a comment
---
${svc('b')}
---
apiVersion: v1
kind: Namespace
metadata: { name: app }
...
`;
  const r = loadText(text, 'multi.yaml');
  t.deepEqual(r.errors, []);
  t.deepEqual(
    r.resources.map((x) => `${x.kind}/${x.metadata.name}`),
    ['Service/a', 'Service/b', 'Namespace/app'],
  );
});

test('kind: List (and typed lists) are flattened; an error inside points at the item', (t) => {
  const text = `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Namespace
    metadata: { name: one }
  - apiVersion: v1
    kind: ServiceList
    items:
      - apiVersion: v1
        kind: Service
        metadata: { name: two, namespace: one }
  - apiVersion: v1
    kind: Service
    metadata: { name: three }
    spec:
      ports:
        - port: "80"
`;
  const r = loadText(text, 'list.yaml');
  t.deepEqual(
    r.resources.map((x) => x.metadata.name),
    ['one', 'two'],
  );
  t.is(r.errors.length, 1);
  t.is(
    String(r.errors[0]),
    'list.yaml:18:17: Service default/three: spec.ports[0].port: expected integer, got string "80"',
  );
});

test('a YAML syntax error is reported with its line; nothing of that file loads, other files do', async (t) => {
  const { dir } = t.context;
  await write(dir, 'a-good.yaml', svc('good'));
  await write(dir, 'b-bad.yaml', `${svc('first')}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n`);
  await write(dir, 'c-dup-key.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n');
  const r = await loadDirectory(dir);
  t.deepEqual(
    r.resources.map((x) => x.metadata.name),
    ['good'],
  );
  t.is(r.errors.length, 2);
  const [bad, dup] = r.errors;
  t.true(bad instanceof YamlSyntaxError);
  t.is(bad.code, 'WEFT_ERR_YAML_SYNTAX');
  t.is(bad.file, path.join(dir, 'b-bad.yaml'));
  t.true(bad.line >= 13 && bad.line <= 14, `line ${bad.line}`);
  t.is(dup.code, 'WEFT_ERR_YAML_SYNTAX');
  t.is(dup.line, 5);
  t.regex(dup.reason, /unique/);
});

test('an unknown apiVersion is reported at the apiVersion line', (t) => {
  const text = `${svc('a')}---
apiVersion: gateway.networking.k8s.io/v1alpha9
kind: HTTPRoute
metadata: { name: r }
spec: {}
`;
  const r = loadText(text, 'r.yaml');
  t.is(r.resources.length, 1);
  t.is(
    String(r.errors[0]),
    'r.yaml:10:13: HTTPRoute default/r: apiVersion gateway.networking.k8s.io/v1alpha9 is not served for HTTPRoute; use gateway.networking.k8s.io/v1 or gateway.networking.k8s.io/v1beta1',
  );
});

test('a bad name and wrong field types are reported at the field, with the field path', (t) => {
  const text = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: Edge_GW
spec:
  gatewayClassName: weft
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  gatewayClassName: weft
  listeners:
    - name: http
      port: 80
      protocol: HTTP
    - name: https
      port: 443
`;
  const r = loadText(text, 'gw.yaml');
  t.is(r.resources.length, 0);
  t.true(r.errors.every((e) => e instanceof ResourceError && e.code === 'WEFT_ERR_RESOURCE_INVALID'));
  t.like(r.errors[0], { line: 4, column: 9, kind: 'Gateway', name: 'Edge_GW' });
  t.regex(r.errors[0].reason, /^metadata\.name: "Edge_GW" is not a valid DNS-1123 subdomain/);
  // A missing field is positioned at its parent (the listener).
  t.like(r.errors[1], { line: 19, column: 7, reason: 'spec.listeners[1].protocol: required' });
});

test('kinds weft does not read are skipped with kind, name and position, not errors', (t) => {
  const text = `apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: app }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:weft" }
rules: []
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: istio-gw }
spec: { selector: { istio: ingressgateway } }
`;
  const r = loadText(text, 'skip.yaml');
  t.deepEqual(r.errors, []);
  t.deepEqual(r.resources, []);
  t.deepEqual(r.skipped, [
    { file: 'skip.yaml', line: 1, column: 1, apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'app', name: 'web' },
    {
      file: 'skip.yaml',
      line: 5,
      column: 1,
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      name: 'system:weft',
    },
    { file: 'skip.yaml', line: 10, column: 1, apiVersion: 'networking.istio.io/v1', kind: 'Gateway', name: 'istio-gw' },
  ]);
});

test('duplicates: the later object replaces the earlier one, across files too, with a warning', async (t) => {
  const { dir } = t.context;
  const a = await write(dir, 'a.yaml', `${svc('web')}---\n${svc('other')}`);
  const b = await write(dir, 'b.yaml', svc('web', '\n  labels: { version: "2" }'));
  const r = await loadFiles([a, b]);
  t.deepEqual(r.errors, []);
  t.deepEqual(
    r.resources.map((x) => x.metadata.name),
    ['other', 'web'],
  );
  t.is(r.resources[1].metadata.labels?.version, '2');
  t.is(r.warnings.length, 1);
  const w = r.warnings[0];
  t.like(w, { code: 'WEFT_WARN_DUPLICATE', file: b, line: 1, kind: 'Service', namespace: 'app', name: 'web' });
  t.deepEqual(w.previous, { file: a, line: 1, column: 1 });
  t.is(
    String(w),
    `${b}:1:1: Service app/web: replaces the one at ${a}:1:1 (the later one wins, as with kubectl apply)`,
  );
  // Reversed order, reversed winner.
  const rev = await loadFiles([b, a]);
  t.is(rev.resources.find((x) => x.metadata.name === 'web')?.metadata.labels, undefined);
});

test('namespaces are defaulted before duplicates are found', (t) => {
  const text = `apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: c, namespace: default }\n`;
  const r = loadText(text, 'd.yaml');
  t.is(r.resources.length, 2);
  t.is(r.warnings.length, 1);
  t.is(loadText(text, 'd.yaml', { defaultNamespace: 'other' }).warnings.length, 0);
});

test('directories load recursively in path order; only .yaml/.yml/.json; hidden entries skipped', async (t) => {
  const { dir } = t.context;
  await write(dir, 'b.yaml', svc('b'));
  await write(dir, 'a/z.yml', svc('az'));
  await write(
    dir,
    'a/deeper/y.json',
    JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ay' } }, null, '\t'),
  );
  await write(dir, 'a.yaml', svc('a'));
  await write(dir, 'c.txt', svc('txt'));
  await write(dir, 'README.md', '# not yaml: [');
  await write(dir, '.hidden.yaml', svc('hidden'));
  await write(dir, '.git/x.yaml', svc('git'));
  const r = await loadDirectory(dir);
  t.deepEqual(r.errors, []);
  // The walk visits `a/` before `a.yaml` (as kubectl's filepath.Walk does: entries sorted by name).
  t.deepEqual(
    r.resources.map((x) => x.metadata.name),
    ['ay', 'az', 'a', 'b'],
  );
  const listed = await listManifestFiles([dir]);
  t.deepEqual(
    listed.files.map((f) => path.relative(dir, f)),
    ['a/deeper/y.json', 'a/z.yml', 'a.yaml', 'b.yaml'],
  );
  // A file named explicitly loads whatever its extension.
  const txt = await loadFiles([path.join(dir, 'c.txt')]);
  t.deepEqual(
    txt.resources.map((x) => x.metadata.name),
    ['txt'],
  );
});

test('a path that does not exist is a FileReadError; the rest still loads', async (t) => {
  const { dir } = t.context;
  const ok = await write(dir, 'ok.yaml', svc('ok'));
  const missing = path.join(dir, 'missing.yaml');
  const r = await loadFiles([missing, ok]);
  t.is(r.resources.length, 1);
  t.is(r.errors.length, 1);
  t.true(r.errors[0] instanceof FileReadError);
  t.is(r.errors[0].code, 'WEFT_ERR_FILE_READ');
  t.is(String(r.errors[0]), `${missing}: no such file or directory`);
});

test('every conformance manifest loads with zero errors and materializes', async (t) => {
  const r = await loadDirectory('/work/shared/conformance/manifests');
  t.deepEqual(r.errors.map(String), []);
  t.deepEqual(r.skipped, []);
  const kinds = new Set(r.resources.map((x) => x.kind));
  for (const k of [
    'Namespace',
    'Deployment',
    'Service',
    'Secret',
    'ConfigMap',
    'Gateway',
    'HTTPRoute',
    'GRPCRoute',
    'ReferenceGrant',
    'EndpointSlice',
    'GatewayClass',
  ])
    t.true(kinds.has(k as never), k);
  // The test files reuse names on purpose (each test applies its own); the later file wins.
  t.true(r.warnings.every((w) => w.code === 'WEFT_WARN_DUPLICATE'));

  const all = materialize(r.resources);
  const snap = ResourceSnapshot.from(all);
  const pods = snap.list('Pod');
  t.is(
    pods.length,
    snap.list('Deployment').reduce((n, d) => n + (d.spec.replicas ?? 1), 0),
  );
  t.true(pods.every((p) => p.status?.podIP?.startsWith('127.20.')));
  for (const s of snap.list('Service')) {
    if (s.spec.type === 'ExternalName' || s.spec.clusterIP === 'None') continue;
    t.truthy(s.spec.clusterIP, `${s.metadata.namespace}/${s.metadata.name} has a clusterIP`);
    if (s.spec.selector)
      t.true(
        snap
          .list('EndpointSlice')
          .some(
            (es) =>
              es.metadata.namespace === s.metadata.namespace &&
              es.metadata.labels?.['kubernetes.io/service-name'] === s.metadata.name,
          ),
        `${s.metadata.name} has an EndpointSlice`,
      );
  }
  // Each file on its own loads cleanly too (what a test that applies one file sees).
  const { files } = await listManifestFiles(['/work/shared/conformance/manifests']);
  t.true(files.length > 90);
  for (const f of files) t.deepEqual((await loadFiles([f])).errors.map(String), [], f);
});

test('loadSnapshot: loaded, materialized (unless asked not to) and frozen in one call', async (t) => {
  const { dir } = t.context;
  await write(
    dir,
    'web.yaml',
    `${svc('web')}---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: app }
spec:
  selector: { matchLabels: { app: web } }
  template: { metadata: { labels: { app: web } }, spec: { containers: [{ name: c }] } }
`,
  );
  const r = await loadSnapshot([`${dir}/`]);
  t.deepEqual(r.errors, []);
  t.is(r.resources.length, 2, 'resources are the objects as written');
  t.is(r.snapshot.list('Pod').length, 1);
  t.is(r.snapshot.list('EndpointSlice').length, 1);
  t.true(Object.isFrozen(r.snapshot.get('Service', 'app/web')));
  const raw = await loadSnapshot([dir], { materialize: false, defaultNamespace: 'x' });
  t.is(raw.snapshot.size, 2);
  const full = await loadSnapshot([dir], { materialize: { podCidr: '10.0.0.0/31' } });
  t.is(full.snapshot.list('Pod')[0].status?.podIP?.startsWith('10.0.0.'), true);
});

test('YAML anchors, aliases and merge keys work as in kubectl', (t) => {
  const r = loadText(
    `apiVersion: v1
kind: Service
metadata: { name: a, labels: &labels { app: a } }
spec:
  <<: { type: ClusterIP, ports: [{ port: 81 }] }
  selector: *labels
`,
    'anchors.yaml',
  );
  t.deepEqual(r.errors, []);
  t.deepEqual((r.resources[0] as { spec: unknown }).spec, {
    type: 'ClusterIP',
    ports: [{ port: 81 }],
    selector: { app: 'a' },
  });
});

// `weft inject` run as a user runs it: a child process on a multi-document manifest (files and stdin), checking
// stdout, the per-object report on stderr and the exit code.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { parseAllDocuments } from 'yaml';
import { injectPod, type Pod } from '../../injector/index.ts';
import { settings } from './support.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function weft(args: string[], stdin?: string): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [join(root, 'bin/weft.ts'), ...args],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin ?? '');
  });
}

function tempFile(t: ExecutionContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-inject-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'manifest.yaml');
  writeFileSync(file, text);
  return file;
}

// biome-ignore lint/suspicious/noExplicitAny: parsed manifests, looked into by path
const docs = (yaml: string): any[] => parseAllDocuments(yaml).map((d) => d.toJS());

const template = (name: string, extra = '') => `
    metadata:
      labels: {app: ${name}}${extra}
    spec:
      containers:
        - name: ${name}
          image: registry.test/${name}:1
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /ready, port: http}}`;

const manifest = `# the shop
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:${template('web')}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  template:${template('db', `\n      annotations: {weft.dev/inject: "false"}`)}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:${template('report').replaceAll('\n', '\n    ')}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: monitoring}
spec:
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      hostNetwork: true
      containers: [{name: agent, image: registry.test/agent:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns-debug, namespace: kube-system}
spec:
  containers: [{name: dig, image: registry.test/dig:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers: [{name: sh, image: registry.test/sh:1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: "yes"}
`;

test('injects every workload of a multi-document manifest and reports each object', async (t) => {
  const r = await weft(['inject', '-f', tempFile(t, manifest)]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stderr.trim().split('\n'), [
    'service "shop/web" passed through: Service has no pod template',
    'deployment "shop/web" injected',
    'statefulset "shop/db" skipped: opted out by the annotation weft.dev/inject: "false"',
    'cronjob "report" injected',
    'daemonset "monitoring/node-agent" skipped: hostNetwork pods are not injected (capture would take over the node\'s traffic)',
    'pod "kube-system/dns-debug" skipped: namespace kube-system is never injected',
    'pod "shop/debug" injected',
    'configmap "shop/settings" passed through: ConfigMap has no pod template',
  ]);

  const [svc, deploy, sts, cron, ds, sysPod, pod, cm] = docs(r.stdout);
  const input = docs(manifest);
  t.deepEqual(svc, input[0]);
  t.deepEqual(sts, input[2]);
  t.deepEqual(ds, input[4]);
  t.deepEqual(sysPod, input[5]);
  t.deepEqual(cm, input[7]);
  t.is(cm.data.mode, 'yes', 'a YAML 1.1 boolean look-alike stays a string');
  // The output keeps the untouched documents' comments.
  t.true(r.stdout.startsWith('# the shop\n'));

  // Injected templates are exactly what the webhook would make of the pods (native form by default).
  const s = settings({ version: (await weft(['--version'])).stdout.trim(), image: undefined });
  t.deepEqual(deploy.spec.template, injectPod(input[1].spec.template as Pod, s));
  t.deepEqual(deploy.spec.selector, input[1].spec.selector);
  t.deepEqual(cron.spec.jobTemplate.spec.template, injectPod(input[3].spec.jobTemplate.spec.template as Pod, s));
  t.is(cron.spec.schedule, '@daily');
  t.deepEqual(pod, injectPod(input[6] as Pod, s));
  t.is(deploy.spec.template.spec.initContainers[0].name, 'weft-proxy');
  t.is(deploy.spec.template.spec.initContainers[0].restartPolicy, 'Always');
  t.is(deploy.spec.template.spec.containers[0].readinessProbe.httpGet.path, '/app-health/web/readyz');
});

test('its own output passes through a second run unchanged', async (t) => {
  const first = await weft(['inject', '-f', tempFile(t, manifest)]);
  const second = await weft(['inject', '-f', '-'], first.stdout);
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout, first.stdout);
  t.regex(second.stderr, /deployment "shop\/web" skipped: already injected/);
  t.notRegex(second.stderr, /^\S+ "[^"]+" injected$/m);
});

test('--native-sidecar=false injects the classic form', async (t) => {
  const r = await weft(['inject', '--native-sidecar=false', '-f', '-'], manifest);
  t.is(r.code, 0, r.stderr);
  const deploy = docs(r.stdout)[1];
  const spec = deploy.spec.template.spec;
  t.deepEqual(
    spec.containers.map((c: { name: string }) => c.name),
    ['weft-proxy', 'web'],
  );
  t.deepEqual(
    spec.initContainers.map((c: { name: string }) => c.name),
    ['weft-init'],
  );
  t.truthy(spec.containers[0].lifecycle.postStart);
  t.is(deploy.spec.template.metadata.annotations['kubectl.kubernetes.io/default-container'], 'web');
});

test('settings flags reach the injected pods', async (t) => {
  const r = await weft(
    ['inject', '--proxy-image', 'mirror.test/weft:dev', '--trust-domain', 'prod.test', '-n', 'shop', '-f', '-'],
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: a}]}\n',
  );
  t.is(r.code, 0, r.stderr);
  const proxy = docs(r.stdout)[0].spec.initContainers[0];
  t.is(proxy.image, 'mirror.test/weft:dev');
  t.true(proxy.args.join(' ').includes('--trust-domain prod.test'));
  t.is(r.stderr, 'pod "p" injected\n');
});

test('-n names the namespace of objects without one: weft-system is skipped', async (t) => {
  const r = await weft(
    ['inject', '-n', 'weft-system', '-f', '-'],
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: a}]}\n',
  );
  t.is(r.code, 0);
  t.regex(r.stderr, /pod "p" skipped: namespace weft-system is weft's own/);
});

test('an annotation weft cannot use: the object is written unchanged, reported, and the exit code is 1', async (t) => {
  const bad = `apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations: {weft.dev/exclude-inbound-ports: "eighty"}
spec: {containers: [{name: a, image: a}]}
---
apiVersion: v1
kind: Pod
metadata: {name: q}
spec: {containers: [{name: a, image: a}]}
`;
  const r = await weft(['inject', '-f', '-'], bad);
  t.is(r.code, 1);
  const [p, q] = docs(r.stdout);
  t.deepEqual(p, docs(bad)[0]);
  t.is(q.metadata.annotations['weft.dev/injected'] !== undefined, true);
  t.regex(r.stderr, /pod "p" not injected \(error\): annotation weft\.dev\/exclude-inbound-ports: "eighty"/);
  t.regex(r.stderr, /weft: 1 object not injected because of the errors above/);
});

test('a workload whose template is not a pod is an error', async (t) => {
  const r = await weft(['inject', '-f', '-'], 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n');
  t.is(r.code, 1);
  t.regex(r.stderr, /deployment "d" not injected \(error\): spec\.template is not a pod/);
});

test('a List is injected item by item', async (t) => {
  const list = `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: a, image: a}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}
`;
  const r = await weft(['inject', '-f', '-'], list);
  t.is(r.code, 0, r.stderr);
  const out = docs(r.stdout)[0];
  t.is(out.items[0].spec.initContainers[0].name, 'weft-proxy');
  t.deepEqual(out.items[1], docs(list)[0].items[1]);
  t.deepEqual(r.stderr.trim().split('\n'), [
    'pod "a" injected',
    'service "s" passed through: Service has no pod template',
  ]);
});

test('broken YAML writes nothing and exits 1; a missing file, or no -f, too', async (t) => {
  const broken = await weft(['inject', '-f', '-'], 'kind: Pod\nmetadata: {name: [\n');
  t.is(broken.code, 1);
  t.is(broken.stdout, '');
  t.regex(broken.stderr, /<stdin>:\d+: /);
  t.regex(broken.stderr, /nothing written/);

  const missing = await weft(['inject', '-f', '/nonexistent/manifest.yaml']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read \/nonexistent\/manifest\.yaml: ENOENT/);

  const none = await weft(['inject']);
  t.is(none.code, 2);
  t.regex(none.stderr, /give at least one -f FILE/);
});

test('--native-sidecar takes only true or false', async (t) => {
  const r = await weft(['inject', '--native-sidecar=maybe', '-f', '-'], '');
  t.is(r.code, 2);
  t.regex(r.stderr, /must be true or false/);
});

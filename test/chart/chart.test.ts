// charts/weft: helm lint, helm template with the default values and with a variation, every rendered object
// validated against the Kubernetes schemas (unknown fields included) and every CRD as a structural schema, and the
// contracts the chart has with the code: the webhook's path and selectors, the RBAC each watched kind needs, the
// control plane's flags, the injector's settings file. helm comes from scripts/helm.ts; without it these tests fail.
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import {
  buildInjectSettings,
  type ControlPlaneCommandOptions,
  controlplaneCommand,
} from '../../bin/commands/controlplane.ts';
import { GATEWAY_API_VERSION } from '../../controlplane/check/run.ts';
import { MANAGED_BY_LABELS } from '../../controlplane/k8s/ca-secret.ts';
import { controlPlaneAddresses } from '../../controlplane/k8s/cluster.ts';
import { WATCHED_KINDS } from '../../controlplane/k8s/kinds.ts';
import { type InjectSettingsInput, injectSettings } from '../../injector/settings.ts';
import { WEBHOOK_PATH } from '../../injector/webhook.ts';
import { CHART_DIR, findObject, helm, RELEASE_NAMESPACE, REPO_ROOT, renderChart, setArgs } from './render.ts';
import { type KubeObject, validateObject } from './validate.ts';

const CLUSTER_SCOPED = new Set([
  'ClusterRole',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
  'GatewayClass',
  'CustomResourceDefinition',
]);

const VARIATION = {
  'webhook.failurePolicy': 'Ignore',
  'tracing.otlpEndpoint': 'http://jaeger-collector.observability.svc:4318',
  'tracing.sampleRatio': 0.25,
  replicas: 1,
  'webhook.excludeNamespaces': ['legacy'],
};

const CHART_APP_VERSION = (parseYaml(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string })
  .appVersion;
const defaults = renderChart();
const variation = renderChart(VARIATION);

async function assertAllValid(t: import('ava').ExecutionContext, objects: KubeObject[]) {
  t.true(objects.length > 0);
  const problems = (await Promise.all(objects.map(validateObject))).flat();
  t.deepEqual(problems, [], problems.join('\n'));
  for (const o of objects) {
    if (CLUSTER_SCOPED.has(o.kind)) t.is(o.metadata.namespace, undefined, `${o.kind} ${o.metadata.name}`);
    else t.is(o.metadata.namespace, RELEASE_NAMESPACE, `${o.kind} ${o.metadata.name}`);
  }
}

test('helm lint --strict: no warning, no error', async (t) => {
  const r = await helm(['lint', '--strict', CHART_DIR]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  t.notRegex(r.stdout, /\[(WARNING|ERROR)\]/);
  const withVariation = await helm(['lint', '--strict', CHART_DIR, ...setArgs(VARIATION)]);
  t.is(withVariation.code, 0, withVariation.stdout + withVariation.stderr);
});

test('default values: every rendered object validates against the Kubernetes schemas', async (t) => {
  const objects = await defaults;
  await assertAllValid(t, objects);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  for (const want of [
    'ClusterRole/weft-controlplane',
    'ClusterRoleBinding/weft-controlplane',
    'ConfigMap/weft-inject-settings',
    'Deployment/weft-controlplane',
    'GatewayClass/weft',
    'MutatingWebhookConfiguration/weft-injector',
    'PodDisruptionBudget/weft-controlplane',
    'Role/weft-controlplane',
    'RoleBinding/weft-controlplane',
    'Service/weft-controlplane',
    'ServiceAccount/weft-controlplane',
  ])
    t.true(kinds.includes(want), `${want} is rendered (got ${kinds.join(', ')})`);
  t.is((findObject(objects, 'Deployment').spec as { replicas: number }).replicas, 2);
});

test('a variation (failurePolicy Ignore, tracing on, one replica) validates and takes effect', async (t) => {
  const objects = await variation;
  await assertAllValid(t, objects);
  const webhook = findObject(objects, 'MutatingWebhookConfiguration').webhooks as Webhook[];
  t.is(webhook[0].failurePolicy, 'Ignore');
  t.true(excludedNamespaces(webhook[0]).includes('legacy'));
  const deployment = findObject(objects, 'Deployment');
  t.is((deployment.spec as { replicas: number }).replicas, 1);
  const args = containerOf(deployment).args;
  t.true(args.includes('--otlp-endpoint=http://jaeger-collector.observability.svc:4318'));
  t.true(args.includes('--trace-sample-ratio=0.25'));
  // One replica: a PodDisruptionBudget would block every drain.
  t.false(objects.some((o) => o.kind === 'PodDisruptionBudget'));
  // Without tracing no tracing flag is passed.
  t.false(containerOf(findObject(await defaults, 'Deployment')).args.some((a) => a.startsWith('--otlp-endpoint')));
});

test('values.schema.json refuses a bad failurePolicy and an unknown key', async (t) => {
  const bad = await helm(['template', 'weft', CHART_DIR, ...setArgs({ 'webhook.failurePolicy': 'Sometimes' })]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /failurePolicy/);
  const typo = await helm(['template', 'weft', CHART_DIR, ...setArgs({ 'webhook.timeoutSecond': 5 })]);
  t.not(typo.code, 0);
  t.regex(typo.stderr, /timeoutSecond/);
});

// --- the webhook ------------------------------------------------------------------------------------------------

interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}
interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Requirement[];
}
interface Webhook {
  name: string;
  failurePolicy: string;
  timeoutSeconds: number;
  sideEffects: string;
  clientConfig: { caBundle?: string; service: { name: string; namespace: string; path: string; port: number } };
  namespaceSelector: Selector;
  objectSelector: Selector;
  rules: { operations: string[]; resources: string[] }[];
}

/** Kubernetes label-selector semantics. */
function selects(selector: Selector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((r) => {
    const has = r.key in labels;
    switch (r.operator) {
      case 'In':
        return has && (r.values ?? []).includes(labels[r.key]);
      case 'NotIn':
        return !has || !(r.values ?? []).includes(labels[r.key]);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
    }
    return false;
  });
}

const namespaceLabels = (name: string, extra: Record<string, string> = {}) => ({
  'kubernetes.io/metadata.name': name,
  ...extra,
});
const excludedNamespaces = (w: Webhook) =>
  w.namespaceSelector.matchExpressions?.find((r) => r.key === 'kubernetes.io/metadata.name')?.values ?? [];

test('webhook: Fail by default, 10 s, only pod CREATEs of labelled namespaces, never weft or kube-system', async (t) => {
  const objects = await defaults;
  const config = findObject(objects, 'MutatingWebhookConfiguration', 'weft-injector');
  const [w] = config.webhooks as Webhook[];
  t.is((config.webhooks as Webhook[]).length, 1);
  t.is(w.failurePolicy, 'Fail');
  t.is(w.timeoutSeconds, 10);
  t.is(w.sideEffects, 'None');
  t.deepEqual(
    w.rules.map((r) => [r.operations, r.resources]),
    [[['CREATE'], ['pods']]],
  );
  // The control plane owns caBundle; a rendered one would be reset by every helm upgrade.
  t.is(w.clientConfig.caBundle, undefined);
  t.is(w.clientConfig.service.path, WEBHOOK_PATH);
  t.is(w.clientConfig.service.namespace, RELEASE_NAMESPACE);
  const service = findObject(objects, 'Service', w.clientConfig.service.name);
  const port = (service.spec as { ports: { port: number; targetPort: string }[] }).ports.find(
    (p) => p.port === w.clientConfig.service.port,
  );
  t.is(port?.targetPort, 'webhook');

  const enabled = { 'weft.dev/inject': 'enabled' };
  t.true(selects(w.namespaceSelector, namespaceLabels('shop', enabled)));
  t.false(selects(w.namespaceSelector, namespaceLabels('shop')));
  t.false(selects(w.namespaceSelector, namespaceLabels('shop', { 'weft.dev/inject': 'disabled' })));
  // Even if someone labels them.
  for (const ns of [RELEASE_NAMESPACE, 'kube-system', 'kube-public', 'kube-node-lease'])
    t.false(selects(w.namespaceSelector, namespaceLabels(ns, enabled)), ns);

  // weft's own pods are never sent, wherever they run; an application's pod is.
  const podLabels = (containerPod(findObject(objects, 'Deployment')).metadata as { labels: Record<string, string> })
    .labels;
  t.false(selects(w.objectSelector, podLabels));
  // The Gateway proxies it provisions carry weft's managed-by label (controlplane/k8s/gateway-objects.ts).
  t.false(selects(w.objectSelector, { ...MANAGED_BY_LABELS, 'app.kubernetes.io/component': 'weft-gateway' }));
  t.true(selects(w.objectSelector, { app: 'shop' }));
});

// --- RBAC -------------------------------------------------------------------------------------------------------

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** (scope, group, resource, verb, resourceName) tuples of every Role and ClusterRole rendered. */
function grants(objects: KubeObject[]): string[] {
  const out: string[] = [];
  for (const role of objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole'))
    for (const r of role.rules as Rule[])
      for (const g of r.apiGroups)
        for (const res of r.resources)
          for (const v of r.verbs)
            for (const n of r.resourceNames ?? ['*'])
              out.push([role.kind === 'Role' ? 'namespace' : 'cluster', g || 'core', res, v, n].join(' '));
  return out.sort();
}

const allows = (g: string[], scope: string, group: string, resource: string, verb: string, name = '*') =>
  g.includes([scope, group || 'core', resource, verb, name].join(' '));

test('RBAC: no wildcards, every watched kind listable, status writable, secrets and configmaps narrowed', async (t) => {
  const objects = await defaults;
  const rules = objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole').flatMap((o) => o.rules as Rule[]);
  t.true(rules.length > 0);
  for (const r of rules) {
    t.false([...r.apiGroups, ...r.resources, ...r.verbs].includes('*'), JSON.stringify(r));
    t.false(
      r.verbs.some((v) => v === 'escalate' || v === 'bind' || v === 'impersonate'),
      JSON.stringify(r),
    );
  }
  const g = grants(objects);
  for (const k of WATCHED_KINDS)
    for (const verb of ['list', 'watch']) t.true(allows(g, 'cluster', k.group, k.plural, verb), `${verb} ${k.plural}`);
  for (const k of WATCHED_KINDS.filter((k) => k.statusIgnored))
    t.true(allows(g, 'cluster', k.group, `${k.plural}/status`, 'update'), `update ${k.plural}/status`);
  // Secrets: no get anywhere but the CA's own, in weft's namespace; no write but creating it.
  t.false(
    g.some((x) => x.startsWith('cluster core secrets ') && !/ (list|watch) /.test(x)),
    g.join('\n'),
  );
  t.true(allows(g, 'namespace', '', 'secrets', 'get', 'weft-ca'));
  t.false(g.some((x) => / secrets (update|patch|delete) \*$/.test(x)));
  // ConfigMaps: update only the root CA bundle; webhook configurations: only weft's.
  t.false(g.some((x) => / configmaps (update|patch|delete) \*$/.test(x)));
  t.false(g.some((x) => / mutatingwebhookconfigurations \w+ \*$/.test(x)));
  t.true(
    allows(g, 'cluster', 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'update', 'weft-injector'),
  );
  t.true(allows(g, 'namespace', 'coordination.k8s.io', 'leases', 'update', 'weft-controlplane'));
  t.true(allows(g, 'cluster', 'authentication.k8s.io', 'tokenreviews', 'create'));
  // Provisioned objects' ownerReferences set blockOwnerDeletion (OwnerReferencesPermissionEnforcement).
  t.true(allows(g, 'cluster', 'gateway.networking.k8s.io', 'gateways/finalizers', 'update'));
  // Bound to the control plane's ServiceAccount only.
  for (const b of objects.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding'))
    t.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'weft-controlplane', namespace: RELEASE_NAMESPACE }]);
});

test('docs/install.md lists exactly the permissions the chart grants', async (t) => {
  const doc = await readFile(join(REPO_ROOT, 'docs/install.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Permissions (RBAC)'));
  t.true(section.length > 0 && doc.includes('## Permissions (RBAC)'));
  // Table rows: | scope | API group | resources | verbs | names | why |
  const documented: string[] = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim().replace(/`/g, ''));
    if (cells.length < 7 || !/^(cluster|namespace)$/.test(cells[1])) continue;
    const [, scope, group, resources, verbs, names] = cells;
    for (const res of resources.split(/,\s*/))
      for (const v of verbs.split(/,\s*/))
        for (const n of names === '' || names === 'any' ? ['*'] : names.split(/,\s*/))
          documented.push([scope, group === '""' || group === 'core' ? 'core' : group, res, v, n].join(' '));
  }
  t.deepEqual(documented.sort(), grants(await defaults));
});

test('docs/install.md installs the Gateway API release `weft check` asks for', async (t) => {
  const doc = await readFile(join(REPO_ROOT, 'docs/install.md'), 'utf8');
  const installs = [...doc.matchAll(/gateway-api\/releases\/download\/(v[\d.]+)\/standard-install\.yaml/g)].map(
    (m) => m[1],
  );
  t.true(installs.length > 0);
  for (const v of installs) t.is(v, GATEWAY_API_VERSION);
});

// --- the control plane's Deployment -----------------------------------------------------------------------------

interface Container {
  name: string;
  args: string[];
  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { port: string } };
  readinessProbe: { httpGet: { port: string } };
}
const containerPod = (d: KubeObject) => (d.spec as { template: Record<string, unknown> }).template;
const containerOf = (d: KubeObject) => (containerPod(d).spec as { containers: Container[] }).containers[0];

/** The Deployment's container args run through `weft controlplane`'s own parser, $(VAR)s expanded as the kubelet does. */
async function controlplaneOptions(objects: KubeObject[]): Promise<ControlPlaneCommandOptions> {
  const c = containerOf(findObject(objects, 'Deployment'));
  const env: Record<string, string> = { POD_NAME: 'weft-controlplane-7d4f9c-x2x9z', POD_NAMESPACE: RELEASE_NAMESPACE };
  for (const e of c.env) t_assertDownward(e);
  const [sub, ...args] = c.args.map((a) => a.replace(/\$\((\w+)\)/g, (_, v: string) => env[v] ?? `$(${v})`));
  if (sub !== 'controlplane') throw new Error(`the first arg is ${sub}, not controlplane`);
  let parsed: ControlPlaneCommandOptions | undefined;
  const cmd = controlplaneCommand(CHART_APP_VERSION)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .action((opts: ControlPlaneCommandOptions) => {
      parsed = opts;
    });
  await cmd.parseAsync(args, { from: 'user' });
  if (!parsed) throw new Error('weft controlplane did not run');
  return parsed;
}

/** POD_NAME and POD_NAMESPACE come from the downward API (the expansion above stands in for it). */
function t_assertDownward(e: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }) {
  const want: Record<string, string> = { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace' };
  if (want[e.name] !== e.valueFrom?.fieldRef?.fieldPath) throw new Error(`env ${e.name} is not ${want[e.name]}`);
}

test('Deployment: `weft controlplane` accepts its args, and they name what the chart renders', async (t) => {
  const objects = await defaults;
  const opts = await controlplaneOptions(objects);
  const c = containerOf(findObject(objects, 'Deployment'));
  const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
  t.like(opts, {
    namespace: RELEASE_NAMESPACE,
    trustDomain: 'cluster.local',
    certTtl: 24 * 3_600_000,
    pushPort: ports.push,
    caPort: ports.ca,
    adminPort: ports.admin,
    webhookPort: ports.webhook,
    leaderElect: true,
    logLevel: 'info',
    proxyImage: `ghcr.io/weft-dev/weft:${CHART_APP_VERSION}`,
    injectSettings: '/etc/weft/inject/settings.yaml',
    // Read by runControlPlane under these names: a flag commander stores under another key would be ignored.
    caSecret: 'weft-ca',
    rootCaConfigMap: 'weft-root-ca',
    service: 'weft-controlplane',
    webhookConfiguration: 'weft-injector',
  });
  t.is(opts.otlpEndpoint, undefined);
  // Every name the control plane is given is one the chart creates or grants access to.
  findObject(objects, 'Service', opts.service);
  findObject(objects, 'MutatingWebhookConfiguration', opts.webhookConfiguration);
  const g = grants(objects);
  t.true(allows(g, 'namespace', '', 'secrets', 'get', opts.caSecret));
  t.true(allows(g, 'cluster', '', 'configmaps', 'patch', opts.rootCaConfigMap));
  t.true(
    allows(
      g,
      'cluster',
      'admissionregistration.k8s.io',
      'mutatingwebhookconfigurations',
      'update',
      opts.webhookConfiguration,
    ),
  );
  // The settings file is mounted where --inject-settings points.
  const mount = (c as unknown as { volumeMounts: { name: string; mountPath: string }[] }).volumeMounts.find((m) =>
    opts.injectSettings?.startsWith(`${m.mountPath}/`),
  );
  t.is(mount?.name, 'inject-settings');

  const varied = await controlplaneOptions(await variation);
  t.is(varied.otlpEndpoint, 'http://jaeger-collector.observability.svc:4318');
  t.is(varied.traceSampleRatio, 0.25);
  await t.throwsAsync(controlplaneOptions(await renderChart({ certTTL: '9999h' })), { message: /cert-ttl/ });
});

test('Deployment: non-root, read-only root filesystem, no capabilities, probes and ports the Service uses', async (t) => {
  const objects = await defaults;
  const d = findObject(objects, 'Deployment');
  const pod = containerPod(d).spec as { securityContext: Record<string, unknown>; serviceAccountName: string };
  const c = containerOf(d);
  t.is(pod.securityContext.runAsNonRoot, true);
  t.is(c.securityContext.runAsNonRoot, true);
  t.is(c.securityContext.readOnlyRootFilesystem, true);
  t.is(c.securityContext.allowPrivilegeEscalation, false);
  t.deepEqual(c.securityContext.capabilities?.drop, ['ALL']);
  t.is(pod.serviceAccountName, 'weft-controlplane');
  const portNames = c.ports.map((p) => p.name);
  t.true(portNames.includes(c.livenessProbe.httpGet.port));
  t.true(portNames.includes(c.readinessProbe.httpGet.port));
  const service = findObject(objects, 'Service', 'weft-controlplane');
  for (const p of (service.spec as { ports: { targetPort: string }[] }).ports) t.true(portNames.includes(p.targetPort));
  // The injected proxies' default addresses: weft-controlplane.<ns>.svc:15010 (push) and :15012 (CA).
  const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
  t.like(ports, { push: 15010, ca: 15012 });
  // The Service and the webhook select the Deployment's pods.
  const podLabels = (containerPod(d).metadata as { labels: Record<string, string> }).labels;
  t.true(selects({ matchLabels: (service.spec as { selector: Record<string, string> }).selector }, podLabels));
  const pdb = findObject(objects, 'PodDisruptionBudget');
  t.true(selects((pdb.spec as { selector: Selector }).selector, podLabels));
});

/** What the injector gets: the ConfigMap's settings.yaml merged with the flags, as `weft controlplane` does it. */
async function injectorSettings(objects: KubeObject[]) {
  const cm = findObject(objects, 'ConfigMap', 'weft-inject-settings');
  const file = parseYaml((cm.data as Record<string, string>)['settings.yaml']) as Partial<InjectSettingsInput>;
  const opts = await controlplaneOptions(objects);
  const addresses = controlPlaneAddresses({
    service: opts.service,
    namespace: opts.namespace,
    ports: { push: opts.pushPort, ca: opts.caPort },
  });
  return buildInjectSettings(CHART_APP_VERSION, opts, file, { nativeSidecar: true, addresses }, injectSettings);
}

test('the injector settings (file and flags) point proxies at the Service and carry the values', async (t) => {
  const objects = await variation;
  const settings = await injectorSettings(objects);
  t.is(settings.weftNamespace, RELEASE_NAMESPACE);
  t.is(settings.trustDomain, 'cluster.local');
  t.is(settings.image, `ghcr.io/weft-dev/weft:${CHART_APP_VERSION}`);
  t.deepEqual(settings.proxyResources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });
  t.true(settings.proxyArgs.includes('http://jaeger-collector.observability.svc:4318'));
  // The proxies reach the CA and the config push through the Service, on ports it has.
  const service = findObject(objects, 'Service', 'weft-controlplane');
  const servicePorts = (service.spec as { ports: { name: string; port: number }[] }).ports;
  const svcHost = `weft-controlplane.${RELEASE_NAMESPACE}.svc`;
  t.is(settings.caAddress, `${svcHost}:${servicePorts.find((p) => p.name === 'ca')?.port}`);
  t.is(settings.controlPlaneAddress, `${svcHost}:${servicePorts.find((p) => p.name === 'push')?.port}`);

  const custom = await injectorSettings(
    await renderChart({
      trustDomain: 'mesh.example',
      'proxy.resources': { limits: { memory: '1Gi' } },
      'proxy.image': 'registry.example/weft-proxy:1',
    }),
  );
  t.is(custom.trustDomain, 'mesh.example');
  t.is(custom.image, 'registry.example/weft-proxy:1');
  // Helm merges maps: the default requests stay unless set to null.
  t.deepEqual(custom.proxyResources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '1Gi' } });
});

test('CRDs: every file in charts/weft/crds is a valid, structural CustomResourceDefinition of weft', async (t) => {
  const files = (await readdir(join(CHART_DIR, 'crds'))).filter((f) => /\.ya?ml$/.test(f));
  t.true(files.length > 0, 'weft has CRDs');
  const rendered = (await defaults).filter((o) => o.kind === 'CustomResourceDefinition');
  t.is(rendered.length, files.length, 'helm template --include-crds renders each');
  for (const crd of rendered) {
    t.regex((crd.spec as { group: string }).group, /(^|\.)weft\.dev$/);
    t.deepEqual(await validateObject(crd), []);
  }
});

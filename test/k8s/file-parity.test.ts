// The same resources, two ways in: manifest files through the FileProvider (which materializes what a cluster
// adds), and the same objects — materialized the same way, as a cluster's controllers would have made them —
// created through the test API server's HTTP API and read back by the KubernetesProvider's informers. The API
// server adds what a real one adds (uids, generations, Service and CRD defaults, namespaces of its own), and the
// informers only see `kubernetes.io/tls` Secrets; the translator's statuses must still be identical.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { pino } from 'pino';
import { KubernetesProvider } from '../../controlplane/k8s/provider.ts';
import { FileProvider, loadFiles } from '../../controlplane/resources/files.ts';
import { materialize } from '../../controlplane/resources/materialize.ts';
import { ResourceSnapshot, resourceKey } from '../../controlplane/resources/snapshot.ts';
import type { Resource } from '../../controlplane/resources/types.ts';
import { translate } from '../../controlplane/translate/translate.ts';
import type { TranslateOptions } from '../../controlplane/translate/types.ts';
import {
  DEFAULT_SUITE_OPTIONS,
  GATEWAY_BASE,
  loadCases,
  prepareForApply,
  programmaticObjects,
  readManifest,
  translateOptions,
} from '../../conformance/suite-setup.ts';
import { applyThroughApi, startCluster } from './support.ts';

const test = anyTest.serial as TestFn;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const quiet = pino({ level: 'silent' });

/** What `kubectl apply` of these objects leaves: a later object of the same kind and key replaces an earlier one. */
function dedupe(resources: Resource[]): Resource[] {
  const m = new Map<string, Resource>();
  for (const r of resources) m.set(`${r.kind}\u0000${resourceKey(r)}`, r);
  return [...m.values()];
}

/** A conformance test's world, as suite-setup builds it (class under test, base, programmatic objects, its own). */
function conformanceWorld(name: string): Resource[] {
  const c = loadCases().find((x) => x.test === name);
  if (!c) throw new Error(`no conformance case ${name}`);
  const opts = DEFAULT_SUITE_OPTIONS;
  const out: Resource[] = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: opts.gatewayClassName },
      spec: { controllerName: opts.controllerName },
    },
  ];
  for (const rel of c.baseManifests) {
    out.push(...readManifest(rel).map((r) => prepareForApply(r, opts)));
    if (rel === GATEWAY_BASE) out.push(...programmaticObjects());
  }
  for (const rel of c.manifests) out.push(...readManifest(rel).map((r) => prepareForApply(r, opts)));
  return dedupe(out);
}

async function viaFiles(resources: Resource[]): Promise<ResourceSnapshot> {
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-parity-'));
  try {
    await writeFile(path.join(dir, 'all.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: resources }));
    const p = new FileProvider({ paths: [dir] });
    await p.start();
    const s = p.snapshot;
    await p.close();
    return s;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function viaApi(resources: Resource[]): Promise<ResourceSnapshot> {
  const c = await startCluster();
  try {
    await applyThroughApi(c, materialize(resources));
    const p = new KubernetesProvider({ client: c.client, logger: quiet });
    await p.start();
    const s = p.snapshot;
    await p.close();
    return s;
  } finally {
    await c.close();
  }
}

async function compare(t: ExecutionContext, resources: Resource[], options: TranslateOptions) {
  const [files, api] = [await viaFiles(resources), await viaApi(resources)];
  // Same objects of weft's kinds (besides the API server's own namespaces and non-TLS Secrets).
  for (const kind of ['HTTPRoute', 'GRPCRoute', 'Gateway', 'Service', 'Pod', 'EndpointSlice'] as const)
    t.deepEqual(api.list(kind).map(resourceKey), files.list(kind).map(resourceKey), kind);
  const a = translate(files, options).statuses;
  const b = translate(api, options).statuses;
  t.true(a.length > 0);
  t.deepEqual(b, a);
  return a;
}

test('seed scenario: statuses from the API equal those from the files', async (t) => {
  const loaded = await loadFiles([path.join(repoRoot, 'examples/seed')]);
  t.deepEqual(loaded.errors, []);
  const statuses = await compare(t, loaded.resources, {});
  t.true(statuses.some((s) => s.kind === 'HTTPRoute' && s.name === 'bar-route'));
});

for (const name of [
  'HTTPRouteSimpleSameNamespace',
  'HTTPRouteCrossNamespace',
  'HTTPRouteReferenceGrant',
  'HTTPRouteInvalidCrossNamespaceParentRef',
  'HTTPRouteListenerHostnameMatching',
  'HTTPRouteMatching',
  'GatewaySecretReferenceGrantSpecific',
  'GatewayInvalidTLSConfiguration',
  'GatewayWithAttachedRoutesWithPort8080',
  'MeshTrafficSplit',
  'MeshConsumerRoute',
  'MeshGRPCRouteWeight',
  'MeshPorts',
]) {
  test(`conformance ${name}: statuses from the API equal those from the files`, async (t) => {
    await compare(t, conformanceWorld(name), translateOptions(DEFAULT_SUITE_OPTIONS));
  });
}

test('a missing Service changes the statuses (the comparison can fail)', async (t) => {
  const world = conformanceWorld('HTTPRouteSimpleSameNamespace');
  const files = await viaFiles(world);
  const broken = ResourceSnapshot.from(
    files.all().filter((r) => !(r.kind === 'Service' && r.metadata.name === 'infra-backend-v1')),
  );
  const opts = translateOptions(DEFAULT_SUITE_OPTIONS);
  t.notDeepEqual(translate(broken, opts).statuses, translate(files, opts).statuses);
});

// Runs case files against worlds, as the suite does (README §3): one world per base manifest set (the gateway base
// with the programmatic Secrets, or the mesh base), started once; then for each test in order its manifests are
// applied, its status checks run (preconditions, assertions and actions in order), its traffic cases replayed, and
// its objects deleted again (the suite's cleanup). A test whose features are not all declared is skipped, and
// says which.
import { GATEWAY_FEATURES, MESH_FEATURES } from '../controlplane/translate/features.ts';
import type { Resource } from '../controlplane/resources/types.ts';
import { type CaseFile, type TrafficCase, unsupportedFeatures } from './case-file.ts';
import { deleteAction, type ObjectRef, runStatusChecks } from './status-checks.ts';
import {
  checkContext,
  DEFAULT_SUITE_OPTIONS,
  GATEWAY_BASE,
  prepareForApply,
  programmaticObjects,
  readManifest,
  type SuiteOptions,
} from './suite-setup.ts';
import { DEFAULT_TIMING, runTrafficCase, type Timing } from './traffic.ts';
import type { World } from './world.ts';

export type Outcome = 'PASS' | 'FAIL' | 'SKIP';

export interface TestResult {
  test: string;
  outcome: Outcome;
  /** FAIL: the first mismatch; SKIP: why. */
  message?: string;
  ms: number;
}

/** Starts a world holding `objects` (already prepared by the Applier). */
export type WorldFactory = (family: 'gateway' | 'mesh', objects: Resource[]) => Promise<World>;

export interface SuiteRun {
  files: CaseFile[];
  conformanceDir: string;
  startWorld: WorldFactory;
  /** The features weft declares (default: features.ts, what GatewayClass status says). */
  declared?: ReadonlySet<string>;
  suite?: Partial<SuiteOptions>;
  timing?: Timing;
  /** Cases of one test in flight at once (the suite runs a table's cases in parallel). Default 6. */
  caseConcurrency?: number;
  /** Each finished test, as it finishes. */
  onResult?: (r: TestResult) => void;
  log?: (line: string) => void;
}

export const DECLARED_FEATURES: ReadonlySet<string> = new Set<string>([...GATEWAY_FEATURES, ...MESH_FEATURES]);

const sameBase = (f: CaseFile) => f.baseManifests.join('\n');

/** Runs every file; results in file order. */
export async function runSuite(run: SuiteRun): Promise<TestResult[]> {
  const declared = run.declared ?? DECLARED_FEATURES;
  const suite: SuiteOptions = { ...DEFAULT_SUITE_OPTIONS, conformanceDir: run.conformanceDir, ...run.suite };
  const results = new Map<string, TestResult>();
  const done = (r: TestResult) => {
    results.set(r.test, r);
    run.onResult?.(r);
  };
  const groups = new Map<string, CaseFile[]>();
  for (const f of run.files) {
    const missing = unsupportedFeatures(f, declared);
    if (missing.length > 0) {
      done({ test: f.test, outcome: 'SKIP', message: `unsupported feature ${missing.join(', ')}`, ms: 0 });
      continue;
    }
    const key = sameBase(f);
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  // The worlds are independent (other pods, other Gateways): run them side by side.
  await Promise.all(
    [...groups.values()].map((files) => runGroup(run, suite, files, done).catch((e) => failAll(files, e, done))),
  );
  return run.files.map((f) => results.get(f.test)!);
}

function failAll(files: CaseFile[], e: unknown, done: (r: TestResult) => void): void {
  for (const f of files) done({ test: f.test, outcome: 'FAIL', message: `world: ${(e as Error).message}`, ms: 0 });
}

/** The objects of a manifest file as the suite's Applier applies them. */
function manifestObjects(rel: string, suite: SuiteOptions): Resource[] {
  return readManifest(rel, suite.conformanceDir).map((r) => prepareForApply(r, suite));
}

function baseObjects(f: CaseFile, suite: SuiteOptions): Resource[] {
  const out: Resource[] = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: suite.gatewayClassName },
      spec: { controllerName: suite.controllerName },
    },
  ];
  for (const rel of f.baseManifests) {
    out.push(...manifestObjects(rel, suite));
    if (rel === GATEWAY_BASE) out.push(...programmaticObjects());
  }
  return out;
}

async function runGroup(
  run: SuiteRun,
  suite: SuiteOptions,
  files: CaseFile[],
  done: (r: TestResult) => void,
): Promise<void> {
  const family = files[0].baseManifests.includes(GATEWAY_BASE) ? 'gateway' : 'mesh';
  const start = async () => {
    const started = Date.now();
    const w = await run.startWorld(family, baseObjects(files[0], suite));
    run.log?.(`${family} world (${w.kind}) started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return w;
  };
  let world = await start();
  try {
    if (family === 'gateway') await checkDeclaredFeatures(world, suite, run.declared ?? DECLARED_FEATURES, run.log);
    for (const f of files) {
      const t0 = Date.now();
      const objects = f.manifests.flatMap((rel) => manifestObjects(rel, suite));
      let message: string | undefined;
      try {
        await world.apply(objects);
        message = await runTest(world, f, suite, run);
      } catch (e) {
        message = (e as Error).message;
      }
      done({ test: f.test, outcome: message ? 'FAIL' : 'PASS', message, ms: Date.now() - t0 });
      try {
        await world.remove(objects.map(refOf));
      } catch (e) {
        // The world could not let the test go: later tests get a fresh one rather than inherit its state.
        run.log?.(`${family} world broken after ${f.test} (${(e as Error).message}); starting a new one`);
        await world.stop();
        world = await start();
      }
    }
  } finally {
    await world.stop();
  }
}

/** The runner claims what the GatewayClass says: a difference is reported, not silently trusted. */
async function checkDeclaredFeatures(
  world: World,
  suite: SuiteOptions,
  declared: ReadonlySet<string>,
  log?: (line: string) => void,
): Promise<void> {
  const gwc = await world.cluster.get({ kind: 'GatewayClass', name: suite.gatewayClassName });
  const listed = ((gwc?.status as { supportedFeatures?: { name: string }[] } | undefined)?.supportedFeatures ?? []).map(
    (f) => f.name,
  );
  const gatewayDeclared = [...declared].filter((f) => (GATEWAY_FEATURES as readonly string[]).includes(f));
  const missing = gatewayDeclared.filter((f) => !listed.includes(f));
  const extra = listed.filter((f) => !declared.has(f));
  if (missing.length > 0 || extra.length > 0)
    log?.(
      `NOTE: GatewayClass ${suite.gatewayClassName} status.supportedFeatures differs from the runner's declared features: missing ${missing.join(', ') || '-'}, extra ${extra.join(', ') || '-'}`,
    );
}

function refOf(r: Resource): ObjectRef {
  return { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name };
}

async function runTest(world: World, f: CaseFile, suite: SuiteOptions, run: SuiteRun): Promise<string | undefined> {
  const steps = await runStatusChecks(f, world.cluster, checkContext(suite), { stopAtFirstFailure: true });
  const bad = steps.find((s) => !s.ok);
  if (bad) return `status check #${bad.index} ${bad.name}${bad.subtest ? ` [${bad.subtest}]` : ''}: ${bad.message}`;
  return runCases(world, f.cases, run);
}

/** Cases run side by side unless one of them changes the world or measures a distribution. */
async function runCases(world: World, cases: TrafficCase[], run: SuiteRun): Promise<string | undefined> {
  const timing = run.timing ?? DEFAULT_TIMING;
  const serial = cases.some(
    (c) => c.precededBy || c.weights || c.repeatCheck || c.percentageMirrorCheck || c.mirroredTo,
  );
  const failures: (string | undefined)[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      const c = cases[i];
      if (c.precededBy) await deleteAction(world.cluster, c.precededBy);
      const r = await runTrafficCase(world, c, timing).catch((e: Error) => e.message);
      if (r) failures[i] = `${c.name}: ${r}`;
    }
  };
  const width = serial ? 1 : Math.max(1, run.caseConcurrency ?? 6);
  await Promise.all(Array.from({ length: Math.min(width, cases.length) }, worker));
  return failures.find((x) => x !== undefined);
}

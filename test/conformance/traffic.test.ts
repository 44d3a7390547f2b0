// The conformance runner's fast subset: a handful of representative traffic tests of ../shared/conformance replayed
// by conformance/suite.ts against weft local on loopback (the gateway base and the mesh base, started side by side),
// plus a copy of one case with a wrong expected backend, which must fail. The whole suite is `npm run conformance`.
// Pod templates carry their own run label and Gateway ports below 1024 move up by 20000, so nothing collides with
// a runner or another test started at the same time (so no redirect test here: a Location keeps the moved port).
import anyTest, { type TestFn } from 'ava';
import { type CaseFile, loadCaseFiles } from '../../conformance/case-file.ts';
import { LocalWorld } from '../../conformance/local-world.ts';
import { CONFORMANCE_DIR, DEFAULT_SUITE_OPTIONS } from '../../conformance/suite-setup.ts';
import { runSuite, type TestResult } from '../../conformance/suite.ts';
import type { World } from '../../conformance/world.ts';

const SUBSET = [
  'HTTPRouteSimpleSameNamespace',
  'HTTPRouteMatching',
  'HTTPRouteRequestHeaderModifier',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteWeight',
  'MeshHTTPRouteMatching',
  'MeshTrafficSplit',
  'MeshHTTPRouteRequestHeaderModifier',
];

interface Ctx {
  results: TestResult[];
  worlds: LocalWorld[];
}
const test = anyTest.serial as TestFn<Ctx>;

const all = loadCaseFiles(CONFORMANCE_DIR);
const files = SUBSET.map((name) => all.find((f) => f.test === name)!);
const wrong: CaseFile = structuredClone(files[0]);
wrong.test = 'HTTPRouteSimpleSameNamespaceWrongBackend';
wrong.cases[0].backend = 'infra-backend-v2';

test.before(async (t) => {
  const worlds: LocalWorld[] = [];
  const results = await runSuite({
    files: [...files, wrong],
    conformanceDir: CONFORMANCE_DIR,
    // A mismatch is final after 5 s here: the wrong-backend copy would otherwise wait the suite's 30 s.
    timing: {
      maxTimeToConsistencyMs: 5000,
      requiredConsecutiveSuccesses: 3,
      pollIntervalMs: 100,
      requestTimeoutMs: 10_000,
    },
    startWorld: async (_family, objects): Promise<World> => {
      const w = await LocalWorld.start(
        { suite: DEFAULT_SUITE_OPTIONS, portOffset: 20_000, runLabel: 'subset', log: (l) => t.log(l) },
        objects,
      );
      worlds.push(w);
      // Kept running for the identity check below; stopped in after.always.
      return {
        kind: w.kind,
        cluster: w.cluster,
        apply: (o) => w.apply(o),
        remove: (r) => w.remove(r),
        sync: () => w.sync(),
        gatewayEndpoint: (a, p) => w.gatewayEndpoint(a, p),
        fromPod: (ns, pod, req) => w.fromPod(ns, pod, req),
        fromPodCount: (ns, pod, req, n, c) => w.fromPodCount(ns, pod, req, n, c),
        logs: (ns, pod, c) => w.logs(ns, pod, c),
        stop: async () => {},
      };
    },
    log: (l) => t.log(l),
  });
  t.context = { results, worlds };
});

test.after.always(async (t) => {
  await Promise.all((t.context.worlds ?? []).map((w) => w.stop()));
});

for (const name of SUBSET) {
  test(`${name} passes`, (t) => {
    const r = t.context.results.find((x) => x.test === name);
    t.is(r?.outcome, 'PASS', r?.message);
  });
}

test('a case expecting another backend fails, naming the mismatch', (t) => {
  const r = t.context.results.find((x) => x.test === wrong.test);
  t.is(r?.outcome, 'FAIL');
  t.regex(r?.message ?? '', /expected pod name to start with infra-backend-v2, got infra-backend-v1-/);
});

test('mesh requests go sidecar to sidecar over mTLS: the callee sees the caller pod identity', async (t) => {
  const mesh = t.context.worlds.find((w) =>
    w.mesh.state().pods.some((p) => p.namespace === 'gateway-conformance-mesh'),
  );
  if (!mesh) return t.fail('no mesh world');
  const client = mesh.mesh
    .state()
    .pods.find((p) => p.namespace === 'gateway-conformance-mesh' && p.name.startsWith('echo-v1-'))!;
  const r = await mesh.fromPod(client.namespace, client.name, {
    url: 'http://echo-v2/',
    method: 'GET',
    headers: [],
    timeoutMs: 10_000,
  });
  t.is(r.status, 200);
  t.regex(
    r.body,
    /^RequestHeader=x-weft-peer-identity:spiffe:\/\/cluster\.local\/ns\/gateway-conformance-mesh\/sa\/default$/im,
  );
});

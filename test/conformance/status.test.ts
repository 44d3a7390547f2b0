// The translator's status against the Gateway API conformance suite's status expectations: every case file of
// ../shared/conformance with statusChecks is replayed (actions included) against a SimulatedCluster, whose reads
// are the translator's status merged as the status writer merges it. Every case file's manifests must also
// translate, and every proxy config produced must pass the proxy's own validator. Tests that need a feature weft
// does not claim run too; only when their checks genuinely fail are they skipped, named "SKIP: unsupported feature".
import test from 'ava';
import { GATEWAY_FEATURES, MESH_FEATURES } from '../../controlplane/translate/features.ts';
import type { TranslateResult } from '../../controlplane/translate/types.ts';
import { validateProxyConfig } from '../../sidecar/config/validate.ts';
import {
  ACTIONS,
  awaitCheck,
  CHECK_NAMES,
  type CheckContext,
  type KubeObject,
  newCheckContext,
  type ObjectRef,
  runStatusChecks,
  type StatusCheck,
  type StatusSource,
  type StepResult,
} from '../../conformance/status-checks.ts';
import {
  applyMergePatch,
  type ConformanceCase,
  checkContext,
  DEFAULT_SUITE_OPTIONS,
  GATEWAY_BASE,
  loadCases,
  SimulatedCluster,
  setUpCase,
} from '../../conformance/suite-setup.ts';

const CLAIMED = new Set<string>([...GATEWAY_FEATURES, ...MESH_FEATURES]);
const cases = loadCases();

const INFRA = 'gateway-conformance-infra';
const any = '(any)';
const httpRouteKind = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }];

/**
 * Gateway tests whose case files are kept for review (README: "some cases … are run only at review"), transcribed
 * here from their Go source at the vectors' commit so the translator is held to them too.
 */
const TRANSCRIBED: ConformanceCase[] = [
  {
    test: 'GatewayWithAttachedRoutes',
    description: 'A Gateway in the gateway-conformance-infra namespace should be attached to routes.',
    profile: 'GATEWAY-HTTP',
    features: ['Gateway', 'HTTPRoute'],
    manifests: ['gateway/gateway-with-attached-routes.yaml'],
    baseManifests: [GATEWAY_BASE],
    kind: 'status',
    file: 'conformance/tests/gateway-with-attached-routes.go',
    statusChecks: [
      {
        phase: 'assertion',
        check: 'GatewayStatusMustHaveListeners',
        gateway: { name: 'gateway-with-one-attached-route', namespace: INFRA },
        listeners: [
          {
            name: 'http',
            supportedKinds: httpRouteKind,
            conditions: [
              { type: 'Accepted', status: 'True', reason: any },
              { type: 'ResolvedRefs', status: 'True', reason: any },
            ],
            attachedRoutes: 1,
          },
        ],
      },
      {
        phase: 'assertion',
        check: 'GatewayStatusMustHaveListeners',
        gateway: { name: 'gateway-with-two-attached-routes', namespace: INFRA },
        listeners: [
          {
            name: 'http',
            supportedKinds: httpRouteKind,
            conditions: [
              { type: 'Accepted', status: 'True', reason: any },
              { type: 'ResolvedRefs', status: 'True', reason: any },
            ],
            attachedRoutes: 2,
          },
        ],
      },
      {
        phase: 'assertion',
        check: 'HTTPRouteMustHaveCondition',
        route: { name: 'http-route-not-accepted', namespace: INFRA },
        parentGateway: { name: 'gateway-with-two-attached-routes', namespace: INFRA },
        condition: { type: 'Accepted', status: 'False', reason: 'NoMatchingListenerHostname' },
      },
      {
        phase: 'assertion',
        check: 'GatewayStatusMustHaveListeners',
        gateway: { name: 'unresolved-gateway-with-one-attached-unresolved-route', namespace: INFRA },
        listeners: [
          {
            name: 'tls',
            supportedKinds: httpRouteKind,
            conditions: [
              { type: 'Programmed', status: 'False', reason: any },
              { type: 'ResolvedRefs', status: 'False', reason: any },
            ],
            attachedRoutes: 1,
          },
        ],
      },
      {
        phase: 'assertion',
        check: 'HTTPRouteMustHaveCondition',
        route: { name: 'http-route-4', namespace: INFRA },
        parentGateway: { name: 'unresolved-gateway-with-one-attached-unresolved-route', namespace: INFRA },
        condition: { type: 'ResolvedRefs', status: 'False', reason: any },
      },
    ],
  },
  {
    test: 'GatewaySecretInvalidReferenceGrant',
    description: 'A certificateRef to a Secret in another namespace with ReferenceGrants that do not grant it',
    profile: 'GATEWAY-HTTP',
    features: ['Gateway', 'ReferenceGrant'],
    manifests: ['gateway/gateway-secret-invalid-reference-grant.yaml'],
    baseManifests: [GATEWAY_BASE],
    kind: 'status',
    file: 'conformance/tests/gateway-secret-invalid-reference-grant.go',
    statusChecks: [
      {
        phase: 'assertion',
        check: 'GatewayStatusMustHaveListeners',
        gateway: { name: 'gateway-secret-invalid-reference-grant', namespace: INFRA },
        listeners: [
          {
            name: 'https',
            supportedKinds: httpRouteKind,
            conditions: [{ type: 'ResolvedRefs', status: 'False', reason: 'RefNotPermitted' }],
            attachedRoutes: 0,
          },
        ],
      },
    ],
  },
  {
    test: 'GatewaySecretReferenceGrantAllInNamespace',
    description: 'A certificateRef to a Secret in another namespace granted for all Secrets of that namespace',
    profile: 'GATEWAY-HTTP',
    features: ['Gateway', 'ReferenceGrant'],
    manifests: ['gateway/gateway-secret-reference-grant-all-in-namespace.yaml'],
    baseManifests: [GATEWAY_BASE],
    kind: 'status',
    file: 'conformance/tests/gateway-secret-reference-grant-all-in-namespace.go',
    statusChecks: [
      {
        phase: 'assertion',
        check: 'GatewayStatusMustHaveListeners',
        gateway: { name: 'gateway-secret-reference-grant-all-in-namespace', namespace: INFRA },
        listeners: [
          {
            name: 'https',
            supportedKinds: httpRouteKind,
            conditions: [
              { type: 'Programmed', status: 'True', reason: 'Programmed' },
              { type: 'ResolvedRefs', status: 'True', reason: any },
            ],
            attachedRoutes: 0,
          },
        ],
      },
    ],
  },
  {
    test: 'HTTPRouteInvalidParentRefSectionNameNotMatchingPort',
    description: 'A parentRef whose sectionName names a listener on another port is not accepted (NoMatchingParent)',
    profile: 'GATEWAY-HTTP',
    features: ['Gateway', 'HTTPRoute', 'HTTPRouteParentRefPort'],
    manifests: ['gateway/httproute-invalid-parentref-section-name-not-matching-port.yaml'],
    baseManifests: [GATEWAY_BASE],
    kind: 'status',
    file: 'conformance/tests/httproute-invalid-parentref-section-name-not-matching-port.go',
    statusChecks: [
      {
        phase: 'assertion',
        check: 'HTTPRouteMustHaveCondition',
        route: { name: 'httproute-listener-section-name-not-matching-port', namespace: INFRA },
        parentGateway: { name: 'gateway-with-one-not-matching-port-and-section-name-route', namespace: INFRA },
        condition: { type: 'Accepted', status: 'False', reason: 'NoMatchingParent' },
      },
      {
        phase: 'assertion',
        check: 'HTTPRouteMustHaveNoAcceptedParents',
        route: { name: 'httproute-listener-section-name-not-matching-port', namespace: INFRA },
      },
      {
        phase: 'assertion',
        check: 'GatewayMustHaveZeroRoutes',
        gateway: { name: 'gateway-with-one-not-matching-port-and-section-name-route', namespace: INFRA },
      },
    ],
  },
  {
    test: 'GatewayOptionalAddressValue',
    description: 'Check Gateway Support for GatewayAddressEmpty feature',
    profile: 'GATEWAY-HTTP',
    features: ['Gateway', 'GatewayAddressEmpty'],
    provisional: true,
    manifests: ['gateway/gateway-optional-address-value.yaml'],
    baseManifests: [GATEWAY_BASE],
    kind: 'status',
    file: 'conformance/tests/gateway-optional-address-value.go',
    statusChecks: [
      { phase: 'assertion', check: 'NamespacesMustBeReady', namespaces: [INFRA] },
      {
        phase: 'assertion',
        check: 'GatewayMustHaveLatestConditions',
        gateway: { name: 'gateway-without-address-value', namespace: INFRA },
      },
      {
        phase: 'assertion',
        check: 'WaitForGatewayAddress',
        gateway: { name: 'gateway-without-address-value', namespace: INFRA },
      },
    ],
  },
];

function configProblems(result: TranslateResult): string[] {
  const out: string[] = [];
  for (const [id, config] of result.proxies) {
    const v = validateProxyConfig(config);
    if (!v.ok) for (const issue of v.issues) out.push(`${id} ${issue.path}: ${issue.reason}`);
  }
  return out;
}

interface CaseRun {
  steps: StepResult[];
  /** Proxy configs that fail validation, initially and after each action. */
  configProblems: string[];
}

async function runCase(c: ConformanceCase): Promise<CaseRun> {
  const cluster = setUpCase(c);
  const problems = configProblems(cluster.translation());
  const steps = await runStatusChecks(c, cluster, checkContext(DEFAULT_SUITE_OPTIONS), {
    afterAction: (_step, i) => {
      for (const p of configProblems(cluster.translation())) problems.push(`after step #${i}: ${p}`);
    },
  });
  return { steps, configProblems: problems };
}

function describeFailures(steps: StepResult[]): string[] {
  return steps
    .filter((s) => !s.ok)
    .map((s) => `#${s.index} ${s.name}${s.subtest ? ` [${s.subtest}]` : ''}: ${s.message}`);
}

// ---------------------------------------------------------------- unclaimed features, decided up front

const statusCases = [...cases.filter((c) => (c.statusChecks ?? []).length > 0), ...TRANSCRIBED];
const unclaimedOf = (c: ConformanceCase) => c.features.filter((f) => !CLAIMED.has(f));

// A test of an unclaimed feature runs when its status expectations hold anyway; whether they do is decided before
// any test is declared (ava wants every declaration in the module's first, synchronous turn after this).
const unclaimedFailures = new Map<string, string[]>();
for (const c of statusCases)
  if (unclaimedOf(c).length > 0) unclaimedFailures.set(c.test, describeFailures((await runCase(c)).steps));

// ---------------------------------------------------------------- every case file translates

for (const c of cases) {
  test(`translate: ${c.test}`, (t) => {
    const cluster = setUpCase(c);
    const result = cluster.translation();
    // Gateway tests bring Gateways of weft's class (an edge config each); mesh tests bring meshed pods (sidecars).
    t.true(result.proxies.size > 0, 'no proxy config at all');
    t.deepEqual(configProblems(result), [], 'proxy configs that fail validateProxyConfig');
  });
}

// ---------------------------------------------------------------- status checks

for (const c of statusCases) {
  const unclaimed = unclaimedOf(c);
  const failures = unclaimedFailures.get(c.test) ?? [];
  if (failures.length > 0) {
    test.skip(`SKIP: unsupported feature ${unclaimed.join(', ')} (${c.test}: ${failures.length} failing checks)`, () => {});
    continue;
  }
  const title = unclaimed.length > 0 ? `status: ${c.test} (unclaimed ${unclaimed.join(', ')})` : `status: ${c.test}`;
  test(title, async (t) => {
    const run = await runCase(c);
    t.is(run.steps.length, c.statusChecks!.length);
    t.deepEqual(describeFailures(run.steps), [], `${c.test}: status checks that fail`);
    t.deepEqual(run.configProblems, [], `${c.test}: proxy configs that fail validation`);
  });
}

// ---------------------------------------------------------------- the harness itself

test('every check and action the case files use is implemented', (t) => {
  const missing: string[] = [];
  for (const c of [...cases, ...TRANSCRIBED])
    for (const [i, step] of (c.statusChecks ?? []).entries()) {
      if (step.action === 'patch' && !ACTIONS[`${c.test}#${i}`]) missing.push(`${c.test}#${i} action ${step.patch}`);
      if (step.check && !(CHECK_NAMES as readonly string[]).includes(step.check))
        missing.push(`${c.test}#${i} ${step.check}`);
    }
  t.deepEqual(missing, []);
});

test('a passing case fails when the controller under test is another one', async (t) => {
  const c = cases.find((x) => x.test === 'HTTPRouteSimpleSameNamespace')!;
  const cluster = setUpCase(c);
  const steps = await runStatusChecks(c, cluster, newCheckContext({ controllerName: 'example.com/other' }));
  t.false(steps[0].ok);
  t.regex(steps[0].message, /no parent matches \{example\.com\/other /);
});

/** A StatusSource over fixed objects; `settled` unless told otherwise. */
function fakeSource(objects: KubeObject[], settled = true): StatusSource {
  const key = (kind: string, ns: string | undefined, name: string) => `${kind} ${ns ?? ''}/${name}`;
  const byKey = new Map(objects.map((o) => [key(o.kind, o.metadata.namespace, o.metadata.name), o]));
  return {
    settled,
    get: (ref: ObjectRef) => byKey.get(key(ref.kind, ref.namespace, ref.name)),
    list: (kind: string, ns: string) => objects.filter((o) => o.kind === kind && o.metadata.namespace === ns),
  };
}

const ctx = (): CheckContext => newCheckContext({ controllerName: 'weft.dev/gateway-controller' });

function gateway(status: unknown, generation = 2, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { kind: 'Gateway', metadata: { name: 'gw', namespace: 'ns', generation, ...extra }, spec: {}, status };
}

const accepted = (gen: number) => ({ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: gen });
const programmed = (gen: number) => ({
  type: 'Programmed',
  status: 'True',
  reason: 'Programmed',
  observedGeneration: gen,
});

test('latest-generation checks fail on a stale condition and say which', async (t) => {
  const check: StatusCheck = {
    phase: 'assertion',
    check: 'GatewayMustHaveLatestConditions',
    gateway: { name: 'gw', namespace: 'ns' },
  };
  const stale = await awaitCheck(check, fakeSource([gateway({ conditions: [accepted(2), programmed(1)] })]), ctx());
  t.false(stale.ok);
  t.regex(stale.message, /stale: Programmed \(generation 1\)/);
  t.true((await awaitCheck(check, fakeSource([gateway({ conditions: [accepted(2), programmed(2)] })]), ctx())).ok);
});

test('GatewayAndHTTPRoutesMustBeAccepted: address, parents (namespace may be nil in the same namespace), listeners', async (t) => {
  const check: StatusCheck = {
    phase: 'precondition',
    check: 'GatewayAndHTTPRoutesMustBeAccepted',
    gateway: { name: 'gw', namespace: 'ns' },
    routes: [{ name: 'r', namespace: 'ns' }],
  };
  const listener = (conds: object[]) => ({
    name: 'http',
    attachedRoutes: 1,
    supportedKinds: httpRouteKind,
    conditions: conds,
  });
  const goodListener = listener([
    { type: 'Accepted', status: 'True', reason: 'Accepted' },
    { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs' },
    { type: 'Programmed', status: 'True', reason: 'Programmed' },
  ]);
  const gw = (addresses: unknown[], listeners = [goodListener]) =>
    gateway({ addresses, conditions: [accepted(2), programmed(2)], listeners });
  const route = (parentRef: object) => ({
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'ns', generation: 1 },
    status: { parents: [{ parentRef, controllerName: 'weft.dev/gateway-controller', conditions: [accepted(1)] }] },
  });
  const ref = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' };
  const addr = [{ type: 'IPAddress', value: '10.0.0.1' }];

  t.true((await awaitCheck(check, fakeSource([gw(addr), route(ref)]), ctx())).ok);
  const untyped = await awaitCheck(check, fakeSource([gw([{ value: '10.0.0.1' }]), route(ref)]), ctx());
  t.regex(untyped.message, /no status.addresses entry with a type/);
  const noGroup = await awaitCheck(check, fakeSource([gw(addr), route({ kind: 'Gateway', name: 'gw' })]), ctx());
  t.regex(noGroup.message, /group \(nil\)/);
  const otherNs = await awaitCheck(check, fakeSource([gw(addr), route({ ...ref, namespace: 'other' })]), ctx());
  t.regex(otherNs.message, /namespace other/);
  const badListener = listener([
    { type: 'Accepted', status: 'True', reason: 'Accepted' },
    { type: 'ResolvedRefs', status: 'False', reason: 'InvalidCertificateRef' },
  ]);
  const r = await awaitCheck(check, fakeSource([gw(addr, [badListener]), route(ref)]), ctx());
  t.regex(r.message, /listener http: no condition ResolvedRefs=True/);
});

test('GatewayStatusMustHaveListeners compares count, supportedKinds, attachedRoutes and conditions', async (t) => {
  const expect = (supportedKinds: { kind: string }[], attachedRoutes: number): StatusCheck => ({
    phase: 'assertion',
    check: 'GatewayStatusMustHaveListeners',
    gateway: { name: 'gw', namespace: 'ns' },
    listeners: [
      { name: 'http', supportedKinds, attachedRoutes, conditions: [{ type: 'Accepted', status: 'True', reason: any }] },
    ],
  });
  const src = fakeSource([
    gateway({
      conditions: [accepted(2)],
      listeners: [{ name: 'http', supportedKinds: httpRouteKind, attachedRoutes: 2, conditions: [accepted(2)] }],
    }),
  ]);
  t.true((await awaitCheck(expect([{ kind: 'HTTPRoute' }], 2), src, ctx())).ok);
  t.regex((await awaitCheck(expect([], 2), src, ctx())).message, /expected no supportedKinds/);
  t.regex(
    (await awaitCheck(expect([{ kind: 'GRPCRoute' }], 2), src, ctx())).message,
    /lacks gateway.networking.k8s.io\/GRPCRoute/,
  );
  t.regex(
    (await awaitCheck(expect([{ kind: 'HTTPRoute' }], 1), src, ctx())).message,
    /expected attachedRoutes 1, got 2/,
  );
});

test('HTTPRouteMustHaveNoAcceptedParents: empty twice, or one parent Accepted=False', async (t) => {
  const check: StatusCheck = {
    phase: 'assertion',
    check: 'HTTPRouteMustHaveNoAcceptedParents',
    route: { name: 'r', namespace: 'ns' },
  };
  const route = (parents: unknown[]): KubeObject => ({
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'ns', generation: 1 },
    status: { parents },
  });
  const parent = (status: string) => ({
    parentRef: { name: 'gw' },
    controllerName: 'x',
    conditions: [{ type: 'Accepted', status, reason: 'R', observedGeneration: 1 }],
  });
  t.true((await awaitCheck(check, fakeSource([route([])]), ctx())).ok);
  t.true((await awaitCheck(check, fakeSource([route([parent('False')])]), ctx())).ok);
  t.regex((await awaitCheck(check, fakeSource([route([parent('True')])]), ctx())).message, /not Accepted=False/);
  t.regex((await awaitCheck(check, fakeSource([route([parent('False'), parent('False')])]), ctx())).message, /got 2/);
});

test('NamespacesMustBeReady ignores Gateways annotated for skipping and needs every Pod Ready', async (t) => {
  const check: StatusCheck = { phase: 'assertion', check: 'NamespacesMustBeReady', namespaces: ['ns'] };
  const pod = (ready: string): KubeObject => ({
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'ns' },
    status: { conditions: [{ type: 'Ready', status: ready }] },
  });
  const skipped = gateway({ conditions: [] }, 2, { annotations: { 'gateway-api/skip-this-for-readiness': 'true' } });
  t.true((await awaitCheck(check, fakeSource([skipped, pod('True')]), ctx())).ok);
  t.regex((await awaitCheck(check, fakeSource([skipped, pod('False')]), ctx())).message, /Pod ns\/p is not Ready/);
  const notProgrammed = gateway({ conditions: [accepted(2)] });
  t.regex((await awaitCheck(check, fakeSource([notProgrammed, pod('True')]), ctx())).message, /not Programmed=True/);
  t.regex((await awaitCheck(check, fakeSource([]), ctx())).message, /no pods in namespace ns/);
});

test('against a source that is not settled, a check polls until the status converges', async (t) => {
  let reads = 0;
  const source: StatusSource = {
    get: () => gateway({ conditions: [accepted(++reads >= 3 ? 2 : 1)] }),
    list: () => [],
  };
  const check: StatusCheck = {
    phase: 'assertion',
    check: 'GatewayMustHaveLatestConditions',
    gateway: { name: 'gw', namespace: 'ns' },
  };
  const r = await awaitCheck(check, source, ctx(), { timeouts: { DefaultPollInterval: 1 } });
  t.true(r.ok, r.message);
  t.is(reads, 3);
  const never = await awaitCheck(check, { get: () => gateway({ conditions: [accepted(1)] }), list: () => [] }, ctx(), {
    timeouts: { DefaultPollInterval: 1, LatestObservedGenerationSet: 20 },
  });
  t.regex(
    never.message,
    /^timed out after 0.02s waiting until Gateway ns\/gw conditions at the latest observedGeneration/,
  );
});

test('SimulatedCluster: apply keeps generation for identical content, merge patches bump it on spec changes only', (t) => {
  const cluster = new SimulatedCluster(DEFAULT_SUITE_OPTIONS);
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } } as const;
  cluster.apply(ns);
  const gw = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'ns' },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  } as const;
  const ref = { kind: 'Gateway', namespace: 'ns', name: 'gw' };
  cluster.apply(structuredClone(gw) as never);
  cluster.apply(structuredClone(gw) as never);
  t.is(cluster.get(ref)?.metadata.generation, 1);
  cluster.mergePatch(ref, { metadata: { labels: { a: 'b' } } });
  t.is(cluster.get(ref)?.metadata.generation, 1);
  cluster.mergePatch(ref, { spec: { listeners: [] } });
  t.is(cluster.get(ref)?.metadata.generation, 2);
  t.deepEqual(applyMergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { b: { c: null, x: 1 }, e: [2] }), {
    a: 1,
    b: { d: 3, x: 1 },
    e: [2],
  });
  t.is(cluster.resources()[0].metadata.creationTimestamp, '2026-01-01T00:00:00Z');
  t.is(cluster.resources()[1].metadata.creationTimestamp, '2026-01-01T00:00:01Z');
});

test('an IPAddress spec address without a value is assigned one (GatewaySpecAddress.value), not refused', async (t) => {
  // The suite's Applier drops this address before applying (apply.go rewrites spec.addresses whenever it is set),
  // so GatewayOptionalAddressValue never shows it to an implementation; put it back the way a user would write it.
  const c = TRANSCRIBED.find((x) => x.test === 'GatewayOptionalAddressValue')!;
  const cluster = setUpCase(c);
  const gw = { name: 'gateway-without-address-value', namespace: INFRA };
  cluster.mergePatch({ kind: 'Gateway', ...gw }, { spec: { addresses: [{ type: 'IPAddress', value: '' }] } });
  const steps: StatusCheck[] = [
    {
      phase: 'assertion',
      check: 'GatewayMustHaveCondition',
      gateway: gw,
      condition: { type: 'Accepted', status: 'True', reason: 'Accepted' },
    },
    {
      phase: 'assertion',
      check: 'GatewayMustHaveCondition',
      gateway: gw,
      condition: { type: 'Programmed', status: 'True', reason: 'Programmed' },
    },
    { phase: 'assertion', check: 'WaitForGatewayAddress', gateway: gw },
  ];
  for (const step of steps) {
    const r = await awaitCheck(step, cluster, ctx());
    t.true(r.ok, r.message);
  }
  const status = cluster.get({ kind: 'Gateway', ...gw })?.status as { addresses: { type: string; value: string }[] };
  t.is(status.addresses.length, 1);
  t.regex(status.addresses[0].value, /^127\.30\./); // the provisioned Service's load-balancer address
});

test('HTTPS listeners with overlapping hostnames on one port carry OverlappingTLSConfig (and only they)', (t) => {
  // The base Gateway same-namespace-with-https-listener has HTTPS listeners on 443 without hostname, for
  // second-example.org and for *.wildcard.org (both overlap the first), and an HTTP one; GEP-3567: "This condition MUST be set on all Listeners with
  // overlapping TLS config" and, being negative-polarity, "MUST NOT be set when it is False".
  const cluster = setUpCase(cases.find((x) => x.test === 'HTTPRouteHTTPSListenerDetectMisdirectedRequests')!);
  const gw = cluster.get({ kind: 'Gateway', namespace: INFRA, name: 'same-namespace-with-https-listener' })!;
  type ListenerStatus = { name: string; conditions: { type: string; status: string; reason: string }[] };
  const listeners = (gw.status as { listeners: ListenerStatus[] }).listeners;
  const spec = (gw.spec as { listeners: { name: string; protocol: string; port: number }[] }).listeners;
  const overlapping = (name: string) =>
    listeners.find((l) => l.name === name)!.conditions.find((c) => c.type === 'OverlappingTLSConfig');
  const https = spec.filter((l) => l.protocol === 'HTTPS' && l.port === 443).map((l) => l.name);
  t.true(https.length >= 2);
  for (const name of https) t.like(overlapping(name), { status: 'True', reason: 'OverlappingHostnames' }, name);
  for (const l of spec.filter((x) => x.protocol !== 'HTTPS')) t.is(overlapping(l.name), undefined, l.name);
});

// The Gateway API conformance suite's status checks (README §7 of ../shared/conformance, read from
// conformance/utils/kubernetes/helpers.go), as a library. Checks read objects through a StatusSource, so the
// same code judges the translator's output in-process (conformance/suite-setup.ts) and a live API server
// (the conformance runner). Every check is one or more polled stages with the suite's own timeouts; a source that
// is `settled` (nothing changes it but our own writes) is observed without waiting.

import { GATEWAY_GROUP, type ParentReference } from '../controlplane/resources/types.ts';

/** Gateways the suite leaves out of NamespacesMustBeReady (helpers.go GatewayExcludedFromReadinessChecks). */
export const SKIP_READINESS_ANNOTATION = 'gateway-api/skip-this-for-readiness';
/** A condition `reason` of this value matches any reason. */
export const ANY_REASON = '(any)';
/** Case files write the controller under test like this; it stands for `CheckContext.controllerName`. */
export const CONTROLLER_PLACEHOLDER = '<implementation controllerName>';

export type MaybePromise<T> = T | Promise<T>;

export interface NamespacedName {
  name: string;
  namespace: string;
}

export interface ObjectRef {
  kind: string;
  /** Absent for cluster-scoped kinds. */
  namespace?: string;
  name: string;
}

export interface KubeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export interface KubeObject {
  apiVersion?: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: unknown;
  status?: unknown;
  [field: string]: unknown;
}

/** Where checks read objects: whole objects, status as the status writers left it. */
export interface StatusSource {
  get(ref: ObjectRef): MaybePromise<KubeObject | undefined>;
  /** Objects of a kind in one namespace. */
  list(kind: string, namespace: string): MaybePromise<KubeObject[]>;
  /** True when only writes through this interface change what it returns: checks then never wait. */
  readonly settled?: boolean;
}

/** How actions change the cluster. `mergePatch` is an RFC 7386 JSON merge patch, as the suite's client.MergeFrom. */
export interface ClusterWriter {
  mergePatch(ref: ObjectRef, patch: Record<string, unknown>): MaybePromise<void>;
  delete(ref: ObjectRef): MaybePromise<void>;
}

export type ClusterAccess = StatusSource & ClusterWriter;

export interface GatewayAddress {
  type?: string;
  value: string;
}

export interface CheckContext {
  /** The controllerName of the GatewayClass under test. */
  controllerName: string;
  /** The suite's `--usable-address` / `--unusable-address` pools (GatewayStaticAddresses). */
  usableAddresses: GatewayAddress[];
  unusableAddresses: GatewayAddress[];
  /** `metadata.generation` of each object just before the last action on it, by `refKey`. */
  generationsBefore: Map<string, number>;
}

export function newCheckContext(init: Partial<CheckContext> & { controllerName: string }): CheckContext {
  return { usableAddresses: [], unusableAddresses: [], generationsBefore: new Map(), ...init };
}

// ---------------------------------------------------------------- case file shapes

export interface ConditionExpectation {
  type: string;
  status: string;
  reason: string;
}

export interface ListenerExpectation {
  name: string;
  supportedKinds: { group?: string; kind: string }[];
  conditions: ConditionExpectation[];
  attachedRoutes: number;
}

export interface ParentExpectation {
  parentRef: { group?: string; kind?: string; namespace?: string; name: string; sectionName?: string };
  controllerName: string;
  conditions: ConditionExpectation[];
}

/** One entry of a case file's `statusChecks`. */
export interface StatusCheck {
  phase: 'precondition' | 'assertion' | 'action';
  check?: string;
  action?: 'patch' | 'delete';
  subtest?: string;
  helper?: string;
  note?: string;
  expect?: string;
  patch?: string;
  gateway?: NamespacedName;
  gatewayClass?: string;
  routes?: NamespacedName[];
  route?: NamespacedName;
  parentGateway?: NamespacedName;
  /** Listener names (GatewayAndHTTPRoutesMustBeAccepted) or listener expectations (GatewayStatusMustHaveListeners). */
  listeners?: string[] | ListenerExpectation[];
  listener?: string;
  condition?: ConditionExpectation;
  conditions?: ConditionExpectation[];
  namespaces?: string[];
  parents?: ParentExpectation[];
  namespaceRequired?: boolean;
  resource?: { kind: string; namespace?: string; name?: string; names?: string[] };
}

export interface CheckResult {
  ok: boolean;
  message: string;
}

export interface StepResult extends CheckResult {
  index: number;
  phase: StatusCheck['phase'];
  /** The check name, or `action:patch` / `action:delete`. */
  name: string;
  subtest?: string;
}

// ---------------------------------------------------------------- status views

interface ListenerStatusView {
  name: string;
  supportedKinds?: { group?: string; kind: string }[];
  attachedRoutes?: number;
  conditions?: KubeCondition[];
}

interface GatewayStatusView {
  addresses?: GatewayAddress[];
  conditions?: KubeCondition[];
  listeners?: ListenerStatusView[];
}

interface RouteParentStatusView {
  parentRef: ParentReference;
  controllerName: string;
  conditions?: KubeCondition[];
}

function statusOf<T>(obj: KubeObject): Partial<T> {
  return (obj.status ?? {}) as Partial<T>;
}

function conditionsOf(obj: KubeObject): KubeCondition[] {
  return statusOf<{ conditions: KubeCondition[] }>(obj).conditions ?? [];
}

function routeParents(obj: KubeObject): RouteParentStatusView[] {
  return statusOf<{ parents: RouteParentStatusView[] }>(obj).parents ?? [];
}

export function refKey(ref: ObjectRef): string {
  return ref.namespace ? `${ref.kind} ${ref.namespace}/${ref.name}` : `${ref.kind} ${ref.name}`;
}

function nn(x: NamespacedName): string {
  return `${x.namespace}/${x.name}`;
}

function fmtCondition(c: KubeCondition): string {
  return `${c.type}=${c.status}/${c.reason ?? ''}@${c.observedGeneration ?? '-'}`;
}

function fmtConditions(list: readonly KubeCondition[]): string {
  return list.length ? `[${list.map(fmtCondition).join(', ')}]` : '[]';
}

function fmtExpected(c: ConditionExpectation): string {
  return `${c.type}=${c.status}${c.reason && c.reason !== ANY_REASON ? `/${c.reason}` : ''}`;
}

function fmtParentRef(p: ParentReference): string {
  const where = p.namespace ? `${p.namespace}/${p.name}` : p.name;
  const section = p.sectionName !== undefined ? `#${p.sectionName}` : '';
  const port = p.port !== undefined ? `:${p.port}` : '';
  return `${p.group ?? '(nil)'}/${p.kind ?? '(nil)'} ${where}${section}${port}`;
}

function fmtParent(p: RouteParentStatusView): string {
  return `{${p.controllerName} ${fmtParentRef(p.parentRef)} ${fmtConditions(p.conditions ?? [])}}`;
}

// ---------------------------------------------------------------- helpers.go primitives

/** ConditionsHaveLatestObservedGeneration: undefined when all conditions are at `metadata.generation`. */
function staleConditions(obj: KubeObject, conditions: readonly KubeCondition[]): string | undefined {
  const want = obj.metadata.generation ?? 0;
  const stale = conditions.filter((c) => (c.observedGeneration ?? 0) !== want);
  if (stale.length === 0) return undefined;
  return (
    `expected observedGeneration ${want} for all conditions, only ${conditions.length - stale.length}/` +
    `${conditions.length} are; stale: ${stale.map((c) => `${c.type} (generation ${c.observedGeneration ?? 0})`).join(', ')}`
  );
}

/** findConditionInList: the type with that status (any when empty) and reason (any when empty or `(any)`). */
function hasCondition(list: readonly KubeCondition[], type: string, status: string, reason: string): boolean {
  return list.some(
    (c) =>
      c.type === type &&
      (status === '' || c.status === status) &&
      (reason === '' || reason === ANY_REASON || c.reason === reason),
  );
}

/** conditionsMatch: at least as many conditions as expected, each expected one present. The first miss, or undefined. */
function conditionsMiss(
  expected: readonly ConditionExpectation[],
  actual: readonly KubeCondition[],
): string | undefined {
  if (actual.length < expected.length)
    return `expected at least ${expected.length} conditions, got ${actual.length} ${fmtConditions(actual)}`;
  for (const e of expected)
    if (!hasCondition(actual, e.type, e.status, e.reason))
      return `no condition ${fmtExpected(e)} in ${fmtConditions(actual)}`;
  return undefined;
}

function ok(message: string): Observation {
  return { ok: true, message };
}

function fail(message: string, fatal = false): Observation {
  return { ok: false, message, fatal };
}

interface Observation extends CheckResult {
  /** The suite aborts the poll instead of retrying (an error returned from the condition function). */
  fatal?: boolean;
}

/** State carried between polls of one stage. */
type Memo = Record<string, unknown>;

interface Stage {
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  observe(memo: Memo): Promise<Observation>;
}

/** config.DefaultTimeoutConfig, in milliseconds. */
export const DEFAULT_TIMEOUTS = {
  GatewayMustHaveAddress: 180_000,
  GatewayMustHaveCondition: 180_000,
  GatewayStatusMustHaveListeners: 60_000,
  GatewayListenersMustHaveConditions: 60_000,
  GWCMustBeAccepted: 180_000,
  HTTPRouteMustNotHaveParents: 60_000,
  HTTPRouteMustHaveCondition: 60_000,
  RouteMustHaveParents: 60_000,
  NamespacesMustBeReady: 300_000,
  LatestObservedGenerationSet: 60_000,
  DeleteTimeout: 30_000,
  DefaultPollInterval: 100,
} as const;

export type Timeouts = { -readonly [K in keyof typeof DEFAULT_TIMEOUTS]: number };

async function mustGet(source: StatusSource, ref: ObjectRef): Promise<KubeObject | Observation> {
  const obj = await source.get(ref);
  return obj ?? fail(`${refKey(ref)} not found`);
}

function isObservation(x: KubeObject | Observation): x is Observation {
  return 'ok' in x;
}

const gatewayRef = (g: NamespacedName): ObjectRef => ({ kind: 'Gateway', namespace: g.namespace, name: g.name });
const routeRef = (r: NamespacedName, kind = 'HTTPRoute'): ObjectRef => ({
  kind,
  namespace: r.namespace,
  name: r.name,
});

function need<T>(value: T | undefined, field: string, check: StatusCheck): T {
  if (value === undefined) throw new Error(`status check ${check.check ?? check.action}: field "${field}" is missing`);
  return value;
}

// ---------------------------------------------------------------- the stages of each check

/** WaitForGatewayAddress: conditions latest, then an address with a type. */
function gatewayAddressStage(source: StatusSource, gw: NamespacedName, t: Timeouts): Stage {
  return {
    what: `Gateway ${nn(gw)} has an address`,
    timeoutMs: t.GatewayMustHaveAddress,
    async observe() {
      const obj = await mustGet(source, gatewayRef(gw));
      if (isObservation(obj)) return obj;
      const stale = staleConditions(obj, conditionsOf(obj));
      if (stale) return fail(`Gateway ${nn(gw)}: ${stale}`);
      const addresses = statusOf<GatewayStatusView>(obj).addresses ?? [];
      const typed = addresses.find((a) => a.type);
      if (!typed)
        return fail(
          `Gateway ${nn(gw)}: no status.addresses entry with a type (addresses: ${JSON.stringify(addresses)})`,
        );
      return ok(`Gateway ${nn(gw)} has address ${typed.type} ${typed.value}`);
    },
  };
}

/** parentsForRouteMatch: every expected parent matches some actual parent (sectionName is not compared). */
function parentsMiss(
  expected: readonly ParentExpectation[],
  actual: readonly RouteParentStatusView[],
  namespaceRequired: boolean,
): string | undefined {
  for (const e of expected) {
    const why: string[] = [];
    const matched = actual.some((a) => {
      const miss = (() => {
        if (a.controllerName !== e.controllerName) return `controllerName ${a.controllerName}`;
        if (a.parentRef.group !== e.parentRef.group) return `group ${a.parentRef.group ?? '(nil)'}`;
        if (a.parentRef.kind !== e.parentRef.kind) return `kind ${a.parentRef.kind ?? '(nil)'}`;
        if (a.parentRef.name !== e.parentRef.name) return `name ${a.parentRef.name}`;
        if (
          a.parentRef.namespace !== e.parentRef.namespace &&
          (namespaceRequired || a.parentRef.namespace !== undefined)
        )
          return `namespace ${a.parentRef.namespace ?? '(nil)'}`;
        return conditionsMiss(e.conditions, a.conditions ?? []);
      })();
      if (miss) why.push(`${fmtParentRef(a.parentRef)}: ${miss}`);
      return miss === undefined;
    });
    if (!matched) {
      const want = `{${e.controllerName} ${fmtParentRef(e.parentRef)} ${e.conditions.map(fmtExpected).join(', ')}}`;
      return `no parent matches ${want}; ${actual.length ? why.join('; ') : 'status.parents is empty'}`;
    }
  }
  return undefined;
}

function routeParentsStage(
  source: StatusSource,
  route: ObjectRef,
  expected: ParentExpectation[],
  namespaceRequired: boolean,
  t: Timeouts,
): Stage {
  const name = refKey(route);
  return {
    what: `${name} has the expected parents`,
    timeoutMs: t.RouteMustHaveParents,
    async observe() {
      const obj = await mustGet(source, route);
      if (isObservation(obj)) return obj;
      const parents = routeParents(obj);
      for (const p of parents) {
        const stale = staleConditions(obj, p.conditions ?? []);
        if (stale) return fail(`${name} parent ${fmtParentRef(p.parentRef)}: ${stale}`);
      }
      const miss = parentsMiss(expected, parents, namespaceRequired);
      if (miss) return fail(`${name}: ${miss}`);
      return ok(`${name}: parents match (${parents.map(fmtParent).join(', ')})`);
    },
  };
}

/** GatewayListenersMustHaveConditions over every listener in status (no names given). */
function allListenersStage(
  source: StatusSource,
  gw: NamespacedName,
  conditions: ConditionExpectation[],
  t: Timeouts,
): Stage {
  return {
    what: `every listener of Gateway ${nn(gw)} has ${conditions.map(fmtExpected).join(', ')}`,
    timeoutMs: t.GatewayListenersMustHaveConditions,
    async observe() {
      const obj = await mustGet(source, gatewayRef(gw));
      if (isObservation(obj)) return obj;
      const listeners = statusOf<GatewayStatusView>(obj).listeners ?? [];
      for (const c of conditions)
        for (const l of listeners)
          if (!hasCondition(l.conditions ?? [], c.type, c.status, c.reason))
            return fail(
              `Gateway ${nn(gw)} listener ${l.name}: no condition ${fmtExpected(c)} in ${fmtConditions(l.conditions ?? [])}`,
            );
      return ok(`Gateway ${nn(gw)}: all ${listeners.length} listeners have ${conditions.map(fmtExpected).join(', ')}`);
    },
  };
}

function gatewayAndRoutesAccepted(source: StatusSource, check: StatusCheck, ctx: CheckContext, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  const listenerNames = (check.listeners as string[] | undefined)?.length ? (check.listeners as string[]) : [''];
  const stages = [gatewayAddressStage(source, gw, t)];
  for (const r of check.routes ?? []) {
    // RoutesAndParentMustBeAccepted: one expected parent per listener name, Accepted=True/Accepted.
    const expected: ParentExpectation[] = listenerNames.map((section) => ({
      parentRef: {
        group: GATEWAY_GROUP,
        kind: 'Gateway',
        name: gw.name,
        namespace: gw.namespace,
        ...(section ? { sectionName: section } : {}),
      },
      controllerName: ctx.controllerName,
      conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }],
    }));
    stages.push(routeParentsStage(source, routeRef(r), expected, r.namespace !== gw.namespace, t));
  }
  stages.push(
    allListenersStage(
      source,
      gw,
      [
        { type: 'ResolvedRefs', status: 'True', reason: '' },
        { type: 'Accepted', status: 'True', reason: '' },
        { type: 'Programmed', status: 'True', reason: '' },
      ],
      t,
    ),
  );
  return stages;
}

function httpRouteMustHaveCondition(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const route = need(check.route, 'route', check);
  const gw = need(check.parentGateway, 'parentGateway', check);
  const c = need(check.condition, 'condition', check);
  const name = `HTTPRoute ${nn(route)}`;
  return [
    {
      what: `${name} has ${fmtExpected(c)} for Gateway ${nn(gw)}`,
      timeoutMs: t.HTTPRouteMustHaveCondition,
      async observe() {
        const obj = await mustGet(source, routeRef(route));
        if (isObservation(obj)) return obj;
        const parents = routeParents(obj);
        let found = false;
        for (const p of parents) {
          const stale = staleConditions(obj, p.conditions ?? []);
          if (stale) return fail(`${name} parent ${fmtParentRef(p.parentRef)}: ${stale}`);
          const forGateway =
            p.parentRef.name === gw.name &&
            (p.parentRef.namespace === undefined || p.parentRef.namespace === gw.namespace);
          if (forGateway && hasCondition(p.conditions ?? [], c.type, c.status, c.reason)) found = true;
        }
        if (found) return ok(`${name} has ${fmtExpected(c)} for Gateway ${nn(gw)}`);
        return fail(
          `${name}: no parent for Gateway ${nn(gw)} has ${fmtExpected(c)}; parents: ${
            parents.length ? parents.map(fmtParent).join(', ') : '(none)'
          }`,
        );
      },
    },
  ];
}

function httpRouteNoAcceptedParents(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const route = need(check.route, 'route', check);
  const name = `HTTPRoute ${nn(route)}`;
  return [
    {
      what: `${name} has no accepted parents`,
      timeoutMs: t.HTTPRouteMustNotHaveParents,
      intervalMs: 1000, // the suite polls this negative check every second
      async observe(memo) {
        const obj = await mustGet(source, routeRef(route));
        if (isObservation(obj)) return { ...obj, fatal: true };
        const parents = routeParents(obj);
        if (parents.length === 0) {
          // Empty must be seen twice in a row: "correctly did not set" rather than "has not set yet".
          if (!memo.emptyOnce) {
            memo.emptyOnce = true;
            return fail(`${name}: status.parents empty (seen once; must stay empty on the next poll)`);
          }
          return ok(`${name}: status.parents empty`);
        }
        memo.emptyOnce = false;
        if (parents.length > 1)
          return fail(
            `${name}: expected no parents or exactly one, got ${parents.length}: ${parents.map(fmtParent).join(', ')}`,
          );
        const stale = staleConditions(obj, parents[0].conditions ?? []);
        if (stale) return fail(`${name}: ${stale}`);
        if (!hasCondition(parents[0].conditions ?? [], 'Accepted', 'False', ''))
          return fail(`${name}: its one parent is not Accepted=False: ${fmtParent(parents[0])}`);
        return ok(`${name}: one parent, Accepted=False (${fmtParent(parents[0])})`);
      },
    },
  ];
}

function httpRouteMustHaveParents(source: StatusSource, check: StatusCheck, ctx: CheckContext, t: Timeouts): Stage[] {
  const route = need(check.route, 'route', check);
  const parents = need(check.parents, 'parents', check).map((p) => ({
    ...p,
    controllerName: p.controllerName === CONTROLLER_PLACEHOLDER ? ctx.controllerName : p.controllerName,
  }));
  return [routeParentsStage(source, routeRef(route), parents, check.namespaceRequired ?? false, t)];
}

/** The Gateway with its conditions at the latest generation, or why not. */
async function latestGateway(
  source: StatusSource,
  gw: NamespacedName,
  fatal = false,
): Promise<KubeObject | Observation> {
  const obj = await mustGet(source, gatewayRef(gw));
  if (isObservation(obj)) return obj;
  const stale = staleConditions(obj, conditionsOf(obj));
  return stale ? fail(`Gateway ${nn(gw)}: ${stale}`, fatal) : obj;
}

function gatewayMustHaveZeroRoutes(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  return [
    {
      what: `Gateway ${nn(gw)} has zero routes`,
      timeoutMs: t.GatewayStatusMustHaveListeners,
      async observe() {
        const obj = await latestGateway(source, gw);
        if (isObservation(obj)) return obj;
        const listeners = statusOf<GatewayStatusView>(obj).listeners ?? [];
        if (listeners.length === 0) return ok(`Gateway ${nn(gw)}: no listener statuses`);
        if (listeners.length === 1 && listeners[0].attachedRoutes === 0)
          return ok(`Gateway ${nn(gw)}: one listener, attachedRoutes 0`);
        return fail(
          `Gateway ${nn(gw)}: want no listener statuses or exactly one with attachedRoutes 0, got ${listeners
            .map((l) => `${l.name}: ${l.attachedRoutes}`)
            .join(', ')}`,
        );
      },
    },
  ];
}

/** gatewayListenersMatch: the first difference, or undefined. */
function listenersMiss(
  expected: readonly ListenerExpectation[],
  actual: readonly ListenerStatusView[],
): string | undefined {
  if (expected.length !== actual.length)
    return `expected ${expected.length} listener statuses, got ${actual.length} (${actual.map((l) => l.name).join(', ')})`;
  for (const e of expected) {
    const a = actual.find((l) => l.name === e.name);
    if (!a) return `no status for listener ${e.name}`;
    const kinds = a.supportedKinds ?? [];
    if (e.supportedKinds.length === 0 && kinds.length !== 0)
      return `listener ${e.name}: expected no supportedKinds, got ${kinds.map((k) => `${k.group ?? GATEWAY_GROUP}/${k.kind}`).join(', ')}`;
    for (const ek of e.supportedKinds) {
      const group = ek.group ?? GATEWAY_GROUP;
      if (!kinds.some((k) => (k.group ?? GATEWAY_GROUP) === group && k.kind === ek.kind))
        return `listener ${e.name}: supportedKinds lacks ${group}/${ek.kind} (has ${kinds.map((k) => `${k.group ?? GATEWAY_GROUP}/${k.kind}`).join(', ') || 'none'})`;
    }
    if (a.attachedRoutes !== e.attachedRoutes)
      return `listener ${e.name}: expected attachedRoutes ${e.attachedRoutes}, got ${a.attachedRoutes}`;
    const miss = conditionsMiss(e.conditions, a.conditions ?? []);
    if (miss) return `listener ${e.name}: ${miss}`;
  }
  return undefined;
}

function gatewayStatusMustHaveListeners(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  const expected = need(check.listeners, 'listeners', check) as ListenerExpectation[];
  return [
    {
      what: `Gateway ${nn(gw)} listener statuses match`,
      timeoutMs: t.GatewayStatusMustHaveListeners,
      async observe() {
        const obj = await latestGateway(source, gw);
        if (isObservation(obj)) return obj;
        const miss = listenersMiss(expected, statusOf<GatewayStatusView>(obj).listeners ?? []);
        return miss ? fail(`Gateway ${nn(gw)}: ${miss}`) : ok(`Gateway ${nn(gw)}: listener statuses match`);
      },
    },
  ];
}

function gatewayListenerMustHaveConditions(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  const listener = need(check.listener, 'listener', check);
  const conditions = need(check.conditions, 'conditions', check);
  return [
    {
      what: `Gateway ${nn(gw)} listener ${listener} has ${conditions.map(fmtExpected).join(', ')}`,
      timeoutMs: t.GatewayListenersMustHaveConditions,
      async observe() {
        const obj = await mustGet(source, gatewayRef(gw));
        if (isObservation(obj)) return obj;
        const l = (statusOf<GatewayStatusView>(obj).listeners ?? []).find((x) => x.name === listener);
        if (!l) return fail(`Gateway ${nn(gw)}: listener ${listener} not in status`);
        for (const c of conditions)
          if (!hasCondition(l.conditions ?? [], c.type, c.status, c.reason))
            return fail(
              `Gateway ${nn(gw)} listener ${listener}: no condition ${fmtExpected(c)} in ${fmtConditions(l.conditions ?? [])}`,
            );
        return ok(`Gateway ${nn(gw)} listener ${listener} has ${conditions.map(fmtExpected).join(', ')}`);
      },
    },
  ];
}

function gatewayMustHaveCondition(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  const c = need(check.condition, 'condition', check);
  return [
    {
      what: `Gateway ${nn(gw)} has ${fmtExpected(c)}`,
      timeoutMs: t.GatewayMustHaveCondition,
      async observe() {
        // A stale condition aborts this poll with an error in the suite.
        const obj = await latestGateway(source, gw, true);
        if (isObservation(obj)) return obj;
        const conditions = conditionsOf(obj);
        return hasCondition(conditions, c.type, c.status, c.reason)
          ? ok(`Gateway ${nn(gw)} has ${fmtExpected(c)}`)
          : fail(`Gateway ${nn(gw)}: no condition ${fmtExpected(c)} in ${fmtConditions(conditions)}`);
      },
    },
  ];
}

function latestConditions(source: StatusSource, ref: ObjectRef, t: Timeouts): Stage[] {
  const name = refKey(ref);
  return [
    {
      what: `${name} conditions at the latest observedGeneration`,
      timeoutMs: t.LatestObservedGenerationSet,
      async observe() {
        const obj = await mustGet(source, ref);
        if (isObservation(obj)) return obj;
        if (ref.kind === 'HTTPRoute' || ref.kind === 'GRPCRoute') {
          for (const p of routeParents(obj)) {
            const stale = staleConditions(obj, p.conditions ?? []);
            if (stale) return fail(`${name} parent ${fmtParentRef(p.parentRef)}: ${stale}`);
          }
          return ok(`${name}: every parent's conditions at generation ${obj.metadata.generation ?? 0}`);
        }
        const stale = staleConditions(obj, conditionsOf(obj));
        return stale
          ? fail(`${name}: ${stale}`)
          : ok(`${name}: ${conditionsOf(obj).length} conditions at generation ${obj.metadata.generation ?? 0}`);
      },
    },
  ];
}

function gwcAcceptedAny(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const name = need(check.gatewayClass, 'gatewayClass', check);
  return [
    {
      what: `GatewayClass ${name} has an Accepted condition`,
      timeoutMs: t.GWCMustBeAccepted,
      async observe() {
        const obj = await mustGet(source, { kind: 'GatewayClass', name });
        if (isObservation(obj)) return obj;
        const conditions = conditionsOf(obj);
        const stale = staleConditions(obj, conditions);
        if (stale) return fail(`GatewayClass ${name}: ${stale}`);
        return hasCondition(conditions, 'Accepted', '', '')
          ? ok(`GatewayClass ${name} has ${fmtConditions(conditions.filter((c) => c.type === 'Accepted'))}`)
          : fail(`GatewayClass ${name}: no Accepted condition in ${fmtConditions(conditions)}`);
      },
    },
  ];
}

function podReady(pod: KubeObject): boolean {
  const status = (pod.status ?? {}) as { phase?: string; conditions?: { type: string; status: string }[] };
  return (
    (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') ||
    status.phase === 'Succeeded' ||
    pod.metadata.deletionTimestamp !== undefined
  );
}

function namespacesMustBeReady(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  const namespaces = need(check.namespaces, 'namespaces', check);
  return [
    {
      what: `namespaces ${namespaces.join(', ')} ready`,
      timeoutMs: t.NamespacesMustBeReady,
      async observe() {
        for (const ns of namespaces) {
          for (const gw of await source.list('Gateway', ns)) {
            if (gw.metadata.annotations?.[SKIP_READINESS_ANNOTATION] === 'true') continue;
            const key = `Gateway ${ns}/${gw.metadata.name}`;
            const conditions = conditionsOf(gw);
            const stale = staleConditions(gw, conditions);
            if (stale) return fail(`${key}: ${stale}`);
            if (!hasCondition(conditions, 'Accepted', 'True', ''))
              return fail(`${key} not Accepted=True: ${fmtConditions(conditions)}`);
            if (!hasCondition(conditions, 'Programmed', 'True', ''))
              return fail(`${key} not Programmed=True: ${fmtConditions(conditions)}`);
          }
          const pods = await source.list('Pod', ns);
          if (pods.length === 0) return fail(`no pods in namespace ${ns}`);
          const notReady = pods.find((p) => !podReady(p));
          if (notReady) return fail(`Pod ${ns}/${notReady.metadata.name} is not Ready`);
        }
        return ok(`Gateways and Pods in ${namespaces.join(', ')} ready`);
      },
    },
  ];
}

function waitForGatewayAddress(source: StatusSource, check: StatusCheck, t: Timeouts): Stage[] {
  return [gatewayAddressStage(source, need(check.gateway, 'gateway', check), t)];
}

function generationChanged(source: StatusSource, check: StatusCheck, ctx: CheckContext): Stage[] {
  const r = need(check.resource, 'resource', check);
  const ref: ObjectRef = { kind: r.kind, namespace: r.namespace, name: need(r.name, 'resource.name', check) };
  return [
    {
      what: `${refKey(ref)} generation changed`,
      timeoutMs: 0,
      async observe() {
        const before = ctx.generationsBefore.get(refKey(ref));
        if (before === undefined)
          return fail(`${refKey(ref)}: no action recorded its generation before a change`, true);
        const obj = await mustGet(source, ref);
        if (isObservation(obj)) return obj;
        const now = obj.metadata.generation;
        return now !== before
          ? ok(`${refKey(ref)}: generation ${before} → ${now}`)
          : fail(`${refKey(ref)}: generation still ${before} after the change`, true);
      },
    },
  ];
}

function addrText(a: GatewayAddress): string {
  return `${a.type ?? '(no type)'} ${a.value}`;
}

/** GatewayStaticAddresses: spec.addresses as the Applier leaves it — the invalid one, then unusable, then usable. */
function specAddressesCount(source: StatusSource, check: StatusCheck, ctx: CheckContext): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  return [
    {
      what: `Gateway ${nn(gw)} has 3 spec.addresses (invalid, unusable, usable)`,
      timeoutMs: 0,
      async observe() {
        const obj = await mustGet(source, gatewayRef(gw));
        if (isObservation(obj)) return obj;
        const addrs = ((obj.spec ?? {}) as { addresses?: GatewayAddress[] }).addresses ?? [];
        const listed = addrs.map(addrText).join(', ');
        if (addrs.length !== 3)
          return fail(`Gateway ${nn(gw)}: expected 3 spec.addresses, got ${addrs.length} (${listed})`, true);
        if (addrs[0].type !== 'test/fake-invalid-type')
          return fail(
            `Gateway ${nn(gw)}: spec.addresses[0] should be the invalid test/fake-invalid-type one (${listed})`,
            true,
          );
        if (!ctx.unusableAddresses.some((u) => u.value === addrs[1].value))
          return fail(`Gateway ${nn(gw)}: spec.addresses[1] is not from the unusable pool (${listed})`, true);
        if (!ctx.usableAddresses.some((u) => u.value === addrs[2].value))
          return fail(`Gateway ${nn(gw)}: spec.addresses[2] is not from the usable pool (${listed})`, true);
        return ok(`Gateway ${nn(gw)}: spec.addresses ${listed}`);
      },
    },
  ];
}

/** GatewayStaticAddresses' last step: exactly one status address, the usable one, with the spec's type. */
function statusAddresses(source: StatusSource, check: StatusCheck, ctx: CheckContext, t: Timeouts): Stage[] {
  const gw = need(check.gateway, 'gateway', check);
  return [
    {
      what: `Gateway ${nn(gw)} reports exactly the usable address`,
      timeoutMs: t.GatewayMustHaveAddress,
      async observe() {
        const obj = await mustGet(source, gatewayRef(gw));
        if (isObservation(obj)) return obj;
        const addrs = statusOf<GatewayStatusView>(obj).addresses ?? [];
        const listed = addrs.map(addrText).join(', ') || 'none';
        if (addrs.length !== 1)
          return fail(`Gateway ${nn(gw)}: expected exactly 1 status.addresses entry, got ${listed}`);
        const values = addrs.map((a) => a.value);
        const bad = ctx.unusableAddresses.find((u) => values.includes(u.value));
        if (bad) return fail(`Gateway ${nn(gw)}: status.addresses contains the unusable ${bad.value}`, true);
        if (values.includes('fake address teehee!'))
          return fail(`Gateway ${nn(gw)}: status.addresses contains the invalid address`, true);
        const usable = ctx.usableAddresses.find((u) => values.includes(u.value));
        if (!usable) return fail(`Gateway ${nn(gw)}: status.addresses (${listed}) lacks the usable address`, true);
        const got = addrs.find((a) => a.value === usable.value)!;
        // The spec address type defaults to IPAddress (CRD default), so the pool's type is what spec carries.
        const specType = usable.type ?? 'IPAddress';
        if (got.type !== specType)
          return fail(
            `Gateway ${nn(gw)}: usable address ${usable.value} has type ${got.type}, spec says ${specType}`,
            true,
          );
        return ok(`Gateway ${nn(gw)}: status.addresses ${listed}`);
      },
    },
  ];
}

/** Checks this library implements (README §7 plus the prose checks of the case files). */
export const CHECK_NAMES = [
  'GatewayAndHTTPRoutesMustBeAccepted',
  'GatewayAndRoutesMustBeAccepted(usePort=false)',
  'HTTPRouteMustHaveCondition',
  'HTTPRouteMustHaveNoAcceptedParents',
  'HTTPRouteMustHaveParents',
  'GatewayMustHaveZeroRoutes',
  'GatewayStatusMustHaveListeners',
  'GatewayListenerMustHaveConditions',
  'GatewayMustHaveCondition',
  'GatewayMustHaveLatestConditions',
  'HTTPRouteMustHaveLatestConditions',
  'GatewayClassMustHaveLatestConditions',
  'GWCMustHaveAcceptedConditionAny',
  'NamespacesMustBeReady',
  'WaitForGatewayAddress',
  'GenerationChanged',
  'SpecAddressesCount',
  'StatusAddresses',
] as const;

function stagesFor(check: StatusCheck, source: StatusSource, ctx: CheckContext, t: Timeouts): Stage[] {
  switch (check.check) {
    case 'GatewayAndHTTPRoutesMustBeAccepted':
    case 'GatewayAndRoutesMustBeAccepted(usePort=false)':
      return gatewayAndRoutesAccepted(source, check, ctx, t);
    case 'HTTPRouteMustHaveCondition':
      return httpRouteMustHaveCondition(source, check, t);
    case 'HTTPRouteMustHaveNoAcceptedParents':
      return httpRouteNoAcceptedParents(source, check, t);
    case 'HTTPRouteMustHaveParents':
      return httpRouteMustHaveParents(source, check, ctx, t);
    case 'GatewayMustHaveZeroRoutes':
      return gatewayMustHaveZeroRoutes(source, check, t);
    case 'GatewayStatusMustHaveListeners':
      return gatewayStatusMustHaveListeners(source, check, t);
    case 'GatewayListenerMustHaveConditions':
      return gatewayListenerMustHaveConditions(source, check, t);
    case 'GatewayMustHaveCondition':
      return gatewayMustHaveCondition(source, check, t);
    case 'GatewayMustHaveLatestConditions':
      return latestConditions(source, gatewayRef(need(check.gateway, 'gateway', check)), t);
    case 'HTTPRouteMustHaveLatestConditions':
      return latestConditions(source, routeRef(need(check.route, 'route', check)), t);
    case 'GatewayClassMustHaveLatestConditions':
      return latestConditions(
        source,
        { kind: 'GatewayClass', name: need(check.gatewayClass, 'gatewayClass', check) },
        t,
      );
    case 'GWCMustHaveAcceptedConditionAny':
      return gwcAcceptedAny(source, check, t);
    case 'NamespacesMustBeReady':
      return namespacesMustBeReady(source, check, t);
    case 'WaitForGatewayAddress':
      return waitForGatewayAddress(source, check, t);
    case 'GenerationChanged':
      return generationChanged(source, check, ctx);
    case 'SpecAddressesCount':
      return specAddressesCount(source, check, ctx);
    case 'StatusAddresses':
      return statusAddresses(source, check, ctx, t);
    default:
      throw new Error(`unknown status check "${check.check}"`);
  }
}

export interface AwaitOptions {
  /** Overrides of DEFAULT_TIMEOUTS (the suite's --timeout-config-overrides). */
  timeouts?: Partial<Timeouts>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Evaluates one check the way the suite does: each stage polled until it holds or its timeout passes. Against a
 * settled source a stage is observed at most twice (twice only so "empty on two consecutive polls" can hold).
 */
export async function awaitCheck(
  check: StatusCheck,
  source: StatusSource,
  ctx: CheckContext,
  opts: AwaitOptions = {},
): Promise<CheckResult> {
  const t: Timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  let stages: Stage[];
  try {
    stages = stagesFor(check, source, ctx, t);
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  }
  const passed: string[] = [];
  for (const stage of stages) {
    const memo: Memo = {};
    const start = Date.now();
    let attempts = 0;
    for (;;) {
      attempts++;
      const r = await stage.observe(memo);
      if (r.ok) {
        passed.push(r.message);
        break;
      }
      if (r.fatal || (source.settled && attempts >= 2)) return { ok: false, message: r.message };
      if (source.settled) continue; // nothing can change between polls: no point waiting
      if (Date.now() - start >= stage.timeoutMs)
        return {
          ok: false,
          message: `timed out after ${stage.timeoutMs / 1000}s waiting until ${stage.what}: ${r.message}`,
        };
      await sleep(stage.intervalMs ?? t.DefaultPollInterval);
    }
  }
  return { ok: true, message: passed.join('; ') };
}

// ---------------------------------------------------------------- actions

/** A mutation a case file describes in prose, as code. Returns what it did. */
export type Action = (cluster: ClusterAccess, step: StatusCheck, ctx: CheckContext) => Promise<string>;

async function getOrThrow(cluster: StatusSource, ref: ObjectRef): Promise<KubeObject> {
  const obj = await cluster.get(ref);
  if (!obj) throw new Error(`${refKey(ref)} not found`);
  return obj;
}

function stepRef(step: StatusCheck): ObjectRef {
  const r = step.resource;
  if (!r?.name) throw new Error('action without resource.name');
  return { kind: r.kind, namespace: r.namespace, name: r.name };
}

type Spec = Record<string, unknown>;
type ListenerSpec = { name: string } & Spec;

function specOf(obj: KubeObject): Spec {
  return structuredClone((obj.spec ?? {}) as Spec);
}

async function appendListener(cluster: ClusterAccess, step: StatusCheck, listener: ListenerSpec): Promise<string> {
  const ref = stepRef(step);
  const listeners = (specOf(await getOrThrow(cluster, ref)).listeners ?? []) as ListenerSpec[];
  listeners.push(listener);
  await cluster.mergePatch(ref, { spec: { listeners } });
  return `${refKey(ref)}: appended listener ${listener.name}`;
}

/** Endpoints for each pod IP of the slice's family (httproute-service-types.go setupEndpointSlices). */
async function fillManualEndpointSlices(cluster: ClusterAccess, step: StatusCheck): Promise<string> {
  const r = step.resource!;
  const ns = r.namespace!;
  const deployment = await getOrThrow(cluster, { kind: 'Deployment', namespace: ns, name: 'infra-backend-v1' });
  const selector = ((deployment.spec ?? {}) as { selector?: LabelSelector }).selector ?? {};
  const pods = (await cluster.list('Pod', ns)).filter((p) => selectorMatches(selector, p.metadata.labels ?? {}));
  if (pods.length === 0) throw new Error(`no infra-backend-v1 pods in ${ns}`);
  const done: string[] = [];
  for (const name of r.names ?? []) {
    const ref: ObjectRef = { kind: 'EndpointSlice', namespace: ns, name };
    await getOrThrow(cluster, ref); // the suite fetches each slice first: a missing one fails the step
    const family = name.endsWith('-ip6') ? 6 : 4;
    const endpoints: unknown[] = [];
    for (const pod of pods) {
      const status = (pod.status ?? {}) as { podIPs?: { ip: string }[]; podIP?: string };
      const ips = status.podIPs?.map((p) => p.ip) ?? (status.podIP ? [status.podIP] : []);
      for (const ip of ips) {
        if ((ip.includes(':') ? 6 : 4) !== family) continue;
        const targetRef: Record<string, string> = { kind: 'Pod', name: pod.metadata.name, namespace: ns };
        const uid = (pod.metadata as { uid?: string }).uid;
        if (uid) targetRef.uid = uid;
        const endpoint: Record<string, unknown> = {
          addresses: [ip],
          conditions: { ready: true, serving: true, terminating: false },
          targetRef,
        };
        const nodeName = ((pod.spec ?? {}) as { nodeName?: string }).nodeName;
        if (nodeName) endpoint.nodeName = nodeName;
        endpoints.push(endpoint);
      }
    }
    if (endpoints.length === 0) continue; // the suite leaves slices of a family the pods lack untouched
    await cluster.mergePatch(ref, { endpoints });
    done.push(`${name} (${endpoints.length})`);
  }
  return `EndpointSlices filled with infra-backend-v1 endpoints: ${done.join(', ') || 'none'}`;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/**
 * The actions of the case files, keyed `<test>#<index in statusChecks>`, each transcribing its Go test's patch.
 * Every one is a merge patch computed from the object as it is now, as the suite's client.MergeFrom does.
 */
export const ACTIONS: Record<string, Action> = {
  // gatewayclass-observed-generation-bump.go
  'GatewayClassObservedGenerationBump#2': async (cluster, step) => {
    const ref = stepRef(step);
    await cluster.mergePatch(ref, { spec: { description: 'new' } });
    return `${refKey(ref)}: spec.description = "new"`;
  },
  // gateway-modify-listeners.go "should be able to add a listener…"
  'GatewayModifyListeners#2': (cluster, step) =>
    appendListener(cluster, step, {
      name: 'http',
      port: 80,
      protocol: 'HTTP',
      hostname: 'data.test.com',
      allowedRoutes: { namespaces: { from: 'All' } },
    }),
  // gateway-modify-listeners.go "should be able to remove listeners…"
  'GatewayModifyListeners#9': async (cluster, step) => {
    const ref = stepRef(step);
    const listeners = (specOf(await getOrThrow(cluster, ref)).listeners ?? []) as ListenerSpec[];
    if (listeners.length !== 2) throw new Error(`${refKey(ref)} must have 2 listeners, has ${listeners.length}`);
    await cluster.mergePatch(ref, { spec: { listeners: listeners.filter((l) => l.name === 'http') } });
    return `${refKey(ref)}: kept only listener http`;
  },
  // gateway-observed-generation-bump.go
  'GatewayObservedGenerationBump#2': (cluster, step) =>
    appendListener(cluster, step, {
      name: 'alternate',
      hostname: 'foo.com',
      port: 80,
      protocol: 'HTTP',
      allowedRoutes: { namespaces: { from: 'All' } },
    }),
  // gateway-static-addresses.go: filterAddr(addresses, invalidAddress)
  'GatewayStaticAddresses#3': async (cluster, step) => {
    const ref = stepRef(step);
    const addresses = (specOf(await getOrThrow(cluster, ref)).addresses ?? []) as GatewayAddress[];
    const invalid = addresses[0];
    if (!invalid) throw new Error(`${refKey(ref)} has no spec.addresses`);
    await cluster.mergePatch(ref, { spec: { addresses: addresses.filter((a) => a.value !== invalid.value) } });
    return `${refKey(ref)}: removed ${addrText(invalid)}`;
  },
  // gateway-static-addresses.go: filterAddr(addresses, unusableAddress)
  'GatewayStaticAddresses#7': async (cluster, step, ctx) => {
    const ref = stepRef(step);
    const addresses = (specOf(await getOrThrow(cluster, ref)).addresses ?? []) as GatewayAddress[];
    const unusable = new Set(ctx.unusableAddresses.map((a) => a.value));
    await cluster.mergePatch(ref, { spec: { addresses: addresses.filter((a) => !unusable.has(a.value)) } });
    return `${refKey(ref)}: removed ${[...unusable].join(', ')}`;
  },
  // httproute-observed-generation-bump.go
  'HTTPRouteObservedGenerationBump#2': async (cluster, step) => {
    const ref = stepRef(step);
    const rules = (specOf(await getOrThrow(cluster, ref)).rules ?? []) as { backendRefs?: { name: string }[] }[];
    const first = rules[0]?.backendRefs?.[0];
    if (!first) throw new Error(`${refKey(ref)} has no spec.rules[0].backendRefs[0]`);
    first.name = 'infra-backend-v2';
    await cluster.mergePatch(ref, { spec: { rules } });
    return `${refKey(ref)}: spec.rules[0].backendRefs[0].name = "infra-backend-v2"`;
  },
  // httproute-service-types.go setupEndpointSlices
  'HTTPRouteServiceTypes#2': (cluster, step) => fillManualEndpointSlices(cluster, step),
};

/** Deletes need no transcription: the resource names what goes (e.g. a case's `precededBy`). */
export async function deleteAction(cluster: ClusterAccess, step: Pick<StatusCheck, 'resource'>): Promise<string> {
  const r = step.resource;
  const names = r?.names ?? (r?.name ? [r.name] : []);
  if (!r || names.length === 0) throw new Error('delete action without resource');
  for (const name of names) await cluster.delete({ kind: r.kind, namespace: r.namespace, name });
  return `deleted ${names.map((name) => refKey({ kind: r.kind, namespace: r.namespace, name })).join(', ')}`;
}

/** Targets of an action, for recording their generation before it. */
function actionTargets(step: StatusCheck): ObjectRef[] {
  const r = step.resource;
  if (!r) return [];
  return (r.names ?? (r.name ? [r.name] : [])).map((name) => ({ kind: r.kind, namespace: r.namespace, name }));
}

export interface RunOptions extends AwaitOptions {
  /** Called after every action, e.g. to let a live system settle or to re-check proxy configs. */
  afterAction?: (step: StatusCheck, index: number) => MaybePromise<void>;
  /** Stop at the first step that fails (a live run: every later check would wait out its timeout). */
  stopAtFirstFailure?: boolean;
}

/**
 * Runs a case file's statusChecks in order against a cluster: checks are awaited, actions performed (recording
 * the generation of their targets first, for GenerationChanged). Every step is reported; none is skipped after a
 * failure, so one run shows every mismatch.
 */
export async function runStatusChecks(
  test: { test: string; statusChecks?: StatusCheck[] },
  cluster: ClusterAccess,
  ctx: CheckContext,
  opts: RunOptions = {},
): Promise<StepResult[]> {
  const out: StepResult[] = [];
  for (const [index, step] of (test.statusChecks ?? []).entries()) {
    const base = { index, phase: step.phase, subtest: step.subtest };
    if (step.action) {
      const name = `action:${step.action}`;
      try {
        for (const ref of actionTargets(step)) {
          const obj = await cluster.get(ref);
          if (obj) ctx.generationsBefore.set(refKey(ref), obj.metadata.generation ?? 0);
        }
        let message: string;
        if (step.action === 'delete') message = await deleteAction(cluster, step);
        else {
          const fn = ACTIONS[`${test.test}#${index}`];
          if (!fn) throw new Error(`no implementation of action ${test.test}#${index}: ${step.patch}`);
          message = await fn(cluster, step, ctx);
        }
        await opts.afterAction?.(step, index);
        out.push({ ...base, name, ok: true, message });
      } catch (e) {
        out.push({ ...base, name, ok: false, message: (e as Error).message });
        if (opts.stopAtFirstFailure) break;
      }
      continue;
    }
    const r = await awaitCheck(step, cluster, ctx, opts);
    out.push({ ...base, name: step.check ?? '(none)', ...r });
    if (!r.ok && opts.stopAtFirstFailure) break;
  }
  return out;
}

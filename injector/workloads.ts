// Injection of manifests, offline (`weft inject`): find the pod template of each workload kind and inject it as
// the webhook would inject the pods made from it. Pure; the command does the reading and writing.
import { INJECT_LABEL, INJECT_LABEL_ENABLED } from './annotations.ts';
import { InjectError } from './errors.ts';
import { assertPod, injectPod, shouldInject } from './inject.ts';
import type { InjectSettings } from './settings.ts';
import type { Pod } from './types.ts';

/** Where each workload kind keeps its pod template. */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export type ManifestOutcome = 'injected' | 'skipped' | 'passed-through' | 'error';

export interface ManifestReport {
  /** `deployment "shop/web"`. */
  object: string;
  outcome: ManifestOutcome;
  /** Why it was skipped, passed through or failed; how it was injected. */
  reason: string;
}

export interface ManifestResult {
  /** The object, injected where it applied; the same reference when nothing changed. */
  object: unknown;
  changed: boolean;
  /** One line per object (a List reports each item). */
  reports: ManifestReport[];
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function describe(obj: Record<string, unknown>, namespace: string | undefined): string {
  const kind = typeof obj.kind === 'string' ? obj.kind.toLowerCase() : 'object';
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const name =
    typeof meta.name === 'string'
      ? meta.name
      : typeof meta.generateName === 'string'
        ? `${meta.generateName}…`
        : '(unnamed)';
  return `${kind} "${namespace ? `${namespace}/` : ''}${name}"`;
}

/**
 * Injects the pod template of one manifest object (a Pod, a workload, or a List of them). Offline there is no
 * namespace to look up: the namespace is taken as labelled `weft.dev/inject=enabled` (running the command is the
 * request), while every other rule of shouldInject() applies — system namespaces, weft's own, hostNetwork, the
 * opt-out annotation, an injected template.
 */
export function injectManifest(obj: unknown, settings: InjectSettings, defaultNamespace = 'default'): ManifestResult {
  if (!isRecord(obj)) return { object: obj, changed: false, reports: [] };
  if (obj.kind === 'List' && Array.isArray(obj.items)) {
    const results = obj.items.map((item) => injectManifest(item, settings, defaultNamespace));
    const changed = results.some((r) => r.changed);
    return {
      object: changed ? { ...obj, items: results.map((r) => r.object) } : obj,
      changed,
      reports: results.flatMap((r) => r.reports),
    };
  }
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : defaultNamespace;
  const object = describe(obj, typeof meta.namespace === 'string' ? meta.namespace : undefined);
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const path = kind === 'Pod' ? [] : TEMPLATE_PATHS[kind];
  const one = (outcome: ManifestOutcome, reason: string): ManifestResult => ({
    object: obj,
    changed: false,
    reports: [{ object, outcome, reason }],
  });
  if (!path) return one('passed-through', kind ? `${kind} has no pod template` : 'no kind');

  let template: unknown = obj;
  for (const key of path) template = isRecord(template) ? template[key] : undefined;
  try {
    assertPod(template, path.length > 0 ? path.join('.') : 'the Pod');
  } catch (err) {
    if (err instanceof InjectError) return one('error', err.message);
    throw err;
  }
  const pod = template as Pod;
  const decision = shouldInject(pod, { name: namespace, labels: { [INJECT_LABEL]: INJECT_LABEL_ENABLED } }, settings);
  if (decision.invalid) return one('error', decision.reason);
  if (!decision.inject) return one('skipped', decision.reason);

  const injected = injectPod(pod, settings);
  const out = structuredClone(obj);
  if (path.length === 0)
    return { object: injected, changed: true, reports: [{ object, outcome: 'injected', reason: 'injected' }] };
  let parent: Record<string, unknown> = out;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  parent[path[path.length - 1]] = injected;
  return { object: out, changed: true, reports: [{ object, outcome: 'injected', reason: 'injected' }] };
}

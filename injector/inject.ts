// Sidecar injection as pure functions: shouldInject() decides, injectPod() adds the proxy, the traffic-capture init
// step, the identity volumes and the probe rewrites. No I/O: the webhook and `weft inject` wrap them.
import {
  APP_PROBES_ANNOTATION,
  DEFAULT_CONTAINER_ANNOTATION,
  type Exclusions,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  INJECT_LABEL_ENABLED,
  INJECTED_ANNOTATION,
  parseBool,
  parseExclusions,
  REWRITE_PROBES_ANNOTATION,
} from './annotations.ts';
import { APP_PROBES_ENV } from '../sidecar/config/app-probes.ts';
import { InjectError } from './errors.ts';
import { type AppProbes, rewriteProbes } from './probes.ts';
import {
  type InjectSettings,
  initArgs,
  proxyWaitCommand,
  ROOT_CA_KEY,
  ROOT_CA_MOUNT_PATH,
  TOKEN_FILE,
  TOKEN_MOUNT_PATH,
} from './settings.ts';
import type { Container, EnvVar, NamespaceInfo, Pod, Probe, SecurityContext, Volume } from './types.ts';

export const PROXY_CONTAINER = 'weft-proxy';
export const INIT_CONTAINER = 'weft-init';
export const TOKEN_VOLUME = 'weft-token';
export const ROOT_CA_VOLUME = 'weft-root-ca';
/** Scratch /run for the init step: iptables takes its lock there, and the root filesystem is read-only. */
export const XTABLES_VOLUME = 'weft-xtables';

/** Namespaces whose pods are never injected, whatever their labels say. */
export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease']);

export interface InjectDecision {
  inject: boolean;
  /** Why, in a sentence a user can act on. */
  reason: string;
  /**
   * A `weft.dev/…` annotation has a value weft cannot use. The pod should be refused (webhook) or reported as an
   * error (`weft inject`), not created without the proxy the namespace asks for.
   */
  invalid?: boolean;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStringMap = (x: unknown) =>
  x === undefined || (isRecord(x) && Object.values(x).every((v) => typeof v === 'string'));
const isContainerList = (x: unknown) =>
  x === undefined || (Array.isArray(x) && x.every((c) => isRecord(c) && typeof c.name === 'string'));

/**
 * Throws InjectError(WEFT_ERR_INJECT_POD) unless `x` has the shape of a Pod (or pod template) the injector can work
 * on: a spec with a container list of named containers, string labels and annotations. Everything else is kept
 * as it is.
 */
export function assertPod(x: unknown, what = 'the object'): asserts x is Pod {
  const bad = (why: string) => new InjectError('WEFT_ERR_INJECT_POD', `${what} is not a pod: ${why}`);
  if (!isRecord(x)) throw bad('not an object');
  if (x.metadata !== undefined && !isRecord(x.metadata)) throw bad('metadata is not an object');
  const meta = (x.metadata ?? {}) as Record<string, unknown>;
  if (!isStringMap(meta.labels)) throw bad('metadata.labels is not a map of strings');
  if (!isStringMap(meta.annotations)) throw bad('metadata.annotations is not a map of strings (quote the values)');
  if (!isRecord(x.spec)) throw bad('spec is missing');
  if (!Array.isArray(x.spec.containers) || !isContainerList(x.spec.containers))
    throw bad('spec.containers is not a list of named containers');
  if (!isContainerList(x.spec.initContainers)) throw bad('spec.initContainers is not a list of named containers');
  if (x.spec.volumes !== undefined && !Array.isArray(x.spec.volumes)) throw bad('spec.volumes is not a list');
}

/** Why a pod counts as injected already, or undefined. */
function injectedAlready(pod: Pod): string | undefined {
  const version = pod.metadata?.annotations?.[INJECTED_ANNOTATION];
  if (version !== undefined) return `already injected (${INJECTED_ANNOTATION}: ${JSON.stringify(version)})`;
  const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  if (all.some((c) => c.name === PROXY_CONTAINER || c.name === INIT_CONTAINER))
    return `already has a container named ${PROXY_CONTAINER} or ${INIT_CONTAINER}`;
  return undefined;
}

/**
 * Whether `pod`, created in `namespace`, gets the proxy. Never in kube-system, kube-public, kube-node-lease or weft's
 * own namespace, never with hostNetwork, never twice; otherwise when the namespace is labelled
 * `weft.dev/inject=enabled` and the pod does not opt out with the annotation `weft.dev/inject: "false"`.
 */
export function shouldInject(pod: Pod, namespace: NamespaceInfo, settings: InjectSettings): InjectDecision {
  const ns = namespace.name;
  if (SYSTEM_NAMESPACES.has(ns)) return { inject: false, reason: `namespace ${ns} is never injected` };
  if (ns === settings.weftNamespace)
    return { inject: false, reason: `namespace ${ns} is weft's own and is never injected` };
  const already = injectedAlready(pod);
  if (already) return { inject: false, reason: already };
  if (pod.spec.hostNetwork === true)
    return { inject: false, reason: "hostNetwork pods are not injected (capture would take over the node's traffic)" };
  const annotations = pod.metadata?.annotations ?? {};
  let wanted: boolean | undefined;
  try {
    wanted = parseBool(INJECT_ANNOTATION, annotations[INJECT_ANNOTATION]);
  } catch (err) {
    return { inject: false, reason: (err as Error).message, invalid: true };
  }
  if (wanted === false) return { inject: false, reason: `opted out by the annotation ${INJECT_ANNOTATION}: "false"` };
  if (namespace.labels?.[INJECT_LABEL] !== INJECT_LABEL_ENABLED)
    return {
      inject: false,
      reason:
        `namespace ${ns} is not labelled ${INJECT_LABEL}=${INJECT_LABEL_ENABLED}` +
        (wanted ? ` (the annotation ${INJECT_ANNOTATION}: "true" works only inside such a namespace)` : ''),
    };
  try {
    parseExclusions(annotations);
    parseBool(REWRITE_PROBES_ANNOTATION, annotations[REWRITE_PROBES_ANNOTATION]);
  } catch (err) {
    return { inject: false, reason: (err as Error).message, invalid: true };
  }
  return { inject: true, reason: `namespace ${ns} is labelled ${INJECT_LABEL}=${INJECT_LABEL_ENABLED}` };
}

const fieldEnv = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

function proxySecurityContext(s: InjectSettings): SecurityContext {
  return {
    runAsUser: s.proxyUid,
    runAsGroup: s.proxyGid,
    runAsNonRoot: true,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function adminProbe(s: InjectSettings, path: string, rest: Omit<Probe, 'httpGet'>): Probe {
  return { httpGet: { path, port: s.ports.admin, scheme: 'HTTP' }, ...rest };
}

function proxyContainer(s: InjectSettings, hasAppProbes: boolean): Container {
  const env = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('POD_IP', 'status.podIP'),
  ];
  // The proxy reads the probes it must perform from its own pod's annotation, through the downward API.
  if (hasAppProbes) env.push(fieldEnv(APP_PROBES_ENV, `metadata.annotations['${APP_PROBES_ANNOTATION}']`));
  const container: Container = {
    name: PROXY_CONTAINER,
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    args: [...s.proxyArgs],
    env,
    ports: [{ name: 'weft-admin', containerPort: s.ports.admin, protocol: 'TCP' }],
    resources: structuredClone(s.proxyResources),
    securityContext: proxySecurityContext(s),
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
      { name: ROOT_CA_VOLUME, mountPath: ROOT_CA_MOUNT_PATH, readOnly: true },
    ],
    livenessProbe: adminProbe(s, '/live', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 }),
    readinessProbe: adminProbe(s, '/ready', { periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 3 }),
  };
  if (s.nativeSidecar) {
    // The kubelet starts the next init container, and at last the app, only once this probe passes.
    container.restartPolicy = 'Always';
    container.startupProbe = adminProbe(s, '/ready', {
      periodSeconds: 1,
      timeoutSeconds: 3,
      failureThreshold: s.readyTimeoutSeconds,
    });
  } else {
    // The kubelet starts containers in order and runs each postStart hook to completion before starting the next:
    // with the proxy first, the app starts only once the proxy is ready (Istio's holdApplicationUntilProxyStarts).
    container.lifecycle = { postStart: { exec: { command: proxyWaitCommand(s) } } };
  }
  return container;
}

function initContainer(s: InjectSettings, ex: Exclusions): Container {
  return {
    name: INIT_CONTAINER,
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    args: initArgs(s, ex),
    resources: structuredClone(s.initResources),
    // Root with NET_ADMIN and NET_RAW, for iptables in the pod's network namespace, and nothing else.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: XTABLES_VOLUME, mountPath: '/run' }],
  };
}

function volumes(s: InjectSettings): Volume[] {
  return [
    {
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: s.tokenAudience,
              expirationSeconds: s.tokenExpirationSeconds,
              path: TOKEN_FILE,
            },
          },
        ],
      },
    },
    { name: ROOT_CA_VOLUME, configMap: { name: s.rootCaConfigMap, items: [{ key: ROOT_CA_KEY, path: ROOT_CA_KEY }] } },
    { name: XTABLES_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
}

/**
 * `pod` with the proxy added (a copy; `pod` is not changed). A pod already injected comes back equal to itself.
 * Call shouldInject() first: this function does not check namespaces or opt-outs. Throws InjectError on a pod that
 * is not one, or on an annotation it cannot use.
 */
export function injectPod(pod: Pod, settings: InjectSettings): Pod {
  assertPod(pod);
  const out = structuredClone(pod);
  if (injectedAlready(out)) return out;
  const annotations = { ...(out.metadata?.annotations ?? {}) };
  const exclusions = parseExclusions(annotations);
  const rewrite = parseBool(REWRITE_PROBES_ANNOTATION, annotations[REWRITE_PROBES_ANNOTATION]) !== false;

  const spec = out.spec;
  const appContainers = [...spec.containers];
  // The user's own native sidecars may have probes too; plain init containers cannot.
  const userSidecars = (spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  let appProbes: AppProbes = {};
  if (rewrite) appProbes = rewriteProbes([...userSidecars, ...appContainers], settings.ports.admin);
  const hasAppProbes = Object.keys(appProbes).length > 0;

  const proxy = proxyContainer(settings, hasAppProbes);
  const init = initContainer(settings, exclusions);
  if (settings.nativeSidecar) {
    // First of all: every later init container, the capture step's included, and the app run with a ready proxy.
    spec.initContainers = [proxy, init, ...(spec.initContainers ?? [])];
  } else {
    // Capture is set up before anything else runs; the proxy is the first container so the app waits for it.
    spec.initContainers = [init, ...(spec.initContainers ?? [])];
    spec.containers = [proxy, ...appContainers];
    if (!(DEFAULT_CONTAINER_ANNOTATION in annotations) && appContainers.length > 0)
      annotations[DEFAULT_CONTAINER_ANNOTATION] = appContainers[0].name;
  }
  spec.volumes = [...(spec.volumes ?? []), ...volumes(settings)];

  if (hasAppProbes) annotations[APP_PROBES_ANNOTATION] = JSON.stringify(appProbes);
  annotations[INJECTED_ANNOTATION] = settings.version;
  out.metadata = { ...(out.metadata ?? {}), annotations };
  return out;
}

// What the injector adds is decided by one settings object. The chart (through the control plane) and `weft inject`
// fill it; everything else has a default. Every command line the injector writes into a pod is built here, from
// these settings: proxyArgs() (the proxy), initArgs() (traffic capture) and proxyWaitCommand() (the classic form's
// postStart hook). When a flag of `weft proxy` changes, this file is the only one to edit.
import { z } from 'zod';
import { CA_DEFAULT_PORT, CA_TOKEN_AUDIENCE } from '../sidecar/config/ca-api.ts';
import { PUSH_DEFAULT_PORT, PUSH_SERVER_NAME } from '../sidecar/config/push-api.ts';
import { InjectError } from './errors.ts';
import type { ResourceRequirements } from './types.ts';

/** Where the projected ServiceAccount token is mounted in the proxy, and its file name. */
export const TOKEN_MOUNT_PATH = '/var/run/secrets/weft/tokens';
export const TOKEN_FILE = 'token';
/** Where the root CA ConfigMap is mounted in the proxy, and the key that holds the PEM bundle. */
export const ROOT_CA_MOUNT_PATH = '/var/run/weft/root-ca';
export const ROOT_CA_KEY = 'ca.crt';

const Port = z.number().int().min(1).max(65535);
const Quantities = z.record(z.string(), z.string().min(1));
const Resources = z.strictObject({ requests: Quantities.optional(), limits: Quantities.optional() });
// host:port, host being a DNS name or an IPv4 address, or [IPv6]:port.
const HostPort = z
  .string()
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, 'want host:port');
// A DNS label (namespace and ConfigMap names).
const Label = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'want a DNS label')
  .max(63);

export const InjectSettingsSchema = z.strictObject({
  /** weft's version, written to the `weft.dev/injected` annotation and used in the default image tag. */
  version: z.string().min(1),
  /** The weft image: runs the proxy and the init step (its entrypoint is `weft`). Default `ghcr.io/weft-dev/weft:<version>`. */
  image: z.string().min(1).optional(),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** The proxy's arguments after the entrypoint; default proxyArgs(settings). */
  proxyArgs: z.array(z.string()).optional(),
  proxyResources: Resources.default({ requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } }),
  initResources: Resources.default({
    requests: { cpu: '10m', memory: '32Mi' },
    limits: { cpu: '100m', memory: '128Mi' },
  }),
  /** uid and gid the proxy runs as; the init step exempts this uid's traffic from capture. */
  proxyUid: z.number().int().min(1).default(1337),
  proxyGid: z.number().int().min(1).default(1337),
  ports: z
    .strictObject({
      /** Captured outbound traffic is redirected here. */
      outbound: Port.default(15001),
      /** Captured inbound traffic is redirected here. */
      inbound: Port.default(15006),
      /** mTLS from peer proxies. */
      mesh: Port.default(15008),
      /** Admin: /live, /ready, /metrics, and the app probes kubelet sends through the proxy. */
      admin: Port.default(15020),
    })
    .prefault({}),
  trustDomain: z
    .string()
    .regex(/^[a-z0-9._-]+$/, 'a trust domain is lowercase letters, digits, ".", "_" and "-"')
    .default('cluster.local'),
  /** weft's own namespace: never injected; the default control-plane addresses point into it. */
  weftNamespace: Label.default('weft-system'),
  /** The mesh CA; default `weft-controlplane.<weftNamespace>.svc:15012`. */
  caAddress: HostPort.optional(),
  /** Config push; default `weft-controlplane.<weftNamespace>.svc:15010`. */
  controlPlaneAddress: HostPort.optional(),
  tokenAudience: z.string().min(1).default(CA_TOKEN_AUDIENCE),
  /** The kubelet refreshes the token at 80 % of this; Kubernetes' minimum is 600. */
  tokenExpirationSeconds: z.number().int().min(600).default(3600),
  /** ConfigMap in the pod's namespace holding the mesh root CA bundle under the key `ca.crt`. */
  rootCaConfigMap: Label.default('weft-root-ca'),
  /** Whether the API server supports native sidecars (init containers with restartPolicy Always; 1.29+). */
  nativeSidecar: z.boolean().default(true),
  /** The proxy's log level. */
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * How long the proxy may take to be ready: the native form's startupProbe allows this many 1 s failures, the classic
   * form's postStart hook waits this long and then fails (kubelet restarts the proxy).
   */
  readyTimeoutSeconds: z.number().int().min(1).default(120),
});

export type InjectSettingsInput = z.input<typeof InjectSettingsSchema>;

/** Settings with every default filled in. */
export interface InjectSettings {
  version: string;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  proxyArgs: string[];
  proxyResources: ResourceRequirements;
  initResources: ResourceRequirements;
  proxyUid: number;
  proxyGid: number;
  ports: { outbound: number; inbound: number; mesh: number; admin: number };
  trustDomain: string;
  weftNamespace: string;
  caAddress: string;
  controlPlaneAddress: string;
  tokenAudience: string;
  tokenExpirationSeconds: number;
  rootCaConfigMap: string;
  nativeSidecar: boolean;
  logLevel: string;
  readyTimeoutSeconds: number;
}

/**
 * The proxy's command line (after the image's `weft` entrypoint). The single place that knows the proxy's flags:
 * the workload token and the root CA come from the volumes the injector mounts; identity (pod, namespace,
 * ServiceAccount) from the environment the injector sets.
 */
export function proxyArgs(s: Omit<InjectSettings, 'proxyArgs'>): string[] {
  return [
    'proxy',
    '--mode',
    'sidecar',
    '--admin-port',
    String(s.ports.admin),
    // Kubernetes expands $(VAR) in args from the container's env (the downward-API variables injectPod adds).
    '--push',
    s.controlPlaneAddress,
    '--proxy-id',
    'sidecar:$(POD_NAMESPACE)/$(POD_NAME)',
    '--ca-url',
    `https://${s.caAddress}`,
    '--trust-domain',
    s.trustDomain,
    '--service-account',
    '$(SERVICE_ACCOUNT)',
    '--token-file',
    `${TOKEN_MOUNT_PATH}/${TOKEN_FILE}`,
    '--roots',
    `${ROOT_CA_MOUNT_PATH}/${ROOT_CA_KEY}`,
    '--log-level',
    s.logLevel,
  ];
}

/**
 * The classic form's postStart hook, run in the proxy container (sidecar/proxy-wait.ts): returns once the proxy's
 * admin port says ready, so the kubelet starts the app containers after it; fails when the timeout passes first.
 */
export function proxyWaitCommand(s: Omit<InjectSettings, 'proxyArgs'>): string[] {
  return [
    'weft',
    'proxy',
    'wait',
    '--admin-port',
    String(s.ports.admin),
    '--timeout-seconds',
    String(s.readyTimeoutSeconds),
  ];
}

/** What the traffic-capture init step excludes, from the pod's annotations (annotations.ts parses them). */
export interface CaptureExclusions {
  inboundPorts: number[];
  outboundPorts: number[];
  outboundCidrs: string[];
}

/** The init step's command line (after the `weft` entrypoint): `weft proxy init-iptables …`. */
export function initArgs(s: Omit<InjectSettings, 'proxyArgs'>, ex: CaptureExclusions): string[] {
  // The proxy's own ports are reached directly: kubelet's probes on the admin port, peers' mTLS on the mesh port.
  const inbound = [...new Set([s.ports.admin, s.ports.mesh, ...ex.inboundPorts])];
  const args = [
    'proxy',
    'init-iptables',
    '--proxy-uid',
    String(s.proxyUid),
    '--outbound-port',
    String(s.ports.outbound),
    '--inbound-port',
    String(s.ports.inbound),
    '--exclude-inbound-ports',
    inbound.join(','),
  ];
  if (ex.outboundPorts.length > 0) args.push('--exclude-outbound-ports', ex.outboundPorts.join(','));
  if (ex.outboundCidrs.length > 0) args.push('--exclude-outbound-cidrs', ex.outboundCidrs.join(','));
  return args;
}

/** Validates `input` and fills in the defaults; throws InjectError(WEFT_ERR_INJECT_SETTINGS) on a bad value. */
export function injectSettings(input: InjectSettingsInput): InjectSettings {
  const parsed = InjectSettingsSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new InjectError('WEFT_ERR_INJECT_SETTINGS', `invalid injection settings: ${issues.join('; ')}`);
  }
  const p = parsed.data;
  const ports = new Set(Object.values(p.ports));
  if (ports.size !== 4)
    throw new InjectError('WEFT_ERR_INJECT_SETTINGS', 'invalid injection settings: ports: the four ports must differ');
  const controlPlane = `${PUSH_SERVER_NAME}.${p.weftNamespace}.svc`;
  const base: Omit<InjectSettings, 'proxyArgs'> = {
    ...p,
    image: p.image ?? `ghcr.io/weft-dev/weft:${p.version}`,
    caAddress: p.caAddress ?? `${controlPlane}:${CA_DEFAULT_PORT}`,
    controlPlaneAddress: p.controlPlaneAddress ?? `${controlPlane}:${PUSH_DEFAULT_PORT}`,
  };
  return { ...base, proxyArgs: p.proxyArgs ?? proxyArgs(base) };
}

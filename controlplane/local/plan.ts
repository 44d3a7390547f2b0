// What `weft local` runs for a snapshot: one local "pod" per Pod (its containers, each played by the built-in echo
// server on the pod's loopback IP, plus a sidecar when the translator made the pod a config) and one edge proxy per
// Gateway the translator made a config for. Pure: the orchestrator diffs successive plans to start and stop
// processes.
import { gatewayServiceName } from '../resources/materialize.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';
import type { Container, Pod } from '../resources/types.ts';
import type { EchoFormat } from './echo-server.ts';
import { localPort } from './localize.ts';

/** One container, played by the echo server. */
export interface PlannedWorkload {
  /** Container name. */
  container: string;
  image: string;
  /** HTTP/1.1 ports to serve (already shifted when privileged). */
  ports: number[];
  /** Cleartext HTTP/2 ports. */
  h2cPorts: number[];
  format: EchoFormat;
  env: Record<string, string>;
}

export interface PlannedPod {
  /** `namespace/name`. */
  key: string;
  namespace: string;
  name: string;
  ip: string;
  serviceAccount: string;
  workloads: PlannedWorkload[];
  /** Containers not run, and why (no port to serve). */
  skipped: { container: string; reason: string }[];
  /** `sidecar:<ns>/<pod>` when the pod gets a sidecar. */
  proxyId?: string;
}

export interface PlannedGateway {
  key: string;
  namespace: string;
  name: string;
  /** `edge:<ns>/<gateway>`. */
  proxyId: string;
  /**
   * Where its proxy listens: the first loopback IPv4 of the Gateway's status addresses (a static `spec.addresses`
   * entry), else its Service's (`status.loadBalancer.ingress[0].ip`); undefined while there is none.
   */
  address: string | undefined;
  serviceAccount: string;
}

export interface LocalPlan {
  pods: PlannedPod[];
  gateways: PlannedGateway[];
  /** Pods not run, and why (e.g. an address outside 127.0.0.0/8). */
  unplaced: { key: string; reason: string }[];
}

export interface PlanOptions {
  portOffset: number;
  /** The pod IPs that can run here (`--netns`: the bridge's pod pool); default loopback, 127.0.0.0/8. */
  podRange?: { contains: (ip: string) => boolean; text: string };
  /** The translator's `status.addresses` values of Gateway `namespace/name` (undefined: its Service's address). */
  gatewayAddresses?: (key: string) => string[] | undefined;
}

const isLoopback = (ip: string) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ip);

/** Argument values of `--name=value` / `--name value` flags. */
function flagValues(args: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
    else if (a === `--${name}` && i + 1 < args.length) out.push(args[++i]);
  }
  return out;
}

const numbers = (values: string[]) => values.map(Number).filter((n) => Number.isInteger(n) && n > 0 && n < 65536);

/**
 * How the echo server stands in for a container's image: the conformance echo-basic serves HTTP on 3000 and h2c on
 * 3001 whatever its spec says; echo-advanced (Istio's echo) serves its `--port` flags that are not `--tls` ones and
 * answers in its text format; any other image serves HTTP on its declared TCP container ports.
 */
export function standIn(c: Container): { ports: number[]; h2cPorts: number[]; format: EchoFormat } {
  const image = c.image ?? '';
  const declared = (c.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => p.containerPort);
  if (/(^|\/)echo-basic(:|@|$)/.test(image)) {
    return { ports: [...new Set([3000, ...declared.filter((p) => p !== 3001)])], h2cPorts: [3001], format: 'json' };
  }
  if (/(^|\/)echo-advanced(:|@|$)/.test(image) || /(^|\/)istio-testing\/app(:|@|$)/.test(image)) {
    const args = [...(c.command ?? []), ...(c.args ?? [])];
    const tls = new Set(numbers(flagValues(args, 'tls')));
    const http = numbers(flagValues(args, 'port')).filter((p) => !tls.has(p));
    return { ports: http.length > 0 ? [...new Set(http)] : declared, h2cPorts: [], format: 'istio' };
  }
  return { ports: [...new Set(declared)], h2cPorts: [], format: 'json' };
}

/** The container's env as the kubelet would set it, as far as it can be known here (values and downward API). */
function containerEnv(c: Container, pod: Pod, ip: string): Record<string, string> {
  const env: Record<string, string> = {};
  const field: Record<string, string> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace ?? 'default',
    'status.podIP': ip,
    'spec.serviceAccountName': pod.spec.serviceAccountName ?? 'default',
  };
  for (const e of c.env ?? []) {
    if (typeof e.value === 'string') env[e.name] = e.value;
    const path = (e.valueFrom as { fieldRef?: { fieldPath?: string } } | undefined)?.fieldRef?.fieldPath;
    if (path !== undefined && path in field) env[e.name] = field[path];
  }
  // What the echo server reports, whatever the spec says.
  env.POD_NAME = pod.metadata.name;
  env.NAMESPACE = pod.metadata.namespace ?? 'default';
  const version = pod.metadata.labels?.version;
  if (version !== undefined && env.SERVICE_VERSION === undefined) env.SERVICE_VERSION = version;
  return env;
}

/** The processes a snapshot asks for. `proxyIds` are the ids the translator made configs for. */
export function planLocalMesh(snapshot: ResourceSnapshot, proxyIds: Iterable<string>, o: PlanOptions): LocalPlan {
  const ids = new Set(proxyIds);
  const plan: LocalPlan = { pods: [], gateways: [], unplaced: [] };
  const ips = new Map<string, string>();
  for (const pod of snapshot.list('Pod')) {
    const namespace = pod.metadata.namespace ?? 'default';
    const key = `${namespace}/${pod.metadata.name}`;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    const ip = pod.status?.podIP;
    if (!ip) {
      plan.unplaced.push({ key, reason: 'no pod IP' });
      continue;
    }
    if (!(o.podRange?.contains(ip) ?? isLoopback(ip))) {
      const range = o.podRange?.text ?? 'a loopback address (127.0.0.0/8)';
      plan.unplaced.push({ key, reason: `pod IP ${ip} is not ${range}` });
      continue;
    }
    if (pod.spec.hostNetwork) {
      plan.unplaced.push({ key, reason: 'hostNetwork pods are not run locally' });
      continue;
    }
    const other = ips.get(ip);
    if (other) {
      plan.unplaced.push({ key, reason: `pod IP ${ip} is already ${other}'s` });
      continue;
    }
    ips.set(ip, key);
    const planned: PlannedPod = {
      key,
      namespace,
      name: pod.metadata.name,
      ip,
      serviceAccount: pod.spec.serviceAccountName ?? 'default',
      workloads: [],
      skipped: [],
    };
    const containers = [
      ...(pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
      ...pod.spec.containers,
    ];
    for (const c of containers) {
      const s = standIn(c);
      if (s.ports.length === 0 && s.h2cPorts.length === 0) {
        planned.skipped.push({ container: c.name, reason: 'no TCP port to serve' });
        continue;
      }
      planned.workloads.push({
        container: c.name,
        image: c.image ?? '(no image)',
        ports: s.ports.map((p) => localPort(p, o.portOffset)),
        h2cPorts: s.h2cPorts.map((p) => localPort(p, o.portOffset)),
        format: s.format,
        env: containerEnv(c, pod, ip),
      });
    }
    const proxyId = `sidecar:${key}`;
    if (ids.has(proxyId)) planned.proxyId = proxyId;
    plan.pods.push(planned);
  }
  for (const gw of snapshot.list('Gateway')) {
    const namespace = gw.metadata.namespace ?? 'default';
    const key = `${namespace}/${gw.metadata.name}`;
    const proxyId = `edge:${key}`;
    if (!ids.has(proxyId)) continue;
    const serviceName = gatewayServiceName(gw.metadata.name);
    const svc = snapshot.get('Service', `${namespace}/${serviceName}`);
    const assigned = o.gatewayAddresses?.(key)?.find(isLoopback);
    const address = assigned ?? svc?.status?.loadBalancer?.ingress?.find((i) => i.ip)?.ip;
    plan.gateways.push({
      key,
      namespace,
      name: gw.metadata.name,
      proxyId,
      address: address && isLoopback(address) ? address : undefined,
      serviceAccount: serviceName,
    });
  }
  plan.pods.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  plan.gateways.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return plan;
}

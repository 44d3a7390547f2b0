// Kubelet's probes through the proxy. Once inbound traffic is captured, a kubelet probe sent to the app's port
// would land on the proxy's inbound listener, which expects mesh mTLS. So, as Istio's rewriteAppHTTPProbers does,
// each httpGet, tcpSocket and grpc probe is rewritten into an httpGet on the proxy's admin port (excluded from
// capture) at `/app-health/<container>/<livez|readyz|startupz>`, and the original probe is kept, as JSON in the
// `weft.dev/app-probes` annotation, for the proxy to perform against the app on localhost. exec probes run inside
// the container and are left alone.
import {
  APP_HEALTH_PREFIX,
  type AppProbe,
  AppProbeSchema,
  type AppProbes,
  appHealthPath,
} from '../sidecar/config/app-probes.ts';
import type { Container, ContainerPort, Probe } from './types.ts';

// The hand-over's contract is the proxy's (sidecar/config/app-probes.ts); re-exported for the injector's users.
export { APP_HEALTH_PREFIX, type AppProbe, type AppProbes, appHealthPath };

const PROBE_KINDS = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

function resolvePort(port: number | string, ports: ContainerPort[] | undefined): number | undefined {
  if (typeof port === 'number') return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
  if (/^\d+$/.test(port)) return resolvePort(Number(port), ports);
  return ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * What the proxy must do for `probe`, or undefined when kubelet should keep performing it itself — including a probe
 * the proxy would refuse (a scheme other than HTTP/HTTPS, a malformed header): handed over, it would stop the proxy.
 */
function appProbe(probe: Probe, container: Container, adminPort: number): AppProbe | undefined {
  const original = originalProbe(probe, container, adminPort);
  return original !== undefined && AppProbeSchema.safeParse(original).success ? (original as AppProbe) : undefined;
}

function originalProbe(probe: Probe, container: Container, adminPort: number): unknown {
  const timeoutSeconds = probe.timeoutSeconds ?? 1;
  if (probe.httpGet) {
    const g = probe.httpGet;
    // A probe with its own host does not target the pod, so capture never sees it.
    if (g.host) return undefined;
    const port = resolvePort(g.port, container.ports);
    if (port === undefined || port === adminPort) return undefined;
    const httpGet: Record<string, unknown> = { port };
    if (g.path !== undefined) httpGet.path = g.path;
    if (g.scheme !== undefined) httpGet.scheme = g.scheme;
    if (g.httpHeaders !== undefined) httpGet.httpHeaders = g.httpHeaders;
    return { httpGet, timeoutSeconds };
  }
  if (probe.tcpSocket) {
    if (probe.tcpSocket.host) return undefined;
    const port = resolvePort(probe.tcpSocket.port, container.ports);
    return port === undefined ? undefined : { tcpSocket: { port }, timeoutSeconds };
  }
  if (probe.grpc) {
    const port = resolvePort(probe.grpc.port, undefined);
    if (port === undefined) return undefined;
    const grpc: { port: number; service?: string } = { port };
    if (probe.grpc.service !== undefined) grpc.service = probe.grpc.service;
    return { grpc, timeoutSeconds };
  }
  return undefined;
}

/**
 * Rewrites the probes of `containers` in place to go through the admin port and returns the originals by path.
 * Timing fields (period, thresholds, delays, timeout) are kept: kubelet still decides when and how often.
 */
export function rewriteProbes(containers: Container[], adminPort: number): AppProbes {
  const originals: AppProbes = {};
  for (const container of containers) {
    for (const [field, name] of PROBE_KINDS) {
      const probe = container[field];
      if (!probe) continue;
      const original = appProbe(probe, container, adminPort);
      if (!original) continue;
      const path = appHealthPath(container.name, name);
      originals[path] = original;
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...timing } = probe;
      container[field] = { ...timing, httpGet: { path, port: adminPort, scheme: 'HTTP' } };
    }
  }
  return originals;
}

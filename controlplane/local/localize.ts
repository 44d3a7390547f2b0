// From a cluster's ProxyConfig to one that runs on this machine. In a pod every proxy binds 0.0.0.0 in its own
// network namespace; in `weft local` all share the host's, so each binds its own loopback address instead (the pod's
// IP, or the Gateway's address) — and, without root, ports below 1024 are moved up by an offset (80 → 10080), the
// same way for the listeners that bind them and for the endpoints that send to them.
import type { ProxyConfig } from '../../sidecar/config/proxy-config.ts';

/** Default shift of privileged ports when not running as root. */
export const DEFAULT_PORT_OFFSET = 10_000;

/** The port to bind (and dial) on this machine for `port`: shifted by `offset` when below 1024. */
export function localPort(port: number, offset: number): number {
  return port > 0 && port < 1024 && offset > 0 ? port + offset : port;
}

/** Whether this process may bind ports below 1024 (root; capabilities are not looked at). */
export function canBindPrivileged(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export interface LocalizeOptions {
  /** The address this proxy binds: its pod's IP (sidecar) or its Gateway's address (edge). */
  bindAddress: string;
  /** Offset for ports below 1024 (0: bind them as they are). */
  portOffset: number;
  /** Shift endpoint ports too (default): false when the workloads bind their own ports (`--netns` pods). */
  shiftEndpoints?: boolean;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** A copy of `config` bound to `bindAddress`, privileged ports shifted. Pure; the input is not changed. */
export function localizeConfig(config: ProxyConfig, o: LocalizeOptions): ProxyConfig {
  const port = (p: number) => localPort(p, o.portOffset);
  const listeners = config.listeners.map((l) => {
    const address = WILDCARD.has(l.address) ? o.bindAddress : l.address;
    switch (l.kind) {
      case 'inbound':
      case 'mesh':
        return { ...l, address, port: port(l.port), appPorts: l.appPorts.map((a) => ({ ...a, port: port(a.port) })) };
      default:
        return { ...l, address, port: port(l.port) };
    }
  });
  if (o.shiftEndpoints === false) return { ...config, listeners } as ProxyConfig;
  const clusters: ProxyConfig['clusters'] = {};
  for (const [key, c] of Object.entries(config.clusters)) {
    // Workloads bind their shifted ports, so endpoints are dialled there.
    clusters[key] = { ...c, endpoints: c.endpoints.map((e) => ({ ...e, port: port(e.port) })) };
  }
  return { ...config, listeners, clusters } as ProxyConfig;
}

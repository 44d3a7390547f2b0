// The label and annotations that are weft's contract with users (docs/injection.md lists each), and the parsers of
// their values. A value weft cannot use is an error with the annotation's name in it, never silently ignored.
import { isIP } from 'node:net';
import { InjectError } from './errors.ts';
import type { CaptureExclusions } from './settings.ts';

/** Namespace label: `enabled` turns injection on for the namespace's pods. */
export const INJECT_LABEL = 'weft.dev/inject';
export const INJECT_LABEL_ENABLED = 'enabled';
/** Pod annotation: `"false"` opts the pod out; `"true"` is accepted (it changes nothing in a labelled namespace). */
export const INJECT_ANNOTATION = 'weft.dev/inject';
/** Comma-separated ports whose inbound traffic bypasses the proxy. */
export const EXCLUDE_INBOUND_PORTS = 'weft.dev/exclude-inbound-ports';
/** Comma-separated destination ports whose outbound traffic bypasses the proxy. */
export const EXCLUDE_OUTBOUND_PORTS = 'weft.dev/exclude-outbound-ports';
/** Comma-separated IPs or CIDRs whose outbound traffic bypasses the proxy. */
export const EXCLUDE_OUTBOUND_IPS = 'weft.dev/exclude-outbound-ips';
/** `"false"` leaves the app's probes as they are (kubelet then reaches the app through traffic capture). */
export const REWRITE_PROBES_ANNOTATION = 'weft.dev/rewrite-app-probes';
/** Set by weft: the version that injected the pod. Its presence makes injection a no-op. */
export const INJECTED_ANNOTATION = 'weft.dev/injected';
/** Set by weft: the app's original probes as JSON, keyed by the admin path kubelet now calls. */
export const APP_PROBES_ANNOTATION = 'weft.dev/app-probes';
/** Kubernetes' own: the container `kubectl logs/exec` pick by default (set when the proxy goes first). */
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

const annotationError = (name: string, value: string, why: string) =>
  new InjectError('WEFT_ERR_INJECT_ANNOTATION', `annotation ${name}: ${JSON.stringify(value)} ${why}`);

function items(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** `"8080, 9090"` → `[8080, 9090]` (duplicates dropped, order kept). */
export function parsePorts(name: string, value: string): number[] {
  const out: number[] = [];
  for (const item of items(value)) {
    const n = /^\d{1,5}$/.test(item) ? Number(item) : Number.NaN;
    if (!(n >= 1 && n <= 65535)) throw annotationError(name, value, `is not a list of ports: "${item}" is not 1–65535`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** `"10.0.0.0/8, 169.254.169.254"` → `["10.0.0.0/8", "169.254.169.254/32"]`: a bare address gets its host prefix. */
export function parseCidrs(name: string, value: string): string[] {
  const out: string[] = [];
  for (const item of items(value)) {
    const slash = item.indexOf('/');
    const address = slash === -1 ? item : item.slice(0, slash);
    const family = isIP(address);
    const max = family === 6 ? 128 : 32;
    const prefixText = slash === -1 ? String(max) : item.slice(slash + 1);
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
    if (family === 0 || !(prefix >= 0 && prefix <= max))
      throw annotationError(name, value, `is not a list of IPs or CIDRs: "${item}" is not one`);
    const cidr = `${address}/${prefix}`;
    if (!out.includes(cidr)) out.push(cidr);
  }
  return out;
}

/** A `"true"` / `"false"` annotation; undefined when absent. */
export function parseBool(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw annotationError(name, value, 'is neither "true" nor "false"');
}

export type Exclusions = CaptureExclusions;

/** The exclusion annotations of a pod, parsed; throws InjectError on a bad value. */
export function parseExclusions(annotations: Record<string, string> | undefined): Exclusions {
  const a = annotations ?? {};
  return {
    inboundPorts: EXCLUDE_INBOUND_PORTS in a ? parsePorts(EXCLUDE_INBOUND_PORTS, a[EXCLUDE_INBOUND_PORTS]) : [],
    outboundPorts: EXCLUDE_OUTBOUND_PORTS in a ? parsePorts(EXCLUDE_OUTBOUND_PORTS, a[EXCLUDE_OUTBOUND_PORTS]) : [],
    outboundCidrs: EXCLUDE_OUTBOUND_IPS in a ? parseCidrs(EXCLUDE_OUTBOUND_IPS, a[EXCLUDE_OUTBOUND_IPS]) : [],
  };
}

// The hand-over of the app's probes from the injector to the proxy. The injector rewrites each httpGet, tcpSocket and
// grpc probe into `GET /app-health/<container>/<livez|readyz|startupz>` on the proxy's admin port and writes the
// originals, as JSON keyed by that path, into the pod annotation `weft.dev/app-probes`; the proxy reads them from
// the environment variable WEFT_APP_PROBES (the downward API copies the annotation there) and performs them against
// the app on localhost. The proxy is the consumer, so the contract lives here; the injector imports it.
import { z } from 'zod';
import { AppProbesError } from './errors.ts';

export const APP_HEALTH_PREFIX = '/app-health/';
/** The proxy's environment variable holding the probes (`weft proxy --app-probes` reads it by default). */
export const APP_PROBES_ENV = 'WEFT_APP_PROBES';

export type AppProbeKind = 'livez' | 'readyz' | 'startupz';

const Port = z.number().int().min(1).max(65535);
// Kubernetes' own minimum and default.
const Timeout = z.number().int().min(1).default(1);
// RFC 9110 token: what Node (and kubelet) accept as a header name.
const HeaderName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'not a valid header name');
const HeaderValue = z.string().regex(/^[^\r\n\0]*$/, 'a header value cannot hold CR, LF or NUL');
// Node refuses request targets with whitespace or control characters; say so here, not mid-probe.
const RequestPath = z
  .string()
  .refine(
    (p) => ![...p].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f),
    'a path cannot hold whitespace or control characters',
  );

// Loose objects: a newer injector may add fields an older proxy can ignore.
const HttpGetProbe = z.object({
  httpGet: z.object({
    path: RequestPath.optional(),
    port: Port,
    scheme: z.enum(['HTTP', 'HTTPS']).optional(),
    httpHeaders: z.array(z.object({ name: HeaderName, value: HeaderValue })).optional(),
  }),
  timeoutSeconds: Timeout,
});
const TcpSocketProbe = z.object({ tcpSocket: z.object({ port: Port }), timeoutSeconds: Timeout });
const GrpcProbe = z.object({ grpc: z.object({ port: Port, service: z.string().optional() }), timeoutSeconds: Timeout });

/** One probe as the proxy performs it: ports resolved to numbers, only the fields that say how to check. */
export const AppProbeSchema = z.union([HttpGetProbe, TcpSocketProbe, GrpcProbe]);
export type AppProbe = z.output<typeof AppProbeSchema>;

const APP_HEALTH_PATH = /^\/app-health\/[^/?#\s]+\/(livez|readyz|startupz)$/;
const BY_KIND = { httpGet: HttpGetProbe, tcpSocket: TcpSocketProbe, grpc: GrpcProbe } as const;

/** `weft.dev/app-probes`: admin path → the probe it stands for. */
export type AppProbes = Record<string, AppProbe>;

export function appHealthPath(container: string, probe: AppProbeKind): string {
  return `${APP_HEALTH_PREFIX}${container}/${probe}`;
}

/** Parses the JSON of `weft.dev/app-probes`; an empty text means no probes. Throws AppProbesError. */
export function parseAppProbes(text: string): AppProbes {
  if (text.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AppProbesError(`app probes are not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new AppProbesError('invalid app probes: want an object of /app-health/… paths');
  // Each probe against the schema of its kind: a union's error would only say "Invalid input".
  const issues: string[] = [];
  const probes: AppProbes = {};
  for (const [path, value] of Object.entries(json)) {
    if (!APP_HEALTH_PATH.test(path)) issues.push(`${path}: want /app-health/<container>/<livez|readyz|startupz>`);
    const kind = (Object.keys(BY_KIND) as (keyof typeof BY_KIND)[]).find(
      (k) => value && typeof value === 'object' && k in value,
    );
    if (kind === undefined) {
      issues.push(`${path}: want an httpGet, tcpSocket or grpc probe`);
      continue;
    }
    const parsed = BY_KIND[kind].safeParse(value);
    if (parsed.success) probes[path] = parsed.data;
    else for (const i of parsed.error.issues) issues.push(`${[path, ...i.path.map(String)].join('.')}: ${i.message}`);
  }
  if (issues.length > 0) throw new AppProbesError(`invalid app probes: ${issues.slice(0, 5).join('; ')}`);
  return probes;
}

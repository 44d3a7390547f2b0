// The app's probes, performed by the proxy for kubelet. Once inbound traffic is captured, kubelet's probes cannot
// reach the app directly, so the injector points them at `/app-health/<container>/<probe>` on the admin port and
// hands the originals over (sidecar/config/app-probes.ts). Each call performs the original check against the app
// on localhost, as kubelet would: httpGet (scheme, path, headers; 200–399 passes, certificates are not verified),
// tcpSocket (a connect) and grpc (grpc.health.v1.Health/Check over h2c, SERVING passes), within the probe's timeout.
import { connect as http2Connect } from 'node:http2';
import { type IncomingMessage, request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { AppProbe, AppProbes } from './config/app-probes.ts';

export interface ProbeOutcome {
  ok: boolean;
  /** One line for people (kubelet's events, `curl`): what was checked and what came of it. */
  message: string;
}

export interface AppHealthOptions {
  /** Where the app listens. Default 127.0.0.1. */
  host?: string;
}

/** Sent when kubelet's request carries no User-Agent (kubelet's own is `kube-probe/<version>`). */
const DEFAULT_USER_AGENT = 'weft-app-probe';
/** Kubelet reads at most 10 KiB of a probe's body; a failure's message shows the start of it. */
const MAX_BODY_BYTES = 10 * 1024;
const BODY_IN_MESSAGE = 120;

const errorText = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}${e.message && !e.message.includes(e.code) ? ` ${e.message}` : ''}` : String(e.message);
};

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** The probes of one pod, by admin path. */
export class AppHealth {
  readonly #probes: ReadonlyMap<string, AppProbe>;
  readonly #host: string;

  constructor(probes: AppProbes, options: AppHealthOptions = {}) {
    this.#probes = new Map(Object.entries(probes));
    this.#host = options.host ?? '127.0.0.1';
  }

  get paths(): string[] {
    return [...this.#probes.keys()];
  }

  /** Performs the probe behind `path`; undefined when there is none. */
  run(path: string, userAgent?: string): Promise<ProbeOutcome> | undefined {
    const probe = this.#probes.get(path);
    return probe && runProbe(probe, { host: this.#host, userAgent });
  }
}

/** Performs one probe against the app; never rejects (a failure is an outcome). */
export function runProbe(probe: AppProbe, o: { host?: string; userAgent?: string } = {}): Promise<ProbeOutcome> {
  const host = o.host ?? '127.0.0.1';
  const timeoutMs = probe.timeoutSeconds * 1000;
  if ('httpGet' in probe) return httpProbe(probe.httpGet, host, timeoutMs, o.userAgent ?? DEFAULT_USER_AGENT);
  if ('tcpSocket' in probe) return tcpProbe(probe.tcpSocket.port, host, timeoutMs);
  return grpcProbe(probe.grpc, host, timeoutMs);
}

type HttpGet = Extract<AppProbe, { httpGet: unknown }>['httpGet'];

/**
 * Runs `start` with a `finish` that settles once and a timer that calls `onTimeout` then finishes with a timeout
 * outcome; `cleanup` releases sockets however it ended.
 */
function withTimeout(
  what: string,
  timeoutMs: number,
  start: (finish: (o: ProbeOutcome) => void) => () => void,
): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let done = false;
    let cleanup: () => void = () => {};
    const finish = (outcome: ProbeOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => finish({ ok: false, message: `${what}: no answer within ${timeoutMs / 1000} s (timeoutSeconds)` }),
      timeoutMs,
    );
    cleanup = start(finish);
    if (done) cleanup();
  });
}

function httpProbe(g: HttpGet, host: string, timeoutMs: number, userAgent: string): Promise<ProbeOutcome> {
  const https = g.scheme === 'HTTPS';
  let path = g.path ?? '/';
  if (!path.startsWith('/')) path = `/${path}`;
  const what = `${https ? 'https' : 'http'}://${hostPort(host, g.port)}${path}`;
  // As kubelet: its User-Agent and Accept unless the probe sets them, no keep-alive.
  const headers: OutgoingHttpHeaders = { 'user-agent': userAgent, accept: '*/*', connection: 'close' };
  const set = new Set<string>();
  for (const { name, value } of g.httpHeaders ?? []) {
    const key = name.toLowerCase();
    // Repeated names are all sent; the first occurrence replaces a default.
    const prior = set.has(key) ? headers[key] : undefined;
    headers[key] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [String(prior)]), value];
    set.add(key);
  }
  return withTimeout(`GET ${what}`, timeoutMs, (finish) => {
    const req = (https ? httpsRequest : httpRequest)({
      host,
      port: g.port,
      path,
      method: 'GET',
      headers,
      agent: false,
      // kubelet does not verify the app's certificate either.
      ...(https ? { rejectUnauthorized: false } : {}),
    });
    req.on('error', (err) => finish({ ok: false, message: `GET ${what}: ${errorText(err)}` }));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const report = () => {
        const ok = status >= 200 && status < 400;
        let body = Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').trim();
        if (body.length > BODY_IN_MESSAGE) body = `${body.slice(0, BODY_IN_MESSAGE)}…`;
        const message = `GET ${what}: HTTP ${status}${ok || body === '' ? '' : `: ${body}`}`;
        finish({ ok, message });
      };
      res.on('data', (c: Buffer) => {
        if (size < MAX_BODY_BYTES) chunks.push(c.subarray(0, MAX_BODY_BYTES - size));
        size += c.length;
        if (size >= MAX_BODY_BYTES) report();
      });
      res.on('end', report);
      res.on('error', report);
    });
    req.end();
    return () => req.destroy();
  });
}

function tcpProbe(port: number, host: string, timeoutMs: number): Promise<ProbeOutcome> {
  const what = `tcp ${hostPort(host, port)}`;
  return withTimeout(`connect to ${what}`, timeoutMs, (finish) => {
    const socket = netConnect({ host, port });
    socket.on('connect', () => finish({ ok: true, message: `${what}: connected` }));
    socket.on('error', (err) => finish({ ok: false, message: `connect to ${what}: ${errorText(err)}` }));
    return () => socket.destroy();
  });
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A varint at `at` of `buf`: [value, next offset], or undefined when it runs past the end. */
function varint(buf: Buffer, at: number): [number, number] | undefined {
  let value = 0;
  for (let shift = 0, i = at; i < buf.length && shift < 35; i++, shift += 7) {
    value += (buf[i] & 0x7f) * 2 ** shift;
    if ((buf[i] & 0x80) === 0) return [value, i + 1];
  }
  return undefined;
}

/** grpc.health.v1.HealthCheckRequest { string service = 1; } in a gRPC length-prefixed frame. */
export function healthCheckFrame(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const len: number[] = [];
  for (let n = name.length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      len.push(n);
      break;
    }
    len.push((n % 128) | 0x80);
  }
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, ...len]), name]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

/** The `status` (field 1) of the HealthCheckResponse framed in `body`, or a reason it cannot be read. */
export function readServingStatus(body: Buffer): number | string {
  if (body.length < 5) return 'no response message';
  if (body[0] !== 0) return 'compressed response (none was asked for)';
  const message = body.subarray(5, 5 + body.readUInt32BE(1));
  let status = 0;
  for (let i = 0; i < message.length; ) {
    const tag = varint(message, i);
    if (!tag) return 'malformed response message';
    const [key, next] = tag;
    const wire = key & 7;
    i = next;
    if (wire === 0) {
      const v = varint(message, i);
      if (!v) return 'malformed response message';
      if (key >> 3 === 1) status = v[0];
      i = v[1];
    } else if (wire === 2) {
      const l = varint(message, i);
      if (!l) return 'malformed response message';
      i = l[1] + l[0];
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else return 'malformed response message';
  }
  return status;
}

function grpcProbe(g: { port: number; service?: string }, host: string, timeoutMs: number): Promise<ProbeOutcome> {
  const what = `grpc ${hostPort(host, g.port)} grpc.health.v1.Health/Check${g.service ? ` service "${g.service}"` : ''}`;
  return withTimeout(what, timeoutMs, (finish) => {
    const session = http2Connect(`http://${hostPort(host, g.port)}`);
    const fail = (why: string) => finish({ ok: false, message: `${what}: ${why}` });
    session.on('error', (err) => fail(errorText(err)));
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${timeoutMs}m`,
      'user-agent': DEFAULT_USER_AGENT,
    });
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage = '';
    const chunks: Buffer[] = [];
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    stream.on('response', (h) => {
      httpStatus = Number(h[':status']);
      take(h);
    });
    stream.on('trailers', take);
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', (err) => fail(errorText(err)));
    stream.on('end', () => {
      if (httpStatus !== 200) return fail(`HTTP ${httpStatus} (is this port gRPC?)`);
      const code = Number(grpcStatus);
      if (grpcStatus === undefined) return fail('no grpc-status in the answer');
      if (code !== 0) {
        const name = GRPC_CODES[code] ?? 'UNKNOWN';
        const hint = code === 12 ? ' (the app does not serve grpc.health.v1.Health)' : '';
        return fail(`grpc-status ${code} ${name}${grpcMessage ? `: ${grpcMessage}` : ''}${hint}`);
      }
      const status = readServingStatus(Buffer.concat(chunks));
      if (typeof status === 'string') return fail(status);
      const name = SERVING_STATUS[status] ?? `status ${status}`;
      finish({ ok: status === 1, message: `${what}: ${name}` });
    });
    stream.end(healthCheckFrame(g.service ?? ''));
    return () => {
      stream.destroy();
      session.destroy();
    };
  });
}

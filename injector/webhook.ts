// The mutating admission webhook: HTTPS, `POST /inject`, AdmissionReview admission.k8s.io/v1. Each review of a Pod
// CREATE is answered with the injection as a base64 JSON Patch (or no patch); everything else is allowed untouched.
//
// How failures surface, so that none blocks pods silently:
// - a review that is not one (no request, no uid, wrong apiVersion, an object that is not a pod): an AdmissionReview
//   that denies with status 400 and says why — the API server sent something it should not have;
// - a body that is not JSON: HTTP 400; larger than the limit: HTTP 413, unread; both are call failures for the API
//   server, which then applies the webhook's failurePolicy;
// - a pod annotation weft cannot use: denied with the annotation's name, so `kubectl` and the ReplicaSet's events
//   show it;
// - anything failing inside weft (the namespace lookup, a bug): HTTP 500, so the failurePolicy decides (Fail: the
//   pod is refused with the message; Ignore: it is created without the proxy).
// Every review is logged (skips at debug, the rest at info or above) and reported to `onReview` for metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { InjectError } from './errors.ts';
import { assertPod, shouldInject } from './inject.ts';
import { injectionPatch } from './patch.ts';
import type { InjectSettings } from './settings.ts';
import type { NamespaceInfo, Pod } from './types.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const WEBHOOK_PATH = '/inject';
export const WEBHOOK_DEFAULT_PORT = 9443;
/** The API server caps request bodies at 3 MiB; a review carries the object (and on UPDATE the old one). */
export const WEBHOOK_MAX_BODY_BYTES = 3 * 1024 * 1024;
/** Whole request, headers and body; the API server gives a webhook 10 s at most. */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;

/** What became of one request, for metrics. */
export type ReviewOutcome =
  /** A Pod CREATE answered with a patch. */
  | 'injected'
  /** Allowed without a patch: not a Pod CREATE, or the pod is not to be injected (`reason` says why). */
  | 'skipped'
  /** Refused: a pod annotation weft cannot use. */
  | 'denied'
  /** Not a valid AdmissionReview (answered as one), not JSON (400) or too large (413). */
  | 'bad-request'
  /** Failed inside weft; answered 500 so the failurePolicy decides. */
  | 'error';

export interface ReviewEvent {
  outcome: ReviewOutcome;
  reason: string;
  /** The request's uid, namespace and pod name, when the review got that far. */
  uid?: string;
  namespace?: string;
  pod?: string;
  dryRun: boolean;
  /** Number of patch operations (injected only). */
  operations?: number;
}

/** The part of a pino logger the webhook uses. */
export interface WebhookLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WebhookOptions {
  /** Default 9443; 0 picks a free port. */
  port?: number;
  /** Default all interfaces. */
  host?: string;
  tls: { cert: string; key: string };
  settings: InjectSettings;
  /** The namespace's labels, or undefined when it is not known (yet). The Kubernetes part backs it with an informer. */
  namespaceLookup: (name: string) => NamespaceInfo | undefined | Promise<NamespaceInfo | undefined>;
  maxBodyBytes?: number;
  requestTimeoutMs?: number;
  logger?: WebhookLogger;
  /** Called once per request; a throwing hook is logged and ignored. */
  onReview?: (event: ReviewEvent) => void;
}

export interface RunningWebhook {
  readonly server: Server;
  readonly port: number;
  /** Swaps the serving certificate (the control plane rotates it); connections already open keep theirs. */
  updateTls(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; reason?: string; message: string };
}

/** A reply to one review: the HTTP status and the body. */
interface Reply {
  httpStatus: number;
  body: unknown;
  event: ReviewEvent;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

const review = (response: AdmissionResponse) => ({
  apiVersion: ADMISSION_API_VERSION,
  kind: 'AdmissionReview',
  response,
});

function refusal(uid: string, code: number, reason: string, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason, message } };
}

/** A 200 AdmissionReview refusing a review that is not a valid one. */
function badReview(uid: string, message: string, dryRun = false): Reply {
  return {
    httpStatus: 200,
    body: review(refusal(uid, 400, 'BadRequest', `weft injector: ${message}`)),
    event: { outcome: 'bad-request', reason: message, uid: uid || undefined, dryRun },
  };
}

/** A bare HTTP error (the API server counts it as a failed call); the body is still an AdmissionReview. */
function httpError(httpStatus: number, reason: string, message: string, outcome: ReviewOutcome): Reply {
  return {
    httpStatus,
    body: review(refusal('', httpStatus, reason, `weft injector: ${message}`)),
    event: { outcome, reason: message, dryRun: false },
  };
}

function podName(pod: Pod): string {
  const m = pod.metadata ?? {};
  if (m.name) return m.name;
  return m.generateName ? `${m.generateName}…` : '(unnamed)';
}

/** Answers one parsed AdmissionReview. Pure but for the namespace lookup. */
export async function answerReview(
  body: unknown,
  settings: InjectSettings,
  namespaceLookup: WebhookOptions['namespaceLookup'],
): Promise<Reply> {
  if (!isRecord(body)) return badReview('', 'the body is not an AdmissionReview object');
  const request = body.request;
  const uid = isRecord(request) && typeof request.uid === 'string' ? request.uid : '';
  if (body.kind !== 'AdmissionReview' || body.apiVersion !== ADMISSION_API_VERSION)
    return badReview(
      uid,
      `want kind AdmissionReview, apiVersion ${ADMISSION_API_VERSION}; got kind ${JSON.stringify(body.kind)}, ` +
        `apiVersion ${JSON.stringify(body.apiVersion)}`,
    );
  if (!isRecord(request)) return badReview('', 'the AdmissionReview has no request');
  if (uid === '') return badReview('', 'the request has no uid');
  const dryRun = request.dryRun === true;
  const allow = (reason: string): Reply => ({
    httpStatus: 200,
    body: review({ uid, allowed: true }),
    event: { outcome: 'skipped', reason, uid, dryRun },
  });

  const kind = isRecord(request.kind) ? request.kind : {};
  const resource = isRecord(request.resource) ? request.resource : {};
  const isPod = kind.group === '' && kind.kind === 'Pod' && resource.group === '' && resource.resource === 'pods';
  if (!isPod || (request.subResource !== undefined && request.subResource !== ''))
    return allow(`not a Pod (${String(kind.kind)}${request.subResource ? `/${String(request.subResource)}` : ''})`);
  if (request.operation !== 'CREATE') return allow(`operation ${String(request.operation)} (only CREATE is injected)`);

  const pod = request.object;
  try {
    assertPod(pod, 'request.object');
  } catch (err) {
    if (err instanceof InjectError) return badReview(uid, err.message, dryRun);
    throw err;
  }
  const namespace =
    typeof request.namespace === 'string' && request.namespace !== '' ? request.namespace : pod.metadata?.namespace;
  if (!namespace) return badReview(uid, 'the request names no namespace', dryRun);
  const name = podName(pod);

  const info = await namespaceLookup(namespace);
  if (!info) throw new Error(`namespace ${namespace} is not known to weft (yet); retry`);
  const decision = shouldInject(pod, info, settings);
  const event = { uid, namespace, pod: name, dryRun, reason: decision.reason };
  if (decision.invalid)
    return {
      httpStatus: 200,
      body: review(refusal(uid, 400, 'BadRequest', `weft injector: ${decision.reason}`)),
      event: { ...event, outcome: 'denied' },
    };
  if (!decision.inject)
    return { httpStatus: 200, body: review({ uid, allowed: true }), event: { ...event, outcome: 'skipped' } };

  const patch = injectionPatch(pod, settings);
  const response: AdmissionResponse = { uid, allowed: true };
  if (patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  }
  return {
    httpStatus: 200,
    body: review(response),
    event: { ...event, outcome: 'injected', operations: patch.length },
  };
}

/** Reads the body up to `limit` bytes; undefined when it is larger (the rest is not kept). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  const headers: Record<string, string | number> = {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}

/** Starts the webhook; resolves once it listens. */
export async function startWebhook(options: WebhookOptions): Promise<RunningWebhook> {
  const limit = options.maxBodyBytes ?? WEBHOOK_MAX_BODY_BYTES;
  const timeout = options.requestTimeoutMs ?? WEBHOOK_REQUEST_TIMEOUT_MS;
  const log = options.logger ?? pino({ name: 'weft-injector' });
  const { settings, namespaceLookup } = options;

  const report = (event: ReviewEvent) => {
    const fields = { ...event };
    if (event.outcome === 'skipped') log.debug(fields, 'review: pod not injected');
    else if (event.outcome === 'injected') log.info(fields, 'review: pod injected');
    else if (event.outcome === 'error') log.error(fields, 'review failed inside weft; answered 500');
    else log.warn(fields, `review ${event.outcome}`);
    try {
      options.onReview?.(event);
    } catch (err) {
      log.error({ err }, 'onReview hook threw');
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return send(res, 200, 'ok\n');
    if (path !== WEBHOOK_PATH) return send(res, 404, 'not found\n');
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, 'method not allowed\n');
    }
    const tooLarge = () => {
      const reply = httpError(413, 'RequestEntityTooLarge', `the review is larger than ${limit} bytes`, 'bad-request');
      report(reply.event);
      // Not read on: the connection closes once the answer is out.
      send(res, reply.httpStatus, reply.body, true);
    };
    const declared = Number(req.headers['content-length']);
    if (declared > limit) return tooLarge();
    const raw = await readBody(req, limit);
    if (raw === undefined) return tooLarge();

    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      const reply = httpError(400, 'BadRequest', `the body is not JSON: ${(err as Error).message}`, 'bad-request');
      report(reply.event);
      return send(res, reply.httpStatus, reply.body);
    }
    let reply: Reply;
    try {
      reply = await answerReview(parsed, settings, namespaceLookup);
    } catch (err) {
      const request = isRecord(parsed) && isRecord(parsed.request) ? parsed.request : {};
      const uid = typeof request.uid === 'string' ? request.uid : undefined;
      const message = (err as Error)?.message ?? String(err);
      reply = httpError(500, 'InternalError', message, 'error');
      reply.event = { ...reply.event, uid, dryRun: request.dryRun === true };
      log.error({ err, uid }, 'review failed');
    }
    report(reply.event);
    send(res, reply.httpStatus, reply.body);
  };

  const server = createServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      minVersion: 'TLSv1.2',
      requestTimeout: timeout,
      headersTimeout: timeout,
      // How often Node checks requestTimeout/headersTimeout (default 30 s, longer than the timeout itself).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeout / 4))),
    },
    (req, res) => {
      req.on('error', (err) => log.debug({ err }, 'request stream error'));
      res.on('error', (err) => log.debug({ err }, 'response stream error'));
      handle(req, res).catch((err) => {
        log.error({ err }, 'webhook handler failed');
        send(res, 500, 'internal error\n', true);
      });
    },
  );
  server.on('tlsClientError', (err) => log.debug({ err }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? WEBHOOK_DEFAULT_PORT, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'webhook server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, path: WEBHOOK_PATH }, 'injector webhook serving');

  return {
    server,
    port,
    updateTls(tls) {
      server.setSecureContext({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// Mutating admission as the real API server does it, for the test API server: on a write, every webhook of every
// MutatingWebhookConfiguration (configurations by name, webhooks in order) whose rules match the operation and
// resource, whose namespaceSelector matches the namespace's labels (plus `kubernetes.io/metadata.name`, which a real
// server sets on every namespace) and whose objectSelector matches the object's labels, is called over HTTPS with an
// AdmissionReview v1: at `clientConfig.url`, or at `clientConfig.service` resolved by a function the test gives, the
// server certificate verified against `caBundle` for the name `<service>.<namespace>.svc`, within `timeoutSeconds`
// (default 10). Its JSON Patch is applied to the object the next webhook sees. A refusal fails the write with the
// webhook's status (400 at least); a call that fails (refused, timed out, untrusted certificate, a bad answer) fails
// the write with 500 under failurePolicy Fail (the default) and is skipped under Ignore.
import { randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { LabelSelector } from '../../controlplane/resources/types.ts';
import { selectorMatches } from '../../controlplane/translate/gateway.ts';
import { jsonPatch } from './patch.ts';

type Obj = Record<string, unknown>;

interface Rule {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

interface Webhook {
  name: string;
  clientConfig?: {
    url?: string;
    caBundle?: string;
    service?: { namespace: string; name: string; path?: string; port?: number };
  };
  rules?: Rule[];
  failurePolicy?: 'Fail' | 'Ignore';
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  sideEffects?: string;
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
}

/** Where a webhook Service is reached (a real server dials its ClusterIP). */
export type ServiceResolver = (
  namespace: string,
  name: string,
  port: number,
) => { host: string; port: number } | undefined;

/** A write refused by admission: the API server answers it as a Status with this code. */
export class AdmissionError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

export interface AdmissionRequest {
  /** The MutatingWebhookConfigurations, as stored. */
  configurations: Obj[];
  operation: 'CREATE' | 'UPDATE';
  group: string;
  version: string;
  /** Plural resource name. */
  resource: string;
  kind: string;
  namespaced: boolean;
  namespace?: string;
  /** Labels of the namespace (undefined when it does not exist or the resource is cluster-scoped). */
  namespaceLabels?: Record<string, string>;
  /** The object with apiVersion and kind. */
  object: Obj;
  oldObject?: Obj;
  dryRun: boolean;
  resolveService?: ServiceResolver;
  /** Called once per webhook call, for tests. */
  onCall?: (webhook: string, outcome: 'patched' | 'allowed' | 'denied' | 'failed' | 'ignored') => void;
}

export function labelSelectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  return sel === undefined || selectorMatches(sel, labels);
}

const anyOf = (list: string[] | undefined, value: string) => (list ?? []).some((x) => x === '*' || x === value);

function ruleMatches(rule: Rule, r: AdmissionRequest): boolean {
  if (!anyOf(rule.operations, r.operation) || !anyOf(rule.apiGroups, r.group) || !anyOf(rule.apiVersions, r.version))
    return false;
  if (!(rule.resources ?? []).some((x) => x === '*' || x === '*/*' || x === r.resource || x === `${r.resource}/*`))
    return false;
  const scope = rule.scope ?? '*';
  return scope === '*' || (scope === 'Namespaced') === r.namespaced;
}

function applies(w: Webhook, r: AdmissionRequest, object: Obj): boolean {
  if (!(w.rules ?? []).some((rule) => ruleMatches(rule, r))) return false;
  if (r.namespaced) {
    const labels = { ...(r.namespaceLabels ?? {}), 'kubernetes.io/metadata.name': r.namespace ?? '' };
    if (!labelSelectorMatches(w.namespaceSelector, labels)) return false;
  }
  const objectLabels = ((object.metadata as Obj | undefined)?.labels ?? {}) as Record<string, string>;
  return labelSelectorMatches(w.objectSelector, objectLabels);
}

/** POSTs the review to the webhook; resolves with the parsed answer, rejects with why the call failed. */
function call(w: Webhook, review: Obj, resolve: ServiceResolver | undefined): Promise<Obj> {
  const cc = w.clientConfig ?? {};
  let host: string;
  let port: number;
  let path: string;
  let serverName: string;
  if (cc.url) {
    const u = new URL(cc.url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || 443);
    path = `${u.pathname}${u.search}`;
    serverName = host;
  } else if (cc.service) {
    const s = cc.service;
    const target = resolve?.(s.namespace, s.name, s.port ?? 443);
    if (!target) return Promise.reject(new Error(`service "${s.name}" not found`));
    ({ host, port } = target);
    path = s.path ?? '/';
    serverName = `${s.name}.${s.namespace}.svc`;
  } else return Promise.reject(new Error('webhook has neither url nor service'));
  const body = JSON.stringify(review);
  const timeoutMs = (w.timeoutSeconds ?? 10) * 1000;
  const ca = cc.caBundle ? Buffer.from(cc.caBundle, 'base64').toString('utf8') : undefined;
  return new Promise((resolveCall, reject) => {
    const req = request(
      {
        host,
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        ...(ca ? { ca } : {}),
        servername: serverName,
        checkServerIdentity: (_h: string, cert: PeerCertificate) => checkServerIdentity(serverName, cert),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`the server responded with status ${res.statusCode}`));
          try {
            resolveCall(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj);
          } catch (err) {
            reject(new Error(`the answer is not JSON: ${(err as Error).message}`));
          }
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('context deadline exceeded')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs the mutating webhooks over `r.object`; resolves with the object to store, or rejects with AdmissionError. */
export async function mutatingAdmission(r: AdmissionRequest): Promise<Obj> {
  let object = structuredClone(r.object);
  const configurations = [...r.configurations].sort((a, b) =>
    String((a.metadata as Obj).name) < String((b.metadata as Obj).name) ? -1 : 1,
  );
  for (const config of configurations) {
    for (const w of (config.webhooks ?? []) as Webhook[]) {
      if (!applies(w, r, object)) continue;
      if (r.dryRun && w.sideEffects !== 'None' && w.sideEffects !== 'NoneOnDryRun')
        throw new AdmissionError(400, 'BadRequest', `admission webhook "${w.name}" does not support dry run`);
      const uid = randomUUID();
      const meta = (object.metadata ?? {}) as Obj;
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid,
          kind: { group: r.group, version: r.version, kind: r.kind },
          resource: { group: r.group, version: r.version, resource: r.resource },
          requestKind: { group: r.group, version: r.version, kind: r.kind },
          requestResource: { group: r.group, version: r.version, resource: r.resource },
          ...(meta.name ? { name: meta.name } : {}),
          ...(r.namespaced ? { namespace: r.namespace } : {}),
          operation: r.operation,
          userInfo: {
            username: 'system:serviceaccount:kube-system:replicaset-controller',
            groups: ['system:authenticated'],
          },
          object,
          oldObject: r.oldObject ?? null,
          dryRun: r.dryRun,
          options: { apiVersion: 'meta.k8s.io/v1', kind: r.operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions' },
        },
      };
      let response: Obj | undefined;
      try {
        const answer = await call(w, review, r.resolveService);
        response = answer.response as Obj | undefined;
        if (answer.kind !== 'AdmissionReview' || answer.apiVersion !== 'admission.k8s.io/v1' || !response)
          throw new Error('the answer is not an admission.k8s.io/v1 AdmissionReview with a response');
        if (response.uid !== uid) throw new Error(`expected response.uid="${uid}", got "${String(response.uid)}"`);
      } catch (err) {
        if (w.failurePolicy === 'Ignore') {
          r.onCall?.(w.name, 'ignored');
          continue;
        }
        r.onCall?.(w.name, 'failed');
        throw new AdmissionError(
          500,
          'InternalError',
          `Internal error occurred: failed calling webhook "${w.name}": ${(err as Error).message}`,
        );
      }
      if (response.allowed !== true) {
        r.onCall?.(w.name, 'denied');
        const status = (response.status ?? {}) as { code?: number; reason?: string; message?: string };
        const code = (status.code ?? 0) < 400 ? 400 : (status.code as number);
        const why = status.message || status.reason;
        throw new AdmissionError(
          code,
          status.reason || 'BadRequest',
          `admission webhook "${w.name}" denied the request${why ? `: ${why}` : ' without explanation'}`,
        );
      }
      if (response.patch !== undefined) {
        if (response.patchType !== 'JSONPatch')
          throw new AdmissionError(
            500,
            'InternalError',
            `webhook "${w.name}" sent a patch of type ${String(response.patchType)}`,
          );
        try {
          const ops = JSON.parse(Buffer.from(String(response.patch), 'base64').toString('utf8'));
          object = jsonPatch(object, ops) as Obj;
        } catch (err) {
          throw new AdmissionError(
            500,
            'InternalError',
            `webhook "${w.name}": its patch does not apply: ${(err as Error).message}`,
          );
        }
        r.onCall?.(w.name, 'patched');
      } else r.onCall?.(w.name, 'allowed');
    }
  }
  return object;
}

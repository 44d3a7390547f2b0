// `weft check`: preflight and health of weft in a cluster, one result per check, each failure with its fix. Reads
// through the Kubernetes API only (KubeClient), plus the control plane's admin endpoint (/proxies) and a TLS
// handshake with the injector webhook; writes nothing. The names it looks for are the chart's and `weft
// controlplane`'s defaults (namespace weft-system, Secret weft-ca, ConfigMap weft-root-ca, Service and Deployment
// weft-controlplane, MutatingWebhookConfiguration weft-injector, GatewayClass weft, admin port 15014).
import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { KubeClient, KubeObject, ResourceRef } from '../k8s/client.ts';
import { isNotFound, KubeApiError } from '../k8s/errors.ts';
import { GATEWAY_API_GROUP } from '../k8s/kinds.ts';
import type { ProxyRecord } from '../push/server.ts';
import { holds, identify, isoDate, parseCertificates, subjectName, validity } from './certificates.ts';
import { type CheckResult, fail, ok, skip, warn } from './result.ts';

export const CHECK_DEFAULTS = {
  namespace: 'weft-system',
  caSecret: 'weft-ca',
  rootCaConfigMap: 'weft-root-ca',
  service: 'weft-controlplane',
  deployment: 'weft-controlplane',
  webhookConfiguration: 'weft-injector',
  gatewayClass: 'weft',
  adminPort: 15014,
  /** A root CA (or signing CA) closer to expiry than this is a warning. */
  expiryWarningDays: 30,
  /** For each network step that is not a Kubernetes API request (admin endpoint, TLS handshake). */
  timeoutMs: 10_000,
} as const;

export const GATEWAY_CONTROLLER = 'weft.dev/gateway-controller';
/** The Gateway API release weft is built against (docs: the user installs the CRDs). */
export const GATEWAY_API_VERSION = 'v1.4.0';
const GATEWAY_API_INSTALL = `kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml`;
/** The Gateway API CRDs weft needs, with the versions it can read (the first is the one it wants). */
const GATEWAY_CRDS: readonly { plural: string; versions: string[] }[] = [
  { plural: 'gatewayclasses', versions: ['v1'] },
  { plural: 'gateways', versions: ['v1'] },
  { plural: 'httproutes', versions: ['v1'] },
  { plural: 'referencegrants', versions: ['v1', 'v1beta1'] },
];
/** weft's own CRDs (charts/weft/crds). */
const WEFT_CRDS: readonly { name: string; version: string }[] = [
  { name: 'proxysettings.weft.dev', version: 'v1alpha1' },
];
const INJECT_SELECTOR = 'weft.dev/inject=enabled';
const ROOT_CA_KEY = 'ca.crt';
const CA_SECRET_CERT = 'ca.crt';
const CA_SECRET_CHAIN = 'chain.crt';

export interface CheckOptions {
  /** The API client; absent when none could be built (then `clientError` says why, and the API checks fail). */
  client?: KubeClient;
  clientError?: Error;
  /** The control plane's namespace. Default weft-system. */
  namespace?: string;
  caSecret?: string;
  rootCaConfigMap?: string;
  service?: string;
  deployment?: string;
  webhookConfiguration?: string;
  gatewayClass?: string;
  /** The control plane's admin URL (e.g. through `kubectl port-forward`); default: the API server's service proxy. */
  adminUrl?: string;
  /** Where to reach the webhook (e.g. through `kubectl port-forward`); default in a cluster: its Service. */
  webhookUrl?: string;
  /** Running inside the cluster (Service DNS names resolve). Default: KUBERNETES_SERVICE_HOST is set. */
  inCluster?: boolean;
  now?: () => number;
  expiryWarningDays?: number;
  timeoutMs?: number;
}

type Resolved = Required<Omit<CheckOptions, 'adminUrl' | 'webhookUrl' | 'client' | 'clientError'>> &
  Pick<CheckOptions, 'adminUrl' | 'webhookUrl' | 'clientError'> & { client: KubeClient | undefined };

const CRDS: ResourceRef = { group: 'apiextensions.k8s.io', plural: 'customresourcedefinitions', namespaced: false };
const GATEWAY_CLASSES: ResourceRef = { group: GATEWAY_API_GROUP, plural: 'gatewayclasses', namespaced: false };
const DEPLOYMENTS: ResourceRef = { group: 'apps', plural: 'deployments', namespaced: true };
const SECRETS: ResourceRef = { group: '', plural: 'secrets', namespaced: true };
const CONFIG_MAPS: ResourceRef = { group: '', plural: 'configmaps', namespaced: true };
const NAMESPACES: ResourceRef = { group: '', plural: 'namespaces', namespaced: false };
const WEBHOOK_CONFIGURATIONS: ResourceRef = {
  group: 'admissionregistration.k8s.io',
  plural: 'mutatingwebhookconfigurations',
  namespaced: false,
};

export const CHECK_NAMES = {
  api: 'Kubernetes API',
  gatewayCrds: 'Gateway API CRDs',
  weftCrds: 'weft CRDs',
  gatewayClass: 'GatewayClass',
  controlPlane: 'control plane',
  rootCa: 'root CA certificate',
  rootCaPublished: 'root CA ConfigMaps',
  webhookConfiguration: 'webhook configuration',
  webhookReachable: 'webhook reachable',
  proxies: 'proxies connected',
} as const;

/** What went wrong with a request, in a few words. */
function why(e: unknown): string {
  if (e instanceof KubeApiError)
    return `${e.statusCode} ${e.reason}${e.status?.message ? `: ${e.status.message}` : ''}`;
  // The deepest cause says what happened: "fetch failed" ← "connect ECONNREFUSED 127.0.0.1:6443".
  let err = e as Error & { code?: string };
  while (err?.cause instanceof Error) err = err.cause as Error & { code?: string };
  const message = err?.message ?? String(e);
  // Only Node's string codes (ECONNREFUSED); a DOMException's numeric code says nothing.
  return typeof err?.code === 'string' && !message.includes(err.code) ? `${err.code} ${message}` : message;
}

const forbidden = (e: unknown) => e instanceof KubeApiError && (e.statusCode === 401 || e.statusCode === 403);

/** The fix for a read the API refused or failed. */
function readFix(e: unknown, what: string, otherwise: string): string {
  if (forbidden(e))
    return `your credentials may not read ${what}: weft check needs get/list on it (kubectl auth can-i get ${what})`;
  return otherwise;
}

type Crd = KubeObject & { spec?: { versions?: { name: string; served?: boolean }[] } };
type Condition = { type?: string; status?: string; reason?: string; message?: string; observedGeneration?: number };
type WebhookConfiguration = KubeObject & {
  webhooks?: {
    name?: string;
    clientConfig?: { caBundle?: string; url?: string; service?: { namespace?: string; name?: string; port?: number } };
  }[];
};

class Checker {
  readonly o: Resolved;
  readonly results: CheckResult[] = [];

  constructor(o: Resolved) {
    this.o = o;
  }

  add(r: CheckResult): CheckResult {
    this.results.push(r);
    return r;
  }

  /** Only called once api() found a client that works. */
  get client(): KubeClient {
    return this.o.client!;
  }

  get ns(): string {
    return this.o.namespace;
  }

  async api(): Promise<boolean> {
    const name = CHECK_NAMES.api;
    if (this.o.client === undefined) {
      this.add(
        fail(
          name,
          `no usable kubeconfig: ${this.o.clientError?.message ?? 'none given'}`,
          'point --kubeconfig (or $KUBECONFIG) at a kubeconfig whose context names the cluster, or pass --context',
        ),
      );
      return false;
    }
    const server = this.client.server;
    try {
      const v = await this.client.request<{ gitVersion?: string; major?: string; minor?: string }>('GET', '/version');
      const minor = Number.parseInt(v?.minor ?? '', 10);
      const version = v?.gitVersion ?? `v${v?.major}.${v?.minor}`;
      if (v?.major === '1' && minor < 29)
        this.add(
          warn(
            name,
            `Kubernetes ${version} at ${server} has no native sidecars: injected pods use the classic form, and a Job's pods do not complete`,
            'upgrade the cluster to Kubernetes 1.29 or later, or opt Jobs out of injection (weft.dev/inject: "false")',
          ),
        );
      else this.add(ok(name, `Kubernetes ${version} at ${server}`));
      return true;
    } catch (e) {
      this.add(
        fail(
          name,
          `cannot reach ${server}: ${why(e)}`,
          forbidden(e)
            ? 'your credentials are refused: log in again, or pick another context (kubectl config use-context)'
            : 'check the kubeconfig and its context (kubectl config current-context, kubectl version), or pass --kubeconfig/--context',
        ),
      );
      return false;
    }
  }

  /** The Gateway API CRDs; resolves with whether GatewayClasses can be read. */
  async gatewayCrds(): Promise<boolean> {
    const name = CHECK_NAMES.gatewayCrds;
    const problems: string[] = [];
    const served: string[] = [];
    let classes = false;
    let bundle: string | undefined;
    let channel: string | undefined;
    let readError: unknown;
    for (const want of GATEWAY_CRDS) {
      const crdName = `${want.plural}.${GATEWAY_API_GROUP}`;
      let crd: Crd;
      try {
        crd = await this.client.get<Crd>(CRDS, 'v1', undefined, crdName);
      } catch (e) {
        if (isNotFound(e)) problems.push(`${crdName} is not installed`);
        else {
          problems.push(`cannot read CustomResourceDefinition ${crdName}: ${why(e)}`);
          readError ??= e;
        }
        continue;
      }
      const versions = (crd.spec?.versions ?? []).filter((v) => v.served !== false).map((v) => v.name);
      const version = want.versions.find((v) => versions.includes(v));
      if (version === undefined) {
        problems.push(`${crdName} serves ${versions.join(', ') || 'no version'}, not ${want.versions[0]}`);
        continue;
      }
      served.push(version === 'v1' ? want.plural : `${want.plural} (${version})`);
      if (want.plural === 'gatewayclasses') classes = true;
      bundle ??= crd.metadata?.annotations?.['gateway.networking.k8s.io/bundle-version'];
      channel ??= crd.metadata?.annotations?.['gateway.networking.k8s.io/channel'];
    }
    const release = bundle ? ` (release ${bundle}${channel ? `, ${channel} channel` : ''})` : '';
    if (problems.length > 0) {
      const fix = readError
        ? readFix(readError, 'customresourcedefinitions', GATEWAY_API_INSTALL)
        : `install the Gateway API ${GATEWAY_API_VERSION} standard CRDs: ${GATEWAY_API_INSTALL}`;
      this.add(fail(name, problems.join('; '), fix));
    } else if (bundle && olderThan(bundle, GATEWAY_API_VERSION))
      this.add(
        warn(
          name,
          `Gateway API ${bundle} is older than ${GATEWAY_API_VERSION}, which weft is built against: newer fields are not there`,
          `upgrade the CRDs: ${GATEWAY_API_INSTALL}`,
        ),
      );
    else this.add(ok(name, `${served.join(', ')} served at v1${release}`));
    return classes;
  }

  async weftCrds(): Promise<void> {
    const name = CHECK_NAMES.weftCrds;
    const problems: string[] = [];
    let readError: unknown;
    for (const want of WEFT_CRDS) {
      try {
        const crd = await this.client.get<Crd>(CRDS, 'v1', undefined, want.name);
        const versions = (crd.spec?.versions ?? []).filter((v) => v.served !== false).map((v) => v.name);
        if (!versions.includes(want.version))
          problems.push(`${want.name} serves ${versions.join(', ') || 'no version'}, not ${want.version}`);
      } catch (e) {
        if (isNotFound(e)) problems.push(`${want.name} is not installed`);
        else {
          problems.push(`cannot read CustomResourceDefinition ${want.name}: ${why(e)}`);
          readError ??= e;
        }
      }
    }
    if (problems.length === 0) this.add(ok(name, WEFT_CRDS.map((c) => `${c.name} served at ${c.version}`).join(', ')));
    else
      this.add(
        fail(
          name,
          problems.join('; '),
          readFix(
            readError,
            'customresourcedefinitions',
            'apply the chart’s CRDs: kubectl apply --server-side -f charts/weft/crds/ (helm install applies them once; helm upgrade never updates CRDs)',
          ),
        ),
      );
  }

  async gatewayClass(crdsPresent: boolean): Promise<void> {
    const gc = this.o.gatewayClass;
    const name = `${CHECK_NAMES.gatewayClass} ${gc}`;
    if (!crdsPresent) {
      this.add(skip(name, 'needs the Gateway API CRDs'));
      return;
    }
    let obj: KubeObject & { spec?: { controllerName?: string }; status?: { conditions?: Condition[] } };
    try {
      obj = await this.client.get(GATEWAY_CLASSES, 'v1', undefined, gc);
    } catch (e) {
      if (isNotFound(e))
        this.add(
          fail(
            name,
            `GatewayClass ${gc} does not exist`,
            `the chart creates it (gatewayClass.create=true): helm upgrade weft charts/weft -n ${this.ns} --reuse-values --set gatewayClass.create=true; or apply a GatewayClass ${gc} with controllerName ${GATEWAY_CONTROLLER}`,
          ),
        );
      else this.add(fail(name, `cannot read GatewayClass ${gc}: ${why(e)}`, readFix(e, 'gatewayclasses', 'retry')));
      return;
    }
    const controller = obj.spec?.controllerName;
    if (controller !== GATEWAY_CONTROLLER) {
      this.add(
        fail(
          name,
          `GatewayClass ${gc} belongs to controller ${controller ?? '(none)'}, not ${GATEWAY_CONTROLLER}`,
          `give weft a class of its own: a GatewayClass with controllerName ${GATEWAY_CONTROLLER} (and --gateway-class NAME here)`,
        ),
      );
      return;
    }
    const accepted = obj.status?.conditions?.find((c) => c.type === 'Accepted');
    const generation = obj.metadata?.generation;
    const current =
      accepted?.observedGeneration === undefined ||
      generation === undefined ||
      accepted.observedGeneration >= generation;
    if (accepted?.status === 'True' && current) {
      this.add(ok(name, `Accepted by ${GATEWAY_CONTROLLER}`));
      return;
    }
    const controlPlane = `is the control plane running? (see the "${CHECK_NAMES.controlPlane}" line; kubectl -n ${this.ns} logs deployment/${this.o.deployment})`;
    if (accepted?.status === 'False')
      this.add(
        fail(
          name,
          `not Accepted: ${accepted.reason ?? 'no reason'}${accepted.message ? `: ${accepted.message}` : ''}`,
          accepted.reason === 'InvalidParameters'
            ? `fix spec.parametersRef of GatewayClass ${gc} (it must name an existing ProxySettings)`
            : `kubectl describe gatewayclass ${gc}`,
        ),
      );
    else
      this.add(
        fail(
          name,
          accepted?.status === 'True'
            ? `Accepted is for generation ${accepted.observedGeneration}, the class is at ${generation}: the change is not processed yet`
            : `not Accepted yet (${accepted?.reason ?? 'no Accepted condition'}): weft's controller has not processed it`,
          controlPlane,
        ),
      );
  }

  async controlPlane(): Promise<void> {
    const name = CHECK_NAMES.controlPlane;
    const d = this.o.deployment;
    let obj: KubeObject & {
      spec?: { replicas?: number };
      status?: { availableReplicas?: number; replicas?: number; conditions?: Condition[] };
    };
    try {
      obj = await this.client.get(DEPLOYMENTS, 'v1', this.ns, d);
    } catch (e) {
      if (isNotFound(e))
        this.add(
          fail(
            name,
            `Deployment ${this.ns}/${d} does not exist`,
            `install weft: helm install weft charts/weft -n ${this.ns} --create-namespace (or pass --namespace where it runs)`,
          ),
        );
      else
        this.add(fail(name, `cannot read Deployment ${this.ns}/${d}: ${why(e)}`, readFix(e, 'deployments', 'retry')));
      return;
    }
    const want = obj.spec?.replicas ?? 1;
    const available = obj.status?.availableReplicas ?? 0;
    const logs = `kubectl -n ${this.ns} describe deployment ${d}; kubectl -n ${this.ns} logs deployment/${d}`;
    if (want === 0)
      this.add(
        fail(
          name,
          `Deployment ${this.ns}/${d} is scaled to 0`,
          `kubectl -n ${this.ns} scale deployment ${d} --replicas=2`,
        ),
      );
    else if (available === 0) {
      const progressing = obj.status?.conditions?.find((c) => c.type === 'Progressing' && c.status === 'False');
      const detail = progressing?.message ? `: ${progressing.message}` : '';
      this.add(fail(name, `no replica of Deployment ${this.ns}/${d} is available (0/${want})${detail}`, logs));
    } else if (available < want)
      this.add(warn(name, `${available}/${want} replicas of Deployment ${this.ns}/${d} available`, logs));
    else this.add(ok(name, `${available}/${want} replicas of Deployment ${this.ns}/${d} available`));
  }

  /** The mesh root CA (and the signing CA, when it is an intermediate): from the CA Secret, else a published copy. */
  async rootCa(): Promise<X509Certificate | undefined> {
    const name = CHECK_NAMES.rootCa;
    const secret = `${this.ns}/${this.o.caSecret}`;
    let certs: X509Certificate[] | undefined;
    let source = `Secret ${secret}`;
    let secretProblem: CheckResult | undefined;
    try {
      const s = await this.client.get<KubeObject & { data?: Record<string, string> }>(
        SECRETS,
        'v1',
        this.ns,
        this.o.caSecret,
      );
      const decode = (key: string) => (s.data?.[key] ? Buffer.from(s.data[key], 'base64').toString('utf8') : '');
      certs = parseCertificates(`${decode(CA_SECRET_CERT)}\n${decode(CA_SECRET_CHAIN)}`, `Secret ${secret}`);
    } catch (e) {
      const fix = `the control plane creates it on its first start: is it running? (see the "${CHECK_NAMES.controlPlane}" line)`;
      if (isNotFound(e)) secretProblem = fail(name, `Secret ${secret} does not exist`, fix);
      else if (!forbidden(e))
        secretProblem = fail(
          name,
          e instanceof KubeApiError ? `cannot read Secret ${secret}: ${why(e)}` : why(e),
          `Secret ${secret} must hold the CA certificate (${CA_SECRET_CERT}) and key: delete it to let the control plane create a new one, or supply your own CA`,
        );
    }
    if (certs === undefined) {
      // A user who may not read Secrets can still check the root as published.
      const published = await this.publishedRoot().catch(() => undefined);
      if (published === undefined || secretProblem) {
        this.add(
          secretProblem ??
            fail(
              name,
              `cannot read Secret ${secret}, and no ConfigMap ${this.o.rootCaConfigMap} holds a root`,
              `weft check needs get on secrets in ${this.ns} (kubectl auth can-i get secrets -n ${this.ns}), or list on configmaps`,
            ),
        );
        return published?.cert;
      }
      certs = [published.cert];
      source = published.source;
    }
    const root = certs.at(-1)!;
    const now = this.o.now();
    // The certificate nearest to expiry decides: the root, or the intermediate the control plane signs with.
    const states = certs.map((c) => ({ c, v: validity(c, now) }));
    const label = (c: X509Certificate) => `${c === root ? 'root' : 'signing CA'} ${subjectName(c)}`;
    const rotate = `rotate the CA before it expires: put a new CA into Secret ${secret} (${CA_SECRET_CERT}, ca.key) and restart the control plane (kubectl -n ${this.ns} rollout restart deployment ${this.o.deployment}), then restart meshed workloads so their proxies get certificates from it`;
    for (const { c, v } of states) {
      if (v.state === 'expired') {
        this.add(
          fail(
            name,
            `${label(c)} from ${source}: expired on ${isoDate(v.notAfter)}, ${v.daysAgo} days ago: proxies get no certificates and mTLS fails`,
            rotate,
          ),
        );
        return root;
      }
      if (v.state === 'not-yet-valid') {
        this.add(
          fail(
            name,
            `${label(c)} from ${source}: not valid before ${v.notBefore.toISOString()}`,
            'check the clocks of this machine and of the cluster’s nodes, or issue the CA with a notBefore in the past',
          ),
        );
        return root;
      }
    }
    const nearest = states
      .map(({ c, v }) => ({ c, v: v as Extract<typeof v, { state: 'valid' }> }))
      .sort((a, b) => a.v.notAfter.getTime() - b.v.notAfter.getTime())[0];
    const days = nearest.v.daysLeft;
    const text = `${label(nearest.c)} from ${source}: valid until ${isoDate(nearest.v.notAfter)}, ${days} day${days === 1 ? '' : 's'} left`;
    if (days < this.o.expiryWarningDays)
      this.add(warn(name, `${text}: expires within ${this.o.expiryWarningDays} days`, rotate));
    else this.add(ok(name, text));
    return root;
  }

  /** The root of the first ConfigMap `weft-root-ca` found: the control plane's namespace first, then any. */
  async publishedRoot(): Promise<{ cert: X509Certificate; source: string } | undefined> {
    const maps = await this.rootCaConfigMaps();
    const sorted = [...maps].sort(
      (a, b) => Number(b.metadata?.namespace === this.ns) - Number(a.metadata?.namespace === this.ns),
    );
    for (const m of sorted) {
      const source = `ConfigMap ${m.metadata?.namespace}/${m.metadata?.name}`;
      try {
        return { cert: parseCertificates(m.data?.[ROOT_CA_KEY] ?? '', source).at(-1)!, source };
      } catch {}
    }
    return undefined;
  }

  async rootCaConfigMaps(): Promise<(KubeObject & { data?: Record<string, string> })[]> {
    const list = await this.client.listAll<KubeObject & { data?: Record<string, string> }>(CONFIG_MAPS, 'v1', {
      fieldSelector: `metadata.name=${this.o.rootCaConfigMap}`,
    });
    return list.items;
  }

  /** Every namespace labelled for injection has the root CA ConfigMap, holding the root. */
  async rootCaPublished(root: X509Certificate | undefined): Promise<void> {
    const name = CHECK_NAMES.rootCaPublished;
    const cm = this.o.rootCaConfigMap;
    let namespaces: string[];
    let maps: Map<string, KubeObject & { data?: Record<string, string> }>;
    try {
      const ns = await this.client.listAll(NAMESPACES, 'v1', { labelSelector: INJECT_SELECTOR });
      namespaces = ns.items.map((n) => n.metadata?.name ?? '').sort();
      maps = new Map((await this.rootCaConfigMaps()).map((m) => [m.metadata?.namespace ?? '', m]));
    } catch (e) {
      this.add(
        fail(
          name,
          `cannot list namespaces and ConfigMaps: ${why(e)}`,
          readFix(e, 'namespaces and configmaps', 'retry'),
        ),
      );
      return;
    }
    if (namespaces.length === 0) {
      this.add(ok(name, `no namespace is labelled ${INJECT_SELECTOR} yet`));
      return;
    }
    const missing: string[] = [];
    const stale: string[] = [];
    for (const ns of namespaces) {
      const m = maps.get(ns);
      if (!m) {
        missing.push(ns);
        continue;
      }
      let bundle: X509Certificate[];
      try {
        bundle = parseCertificates(m.data?.[ROOT_CA_KEY] ?? '', `ConfigMap ${ns}/${cm}`);
      } catch {
        stale.push(ns);
        continue;
      }
      if (root && !holds(bundle, root)) stale.push(ns);
    }
    if (missing.length === 0 && stale.length === 0) {
      const where =
        namespaces.length === 1
          ? `the namespace labelled ${INJECT_SELECTOR} (${namespaces[0]})`
          : `all ${namespaces.length} namespaces labelled ${INJECT_SELECTOR}`;
      this.add(ok(name, `${cm} holds the root in ${where}`));
      return;
    }
    const problems: string[] = [];
    if (missing.length > 0) problems.push(`missing in ${missing.join(', ')} (injected pods there cannot start)`);
    if (stale.length > 0) problems.push(`holds no copy of the root in ${stale.join(', ')}`);
    this.add(
      fail(
        name,
        `ConfigMap ${cm} ${problems.join('; ')}`,
        `the control plane's leader publishes it into every labelled namespace within seconds: is it running? (kubectl -n ${this.ns} logs deployment/${this.o.deployment} | grep root-ca)`,
      ),
    );
  }

  /** The webhook configuration; resolves with what is needed to reach the webhook. */
  async webhookConfiguration(
    root: X509Certificate | undefined,
  ): Promise<
    { bundlePem: string; service?: { namespace: string; name: string; port: number }; url?: string } | undefined
  > {
    const name = CHECK_NAMES.webhookConfiguration;
    const wc = this.o.webhookConfiguration;
    let obj: WebhookConfiguration;
    try {
      obj = await this.client.get<WebhookConfiguration>(WEBHOOK_CONFIGURATIONS, 'v1', undefined, wc);
    } catch (e) {
      if (isNotFound(e))
        this.add(
          fail(
            name,
            `MutatingWebhookConfiguration ${wc} does not exist: no pod gets a proxy`,
            `the chart installs it: helm upgrade --install weft charts/weft -n ${this.ns} (or pass --webhook-configuration NAME)`,
          ),
        );
      else
        this.add(
          fail(
            name,
            `cannot read MutatingWebhookConfiguration ${wc}: ${why(e)}`,
            readFix(e, 'mutatingwebhookconfigurations', 'retry'),
          ),
        );
      return undefined;
    }
    const webhooks = obj.webhooks ?? [];
    if (webhooks.length === 0) {
      this.add(
        fail(
          name,
          `MutatingWebhookConfiguration ${wc} has no webhooks`,
          `reinstall it from the chart: helm upgrade --install weft charts/weft -n ${this.ns}`,
        ),
      );
      return undefined;
    }
    const problems: string[] = [];
    let bundlePem = '';
    for (const w of webhooks) {
      const label = `webhook ${w.name ?? '(unnamed)'}`;
      const b64 = w.clientConfig?.caBundle ?? '';
      if (b64 === '') {
        problems.push(`${label} has no caBundle: the API server cannot verify the injector`);
        continue;
      }
      const pem = Buffer.from(b64, 'base64').toString('utf8');
      let bundle: X509Certificate[];
      try {
        bundle = parseCertificates(pem, `${label} caBundle`);
      } catch (e) {
        problems.push((e as Error).message);
        continue;
      }
      if (root && !holds(bundle, root)) {
        problems.push(
          `${label}'s caBundle (${bundle.map(identify).join('; ')}) does not hold the mesh root CA (${identify(root)})`,
        );
        continue;
      }
      bundlePem ||= pem;
    }
    if (problems.length > 0) {
      this.add(
        fail(
          name,
          problems.join('; '),
          `the control plane keeps caBundle equal to its root CA: is it running? (see the "${CHECK_NAMES.controlPlane}" line; kubectl -n ${this.ns} logs deployment/${this.o.deployment} | grep webhook-ca-bundle); a bundle of another root means the control plane runs with another CA than Secret ${this.ns}/${this.o.caSecret}`,
        ),
      );
      return undefined;
    }
    const cc = webhooks[0].clientConfig ?? {};
    const service = cc.service?.name
      ? { namespace: cc.service.namespace ?? this.ns, name: cc.service.name, port: cc.service.port ?? 443 }
      : undefined;
    const target = service ? `Service ${service.namespace}/${service.name}:${service.port}` : (cc.url ?? '(no target)');
    this.add(
      ok(
        name,
        `${webhooks.length} webhook${webhooks.length === 1 ? '' : 's'} → ${target}, caBundle holds the mesh root CA${root ? ` (${subjectName(root)})` : ''}`,
      ),
    );
    return { bundlePem, service, url: cc.url };
  }

  /** A TLS handshake with the webhook, verified against the caBundle under the name the API server uses. */
  async webhookReachable(target: Awaited<ReturnType<Checker['webhookConfiguration']>>): Promise<void> {
    const name = CHECK_NAMES.webhookReachable;
    if (target === undefined) {
      this.add(skip(name, `needs a valid ${CHECK_NAMES.webhookConfiguration}`));
      return;
    }
    const svcName = target.service ? `${target.service.name}.${target.service.namespace}.svc` : undefined;
    let address: URL;
    if (this.o.webhookUrl) address = new URL(this.o.webhookUrl);
    else if (this.o.inCluster && (svcName || target.url))
      address = new URL(svcName ? `https://${svcName}:${target.service!.port}` : target.url!);
    else {
      const forward = target.service
        ? `kubectl -n ${target.service.namespace} port-forward service/${target.service.name} 9443:${target.service.port}, then --webhook-url https://127.0.0.1:9443`
        : `--webhook-url ${target.url}`;
      this.add(skip(name, `run inside the cluster, or give the webhook's address: ${forward}`));
      return;
    }
    const servername = svcName ?? address.hostname;
    const host = address.hostname.replace(/^\[|\]$/g, '');
    const port = Number(address.port || 443);
    try {
      const peer = await handshake(host, port, servername, target.bundlePem, this.o.timeoutMs);
      const until = new Date(peer.valid_to);
      this.add(
        ok(
          name,
          `TLS to ${address.host} verified as ${servername} against the caBundle; serving certificate valid until ${until.toISOString()}`,
        ),
      );
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      const tls = /CERT|SIGNATURE|ISSUER|SELF_SIGNED|ALTNAME|VERIFY|EXPIRED/.test(code);
      const where = target.service
        ? `kubectl -n ${target.service.namespace} get endpoints ${target.service.name}`
        : `check ${target.url}`;
      this.add(
        fail(
          name,
          `TLS to ${address.host} as ${servername}: ${why(e)}`,
          tls
            ? `the webhook's serving certificate does not verify against the caBundle the API server uses: restart the control plane so it serves a certificate of its current root (kubectl -n ${this.ns} rollout restart deployment ${this.o.deployment})`
            : `is the control plane running and its Service selecting it? (${where})`,
        ),
      );
    }
  }

  async proxies(): Promise<void> {
    const name = CHECK_NAMES.proxies;
    const viaApi = `/api/v1/namespaces/${this.ns}/services/http:${this.o.service}:${CHECK_DEFAULTS.adminPort}/proxy/proxies`;
    const source = this.o.adminUrl
      ? new URL('/proxies', this.o.adminUrl).href
      : `the API server's service proxy (${viaApi})`;
    let body: { proxies?: ProxyRecord[] };
    try {
      if (this.o.adminUrl) {
        const res = await fetch(new URL('/proxies', this.o.adminUrl), {
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        body = (await res.json()) as { proxies?: ProxyRecord[] };
      } else body = await this.client.request('GET', viaApi);
      if (!Array.isArray(body?.proxies)) throw new Error('the answer holds no proxies list');
    } catch (e) {
      const forward = `kubectl -n ${this.ns} port-forward deployment/${this.o.deployment} ${CHECK_DEFAULTS.adminPort}`;
      this.add(
        fail(
          name,
          `cannot read the control plane's /proxies from ${source}: ${why(e)}`,
          this.o.adminUrl
            ? `is the control plane's admin port reachable there? (${forward})`
            : `reach the admin port directly: ${forward}, then weft check --admin-url http://127.0.0.1:${CHECK_DEFAULTS.adminPort}`,
        ),
      );
      return;
    }
    const connected = body.proxies.filter((p) => p.connected);
    const refused: ProxyRecord[] = [];
    const pending: ProxyRecord[] = [];
    for (const p of connected) {
      const state = ackState(p);
      if (state === 'nack') refused.push(p);
      else if (state === 'pending') pending.push(p);
    }
    const list = (ps: ProxyRecord[], reason = false) =>
      ps
        .slice(0, 5)
        .map((p) => (reason && p.lastNack ? `${p.proxyId} (${p.lastNack.reason})` : p.proxyId))
        .join(', ') + (ps.length > 5 ? `, and ${ps.length - 5} more` : '');
    const statusCmd = this.o.adminUrl ? `weft proxy-status --admin ${this.o.adminUrl}` : 'weft proxy-status';
    const n = connected.length;
    if (refused.length > 0)
      this.add(
        fail(
          name,
          `${refused.length} of ${n} refused their latest config: ${list(refused, true)}`,
          `${statusCmd} shows each reason; the proxies keep serving their last good config until the route or policy named there is fixed`,
        ),
      );
    else if (pending.length > 0)
      this.add(
        warn(
          name,
          `${pending.length} of ${n} have not acknowledged their latest config yet: ${list(pending)}`,
          `proxies acknowledge within seconds: run weft check again; if it stays, see ${statusCmd} and the proxy's log (kubectl logs POD -c weft-proxy)`,
        ),
      );
    else if (n === 0) this.add(ok(name, 'no proxy connected yet (no injected pod or Gateway is running)'));
    else this.add(ok(name, `${n} connected, each on its latest config`));
  }
}

/** acked: on the version the control plane has for it; nack: refused the last one sent; pending: not acked yet. */
function ackState(p: ProxyRecord): 'acked' | 'nack' | 'pending' {
  const wanted = p.currentVersion ?? p.lastSentVersion;
  if (wanted === undefined) return 'pending';
  if (p.lastAckedVersion === wanted) return 'acked';
  if (p.lastNack && p.lastNack.version === (p.lastSentVersion ?? wanted)) return 'nack';
  return 'pending';
}

/** `v1.3.0` < `v1.4.0`; anything unparseable is not older. */
function olderThan(version: string, than: string): boolean {
  const parts = (v: string) =>
    /^v?(\d+)\.(\d+)(?:\.(\d+))?/
      .exec(v)
      ?.slice(1, 4)
      .map((x) => Number(x ?? 0));
  const a = parts(version);
  const b = parts(than);
  if (!a || !b) return false;
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

function handshake(
  host: string,
  port: number,
  servername: string,
  ca: string,
  timeoutMs: number,
): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({
      host,
      port,
      // The certificate is checked for servername (the Service's DNS name, as the API server does), whatever address
      // was dialled; SNI carries no IP address, and then the dialled one is the name.
      ...(isIP(servername) ? {} : { servername }),
      ca,
      rejectUnauthorized: true,
      ALPNProtocols: ['http/1.1'],
    });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(Object.assign(new Error(`no TLS handshake within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve(peer);
    });
    socket.once('error', reject);
  });
}

/** Runs every check, in order; a check that needs what an earlier one found missing is skipped. */
export async function runChecks(options: CheckOptions): Promise<CheckResult[]> {
  const o: Resolved = {
    client: options.client,
    namespace: options.namespace ?? CHECK_DEFAULTS.namespace,
    caSecret: options.caSecret ?? CHECK_DEFAULTS.caSecret,
    rootCaConfigMap: options.rootCaConfigMap ?? CHECK_DEFAULTS.rootCaConfigMap,
    service: options.service ?? CHECK_DEFAULTS.service,
    deployment: options.deployment ?? CHECK_DEFAULTS.deployment,
    webhookConfiguration: options.webhookConfiguration ?? CHECK_DEFAULTS.webhookConfiguration,
    gatewayClass: options.gatewayClass ?? CHECK_DEFAULTS.gatewayClass,
    clientError: options.clientError,
    adminUrl: options.adminUrl,
    webhookUrl: options.webhookUrl,
    inCluster: options.inCluster ?? Boolean(process.env.KUBERNETES_SERVICE_HOST),
    now: options.now ?? Date.now,
    expiryWarningDays: options.expiryWarningDays ?? CHECK_DEFAULTS.expiryWarningDays,
    timeoutMs: options.timeoutMs ?? CHECK_DEFAULTS.timeoutMs,
  };
  const c = new Checker(o);
  if (!(await c.api())) {
    const needs = `needs the ${CHECK_NAMES.api}`;
    for (const n of [
      CHECK_NAMES.gatewayCrds,
      CHECK_NAMES.weftCrds,
      `${CHECK_NAMES.gatewayClass} ${o.gatewayClass}`,
      CHECK_NAMES.controlPlane,
      CHECK_NAMES.rootCa,
      CHECK_NAMES.rootCaPublished,
      CHECK_NAMES.webhookConfiguration,
      CHECK_NAMES.webhookReachable,
    ])
      c.add(skip(n, needs));
    if (o.adminUrl) await c.proxies();
    else c.add(skip(CHECK_NAMES.proxies, `${needs}, or --admin-url`));
    return c.results;
  }
  const classes = await c.gatewayCrds();
  await c.weftCrds();
  await c.gatewayClass(classes);
  await c.controlPlane();
  const root = await c.rootCa();
  if (root) await c.rootCaPublished(root);
  else c.add(skip(CHECK_NAMES.rootCaPublished, `needs the ${CHECK_NAMES.rootCa}`));
  await c.webhookReachable(await c.webhookConfiguration(root));
  await c.proxies();
  return c.results;
}

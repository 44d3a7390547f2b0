// A Gateway API conformance test's world, built the way the suite builds it (README §3.1 of ../shared/conformance,
// conformance/utils/suite/suite.go Setup and utils/kubernetes/apply.go): the GatewayClass under test, the base
// manifests, the programmatic Secrets and ConfigMaps (real certificates made here, at test time), then the test's
// manifests — each Gateway pointed at the class under test, static-address placeholders replaced from the address
// pools — and what a cluster adds (materialize). SimulatedCluster then plays the API server and the status writer:
// reads return objects with weft's translated status merged in, merge patches bump `metadata.generation` as the API
// server does, and every change re-translates.

import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadText } from '../controlplane/resources/files.ts';
import { type MaterializeOptions, materialize } from '../controlplane/resources/materialize.ts';
import { ResourceSnapshot, resourceKey } from '../controlplane/resources/snapshot.ts';
import { CLUSTER_SCOPED, type Resource, type ResourceKind } from '../controlplane/resources/types.ts';
import { translate } from '../controlplane/translate/translate.ts';
import type { StatusOut, TranslateOptions, TranslateResult } from '../controlplane/translate/types.ts';
import {
  type CheckContext,
  type ClusterAccess,
  type GatewayAddress,
  type KubeObject,
  newCheckContext,
  type ObjectRef,
  type StatusCheck,
} from './status-checks.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The conformance vectors: `WEFT_CONFORMANCE_DIR`, else `../shared/conformance` beside the repository. */
export const CONFORMANCE_DIR = process.env.WEFT_CONFORMANCE_DIR ?? resolve(repoRoot, '../shared/conformance');

export const GATEWAY_BASE = 'base/manifests.yaml';
export const MESH_BASE = 'mesh-base/manifests.yaml';

/** A case file (README §2); only the fields the status harness reads are typed. */
export interface ConformanceCase {
  test: string;
  description: string;
  profile: string;
  features: string[];
  manifests: string[];
  baseManifests: string[];
  kind: 'traffic' | 'status';
  provisional?: boolean;
  statusChecks?: StatusCheck[];
  notes?: string[];
  /** Path of the case file it was read from. */
  file: string;
}

/** Every case file under `cases/gateway` and `cases/mesh`, sorted by test name within each. */
export function loadCases(dir = CONFORMANCE_DIR): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const family of ['gateway', 'mesh']) {
    const casesDir = join(dir, 'cases', family);
    for (const name of readdirSync(casesDir)
      .filter((n) => n.endsWith('.json'))
      .sort()) {
      const file = join(casesDir, name);
      out.push({ ...(JSON.parse(readFileSync(file, 'utf8')) as Omit<ConformanceCase, 'file'>), file });
    }
  }
  return out;
}

export interface SuiteOptions {
  /** The GatewayClass under test (`--gateway-class`). */
  gatewayClassName: string;
  controllerName: string;
  /** `--usable-address` / `--unusable-address`: one of each makes GatewayStaticAddresses' 3-address check hold. */
  usableAddresses: GatewayAddress[];
  unusableAddresses: GatewayAddress[];
  /** `--namespace-labels`: added to every Namespace applied (the suite's only hook for mesh enrolment). */
  namespaceLabels: Record<string, string>;
  conformanceDir: string;
}

export const DEFAULT_SUITE_OPTIONS: Readonly<SuiteOptions> = Object.freeze({
  gatewayClassName: 'weft',
  controllerName: 'weft.dev/gateway-controller',
  // Loopback, so `weft local` could bind it; the unusable one is TEST-NET-1 (RFC 5737), never ours.
  usableAddresses: [{ type: 'IPAddress', value: '127.31.0.1' }],
  unusableAddresses: [{ type: 'IPAddress', value: '192.0.2.1' }],
  namespaceLabels: { 'weft.dev/inject': 'enabled' },
  conformanceDir: CONFORMANCE_DIR,
});

/** What translate() is given for a suite run: the controller, and the usable pool as the static addresses weft may assign. */
export function translateOptions(opts: SuiteOptions): TranslateOptions {
  return { controllerName: opts.controllerName, usableAddresses: opts.usableAddresses.map((a) => a.value) };
}

export function checkContext(opts: SuiteOptions): CheckContext {
  return newCheckContext({
    controllerName: opts.controllerName,
    usableAddresses: opts.usableAddresses,
    unusableAddresses: opts.unusableAddresses,
  });
}

// ---------------------------------------------------------------- manifests and the Applier

/**
 * The objects of a manifest file (path relative to `manifests/`) as the API server would store them: parsed and
 * checked by weft's own loader; kinds weft does not read (TLSRoute, …) are left out. Throws on a document the API
 * server would refuse.
 */
export function readManifest(rel: string, dir = CONFORMANCE_DIR): Resource[] {
  const file = join(dir, 'manifests', rel);
  const loaded = loadText(readFileSync(file, 'utf8'), file);
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  return loaded.resources;
}

/**
 * apply.go's prepareGateway / prepareGatewayClass / prepareNamespace: the class name and controller under test,
 * static-address placeholders replaced (invalid-type addresses kept, then the unusable pool, then the usable one),
 * the namespace labels added. Returns a copy. As in apply.go, any other address is dropped: the whole list is
 * rewritten whenever it is set (so GatewayOptionalAddressValue's `{type: IPAddress}` never reaches the cluster).
 */
export function prepareForApply(input: Resource, opts: SuiteOptions): Resource {
  const r = structuredClone(input);
  if (r.kind === 'Gateway') {
    r.spec.gatewayClassName = opts.gatewayClassName;
    const addresses = r.spec.addresses;
    if (addresses && addresses.length > 0) {
      const values = new Set(addresses.map((a) => a.value));
      r.spec.addresses = [
        ...addresses.filter((a) => a.type === 'test/fake-invalid-type'),
        ...(values.has('PLACEHOLDER_UNUSABLE_ADDRS') ? opts.unusableAddresses : []),
        ...(values.has('PLACEHOLDER_USABLE_ADDRS') ? opts.usableAddresses : []),
      ].map((a) => ({ ...a }));
    }
  } else if (r.kind === 'GatewayClass') {
    r.spec.controllerName = opts.controllerName;
  } else if (r.kind === 'Namespace' && Object.keys(opts.namespaceLabels).length > 0) {
    r.metadata.labels = { ...r.metadata.labels, ...opts.namespaceLabels };
  }
  return r;
}

// ---------------------------------------------------------------- programmatic objects (suite.go Setup)

interface Pem {
  cert: string;
  key: string;
}

/** Makes certificates with openssl in a scratch directory; keys come from node:crypto (fast RSA-2048). */
class CertFactory {
  readonly #dir = mkdtempSync(join(tmpdir(), 'weft-conformance-certs-'));
  #n = 0;

  close(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #key(): { path: string; pem: string } {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const path = join(this.#dir, `k${this.#n++}.pem`);
    writeFileSync(path, pem, { mode: 0o600 });
    return { path, pem };
  }

  #config(subject: Record<string, string>, ext: Record<string, string>): string {
    const path = join(this.#dir, `c${this.#n++}.cnf`);
    const lines = ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]'];
    for (const [k, v] of Object.entries(subject)) lines.push(`${k} = ${v}`);
    lines.push('[ext]');
    for (const [k, v] of Object.entries(ext)) lines.push(`${k} = ${v}`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  #openssl(args: string[]): void {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** A certificate valid for a year, self-signed by `keyPath`, with the `[ext]` section of `cfg`. */
  #selfSigned(keyPath: string, cfg: string, certPath: string): void {
    this.#openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      keyPath,
      '-config',
      cfg,
      '-extensions',
      'ext',
      '-days',
      '365',
      '-out',
      certPath,
    ]);
  }

  /** generateCACert: a CA valid for a year. */
  ca(): Pem & { keyPath: string; certPath: string } {
    const key = this.#key();
    const cfg = this.#config(
      { C: 'US', O: 'Kubernetes Gateway API', CN: 'gatewayapi' },
      {
        basicConstraints: 'critical, CA:TRUE',
        keyUsage: 'critical, digitalSignature, keyCertSign',
        extendedKeyUsage: 'clientAuth, serverAuth',
      },
    );
    const certPath = join(this.#dir, `ca${this.#n++}.pem`);
    this.#selfSigned(key.path, cfg, certPath);
    return { cert: readFileSync(certPath, 'utf8'), key: key.pem, keyPath: key.path, certPath };
  }

  /** generateRSACert: a leaf for `hosts` (DNS names, IPs or URIs), self-signed or signed by `ca`. */
  leaf(hosts: string[], usage: 'serverAuth' | 'clientAuth', ca?: { keyPath: string; certPath: string }): Pem {
    const key = this.#key();
    const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : h.includes('://') ? `URI:${h}` : `DNS:${h}`));
    const ext: Record<string, string> = {
      basicConstraints: 'CA:FALSE',
      keyUsage: 'digitalSignature, keyEncipherment',
      extendedKeyUsage: usage,
    };
    if (san.length > 0) ext.subjectAltName = san.join(', ');
    const cfg = this.#config({ O: 'Acme Co', CN: 'default' }, ext);
    const certPath = join(this.#dir, `crt${this.#n++}.pem`);
    if (!ca) {
      this.#selfSigned(key.path, cfg, certPath);
    } else {
      const csr = join(this.#dir, `csr${this.#n++}.pem`);
      this.#openssl(['req', '-new', '-key', key.path, '-config', cfg, '-out', csr]);
      this.#openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.certPath,
        '-CAkey',
        ca.keyPath,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        '365',
        '-extfile',
        cfg,
        '-extensions',
        'ext',
        '-out',
        certPath,
      ]);
    }
    return { cert: readFileSync(certPath, 'utf8'), key: key.pem };
  }
}

function tlsSecret(namespace: string, name: string, pem: Pem): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(pem.cert).toString('base64'), 'tls.key': Buffer.from(pem.key).toString('base64') },
  };
}

function caConfigMap(namespace: string, name: string, cert: string): Resource {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { 'ca.crt': cert } };
}

let programmatic: Resource[] | undefined;

/**
 * The objects suite.go Setup creates after the gateway base manifests, in its order. Generated once per process
 * (fresh keys every run; nothing is committed).
 */
export function programmaticObjects(): Resource[] {
  if (programmatic) return programmatic.map((r) => structuredClone(r));
  const infra = 'gateway-conformance-infra';
  const web = 'gateway-conformance-web-backend';
  const app = 'gateway-conformance-app-backend';
  const f = new CertFactory();
  try {
    const out: Resource[] = [];
    out.push(tlsSecret(web, 'certificate', f.leaf(['*'], 'serverAuth')));
    out.push(
      tlsSecret(infra, 'tls-validity-checks-certificate', f.leaf(['*', '*.org', '*.wildcard.org'], 'serverAuth')),
    );
    out.push(caConfigMap(web, 'web-backend-cm', f.ca().cert));
    let ca = f.ca();
    out.push(caConfigMap(infra, 'tls-validity-checks-ca-certificate', ca.cert));
    out.push(tlsSecret(infra, 'tls-validity-checks-client-certificate', f.leaf([], 'clientAuth', ca)));
    ca = f.ca();
    out.push(caConfigMap(infra, 'tls-validity-checks-per-port-ca-certificate', ca.cert));
    out.push(tlsSecret(infra, 'tls-validity-checks-per-port-client-certificate', f.leaf([], 'clientAuth', ca)));
    ca = f.ca();
    out.push(caConfigMap(infra, 'tls-checks-ca-certificate', ca.cert));
    out.push(
      tlsSecret(
        infra,
        'tls-checks-certificate',
        f.leaf(['abc.example.com', 'spiffe://abc.example.com/test-identity', 'other.example.com'], 'serverAuth', ca),
      ),
    );
    out.push(tlsSecret(infra, 'tls-checks-client-certificate', f.leaf([], 'clientAuth', ca)));
    out.push(tlsSecret(infra, 'tls-passthrough-checks-certificate', f.leaf(['abc.example.com'], 'serverAuth', ca)));
    out.push(tlsSecret(app, 'tls-passthrough-checks-certificate', f.leaf(['abc.example.com'], 'serverAuth', ca)));
    out.push(tlsSecret(infra, 'tls-terminate-checks-certificate', f.leaf(['tls.example.com'], 'serverAuth', ca)));
    out.push(caConfigMap(infra, 'mismatch-ca-certificate', f.ca().cert));
    programmatic = out;
    return out.map((r) => structuredClone(r));
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------- the simulated cluster

function typedKey(r: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return CLUSTER_SCOPED.has(r.kind as ResourceKind)
    ? `${r.kind} ${r.metadata.name}`
    : `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

function refTypedKey(ref: ObjectRef): string {
  return typedKey({ kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } });
}

/** Everything but metadata and status: what `metadata.generation` tracks. */
function generationContent(r: Resource): string {
  const { metadata: _m, status: _s, ...rest } = r as Resource & { status?: unknown };
  return stableJson(rest);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** RFC 7386 JSON merge patch. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

const EPOCH = Date.UTC(2026, 0, 1);

interface View {
  snapshot: ResourceSnapshot;
  result: TranslateResult;
  objects: Map<string, KubeObject>;
}

/**
 * An API server and status writer in one, for a single test: objects in apply order, creationTimestamps one
 * second apart in that order, `metadata.generation` 1 on create and bumped by every change outside metadata and
 * status. Reads materialize the objects, translate, and merge the status weft writes: GatewayClass and Gateway
 * status replaced for weft's classes, route `status.parents` entries of weft's controller replaced and other
 * controllers' entries kept.
 */
export class SimulatedCluster implements ClusterAccess {
  readonly settled = true;
  readonly options: SuiteOptions;
  readonly #objects = new Map<string, Resource>();
  #clock = 0;
  #view: View | undefined;
  #snapshot: ResourceSnapshot | undefined;

  /** Address ranges of what the cluster makes (a world on network namespaces has its own pod and Service ranges). */
  readonly #ranges: Omit<MaterializeOptions, 'controllerName'>;

  constructor(options: SuiteOptions = DEFAULT_SUITE_OPTIONS, ranges: Omit<MaterializeOptions, 'controllerName'> = {}) {
    this.options = options;
    this.#ranges = ranges;
  }

  /** Create, or update as `kubectl apply` would (creationTimestamp kept, generation bumped when the spec changed). */
  apply(input: Resource): void {
    const obj = structuredClone(input);
    obj.metadata = { ...obj.metadata };
    if (!CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace ??= 'default';
    const key = typedKey(obj);
    const prev = this.#objects.get(key);
    if (prev) {
      obj.metadata.creationTimestamp = prev.metadata.creationTimestamp;
      obj.metadata.uid = prev.metadata.uid;
      const gen = prev.metadata.generation ?? 1;
      obj.metadata.generation = generationContent(prev) === generationContent(obj) ? gen : gen + 1;
    } else {
      obj.metadata.generation ??= 1;
      obj.metadata.creationTimestamp ??= new Date(EPOCH + this.#clock++ * 1000).toISOString().replace('.000Z', 'Z');
      obj.metadata.uid ??= uidFor(key);
    }
    this.#objects.set(key, obj);
    this.#view = undefined;
    this.#snapshot = undefined;
  }

  /** The objects as applied (no status, nothing materialized), in apply order. */
  resources(): Resource[] {
    return [...this.#objects.values()].map((r) => structuredClone(r));
  }

  /** The snapshot translate() sees: the applied objects, materialized. */
  snapshot(): ResourceSnapshot {
    return this.#ensureView().snapshot;
  }

  translation(): TranslateResult {
    return this.#ensureView().result;
  }

  get(ref: ObjectRef): KubeObject | undefined {
    const obj = this.#ensureView().objects.get(refTypedKey(ref));
    return obj && structuredClone(obj);
  }

  list(kind: string, namespace: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const obj of this.#ensureView().objects.values())
      if (obj.kind === kind && obj.metadata.namespace === namespace) out.push(structuredClone(obj));
    return out;
  }

  /**
   * Merge-patches an object. Objects the cluster made (Pods, EndpointSlices, provisioned Services) are taken over
   * as applied objects first, as a patch to them would persist in a cluster.
   */
  mergePatch(ref: ObjectRef, patch: Record<string, unknown>): void {
    const key = refTypedKey(ref);
    let prev = this.#objects.get(key);
    if (!prev) {
      const made = this.#ensureSnapshot().get(ref.kind as ResourceKind, resourceKey(refAsResource(ref)));
      if (!made) throw new Error(`${key} not found`);
      prev = structuredClone(made) as Resource;
    }
    const next = applyMergePatch(prev, patch) as Resource;
    const gen = prev.metadata.generation ?? 1;
    next.metadata = {
      ...next.metadata,
      generation: generationContent(prev) === generationContent(next) ? gen : gen + 1,
    };
    this.#objects.set(key, next);
    this.#view = undefined;
    this.#snapshot = undefined;
  }

  delete(ref: ObjectRef): void {
    if (!this.#objects.delete(refTypedKey(ref))) throw new Error(`${refTypedKey(ref)} not found`);
    this.#view = undefined;
    this.#snapshot = undefined;
  }

  #ensureView(): View {
    if (this.#view) return this.#view;
    const snapshot = this.#ensureSnapshot();
    const result = translate(snapshot, translateOptions(this.options));
    this.#view = { snapshot, result, objects: withStatuses(snapshot, result.statuses, this.options.controllerName) };
    return this.#view;
  }

  #ensureSnapshot(): ResourceSnapshot {
    this.#snapshot ??= ResourceSnapshot.from(
      materialize([...this.#objects.values()], { ...this.#ranges, controllerName: this.options.controllerName }),
    );
    return this.#snapshot;
  }

  /** The materialized snapshot without translating it (a live world computes the statuses itself). */
  materialized(): ResourceSnapshot {
    return this.#ensureSnapshot();
  }
}

/**
 * The snapshot's objects by typed key, with the status weft writes merged in: GatewayClass and Gateway status
 * replaced, route `status.parents` entries of weft's controller replaced and other controllers' entries kept.
 */
export function withStatuses(
  snapshot: ResourceSnapshot,
  statusList: readonly StatusOut[],
  controllerName: string,
): Map<string, KubeObject> {
  const statuses = new Map<string, StatusOut>();
  for (const s of statusList)
    statuses.set(s.kind === 'GatewayClass' ? `${s.kind} ${s.name}` : `${s.kind} ${s.namespace}/${s.name}`, s);
  const objects = new Map<string, KubeObject>();
  for (const r of snapshot.all()) {
    const key = typedKey(r);
    const obj = structuredClone(r) as unknown as KubeObject;
    const s = statuses.get(key);
    if (s && (s.kind === 'GatewayClass' || s.kind === 'Gateway')) obj.status = structuredClone(s.status);
    else if (r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute') {
      const others = (r.status?.parents ?? []).filter((p) => p.controllerName !== controllerName);
      const ours = s && 'parents' in s.status ? s.status.parents : [];
      obj.status = { ...r.status, parents: structuredClone([...others, ...ours]) };
    }
    objects.set(key, obj);
  }
  return objects;
}

export { typedKey, refTypedKey };

function refAsResource(ref: ObjectRef): Pick<Resource, 'kind' | 'metadata'> {
  return { kind: ref.kind as ResourceKind, metadata: { name: ref.name, namespace: ref.namespace } };
}

function uidFor(key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * The world of one conformance test, as the suite leaves it just before the test function runs: the class under
 * test, the test's base manifests (gateway tests: then the programmatic objects), then its own manifests.
 */
export function setUpCase(
  c: Pick<ConformanceCase, 'manifests' | 'baseManifests'>,
  options: Partial<SuiteOptions> = {},
): SimulatedCluster {
  const opts: SuiteOptions = { ...DEFAULT_SUITE_OPTIONS, ...options };
  const cluster = new SimulatedCluster(opts);
  cluster.apply({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: opts.gatewayClassName },
    spec: { controllerName: opts.controllerName },
  });
  const applyFile = (rel: string) => {
    for (const r of readManifest(rel, opts.conformanceDir)) cluster.apply(prepareForApply(r, opts));
  };
  for (const rel of c.baseManifests) {
    applyFile(rel);
    if (rel === GATEWAY_BASE) for (const r of programmaticObjects()) cluster.apply(r);
  }
  for (const rel of c.manifests) applyFile(rel);
  return cluster;
}

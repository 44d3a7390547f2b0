// A world run by `weft local` (startLocalMesh) over a directory holding one YAML file that this module rewrites
// whenever objects are applied, patched or deleted, as an API server would persist them (generation and
// creationTimestamp kept by SimulatedCluster). Statuses are the running control plane's own (its admin endpoint's
// /statuses), merged into the objects the way the status writer merges them. Two kinds:
// - loopback: every pod on its own 127.0.0.0/8 address; a request from a pod goes to that pod's sidecar as to an
//   explicit HTTP proxy, from the pod's own address (no transparent capture: the destination is the URL's
//   authority; a pod IP is one only when the sidecar knows it as a meshed pod's);
// - netns (root): every pod in its own network namespace with iptables capture; a request from a pod is made
//   inside its namespace by an unmodified client, as the suite's `client` exec does (requestFromPod).
//
// Barrier: every write also bumps the generation of a GatewayClass of weft's controller that nothing else uses;
// once the control plane reports that generation as observed, it has translated this write (one file, replaced
// atomically, so one snapshot has all of it), and once /ready says so every process of it is running.
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { requestFromPod, requestsFromPod } from '../controlplane/local/curl.ts';
import { containerLogName } from '../controlplane/local/file-name.ts';
import { type LocalMesh, startLocalMesh } from '../controlplane/local/mesh.ts';
import { DEFAULT_SERVICE_CIDR, netnsAddressing } from '../controlplane/local/pod-network.ts';
import type { Resource } from '../controlplane/resources/types.ts';
import type { StatusOut } from '../controlplane/translate/types.ts';
import type { ClusterAccess, KubeObject, ObjectRef } from './status-checks.ts';
import { refTypedKey, SimulatedCluster, type SuiteOptions, translateOptions, withStatuses } from './suite-setup.ts';
import type { Endpoint, PodRequest, PodResponse, World } from './world.ts';

const SYNC_CLASS = 'weft-conformance-sync';

export interface LocalWorldOptions {
  suite: SuiteOptions;
  /** Ports below 1024 are moved up by this much (0 when root: the Gateway's own ports). */
  portOffset: number;
  /**
   * A label added to every Deployment's pod template: new pod names, hence other loopback addresses, so worlds of
   * different runs (the runner, the ava subset, other tests) never bind the same address and port.
   */
  runLabel: string;
  /** Scratch directory parent. Default: the OS temp dir. */
  tmpRoot?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Pods in network namespaces named from `prefix`, on a bridge over `cidr` (root only). */
  netns?: { prefix: string; cidr: string };
  /** Time allowed for a write to be translated and its processes to run. Default 60 s. */
  syncTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function getJson(url: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

export class LocalWorld implements World {
  readonly kind: 'loopback' | 'netns';
  readonly cluster: ClusterAccess;
  readonly store: SimulatedCluster;
  readonly o: LocalWorldOptions;
  readonly #tmp: string;
  #mesh: LocalMesh | undefined;
  #seq = 0;
  #writing: Promise<void> = Promise.resolve();

  private constructor(o: LocalWorldOptions, tmp: string) {
    this.o = o;
    this.#tmp = tmp;
    this.kind = o.netns ? 'netns' : 'loopback';
    // The pods' and Services' addresses the world gives them: the store must make the same ones.
    const ranges = o.netns ? { podCidr: netnsAddressing(o.netns.cidr).podCidr, serviceCidr: DEFAULT_SERVICE_CIDR } : {};
    this.store = new SimulatedCluster(o.suite, ranges);
    this.cluster = new LiveCluster(this);
  }

  /** A world holding `objects` (prepared as the suite's Applier prepares them), started and in sync. */
  static async start(o: LocalWorldOptions, objects: Resource[]): Promise<LocalWorld> {
    const tmp = await mkdtemp(path.join(o.tmpRoot ?? tmpdir(), 'weft-conformance-world-'));
    // With netns the sidecars run as their own uid and must reach their token files under it.
    if (o.netns) await chmod(tmp, 0o711);
    const world = new LocalWorld(o, tmp);
    try {
      for (const r of objects) world.store.apply(world.#label(r));
      await mkdir(world.#dir, { recursive: true });
      await world.#write();
      world.#mesh = await startLocalMesh({
        dir: world.#dir,
        stateDir: world.#stateDir,
        portOffset: o.portOffset,
        pushPort: 0,
        caPort: 0,
        adminPort: 0,
        stopGraceMs: 2000,
        // The suite's --usable-address pool (GatewayStaticAddresses), as the translator's status test gets it.
        usableAddresses: translateOptions(o.suite).usableAddresses,
        netns: o.netns ? { prefix: o.netns.prefix, cidr: o.netns.cidr, serviceCidr: DEFAULT_SERVICE_CIDR } : undefined,
        out: (line) => {
          if (/died|refused|problem|could not|failed/.test(line)) o.log?.(line);
        },
      });
      const limit = o.syncTimeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        world.#mesh.whenReady(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`weft local was not ready within ${limit / 1000} s`)), limit);
        }),
      ]).finally(() => clearTimeout(timer));
      await world.sync();
      return world;
    } catch (err) {
      await world.stop();
      throw err;
    }
  }

  get #dir(): string {
    return path.join(this.#tmp, 'manifests');
  }

  get #stateDir(): string {
    return path.join(this.#tmp, 'state');
  }

  get mesh(): LocalMesh {
    if (!this.#mesh) throw new Error('the world is not running');
    return this.#mesh;
  }

  #label(r: Resource): Resource {
    if (r.kind !== 'Deployment') return r;
    const copy = structuredClone(r);
    const meta = copy.spec.template.metadata ?? {};
    copy.spec.template.metadata = { ...meta, labels: { ...meta.labels, 'weft.dev/conformance-run': this.o.runLabel } };
    return copy;
  }

  /** Persists the store and the barrier class in one atomic file replacement. */
  #write(): Promise<void> {
    this.#seq++;
    const seq = this.#seq;
    const marker: Resource = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: SYNC_CLASS, generation: seq },
      spec: { controllerName: this.o.suite.controllerName, description: 'conformance runner write barrier' },
    };
    const docs = [...this.store.resources(), marker].map((d) => stringify(d));
    const file = path.join(this.#dir, 'world.yaml');
    this.#writing = this.#writing.then(async () => {
      await writeFile(`${file}.tmp`, docs.join('---\n'));
      await rename(`${file}.tmp`, file);
    });
    return this.#writing;
  }

  async apply(objects: Resource[]): Promise<void> {
    for (const r of objects) this.store.apply(this.#label(r));
    await this.flush();
  }

  /** Deletes what is there (an action may have deleted some already). */
  async remove(refs: ObjectRef[]): Promise<void> {
    for (const ref of refs) {
      try {
        this.store.delete(ref);
      } catch {
        // already gone
      }
    }
    await this.flush();
  }

  /** Writes what the store holds and waits until the world runs it. */
  async flush(): Promise<void> {
    await this.#write();
    await this.sync();
  }

  /** The control plane's statuses; a busy machine gets three tries. */
  async statuses(): Promise<StatusOut[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await getJson(`${this.mesh.controlPlane.admin}/statuses`);
        return (r.body as { statuses: StatusOut[] }).statuses;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  }

  async sync(): Promise<void> {
    const deadline = Date.now() + (this.o.syncTimeoutMs ?? 60_000);
    const seq = this.#seq;
    let last = 'no status of the barrier class yet';
    for (;;) {
      const marker = (await this.statuses()).find((s) => s.kind === 'GatewayClass' && s.name === SYNC_CLASS);
      const observed = (marker?.status as { conditions?: { observedGeneration?: number }[] } | undefined)
        ?.conditions?.[0]?.observedGeneration;
      if (observed !== undefined && observed >= seq) break;
      if (observed !== undefined) last = `barrier generation ${observed} observed, waiting for ${seq}`;
      if (Date.now() > deadline) throw new Error(`the world did not take write #${seq}: ${last}`);
      await sleep(25);
    }
    for (;;) {
      // Processes of the new plan start after the translation: give the reconcile a moment to begin.
      await sleep(50);
      const r = await getJson(`${this.mesh.controlPlane.admin}/ready`);
      if (r.status === 200) return;
      if (Date.now() > deadline)
        throw new Error(
          `the world is not ready: ${((r.body as { reasons?: string[] }).reasons ?? []).slice(0, 5).join('; ')}`,
        );
    }
  }

  gatewayEndpoint(address: string, port: number): Endpoint {
    const o = this.o.portOffset;
    return { host: address, port: o > 0 && port < 1024 ? port + o : port };
  }

  /** As the workload would: inside its namespace (netns) or through its sidecar (loopback), by weft local curl. */
  async fromPod(namespace: string, pod: string, req: PodRequest): Promise<PodResponse> {
    const r = await requestFromPod(this.mesh.state(), {
      from: `${namespace}/${pod}`,
      url: req.url,
      method: req.method,
      headers: req.headers.map(([k, v]) => `${k}: ${v}`),
      timeoutMs: req.timeoutMs,
    });
    return { status: r.status, headers: r.headers, body: r.body };
  }

  /** One client for the whole batch (in the pod's namespace with netns), as the suite's single `client --count`. */
  async fromPodCount(
    namespace: string,
    pod: string,
    req: PodRequest,
    count: number,
    concurrency: number,
  ): Promise<Map<string, number>> {
    const tally = await requestsFromPod(this.mesh.state(), {
      from: `${namespace}/${pod}`,
      url: req.url,
      method: req.method,
      headers: req.headers.map(([k, v]) => `${k}: ${v}`),
      timeoutMs: req.timeoutMs,
      count,
      concurrency,
    });
    if (tally.errors > 0) throw new Error(`${tally.errors} of ${count} requests failed: ${tally.firstError}`);
    return new Map(Object.entries(tally.pods).map(([p, n]) => [p === '(unknown)' ? '' : p, n]));
  }

  async logs(namespace: string, pod: string, container: string): Promise<string> {
    const file = path.join(this.#stateDir, 'logs', containerLogName(namespace, pod, container));
    return readFile(file, 'utf8').catch(() => '');
  }

  async stop(): Promise<void> {
    await this.#mesh?.close().catch(() => {});
    this.#mesh = undefined;
    await rm(this.#tmp, { recursive: true, force: true });
  }
}

/** The store's objects with the running control plane's statuses; writes go through the world. */
class LiveCluster implements ClusterAccess {
  readonly settled = false;
  readonly #world: LocalWorld;

  constructor(world: LocalWorld) {
    this.#world = world;
  }

  async #objects(): Promise<Map<string, KubeObject>> {
    const statuses = await this.#world.statuses();
    return withStatuses(this.#world.store.materialized(), statuses, this.#world.o.suite.controllerName);
  }

  async get(ref: ObjectRef): Promise<KubeObject | undefined> {
    return (await this.#objects()).get(refTypedKey(ref));
  }

  async list(kind: string, namespace: string): Promise<KubeObject[]> {
    return [...(await this.#objects()).values()].filter((o) => o.kind === kind && o.metadata.namespace === namespace);
  }

  async mergePatch(ref: ObjectRef, patch: Record<string, unknown>): Promise<void> {
    this.#world.store.mergePatch(ref, patch);
    await this.#world.flush();
  }

  async delete(ref: ObjectRef): Promise<void> {
    this.#world.store.delete(ref);
    await this.#world.flush();
  }
}

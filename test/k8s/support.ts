// Shared pieces of the tests under test/k8s: a started test API server with a client for it, captured logs,
// waiting for a condition, and loading manifests onto the server the way `kubectl apply` would.
import { Writable } from 'node:stream';
import anyTest, { type TestFn } from 'ava';
import { type Logger, pino } from 'pino';
import { KubeClient, kubeConfigFor } from '../../controlplane/k8s/client.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import type { Resource } from '../../controlplane/resources/types.ts';
import { type Obj, TestApiServer, type TestApiServerOptions } from './api-server.ts';

export interface Cluster {
  server: TestApiServer;
  client: KubeClient;
  url: string;
  close(): Promise<void>;
}

export async function startCluster(options: TestApiServerOptions = {}): Promise<Cluster> {
  const server = new TestApiServer({ bookmarkIntervalMs: 100, ...options });
  const url = await server.start();
  const client = new KubeClient(kubeConfigFor(url, options.token ? { token: options.token } : {}), {
    userAgent: 'weft-test',
  });
  return {
    server,
    client,
    url,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

export interface ClusterContext {
  c: Cluster;
  logs: CapturedLogs;
  /** Run after the test, last added first, before the cluster closes. */
  cleanup: (() => Promise<void>)[];
}

/** ava's `test` with a fresh cluster and captured logs for each test, and its cleanups run when the test ends. */
export function clusterTest(): TestFn<ClusterContext> {
  const test = anyTest as TestFn<ClusterContext>;
  test.beforeEach(async (t) => {
    t.context.c = await startCluster();
    t.context.logs = captureLogs();
    t.context.cleanup = [];
  });
  test.afterEach.always(async (t) => {
    for (const f of t.context.cleanup.reverse()) await f();
    await t.context.c.close();
  });
  return test;
}

export interface CapturedLogs {
  logger: Logger;
  lines: Record<string, unknown>[];
  events(name: string): Record<string, unknown>[];
}

export function captureLogs(level = 'debug'): CapturedLogs {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines, events: (name) => lines.filter((l) => l.event === name) };
}

/** Polls `check` until it returns true (or a truthy value, returned); throws after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Namespaces first, then cluster-scoped classes, then the rest: a real cluster refuses objects in a namespace that
// does not exist yet.
const ORDER = ['Namespace', 'GatewayClass'];
const rank = (kind: string) => {
  const i = ORDER.indexOf(kind);
  return i < 0 ? ORDER.length : i;
};

/** Creates every resource through the API (HTTP), then writes the status it carries as its controller would. */
export async function applyThroughApi(c: Cluster, resources: readonly Resource[]): Promise<void> {
  const sorted = [...resources].sort((a, b) => rank(a.kind) - rank(b.kind));
  for (const r of sorted) {
    const info = KIND_INFO.get(r.kind)!;
    const version = r.apiVersion.includes('/') ? r.apiVersion.split('/')[1] : r.apiVersion;
    const ns = info.namespaced ? (r.metadata.namespace ?? 'default') : undefined;
    const body = structuredClone(r) as unknown as Obj;
    if (r.kind === 'Namespace' && c.server.get('Namespace', undefined, r.metadata.name)) {
      await c.client.apply(info, version, body);
      continue;
    }
    await c.client.create(info, version, ns, body);
    const status = (r as { status?: unknown }).status;
    // A kubelet, the endpoints controller or a load-balancer controller writes these in a cluster.
    if (status !== undefined && ['Pod', 'Service', 'Deployment'].includes(r.kind)) {
      const current = await c.client.get(info, version, ns, r.metadata.name);
      await c.client.replaceStatus(info, version, ns, r.metadata.name, { ...current, status });
    }
  }
}

/** A Leadership the test flips: `lead()` makes it leader and tells the listeners. */
export function manualLeadership(): {
  isLeader: boolean;
  onChange(listener: (leading: boolean) => void): () => void;
  lead(): void;
} {
  const listeners = new Set<(leading: boolean) => void>();
  return {
    isLeader: false,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    lead() {
      this.isLeader = true;
      for (const l of listeners) l(true);
    },
  };
}

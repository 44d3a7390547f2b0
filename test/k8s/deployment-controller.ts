// A minimal Deployment controller for the test API server, standing in for kube-controller-manager's Deployment and
// ReplicaSet controllers: each Deployment gets `spec.replicas` pods made from its template (generateName
// `<deployment>-<template hash>-`, the template's labels plus `pod-template-hash`, an ownerReference), created
// through the HTTP API so that admission webhooks see them exactly as they see a ReplicaSet's pods. A create the API
// refuses (a webhook failing with failurePolicy Fail) is retried, as the ReplicaSet controller does; surplus pods
// are deleted. No rollouts: a changed template does not replace running pods.
import { createHash } from 'node:crypto';
import type { KubeClient } from '../../controlplane/k8s/client.ts';
import { KIND_INFO } from '../../controlplane/k8s/kinds.ts';
import type { Obj, TestApiServer } from './api-server.ts';

type Meta = { name: string; namespace: string; uid: string; labels?: Record<string, string>; [k: string]: unknown };

const PODS = KIND_INFO.get('Pod')!;

export interface DeploymentControllerOptions {
  /** Delay before a refused create is tried again. Default 200 ms. */
  retryMs?: number;
}

export class DeploymentController {
  readonly #server: TestApiServer;
  readonly #client: KubeClient;
  readonly #retryMs: number;
  readonly #queue = new Set<string>();
  #running = false;
  #busy: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** Refused creates, newest last: `<namespace>/<deployment>: <message>`. */
  readonly failures: string[] = [];

  constructor(server: TestApiServer, client: KubeClient, options: DeploymentControllerOptions = {}) {
    this.#server = server;
    this.#client = client;
    this.#retryMs = options.retryMs ?? 200;
  }

  start(): void {
    this.#running = true;
    this.#server.on('event', this.#onEvent);
    for (const d of this.#server.list('Deployment')) this.#enqueue(d.metadata as Meta);
  }

  async close(): Promise<void> {
    this.#running = false;
    this.#server.off('event', this.#onEvent);
    clearTimeout(this.#retry);
    await this.#busy;
  }

  readonly #onEvent = (e: { gr: string; obj: Obj }) => {
    const m = e.obj.metadata as Meta;
    if (e.gr === 'apps/deployments') this.#enqueue(m);
    else if (e.gr === '/pods') {
      const owner = (m.ownerReferences as { kind: string; name: string }[] | undefined)?.find(
        (o) => o.kind === 'Deployment',
      );
      if (owner) this.#enqueue({ ...m, name: owner.name });
    }
  };

  #enqueue(m: { namespace: string; name: string }): void {
    this.#queue.add(`${m.namespace}/${m.name}`);
    this.#drain();
  }

  #drain(): void {
    if (!this.#running || this.#busy) return;
    this.#busy = (async () => {
      let failed = false;
      while (this.#running && this.#queue.size > 0) {
        const key = this.#queue.values().next().value as string;
        this.#queue.delete(key);
        if (!(await this.#reconcile(key))) failed = true;
      }
      if (failed && this.#running) {
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => {
          for (const d of this.#server.list('Deployment'))
            this.#queue.add(`${(d.metadata as Meta).namespace}/${(d.metadata as Meta).name}`);
          this.#drain();
        }, this.#retryMs);
      }
    })().finally(() => {
      this.#busy = undefined;
      if (this.#queue.size > 0) this.#drain();
    });
  }

  /** False when a create or delete failed (retried later). */
  async #reconcile(key: string): Promise<boolean> {
    const [namespace, name] = key.split('/');
    const deployment = this.#server.get('Deployment', namespace, name);
    const owned = this.#server
      .list('Pod')
      .filter((p) => (p.metadata as Meta).namespace === namespace)
      .filter((p) =>
        ((p.metadata as Meta).ownerReferences as { uid: string }[] | undefined)?.some(
          (o) => o.uid === (deployment?.metadata as Meta | undefined)?.uid,
        ),
      );
    if (!deployment) return true;
    const spec = deployment.spec as { replicas?: number; template: { metadata?: Obj; spec: Obj } };
    const want = spec.replicas ?? 1;
    const dm = deployment.metadata as Meta;
    const hash = createHash('sha256').update(JSON.stringify(spec.template)).digest('hex').slice(0, 10);
    let ok = true;
    for (let i = owned.length; i < want; i++) {
      const tm = (spec.template.metadata ?? {}) as {
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
      };
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: `${name}-${hash}-`,
          namespace,
          labels: { ...tm.labels, 'pod-template-hash': hash },
          ...(tm.annotations ? { annotations: { ...tm.annotations } } : {}),
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name,
              uid: dm.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: structuredClone(spec.template.spec),
      };
      try {
        await this.#client.create(PODS, 'v1', namespace, pod);
      } catch (err) {
        this.failures.push(`${key}: ${(err as Error).message}`);
        ok = false;
        break;
      }
    }
    for (const extra of owned.slice(want)) {
      try {
        await this.#client.delete(PODS, 'v1', namespace, (extra.metadata as Meta).name);
      } catch {
        ok = false;
      }
    }
    return ok;
  }
}

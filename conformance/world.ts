// What the runner needs of a running weft: a "world" started from a manifest set, in which objects are applied and
// deleted as the suite's Applier does, statuses are read as the suite's checks read them, requests are sent from a
// pod's workload (mesh) or to a Gateway's address (gateway), and pods' logs are read (mirror detection).
// Implementations: loopback-world.ts (`weft local` on 127.0.0.0/8, requests through the client pod's sidecar as an
// explicit proxy); a network-namespace one once `weft local --netns` exports its API.
import type { Resource } from '../controlplane/resources/types.ts';
import type { ClusterAccess, ObjectRef } from './status-checks.ts';

/** An HTTP request a pod's workload makes (the mesh harness's `client URL [--method] [-H …]`). */
export interface PodRequest {
  /** `http://host[:port]/path?query`: the client resolves host (a Service name or an IP) and connects. */
  url: string;
  method: string;
  /** Header lines in order; a `Host` entry sets the request's Host (the echo client's `-H Host:x`). */
  headers: [string, string][];
  timeoutMs: number;
}

export interface PodResponse {
  status: number;
  /** Raw header pairs as received. */
  headers: [string, string][];
  body: string;
}

/** Where a client outside the mesh reaches a Gateway's `address:port` (a port may be moved when not root). */
export interface Endpoint {
  host: string;
  port: number;
}

export interface World {
  /** `loopback` or `netns`: shown in the output and the report. */
  readonly kind: string;
  /** The objects as the checks read them (status merged in) and as actions change them. */
  readonly cluster: ClusterAccess;
  /** Create or update, as `kubectl apply`; resolves once the world serves them (see `sync`). */
  apply(objects: Resource[]): Promise<void>;
  /** Delete (a test's cleanup); resolves once the world has let them go. */
  remove(refs: ObjectRef[]): Promise<void>;
  /** Resolves once every write so far is translated, its statuses readable and every process of it running. */
  sync(): Promise<void>;
  /** How the runner reaches a Gateway address and listener port. */
  gatewayEndpoint(address: string, port: number): Endpoint;
  /** Sends a request from inside pod `namespace/name` as its workload would; rejects on a transport failure. */
  fromPod(namespace: string, pod: string, req: PodRequest): Promise<PodResponse>;
  /**
   * `count` requests from pod `namespace/name`, `concurrency` at a time (the echo client's `--count`): how many
   * each answering pod served (`Hostname` of the echo reply); rejects when a request got no response.
   */
  fromPodCount(
    namespace: string,
    pod: string,
    req: PodRequest,
    count: number,
    concurrency: number,
  ): Promise<Map<string, number>>;
  /** What container `container` of pod `namespace/pod` printed so far (empty when nothing). */
  logs(namespace: string, pod: string, container: string): Promise<string>;
  stop(): Promise<void>;
}

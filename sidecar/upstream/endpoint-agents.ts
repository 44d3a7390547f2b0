// The node:http Agents of the Agent-based forwarders (node:http and http-proxy-3): one keep-alive
// Agent per endpoint, mTLS connections for meshed ones, and one-off connections for requests that
// still run on an old config after their endpoint was retired.
import { Agent } from 'node:http';
import type { EndpointState } from './endpoint-state.ts';
import { createMeshConnection } from './mtls.ts';

export interface EndpointAgentOptions {
  /** Idle keep-alive sockets per endpoint kept open. */
  maxFreeSockets?: number;
  /** Idle sockets are closed after this long (ms). */
  idleTimeoutMs?: number;
}

export class EndpointAgents {
  readonly #agents = new Map<string, Agent>();
  /** Endpoints that left the config; a request still on an old config gets a connection of its own. */
  readonly #retired = new WeakSet<EndpointState>();
  readonly #options: EndpointAgentOptions;

  constructor(options: EndpointAgentOptions = {}) {
    this.#options = options;
  }

  /** The Agent for a request to `endpoint`: its pool, or for a retired one a one-off connection (`false`: a plain socket). */
  for(endpoint: EndpointState): Agent | false {
    if (this.#retired.has(endpoint)) {
      if (!endpoint.mesh) return false;
      const oneOff = new Agent({ keepAlive: false });
      oneOff.createConnection = createMeshConnection(endpoint);
      return oneOff;
    }
    let agent = this.#agents.get(endpoint.key);
    if (agent === undefined) {
      agent = new Agent({
        keepAlive: true,
        maxFreeSockets: this.#options.maxFreeSockets ?? 256,
        timeout: this.#options.idleTimeoutMs ?? 4_000,
        scheduling: 'lifo',
      });
      if (endpoint.mesh) agent.createConnection = createMeshConnection(endpoint);
      this.#agents.set(endpoint.key, agent);
    }
    return agent;
  }

  retire(endpoint: EndpointState): void {
    this.#retired.add(endpoint);
    const agent = this.#agents.get(endpoint.key);
    if (!agent) return;
    this.#agents.delete(endpoint.key);
    // Idle sockets go now; busy ones finish their exchange, then idle out (the agent's timeout).
    for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
  }

  destroy(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}

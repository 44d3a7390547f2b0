// Shared set-up of the proxy's component tests: configs built around echo backends, a proxy
// on port 0, and a plain node:http client that sends exactly what a test asks for.
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { pino } from 'pino';
import type { ProxyConfigInput } from '../../sidecar/config/proxy-config.ts';
import { type RunningProxy, type StartProxyOptions, startProxy } from '../../sidecar/proxy.ts';
import type { EchoServer } from '../helpers/echo-server.ts';

export type ClusterInput = ProxyConfigInput['clusters'][string];
export type RouteTableInput = ProxyConfigInput['routeTables'][string];
export type VirtualHostInput = RouteTableInput['virtualHosts'][number];
export type RouteInput = VirtualHostInput['routes'][number];
export type ListenerInput = ProxyConfigInput['listeners'][number];
export type GatewayHostInput = Extract<ListenerInput, { kind: 'gateway' }>['hosts'][number];

/** A cluster whose endpoints are the given echo servers. */
export function cluster(service: string, ...backends: EchoServer[]): ClusterInput {
  return {
    service,
    port: 80,
    endpoints: backends.map((b) => ({ address: b.address, port: b.port, pod: `ns/${b.pod}` })),
  };
}

/** A route with defaults: `ns/route` rule 0, match everything. */
export function route(r: Partial<RouteInput>): RouteInput {
  return { route: 'ns/route', rule: 0, match: {}, ...r };
}

export type BackendInput = NonNullable<RouteInput['backends']>[number];

/** One backend with all the weight. */
export function to(clusterKey: string, extra: Partial<BackendInput> = {}): BackendInput[] {
  return [{ ...extra, cluster: clusterKey, weight: extra.weight ?? 1 }];
}

export interface EdgeOptions {
  routes?: RouteInput[];
  virtualHosts?: VirtualHostInput[];
  clusters?: Record<string, ClusterInput>;
  hosts?: GatewayHostInput[];
  protocol?: 'HTTP' | 'HTTPS';
  /** The configured listener port (what redirects see); the proxy binds port 0 in tests. */
  port?: number;
  tlsCertificates?: ProxyConfigInput['tlsCertificates'];
  routeTables?: Record<string, RouteTableInput>;
}

export function edgeConfig(o: EdgeOptions): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'edge:ns/gw', mode: 'edge', namespace: 'ns', name: 'gw' },
    trust: { trustDomain: 'cluster.local' },
    listeners: [
      {
        kind: 'gateway',
        name: 'ns/gw/web',
        port: o.port ?? 8080,
        protocol: o.protocol ?? 'HTTP',
        hosts: o.hosts ?? [{ listener: 'ns/gw/web', routeTable: 'rt' }],
      },
    ],
    routeTables: o.routeTables ?? {
      rt: { virtualHosts: o.virtualHosts ?? [{ domains: ['*'], routes: o.routes ?? [] }] },
    },
    clusters: o.clusters ?? {},
    tlsCertificates: o.tlsCertificates,
  };
}

export interface TestProxy {
  proxy: RunningProxy;
  /** Bound port of the first listener. */
  port: number;
  adminPort: number;
  close(): Promise<void>;
}

export async function startTestProxy(config: unknown, extra: Partial<StartProxyOptions> = {}): Promise<TestProxy> {
  const proxy = await startProxy({
    config,
    adminPort: 0,
    adminAddress: '127.0.0.1',
    listenPort: () => 0,
    listenAddress: () => '127.0.0.1',
    logger: pino({ level: 'silent' }),
    ...extra,
  });
  const first = Object.values(proxy.addresses.listeners)[0];
  return { proxy, port: first?.port ?? 0, adminPort: proxy.addresses.admin.port, close: () => proxy.close() };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The echo's JSON, when the echo answered. */
  json(): { path: string; host: string; method: string; headers: Record<string, string>; pod: string; body: string };
}

export interface SendOptions {
  path?: string;
  host?: string;
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string;
}

export function send(port: number, o: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { host: o.host ?? 'example.com', ...o.headers };
    const req = httpRequest(
      { host: '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Sends bytes as they are (for requests node:http would refuse to build) and returns the raw answer. */
export function sendRaw(port: number, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
      socket.destroy();
    });
    socket.write(text, 'latin1');
  });
}

/** The status code of a raw HTTP answer, or 0. */
export function rawStatus(answer: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
  return m ? Number(m[1]) : 0;
}

// Shared set-up of the mesh (mTLS) tests: a mesh CA, workload certificates minted from it, a server sidecar (mesh
// listener in front of an echo app) and a client sidecar (outbound listener whose cluster is meshed), plus an
// https client that presents whatever certificate a test gives it. Not a test file.
import { generateKeyPairSync } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { generateRoot, MeshCA } from '../../../controlplane/certs/index.ts';
import { workloadCommonName, workloadSpiffeId } from '../../../sidecar/config/ca-api.ts';
import type { ProxyConfigInput } from '../../../sidecar/config/proxy-config.ts';
import { buildCsr } from '../../../sidecar/identity/csr.ts';
import type { StartProxyOptions } from '../../../sidecar/proxy.ts';
import type { MeshCredentials } from '../../../sidecar/upstream/mtls.ts';
import { startTestProxy, type TestProxy } from '../harness.ts';

export const TRUST_DOMAIN = 'cluster.local';
export const HOUR = 3600_000;

export interface Minted extends MeshCredentials {
  spiffeId: string;
  serialNumber: string;
  notAfter: Date;
}

/** A mesh CA on a fresh root; `backdateMs` moves its clock (and the root's start) into the past. */
export function newCa(o: { trustDomain?: string; backdateMs?: number } = {}): MeshCA {
  const trustDomain = o.trustDomain ?? TRUST_DOMAIN;
  const shift = o.backdateMs ?? 0;
  const root = generateRoot(trustDomain, Date.now() - shift - HOUR);
  return MeshCA.fromPem(root, { trustDomain, now: () => Date.now() - shift });
}

/** A CA and its root material, for a second CA on the same root (`MeshCA.fromPem(root, { trustDomain })`). */
export function newRoot(trustDomain = TRUST_DOMAIN) {
  const root = generateRoot(trustDomain, Date.now() - HOUR);
  return { root, ca: MeshCA.fromPem(root, { trustDomain }) };
}

/** A workload certificate for `ns/sa`, on a fresh key, as a proxy would hold it. */
export function mint(ca: MeshCA, namespace: string, serviceAccount: string, lifetimeMs?: number): Minted {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spiffeId = workloadSpiffeId(ca.trustDomain, namespace, serviceAccount);
  const csrPem = buildCsr(keys, { spiffeId, commonName: workloadCommonName(namespace, serviceAccount) });
  const issued = ca.issue({ csrPem, identity: { namespace, serviceAccount }, lifetimeMs });
  return {
    key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certChain: issued.certChainPem,
    rootCAs: issued.rootCAsPem,
    spiffeId,
    serialNumber: issued.serialNumber,
    notAfter: issued.notAfter,
  };
}

export const spiffe = (ns: string, sa: string) => workloadSpiffeId(TRUST_DOMAIN, ns, sa);

/** Server side: a sidecar whose mesh listener hands requests to the app's ports. */
export function serverConfig(appPorts: number[], trust: { rootCAs?: string } = {}): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:b/b-0', mode: 'sidecar', namespace: 'b', name: 'b-0', identity: spiffe('b', 'b') },
    trust: { trustDomain: TRUST_DOMAIN, ...trust },
    listeners: [
      {
        kind: 'mesh',
        name: 'mesh',
        port: 15008,
        appAddress: '127.0.0.1',
        appPorts: appPorts.map((port) => ({ port })),
      },
      {
        kind: 'inbound',
        name: 'inbound',
        port: 15006,
        appAddress: '127.0.0.1',
        appPorts: appPorts.map((port) => ({ port })),
        acceptPlaintext: true,
      },
    ],
    routeTables: {},
    clusters: {},
  };
}

export interface MeshedEndpoint {
  address?: string;
  /** The app port on the peer (travels in x-weft-target-port). */
  port: number;
  meshPort: number;
  identity: string;
}

/** Client side: a sidecar whose outbound listener sends `echo.b` to meshed endpoints. */
export function clientConfig(...endpoints: MeshedEndpoint[]): ProxyConfigInput {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    proxy: { id: 'sidecar:a/a-0', mode: 'sidecar', namespace: 'a', name: 'a-0', identity: spiffe('a', 'a') },
    trust: { trustDomain: TRUST_DOMAIN },
    listeners: [
      {
        kind: 'outbound',
        name: 'outbound',
        port: 15001,
        services: [
          { service: 'b/echo', hostnames: ['echo.b'], clusterIPs: [], ports: [{ port: 80, routeTable: 'rt' }] },
        ],
      },
    ],
    routeTables: {
      rt: {
        virtualHosts: [
          {
            domains: ['*'],
            routes: [{ route: 'b/echo', rule: 0, match: {}, backends: [{ cluster: 'c', weight: 1 }] }],
          },
        ],
      },
    },
    clusters: {
      c: {
        service: 'b/echo',
        port: 80,
        endpoints: endpoints.map((e) => ({
          address: e.address ?? '127.0.0.1',
          port: e.port,
          identity: e.identity,
          meshPort: e.meshPort,
          pod: 'b/b-0',
        })),
      },
    },
  };
}

export async function startServerSidecar(
  appPorts: number[],
  extra: Partial<StartProxyOptions> & { trust?: { rootCAs?: string } } = {},
): Promise<TestProxy & { meshPort: number; inboundPort: number }> {
  const { trust, ...options } = extra;
  const p = await startTestProxy(serverConfig(appPorts, trust), { mode: 'sidecar', ...options });
  return {
    ...p,
    meshPort: p.proxy.addresses.listeners.mesh.port,
    inboundPort: p.proxy.addresses.listeners.inbound.port,
  };
}

export async function startClientSidecar(
  endpoints: MeshedEndpoint[],
  extra: Partial<StartProxyOptions> = {},
): Promise<TestProxy> {
  return startTestProxy(clientConfig(...endpoints), { mode: 'sidecar', ...extra });
}

export interface TlsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The serial number of the certificate the server presented. */
  serverSerial: string;
}

/** One request straight to a mesh port, presenting `creds` (or no certificate), over a fresh connection. */
export function meshRequest(
  port: number,
  o: {
    creds?: { key: string; certChain: string };
    ca: string;
    headers?: Record<string, string>;
    path?: string;
    maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  },
): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: o.path ?? '/',
        headers: { host: 'echo.b', ...o.headers },
        key: o.creds?.key,
        cert: o.creds?.certChain,
        ca: o.ca,
        maxVersion: o.maxVersion,
        // The server's identity is not what these tests look at.
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        const serverSerial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber ?? '';
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            serverSerial,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A TCP server that only counts connections (and closes them): proof that nothing was sent to it. */
export async function connectionCounter(): Promise<{
  port: number;
  connections: () => number;
  close(): Promise<void>;
}> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    count++;
    sockets.add(s);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** GET on the admin port: status only. */
export async function ready(adminPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/ready`);
  await res.arrayBuffer();
  return res.status;
}

// Shared by the push tests and bench/push.ts: a mesh CA, workload credentials minted from it, snapshots with pods
// and Gateways, minimal valid (and invalid) ProxyConfigs, a log capture and a raw TLS peer. Not a test file.
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import { generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';
import type { Resource } from '../../../controlplane/resources/types.ts';
import { contentHash } from '../../../controlplane/runtime/canonical.ts';
import type { VersionedConfig } from '../../../controlplane/runtime/pipeline.ts';
import { PROXY_CONFIG_VERSION, type ProxyConfig } from '../../../sidecar/config/proxy-config.ts';
import { PUSH_ALPN, PUSH_SERVER_NAME } from '../../../sidecar/config/push-api.ts';
import { buildCsr } from '../../../sidecar/identity/csr.ts';
import type { PushCredentials } from '../../../sidecar/push/client.ts';

export const TD = 'cluster.local';
const root = generateRoot(TD, Date.now());
export const ca = MeshCA.fromPem(root, { trustDomain: TD });
/** A second, unrelated root: certificates from it must be refused. */
export const foreignCa = MeshCA.fromPem(generateRoot(TD, Date.now()), { trustDomain: TD });

// One key for every test workload: keygen is the slow part, and the identity is in the certificate.
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

export const spiffe = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

/** Credentials for `spiffe://cluster.local/ns/<ns>/sa/<sa>` issued by `issuer` (the mesh CA by default). */
export function workloadCredentials(namespace: string, serviceAccount: string, issuer: MeshCA = ca): PushCredentials {
  const csrPem = buildCsr(keys, {
    spiffeId: spiffe(namespace, serviceAccount),
    commonName: `${serviceAccount}.${namespace}`,
  });
  const issued = issuer.issue({ csrPem, identity: { namespace, serviceAccount } });
  return { key: keyPem, certChain: issued.certChainPem, rootCAs: ca.rootCAsPem };
}

/** A snapshot with the given pods (and their service accounts) and Gateways. */
export function snapshotOf(
  pods: { namespace: string; name: string; serviceAccount?: string }[],
  gateways: { namespace: string; name: string }[] = [],
): ResourceSnapshot {
  const resources: Resource[] = [
    ...pods.map(
      (p): Resource => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.name, namespace: p.namespace },
        spec: { serviceAccountName: p.serviceAccount, containers: [{ name: 'app' }] },
      }),
    ),
    ...gateways.map(
      (g): Resource => ({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: g.name, namespace: g.namespace },
        spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
      }),
    ),
  ];
  return ResourceSnapshot.from(resources);
}

/**
 * A minimal valid sidecar config; `marker` changes its content (and so its version). With `inboundPort`, it has an
 * inbound listener there (a real proxy binds it).
 */
export function sidecarConfig(
  namespace: string,
  pod: string,
  serviceAccount: string,
  o: { marker?: string; inboundPort?: number; appPort?: number } = {},
): ProxyConfig {
  const config: ProxyConfig = {
    apiVersion: PROXY_CONFIG_VERSION,
    proxy: {
      id: `sidecar:${namespace}/${pod}`,
      mode: 'sidecar',
      namespace,
      name: pod,
      serviceAccount,
      identity: spiffe(namespace, serviceAccount),
    },
    trust: { trustDomain: TD },
    admin: { port: 15020 },
    listeners: [],
    routeTables: { [`marker/${o.marker ?? 'v1'}`]: { virtualHosts: [], noMatchStatus: 404 } },
    clusters: {},
    tlsCertificates: {},
  };
  if (o.inboundPort !== undefined) {
    config.listeners.push({
      kind: 'inbound',
      name: 'inbound',
      address: '127.0.0.1',
      port: o.inboundPort,
      appAddress: '127.0.0.1',
      appPorts: [{ port: o.appPort ?? 8080 }],
      acceptPlaintext: true,
    });
  }
  return config;
}

/** A config the proxy's validator refuses: a listener on the admin port. */
export function invalidSidecarConfig(namespace: string, pod: string, serviceAccount: string): ProxyConfig {
  const c = sidecarConfig(namespace, pod, serviceAccount, { marker: 'broken', inboundPort: 15020 });
  return c;
}

export const versioned = (config: ProxyConfig): VersionedConfig => ({ version: contentHash(config), config });

/** A pino logger whose parsed lines land in `lines`. */
export function captureLogs(level = 'debug'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

/** A raw TLS peer of the push server: send lines, read parsed frames, see how it ended. */
export interface RawPeer {
  socket: TLSSocket;
  frames: Record<string, unknown>[];
  send(text: string): void;
  /** Resolves with the first frame satisfying `pred` (already received or later); rejects if the socket closes. */
  next(pred?: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves when the socket has closed, with the error it failed with, if any. */
  closed: Promise<Error | undefined>;
}

export function rawPeer(port: number, creds: PushCredentials | undefined): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: PUSH_SERVER_NAME,
      ca: ca.rootCAsPem,
      ...(creds ? { key: creds.key, cert: creds.certChain } : {}),
      ALPNProtocols: [PUSH_ALPN],
      minVersion: 'TLSv1.3',
    });
    const frames: Record<string, unknown>[] = [];
    const waiters: { pred: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }[] =
      [];
    let buffered = '';
    let failure: Error | undefined;
    const closed = new Promise<Error | undefined>((done) => socket.once('close', () => done(failure)));
    socket.on('error', (err) => {
      failure ??= err;
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl = buffered.indexOf('\n');
      while (nl !== -1) {
        const f = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        frames.push(f);
        for (const w of [...waiters])
          if (w.pred(f)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(f);
          }
        nl = buffered.indexOf('\n');
      }
    });
    socket.once('secureConnect', () =>
      resolve({
        socket,
        frames,
        closed,
        send: (text) => {
          socket.write(text);
        },
        next: (pred = () => true) =>
          new Promise((res, rej) => {
            const have = frames.find(pred);
            if (have) return res(have);
            waiters.push({ pred, resolve: res });
            closed.then(() => rej(new Error(`closed before the frame came (got ${JSON.stringify(frames)})`)));
          }),
      }),
    );
  });
}

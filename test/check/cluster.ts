// A healthy weft installation on the test Kubernetes API server, for `weft check`: the Gateway API and weft CRDs, the
// GatewayClass accepted, the control-plane Deployment available, the CA Secret with a real root, its ConfigMap in an
// injected namespace, the webhook configuration with that root as caBundle and a real HTTPS webhook serving a
// certificate of it, and the control plane's admin endpoint behind the Service (reached through the API server's
// services proxy). Each test then breaks one thing.
import { X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { type AdminServer, startAdminServer } from '../../controlplane/admin/server.ts';
import { generateRoot, MeshCA } from '../../controlplane/certs/index.ts';
import type { CheckOptions } from '../../controlplane/check/run.ts';
import type { ProxyRecord } from '../../controlplane/push/server.ts';
import { INJECTOR_CONFIGURATION } from '../k8s/cluster-fixtures.ts';
import { type Cluster, startCluster } from '../k8s/support.ts';

export const NS = 'weft-system';
const b64 = (s: string) => Buffer.from(s).toString('base64');

export interface Root {
  certPem: string;
  keyPem: string;
}

/** A root CA valid from `notBefore` for ten years (generateRoot's lifetime). */
export const rootAt = (notBefore: number): Root => generateRoot('cluster.local', notBefore);

export interface WeftCluster extends Cluster {
  root: Root;
  admin: AdminServer;
  /** What /proxies answers. */
  proxies: ProxyRecord[];
  /** The webhook's HTTPS address, when it serves (a root that can still issue). */
  webhookUrl?: string;
  /** Options for runChecks against this cluster (the webhook address and no in-cluster guess). */
  options(extra?: Partial<CheckOptions>): CheckOptions;
}

export function proxyRecord(id: string, edit: Partial<ProxyRecord> = {}): ProxyRecord {
  const at = new Date().toISOString();
  return {
    proxyId: id,
    identity: `spiffe://cluster.local/ns/shop/sa/web`,
    remoteAddress: '10.0.0.7:41234',
    nodeVersion: 'weft/0.1.0',
    connected: true,
    connectedSince: at,
    currentVersion: 'v2',
    lastSentVersion: 'v2',
    lastSentAt: at,
    lastAckedVersion: 'v2',
    lastAckedAt: at,
    nacks: 0,
    ...edit,
  };
}

/** A TLS server answering 200 to anything, on a serving certificate for the Service's DNS name. */
async function webhookServer(ca: MeshCA): Promise<HttpsServer> {
  const serving = ca.issueServing({ dnsNames: [`weft-controlplane.${NS}.svc`], ips: [] });
  const server = createHttpsServer({ cert: serving.certChainPem, key: serving.keyPem }, (_req, res) => res.end('{}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

export async function startWeftCluster(o: { root?: Root } = {}): Promise<WeftCluster> {
  const root = o.root ?? rootAt(Date.now());
  let resolveAdmin = true;
  const cluster = await startCluster({
    resolveService: (ns, name, port) =>
      ns === NS && name === 'weft-controlplane' && port === 15014 && resolveAdmin
        ? { host: '127.0.0.1', port: admin.port }
        : undefined,
  });
  const s = cluster.server;
  const proxies: ProxyRecord[] = [proxyRecord('sidecar:shop/web-1'), proxyRecord('sidecar:shop/web-2')];
  const admin = await startAdminServer({
    port: 0,
    ready: () => ({ ready: true }),
    proxies: () => proxies,
    statuses: () => [],
    logger: pino({ level: 'silent' }),
  });
  for (const name of [NS, 'shop', 'plain'])
    s.put({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: name === 'shop' ? { 'weft.dev/inject': 'enabled' } : {} },
    });
  s.put({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'weft', generation: 1 },
    spec: { controllerName: 'weft.dev/gateway-controller' },
    status: {
      conditions: [
        {
          type: 'Accepted',
          status: 'True',
          reason: 'Accepted',
          message: 'GatewayClass is accepted by weft',
          observedGeneration: 1,
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  });
  s.put({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'weft-controlplane', namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'weft' } },
      template: { metadata: {}, spec: { containers: [] } },
    },
    status: { replicas: 2, availableReplicas: 2, readyReplicas: 2 },
  });
  s.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'weft-controlplane', namespace: NS },
    spec: {
      ports: [
        { name: 'push', port: 15010 },
        { name: 'ca', port: 15012 },
        { name: 'webhook', port: 443, targetPort: 9443 },
        { name: 'admin', port: 15014 },
      ],
    },
  });
  s.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'weft-ca', namespace: NS },
    type: 'Opaque',
    data: { 'ca.crt': b64(root.certPem), 'ca.key': b64(root.keyPem) },
  });
  s.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'weft-root-ca', namespace: 'shop' },
    data: { 'ca.crt': root.certPem },
  });
  // The chart's configuration, with the caBundle the control plane writes.
  const webhooks = structuredClone(INJECTOR_CONFIGURATION);
  Object.assign(webhooks.webhooks[0].clientConfig, { caBundle: b64(root.certPem) });
  s.put(webhooks);
  let webhook: HttpsServer | undefined;
  // An expired root issues nothing: that cluster has no webhook serving.
  if (Date.now() < new X509Certificate(root.certPem).validToDate.getTime())
    webhook = await webhookServer(MeshCA.fromPem(root, { trustDomain: 'cluster.local' }));
  const webhookUrl = webhook ? `https://127.0.0.1:${(webhook.address() as AddressInfo).port}` : undefined;
  return {
    ...cluster,
    root,
    admin,
    proxies,
    webhookUrl,
    // Long network timeouts: only a loaded machine waits on them, and a check that fails fails at once.
    options: (extra = {}) => ({ client: cluster.client, webhookUrl, inCluster: false, timeoutMs: 30_000, ...extra }),
    close: async () => {
      resolveAdmin = false;
      webhook?.closeAllConnections();
      await new Promise<void>((r) => (webhook ? webhook.close(() => r()) : r()));
      await admin.close();
      await cluster.close();
    },
  };
}

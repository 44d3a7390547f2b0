// The mesh root CA of a cluster lives in one Secret in the control plane's namespace (default `weft-ca`), so every
// replica signs with the same root. The first replica to start finds no Secret, generates a root and creates it;
// creation is the API server's create-if-absent, so when two replicas race, one create wins (the other gets 409
// AlreadyExists) and both load the winner's root. An operator can supply the Secret instead (their own root, or an
// intermediate with its chain); it is validated as MeshCA.fromPem validates any supplied CA.
//
//   type: Opaque (not kubernetes.io/tls: the informers read TLS Secrets into snapshots, and this key must stay out)
//   data: ca.crt   the signing CA's certificate (PEM)
//         ca.key   its private key (PEM, PKCS#8 or PKCS#1)
//         chain.crt  optional: for an intermediate, its issuers up to the self-signed root
import type { Logger } from 'pino';
import { CA_CERT_FILE, CA_KEY_FILE, CaSetupError, generateRoot, MeshCA } from '../certs/index.ts';
import type { KubeClient, KubeObject, ResourceRef } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';

export const SECRETS: ResourceRef = { group: '', plural: 'secrets', namespaced: true };
export const CA_SECRET_CERT = CA_CERT_FILE;
export const CA_SECRET_KEY = CA_KEY_FILE;
export const CA_SECRET_CHAIN = 'chain.crt';
export const MANAGED_BY_LABELS = { 'app.kubernetes.io/managed-by': 'weft' } as const;

export interface CaSecretOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  trustDomain: string;
  logger?: Logger;
  now?: () => number;
}

type Secret = KubeObject & { type?: string; data?: Record<string, string> };

const decode = (data: Record<string, string> | undefined, key: string): string | undefined =>
  data?.[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8');

function caFromSecret(secret: Secret, o: CaSecretOptions): MeshCA {
  const where = `Secret ${o.namespace}/${o.name}`;
  const certPem = decode(secret.data, CA_SECRET_CERT);
  const keyPem = decode(secret.data, CA_SECRET_KEY);
  if (!certPem || !keyPem) {
    const missing = [!certPem && CA_SECRET_CERT, !keyPem && CA_SECRET_KEY].filter(Boolean).join(' and ');
    throw new CaSetupError(
      'WEFT_ERR_CA_STORE_INCOMPLETE',
      `${where} lacks ${missing}; restore it, or delete the Secret to generate a new root (every proxy must then get new certificates)`,
    );
  }
  const chainPem = decode(secret.data, CA_SECRET_CHAIN);
  try {
    return MeshCA.fromPem(
      { certPem, keyPem, ...(chainPem ? { chainPem } : {}) },
      { trustDomain: o.trustDomain, ...(o.now ? { now: o.now } : {}) },
    );
  } catch (err) {
    if (err instanceof CaSetupError) throw new CaSetupError(err.code, `${where}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * The CA stored in the Secret, generating and creating it first when absent. Throws CaSetupError when the Secret
 * holds something unusable, and the client's KubeError when the API cannot be reached (the caller retries).
 */
export async function loadOrCreateCaSecret(o: CaSecretOptions): Promise<{ ca: MeshCA; created: boolean }> {
  try {
    const existing = await o.client.get<Secret>(SECRETS, 'v1', o.namespace, o.name);
    return { ca: caFromSecret(existing, o), created: false };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const root = generateRoot(o.trustDomain, (o.now ?? Date.now)());
  const secret: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: o.name, namespace: o.namespace, labels: { ...MANAGED_BY_LABELS } },
    type: 'Opaque',
    data: {
      [CA_SECRET_CERT]: Buffer.from(root.certPem).toString('base64'),
      [CA_SECRET_KEY]: Buffer.from(root.keyPem).toString('base64'),
    },
  };
  try {
    const created = await o.client.create<Secret>(SECRETS, 'v1', o.namespace, secret);
    o.logger?.info(
      { event: 'ca.root-created', secret: `${o.namespace}/${o.name}`, trustDomain: o.trustDomain },
      `generated the mesh root CA and stored it in Secret ${o.namespace}/${o.name}`,
    );
    return { ca: caFromSecret(created, o), created: true };
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  // Another replica created it between our GET and POST: use its root.
  const winner = await o.client.get<Secret>(SECRETS, 'v1', o.namespace, o.name);
  return { ca: caFromSecret(winner, o), created: false };
}

// Workload certificates for the sidecar pair, from a throwaway mesh CA (the control plane's own
// CA code), written as the files `--cert/--key/--roots` take.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRoot, MeshCA } from '../../controlplane/certs/index.ts';
import { workloadCommonName, workloadSpiffeId } from '../../sidecar/config/ca-api.ts';
import { buildCsr } from '../../sidecar/identity/csr.ts';

export interface CertFiles {
  cert: string;
  key: string;
  roots: string;
  spiffeId: string;
}

export function workloadCertFiles(dir: string, trustDomain: string, names: [string, string][]): CertFiles[] {
  const ca = MeshCA.fromPem(generateRoot(trustDomain, Date.now() - 3600_000), { trustDomain });
  return names.map(([namespace, serviceAccount]) => {
    // RSA 2048, as the proxy's own CSR path makes (node-forge builds RSA only); connections are
    // kept alive, so the handshake is paid once per pooled connection, not per request.
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spiffeId = workloadSpiffeId(trustDomain, namespace, serviceAccount);
    const csrPem = buildCsr(keys, { spiffeId, commonName: workloadCommonName(namespace, serviceAccount) });
    const issued = ca.issue({ csrPem, identity: { namespace, serviceAccount } });
    const base = join(dir, `${namespace}-${serviceAccount}`);
    const files = { cert: `${base}.crt`, key: `${base}.key`, roots: `${base}-roots.crt`, spiffeId };
    writeFileSync(files.cert, issued.certChainPem);
    writeFileSync(files.key, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    writeFileSync(files.roots, issued.rootCAsPem);
    return files;
  });
}

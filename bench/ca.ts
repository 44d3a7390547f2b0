// `node bench/ca.ts [--seconds S] [--concurrency C]`: certificate issuance rate of the mesh CA.
//
// 1. Through the real CA server (controlplane/certs/server.ts) on a loopback port: C clients in this process send
//    real CSRs (RSA-2048 keys made beforehand with node:crypto, CSRs built by sidecar/identity/csr.ts) with a
//    bootstrap token, each over a new TLS connection (requestCertificate, as a proxy does), for S seconds.
//    Every answer is parsed; the rate counts 200s only. The rate limiter is set out of the way.
// 2. In-process `MeshCA.issue` (CSR checks + node-forge signing) in a loop for S seconds: the CA's own ceiling.
// Prints both figures as JSON lines.
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { generateRoot, MeshCA } from '../controlplane/certs/ca.ts';
import { startCAServer } from '../controlplane/certs/server.ts';
import { BootstrapTokens } from '../controlplane/certs/tokens.ts';
import { requestCertificate } from '../sidecar/identity/ca-client.ts';
import { buildCsr } from '../sidecar/identity/csr.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '8' } },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const TD = 'cluster.local';
const ca = MeshCA.fromPem(generateRoot(TD, Date.now()), { trustDomain: TD });
const tokens = new BootstrapTokens({ secret: Buffer.alloc(32, 1) });

// A pool of keys and CSRs: a proxy makes one key per certificate, but keygen is the client's cost, not the CA's.
const POOL = 32;
const csrs = Array.from({ length: POOL }, (_, i) => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sa = `sa-${i}`;
  return {
    csr: buildCsr(keys, { spiffeId: `spiffe://${TD}/ns/bench/sa/${sa}`, commonName: `${sa}.bench` }),
    token: tokens.mint({ namespace: 'bench', serviceAccount: sa }),
  };
});

const server = await startCAServer({
  ca,
  verifier: tokens,
  port: 0,
  host: '127.0.0.1',
  rateLimit: { burst: 1e9, perSecond: 1e9 },
  logger: pino({ level: 'silent' }),
});
let ok = 0;
let failed = 0;
const latencies: number[] = [];
const end = performance.now() + seconds * 1000;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async (_, w) => {
    let i = w;
    while (performance.now() < end) {
      const { csr, token } = csrs[i++ % POOL];
      const began = performance.now();
      try {
        await requestCertificate({ url: server.url, trustedRootsPem: ca.rootCAsPem }, { csr, token });
        ok++;
        latencies.push(performance.now() - began);
      } catch {
        failed++;
      }
    }
  }),
);
const serverSeconds = (performance.now() - t0) / 1000;
await server.close();
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
console.log(
  JSON.stringify({
    bench: 'ca-server',
    seconds: Number(serverSeconds.toFixed(2)),
    concurrency,
    issued: ok,
    failed,
    perSecond: Number((ok / serverSeconds).toFixed(1)),
    latencyMs: { p50: Number(pct(50).toFixed(1)), p99: Number(pct(99).toFixed(1)) },
  }),
);

let issued = 0;
const t1 = performance.now();
const end2 = t1 + seconds * 1000;
while (performance.now() < end2) {
  const i = issued % POOL;
  ca.issue({ csrPem: csrs[i].csr, identity: { namespace: 'bench', serviceAccount: `sa-${i}` } });
  issued++;
}
const inProcSeconds = (performance.now() - t1) / 1000;
console.log(
  JSON.stringify({
    bench: 'meshca-issue',
    seconds: Number(inProcSeconds.toFixed(2)),
    issued,
    perSecond: Number((issued / inProcSeconds).toFixed(1)),
    msEach: Number(((inProcSeconds * 1000) / issued).toFixed(2)),
  }),
);

// Renewal timing with a fake clock shared by the CA and the proxy: short leaf lifetimes, time moved by hand, no
// sleeps. The CA and the TLS are real.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import test from 'ava';
import { generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { type CAServer, startCAServer } from '../../../controlplane/certs/server.ts';
import { BootstrapTokens } from '../../../controlplane/certs/tokens.ts';
import type { IdentityError } from '../../../sidecar/identity/errors.ts';
import { MIN_RETRY_MS, retryDelay, rotationDelay } from '../../../sidecar/identity/rotation.ts';
import { WorkloadIdentity } from '../../../sidecar/identity/workload-cert.ts';
import { captureLogs, FakeClock } from '../../controlplane/certs/support.ts';

const td = 'cluster.local';
const root = generateRoot(td, Date.now());
const tokens = new BootstrapTokens({ secret: randomBytes(32) });
const LIFETIME_MS = 30_000;

async function setup(t: import('ava').ExecutionContext) {
  const clock = new FakeClock();
  const ca = MeshCA.fromPem(root, { trustDomain: td, now: clock.now });
  const { logger, lines } = captureLogs();
  const opts = { ca, verifier: tokens, port: 0, logger, leafLifetimeMs: LIFETIME_MS, now: clock.now };
  let server: CAServer = await startCAServer(opts);
  t.teardown(() => server.close());
  const port = server.port;
  const web = new WorkloadIdentity({
    ca: { url: server.url, rootsPem: root.certPem },
    trustDomain: td,
    namespace: 'shop',
    serviceAccount: 'web',
    token: () => tokens.mint({ namespace: 'shop', serviceAccount: 'web' }),
    clock,
    random: () => 0.5,
    backoff: { initialMs: 1000, maxMs: 4000 },
  });
  t.teardown(() => web.close());
  return {
    clock,
    web,
    lines,
    stopCA: () => server.close(),
    restartCA: async () => {
      server = await startCAServer({ ...opts, port });
    },
  };
}

test('renews at two thirds of the lifetime: not a moment before, then with a new key and serial', async (t) => {
  const { clock, web, lines } = await setup(t);
  const first = await web.start();
  const receivedAt = clock.now();
  const expected = receivedAt + Math.round((2 / 3) * (first.notAfter.getTime() - receivedAt));
  t.is(web.nextRenewalAt, expected);
  // Two thirds of 30 s (X.509 times are whole seconds, so a little under 20 s).
  t.true(expected - receivedAt > 19_000 && expected - receivedAt <= 20_000);

  clock.advanceTo(expected - 1);
  t.false(web.renewing);
  t.is(web.current(), first);
  clock.advance(1);
  t.true(web.renewing, 'renewal starts exactly at two thirds');
  const [second] = await once(web, 'change');
  t.not(second.serialNumber, first.serialNumber);
  t.not(second.key, first.key);
  t.is(web.current(), second);
  t.true(second.notAfter.getTime() > first.notAfter.getTime());
  t.is(lines.filter((l) => l.event === 'certificate.issued').length, 2);
});

test('a failed renewal keeps the valid certificate and retries with backoff; at notAfter it is dropped and reported', async (t) => {
  const { clock, web, stopCA, restartCA } = await setup(t);
  const first = await web.start();
  await stopCA();

  clock.advanceTo(web.nextRenewalAt ?? 0);
  const [err, info] = (await once(web, 'renewalFailed')) as [IdentityError, { attempt: number; retryInMs: number }];
  t.is(err.code, 'WEFT_ERR_CA_UNREACHABLE');
  t.is(info.attempt, 1);
  t.is(info.retryInMs, 750, 'first retry: half of 1 s plus half of the jitter range');
  t.is(web.current(), first, 'still valid: still served');

  clock.advance(info.retryInMs);
  const [, second] = (await once(web, 'renewalFailed')) as [IdentityError, { attempt: number; retryInMs: number }];
  t.is(second.attempt, 2);
  t.is(second.retryInMs, 1500);

  // Time runs out before any retry succeeds.
  const expired: IdentityError[] = [];
  web.on('expired', (e) => expired.push(e));
  clock.advanceTo(first.notAfter.getTime());
  t.is(web.current(), undefined, 'an expired certificate is not served');
  t.is(expired.length, 1);
  t.is(expired[0].code, 'WEFT_ERR_CERT_EXPIRED');

  // The CA comes back: the next retry restores credentials.
  await restartCA();
  // A retry may be under way (it may fail, or already reach the restarted CA).
  if (web.renewing) await Promise.race([once(web, 'renewalFailed'), once(web, 'change')]);
  if (web.current() === undefined) {
    const next = once(web, 'change');
    clock.advanceTo(web.nextRenewalAt ?? 0);
    await next;
  }
  const third = web.current();
  t.truthy(third);
  t.not(third?.serialNumber, first.serialNumber);
  t.true((third?.notAfter.getTime() ?? 0) > clock.now());
});

test('rotationDelay: 16 h for a fresh 24 h leaf; a backdated notBefore does not eat a short lifetime', (t) => {
  const now = 1_000_000_000_000;
  t.is(rotationDelay({ receivedAt: now, notBefore: now - 60_000, notAfter: now + 24 * 3600_000 }), 16 * 3600_000);
  t.is(rotationDelay({ receivedAt: now, notBefore: now - 60_000, notAfter: now + 30_000 }), 20_000);
  // Received late (restarted proxy): two thirds of what is left.
  t.is(rotationDelay({ receivedAt: now, notBefore: now - 9_000, notAfter: now + 3_000 }), 2_000);
  t.is(rotationDelay({ receivedAt: now, notBefore: now - 9_000, notAfter: now - 1 }), 0);
});

test('retryDelay: exponential with equal jitter, capped, and at most half the remaining validity', (t) => {
  const b = { initialMs: 1000, maxMs: 8000 };
  t.deepEqual(
    [1, 2, 3, 4, 5, 10].map((n) => retryDelay(n, () => 0, b)),
    [500, 1000, 2000, 4000, 4000, 4000],
  );
  t.deepEqual(
    [1, 2, 3, 4, 5].map((n) => retryDelay(n, () => 0.999999, b)),
    [1000, 2000, 4000, 8000, 8000],
  );
  t.is(
    retryDelay(5, () => 0.5, b, 3000),
    1500,
    'half of the 3 s left',
  );
  t.is(
    retryDelay(5, () => 0.5, b, 100),
    MIN_RETRY_MS,
    'never a busy loop',
  );
});

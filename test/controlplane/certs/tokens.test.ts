import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CaSetupError, TokenError } from '../../../controlplane/certs/errors.ts';
import {
  BOOTSTRAP_TOKEN_KEY_FILE,
  BootstrapTokens,
  DEFAULT_TOKEN_LEEWAY_MS,
  mintBootstrapToken,
} from '../../../controlplane/certs/tokens.ts';

const secret = randomBytes(32);
const t0 = Date.UTC(2030, 5, 1, 8, 0, 0);
const who = { namespace: 'shop', serviceAccount: 'web', pod: 'web-7d9f-abcde' };

function verifier(now = t0) {
  return new BootstrapTokens({ secret, now: () => now });
}

async function rejects(t: import('ava').ExecutionContext, v: BootstrapTokens, token: string, code: string) {
  const err = await t.throwsAsync(v.verify(token), { instanceOf: TokenError });
  t.is(err?.code as string | undefined, code, err?.message);
  t.is(err?.status, 401);
}

/** A token with these exact header and claims, correctly signed with `key`. */
function forge(header: unknown, claims: unknown, key = secret): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc(header)}.${enc(claims)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

const iat = Math.floor(t0 / 1000);
const claims = { ns: 'shop', sa: 'web', aud: 'weft', iat, exp: iat + 3600 };
const header = { alg: 'HS256', typ: 'JWT' };

test('a minted token verifies to its identity', async (t) => {
  const token = verifier().mint(who);
  t.deepEqual(await verifier().verify(token), who);
  t.deepEqual(await verifier().verify(mintBootstrapToken(secret, { namespace: 'a', serviceAccount: 'b' }, t0)), {
    namespace: 'a',
    serviceAccount: 'b',
  });
});

test('tampering is caught: changed claims, changed signature, another secret', async (t) => {
  const token = verifier().mint(who);
  const [h, p, s] = token.split('.');
  const otherClaims = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), ns: 'kube-system', sa: 'admin' }),
  ).toString('base64url');
  await rejects(t, verifier(), `${h}.${otherClaims}.${s}`, 'WEFT_ERR_TOKEN_SIGNATURE');
  const flipped = `${s.slice(0, 5)}${s[5] === 'A' ? 'B' : 'A'}${s.slice(6)}`;
  await rejects(t, verifier(), `${h}.${p}.${flipped}`, 'WEFT_ERR_TOKEN_SIGNATURE');
  await rejects(t, verifier(), `${h}.${p}.${s.slice(0, -4)}`, 'WEFT_ERR_TOKEN_SIGNATURE');
  await rejects(t, verifier(), forge(header, claims, randomBytes(32)), 'WEFT_ERR_TOKEN_SIGNATURE');
});

test('wrong audience is refused; an audience list containing weft is accepted', async (t) => {
  await rejects(t, verifier(), verifier().mint({ ...who, audience: 'kubernetes' }), 'WEFT_ERR_TOKEN_AUDIENCE');
  await rejects(t, verifier(), forge(header, { ...claims, aud: undefined }), 'WEFT_ERR_TOKEN_AUDIENCE');
  t.like(await verifier().verify(forge(header, { ...claims, aud: ['other', 'weft'] })), { namespace: 'shop' });
});

test('expiry and not-before are checked against the injected clock, with leeway', async (t) => {
  const token = verifier().mint({ ...who, ttlMs: 60_000 });
  const expiry = t0 + 60_000 + DEFAULT_TOKEN_LEEWAY_MS;
  t.truthy(await verifier(expiry - 1).verify(token));
  await rejects(t, verifier(expiry), token, 'WEFT_ERR_TOKEN_EXPIRED');
  const future = verifier(t0 + 3600_000).mint(who);
  await rejects(t, verifier(t0), future, 'WEFT_ERR_TOKEN_NOT_YET_VALID');
});

test('malformed tokens and header tricks are refused before any claim is trusted', async (t) => {
  const v = verifier();
  for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', 'a.b.c d', `${'a'.repeat(9000)}.b.c`]) {
    await rejects(t, v, bad, 'WEFT_ERR_TOKEN_MALFORMED');
  }
  // alg "none" with an empty signature, or another algorithm, even when the MAC is right.
  const enc = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');
  await rejects(t, v, `${enc({ alg: 'none' })}.${enc(claims)}.`, 'WEFT_ERR_TOKEN_MALFORMED');
  await rejects(t, v, forge({ alg: 'none' }, claims), 'WEFT_ERR_TOKEN_MALFORMED');
  await rejects(t, v, forge({ alg: 'HS512' }, claims), 'WEFT_ERR_TOKEN_MALFORMED');
  await rejects(t, v, forge(header, 'just a string'), 'WEFT_ERR_TOKEN_MALFORMED');
});

test('claims must name a valid namespace, service account and pod', async (t) => {
  const v = verifier();
  await rejects(t, v, forge(header, { ...claims, ns: '../kube-system' }), 'WEFT_ERR_TOKEN_CLAIMS');
  await rejects(t, v, forge(header, { ...claims, sa: 'web/sa/admin' }), 'WEFT_ERR_TOKEN_CLAIMS');
  await rejects(t, v, forge(header, { ...claims, sa: 42 }), 'WEFT_ERR_TOKEN_CLAIMS');
  await rejects(t, v, forge(header, { ...claims, pod: 'Not_A_Pod' }), 'WEFT_ERR_TOKEN_CLAIMS');
  await rejects(t, v, forge(header, { ...claims, exp: 'tomorrow' }), 'WEFT_ERR_TOKEN_CLAIMS');
  t.throws(() => v.mint({ namespace: 'shop', serviceAccount: 'a/b' }), { instanceOf: CaSetupError });
});

test('the secret is created once (0600) and survives restarts, so tokens stay valid', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-tokens-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await BootstrapTokens.loadOrCreate(join(dir, 'state'));
  const token = first.mint(who);
  const path = join(dir, 'state', BOOTSTRAP_TOKEN_KEY_FILE);
  t.is((await stat(path)).mode & 0o777, 0o600);
  const second = await BootstrapTokens.loadOrCreate(join(dir, 'state'));
  t.deepEqual(await second.verify(token), who);
  await chmod(path, 0o640);
  const err = await t.throwsAsync(BootstrapTokens.loadOrCreate(join(dir, 'state')), { instanceOf: CaSetupError });
  t.is(err?.code, 'WEFT_ERR_CA_KEY_PERMISSIONS');
  t.throws(() => new BootstrapTokens({ secret: Buffer.alloc(8) }), { instanceOf: CaSetupError });
});

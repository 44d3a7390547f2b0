// TokenReviewVerifier through the test API server: the accepted case, each refusal (401 with its code), and every
// way the API can fail to answer (503 WEFT_ERR_UNAVAILABLE, never an accept) — then once through the CA server.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { pino } from 'pino';
import { generateRoot, MeshCA, startCAServer, TokenError } from '../../controlplane/certs/index.ts';
import { KubeClient, kubeConfigFor } from '../../controlplane/k8s/client.ts';
import { TokenReviewVerifier } from '../../controlplane/k8s/token-review.ts';
import { buildCsr, IdentityError, requestCertificate } from '../../sidecar/identity/index.ts';
import { type Cluster, startCluster } from './support.ts';
import { TokenAuthority } from './token-authority.ts';

interface Ctx {
  c: Cluster;
  tokens: TokenAuthority;
  verifier: TokenReviewVerifier;
  /** The uid of pod shop/web-1. */
  uid: string;
}

const test = anyTest as TestFn<Ctx>;

function putPod(c: Cluster, name: string, serviceAccountName = 'web'): string {
  const pod = c.server.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop' },
    spec: { serviceAccountName, containers: [{ name: 'app', image: 'echo' }] },
  });
  return (pod.metadata as { uid: string }).uid;
}

test.beforeEach(async (t) => {
  const tokens = new TokenAuthority();
  t.context.tokens = tokens;
  t.context.c = await startCluster({ tokenReview: tokens.review });
  t.context.c.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  t.context.uid = putPod(t.context.c, 'web-1');
  t.context.verifier = new TokenReviewVerifier({ client: t.context.c.client });
});

test.afterEach.always(async (t) => {
  await t.context.c?.close();
});

const podToken = (t: { context: Ctx }, extra: Partial<Parameters<TokenAuthority['mint']>[0]> = {}) =>
  t.context.tokens.mint({
    namespace: 'shop',
    serviceAccount: 'web',
    pod: { name: 'web-1', uid: t.context.uid },
    ...extra,
  });

async function refusal(t: { context: Ctx }, token: string): Promise<TokenError> {
  const err = await t.context.verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof TokenError)) throw new Error(`expected a TokenError, got ${String(err)}`);
  return err;
}

test('a projected token of a live pod proves its ServiceAccount; the review asks for audience weft', async (t) => {
  const identity = await t.context.verifier.verify(podToken(t));
  t.deepEqual(identity, { namespace: 'shop', serviceAccount: 'web', pod: 'web-1' });
  t.deepEqual(t.context.tokens.reviews.at(-1)?.audiences, ['weft']);
  t.is(t.context.c.server.count({ verb: 'get', resource: 'pods', name: 'web-1' }), 1);
});

test('a token for another audience is refused (401), whether the API server or the check says so', async (t) => {
  const wrong = await refusal(t, podToken(t, { audiences: ['vault'] }));
  t.is(wrong.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.is(wrong.status, 401);
  t.regex(wrong.message, /invalid for the target audiences/);
  // An API server that is not audience-aware answers without audiences: not trusted.
  t.context.c.server.tokenReview = () => ({
    authenticated: true,
    user: { username: 'system:serviceaccount:shop:web', extra: {} },
  });
  const unaware = await refusal(t, 'any-token');
  t.is(unaware.code, 'WEFT_ERR_TOKEN_AUDIENCE');
  t.is(unaware.status, 401);
});

test('an unauthenticated token is refused with the reason', async (t) => {
  const err = await refusal(t, 'not-a-token-the-server-knows');
  t.is(err.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.regex(err.message, /did not authenticate the token: .*invalid bearer token/);
  t.is(t.context.c.server.count({ resource: 'pods', verb: 'get' }), 0, 'no pod lookup for a refused token');
});

test('a token whose pod was deleted is refused; so is one whose pod name now belongs to a new pod', async (t) => {
  const token = podToken(t);
  t.context.c.server.remove('Pod', 'shop', 'web-1');
  const gone = await refusal(t, token);
  t.is(gone.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.regex(gone.message, /pod shop\/web-1 of the token no longer exists/);
  putPod(t.context.c, 'web-1');
  const replaced = await refusal(t, token);
  t.is(replaced.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.regex(replaced.message, /was replaced \(uid differs\)/);
});

test('tokens that are not pod-bound ServiceAccount tokens are refused', async (t) => {
  const unbound = await refusal(t, t.context.tokens.mint({ namespace: 'shop', serviceAccount: 'web' }));
  t.is(unbound.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.regex(unbound.message, /not bound to a pod/);
  const otherSa = await refusal(t, podToken(t, { serviceAccount: 'admin' }));
  t.is(otherSa.code, 'WEFT_ERR_TOKEN_REJECTED');
  t.regex(otherSa.message, /runs as ServiceAccount web, not admin/);
  t.context.c.server.tokenReview = () => ({ authenticated: true, user: { username: 'alice' }, audiences: ['weft'] });
  t.is((await refusal(t, 'x')).code, 'WEFT_ERR_TOKEN_CLAIMS');
  t.is((await refusal(t, '')).code, 'WEFT_ERR_TOKEN_MALFORMED');
});

test('when the API cannot answer, the verdict is WEFT_ERR_UNAVAILABLE (503), never an accept', async (t) => {
  const { server } = t.context.c;
  const token = podToken(t);
  const cases: [string, () => void][] = [
    ['TokenReview 500', () => server.failNext({ resource: 'tokenreviews', code: 500 })],
    ['TokenReview 403', () => server.failNext({ resource: 'tokenreviews', code: 403, reason: 'Forbidden' })],
    ['TokenReview connection cut', () => server.failNext({ resource: 'tokenreviews', drop: true })],
    ['pod GET 503', () => server.failNext({ resource: 'pods', verb: 'get', code: 503 })],
    ['pod GET 429', () => server.failNext({ resource: 'pods', verb: 'get', code: 429, reason: 'TooManyRequests' })],
  ];
  for (const [what, arrange] of cases) {
    arrange();
    const err = await refusal(t, token);
    t.is(err.code, 'WEFT_ERR_UNAVAILABLE', what);
    t.is(err.status, 503, what);
  }
  t.deepEqual(await t.context.verifier.verify(token), { namespace: 'shop', serviceAccount: 'web', pod: 'web-1' });
  // The API server gone altogether.
  const url = t.context.c.url;
  await t.context.c.server.close();
  const client = new KubeClient(kubeConfigFor(url), { timeoutMs: 2000 });
  const down = await new TokenReviewVerifier({ client }).verify(token).catch((e: unknown) => e);
  await client.close();
  t.true(down instanceof TokenError && down.code === 'WEFT_ERR_UNAVAILABLE');
});

test('the CA server issues to a TokenReview-valid token and answers refusals with their codes', async (t) => {
  const ca = MeshCA.fromPem(generateRoot('cluster.local', Date.now()), { trustDomain: 'cluster.local' });
  const server = await startCAServer({ ca, verifier: t.context.verifier, port: 0, logger: pino({ level: 'silent' }) });
  t.teardown(() => server.close());
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const csr = buildCsr(keys, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/web', commonName: 'web.shop' });
  const issued = await requestCertificate(
    { url: server.url, trustedRootsPem: server.rootCAsPem },
    { csr, token: podToken(t) },
  );
  const leaf = new X509Certificate(issued.certChain);
  t.is(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/web');
  const refused = await requestCertificate(
    { url: server.url, trustedRootsPem: server.rootCAsPem },
    { csr, token: podToken(t, { audiences: ['other'] }) },
  ).catch((e: unknown) => e);
  t.true(refused instanceof IdentityError);
  t.is((refused as IdentityError).caCode, 'WEFT_ERR_TOKEN_REJECTED');
  t.is((refused as IdentityError).status, 401);
  t.context.c.server.failNext({ resource: 'tokenreviews', code: 500 });
  const unavailable = await requestCertificate(
    { url: server.url, trustedRootsPem: server.rootCAsPem },
    { csr, token: podToken(t) },
  ).catch((e: unknown) => e);
  t.is((unavailable as IdentityError).caCode, 'WEFT_ERR_UNAVAILABLE');
  t.is((unavailable as IdentityError).status, 503);
});

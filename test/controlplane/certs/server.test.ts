// The CA endpoint over real TLS on port 0: status codes, JSON-only answers without stack traces, one log line per
// issuance and per refusal with its code, and the per-identity rate limit.
import { randomBytes, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { connect } from 'node:tls';
import test from 'ava';
import { generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { type CAServer, startCAServer } from '../../../controlplane/certs/server.ts';
import { BootstrapTokens } from '../../../controlplane/certs/tokens.ts';
import { CA_CERTIFICATES_PATH, CertificateResponseSchema } from '../../../sidecar/config/ca-api.ts';
import { captureLogs, makeCsr } from './support.ts';

const td = 'cluster.local';
const spiffe = 'spiffe://cluster.local/ns/shop/sa/web';
const root = generateRoot(td, Date.now());
const tokens = new BootstrapTokens({ secret: randomBytes(32) });
const webToken = tokens.mint({ namespace: 'shop', serviceAccount: 'web', pod: 'web-1' });

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  text: string;
}

function call(
  server: CAServer,
  o: { method?: string; path?: string; contentType?: string; body?: string | Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${o.path ?? CA_CERTIFICATES_PATH}`,
      {
        method: o.method ?? 'POST',
        ca: server.rootCAsPem,
        headers: { 'content-type': o.contentType ?? 'application/json' },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text), text });
        });
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

const json = (v: unknown) => JSON.stringify(v);

async function start(t: import('ava').ExecutionContext, extra: Partial<Parameters<typeof startCAServer>[0]> = {}) {
  const { logger, lines } = captureLogs();
  const ca = MeshCA.fromPem(root, { trustDomain: td });
  const server = await startCAServer({ ca, verifier: tokens, port: 0, logger, ...extra });
  t.teardown(() => server.close());
  return { server, lines };
}

const events = (lines: Record<string, unknown>[], event: string) => lines.filter((l) => l.event === event);

test('issues a chain for a valid token and CSR; logs one line for it', async (t) => {
  const { server, lines } = await start(t);
  const a = await call(server, {
    body: json({ csr: makeCsr({ altNames: [{ type: 6, value: spiffe }] }), token: webToken }),
  });
  t.is(a.status, 200, a.text);
  t.is(a.headers['content-type'], 'application/json');
  const answer = CertificateResponseSchema.parse(a.body);
  const leaf = new X509Certificate(answer.certChain);
  t.is(leaf.subjectAltName, `URI:${spiffe}`);
  t.true(leaf.verify(new X509Certificate(answer.rootCAs).publicKey));
  t.is(answer.notAfter, leaf.validToDate.toISOString());
  const issued = events(lines, 'certificate.issued');
  t.is(issued.length, 1);
  t.like(issued[0], { identity: spiffe, pod: 'web-1', serial: leaf.serialNumber.toLowerCase(), level: 30 });
});

test('serves a certificate of its own CA for weft-ca, localhost and 127.0.0.1 over TLS', async (t) => {
  const { server } = await start(t);
  for (const servername of ['weft-ca', 'localhost']) {
    const cert = await new Promise<X509Certificate>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: server.port, servername, ca: server.rootCAsPem }, () => {
        const peer = s.getPeerX509Certificate();
        s.end();
        if (peer) resolve(peer);
      });
      s.on('error', reject);
    });
    t.true(cert.checkHost(servername) !== undefined);
    t.true(cert.checkIP('127.0.0.1') !== undefined);
    t.false(cert.ca);
  }
  // A client that does not trust the mesh root cannot talk to the CA.
  await t.throwsAsync(
    new Promise<void>((resolve, reject) => {
      const s = connect(
        { host: '127.0.0.1', port: server.port, servername: 'weft-ca', ca: generateRoot(td, Date.now()).certPem },
        () => resolve(),
      );
      s.on('error', reject);
    }),
  );
});

test('refusals: status, code, message, no stack trace, one log line each with its reason code', async (t) => {
  const { server, lines } = await start(t);
  const foreign = makeCsr({ altNames: [{ type: 6, value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }] });
  const cases: [string, Parameters<typeof call>[1], number, string][] = [
    ['wrong path', { path: '/v2/certificates' }, 404, 'WEFT_ERR_NOT_FOUND'],
    ['wrong method', { method: 'GET' }, 405, 'WEFT_ERR_METHOD_NOT_ALLOWED'],
    ['not JSON content type', { contentType: 'text/plain', body: 'x' }, 415, 'WEFT_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['bad JSON', { body: '{"csr":' }, 400, 'WEFT_ERR_REQUEST_INVALID'],
    ['unknown field', { body: json({ csr: 'x', token: webToken, admin: true }) }, 400, 'WEFT_ERR_REQUEST_INVALID'],
    ['missing token', { body: json({ csr: 'x' }) }, 400, 'WEFT_ERR_REQUEST_INVALID'],
    [
      'forged token',
      { body: json({ csr: makeCsr(), token: `${webToken.slice(0, -2)}AA` }) },
      401,
      'WEFT_ERR_TOKEN_SIGNATURE',
    ],
    ['foreign identity', { body: json({ csr: foreign, token: webToken }) }, 403, 'WEFT_ERR_CSR_IDENTITY_MISMATCH'],
    ['garbage CSR', { body: json({ csr: 'garbage', token: webToken }) }, 400, 'WEFT_ERR_CSR_MALFORMED'],
    [
      'body over 64 KiB',
      { body: json({ csr: 'x'.repeat(70 * 1024), token: webToken }) },
      413,
      'WEFT_ERR_BODY_TOO_LARGE',
    ],
  ];
  for (const [name, request, status, code] of cases) {
    const before = lines.length;
    const a = await call(server, request);
    t.is(a.status, status, name);
    t.deepEqual(Object.keys(a.body).sort(), ['code', 'message'], name);
    t.is(a.body.code, code, name);
    t.notRegex(a.text, /\n\s+at |\.ts:\d+/, `${name}: no stack trace`);
    const logged = lines.slice(before).filter((l) => l.event === 'certificate.refused');
    t.is(logged.length, 1, name);
    t.like(logged[0], { code, status }, name);
  }
  // The log says which identity and which names were refused.
  t.like(
    events(lines, 'certificate.refused').find((l) => l.code === 'WEFT_ERR_CSR_IDENTITY_MISMATCH'),
    {
      identity: spiffe,
      requested: ['URI:spiffe://cluster.local/ns/kube-system/sa/admin'],
    },
  );
  t.is(events(lines, 'certificate.issued').length, 0);
});

test('a verifier that fails unexpectedly gives 500 with a generic message; the detail is only logged', async (t) => {
  const { server, lines } = await start(t, {
    verifier: {
      verify: async () => {
        throw new Error('secret internal detail');
      },
    },
  });
  const a = await call(server, { body: json({ csr: makeCsr(), token: 'x' }) });
  t.is(a.status, 500);
  t.deepEqual(a.body, { code: 'WEFT_ERR_INTERNAL', message: 'internal error in the mesh CA' });
  t.notRegex(a.text, /secret internal detail/);
  t.truthy(lines.find((l) => l.code === 'WEFT_ERR_INTERNAL'));
});

test('per-identity rate limit: 429 with retry-after once the burst is spent, other identities unaffected', async (t) => {
  let now = Date.now();
  const { server, lines } = await start(t, { rateLimit: { burst: 2, perSecond: 0.5 }, now: () => now });
  const csr = makeCsr();
  const dbToken = tokens.mint({ namespace: 'shop', serviceAccount: 'db' });
  t.is((await call(server, { body: json({ csr, token: webToken }) })).status, 200);
  t.is((await call(server, { body: json({ csr, token: webToken }) })).status, 200);
  const limited = await call(server, { body: json({ csr, token: webToken }) });
  t.is(limited.status, 429);
  t.is(limited.body.code, 'WEFT_ERR_RATE_LIMITED');
  t.is(limited.headers['retry-after'], '2');
  t.is((await call(server, { body: json({ csr, token: dbToken }) })).status, 200);
  now += 2000;
  t.is((await call(server, { body: json({ csr, token: webToken }) })).status, 200);
  t.is(events(lines, 'certificate.refused').filter((l) => l.code === 'WEFT_ERR_RATE_LIMITED').length, 1);
});

test('close() stops the listener', async (t) => {
  const { server } = await start(t);
  await server.close();
  await t.throwsAsync(call(server, { body: json({}) }), { message: /ECONNREFUSED/ });
});

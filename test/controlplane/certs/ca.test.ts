import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import forge from 'node-forge';
import { CA_CERT_FILE, CA_KEY_FILE, generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { CaSetupError } from '../../../controlplane/certs/errors.ts';
import { makeCsr, makeIntermediate, rsaKeys } from './support.ts';

const td = 'cluster.local';
const identity = { namespace: 'shop', serviceAccount: 'web' };
const spiffe = 'spiffe://cluster.local/ns/shop/sa/web';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-ca-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('first start generates a root into the directory (key 0600), a second start loads the same root', async (t) => {
  const dir = join(await tempDir(t), 'ca');
  const first = await MeshCA.loadOrCreate(dir, { trustDomain: td });
  t.is((await stat(join(dir, CA_KEY_FILE))).mode & 0o777, 0o600);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  t.is(await readFile(join(dir, CA_CERT_FILE), 'utf8'), first.certPem);

  const root = new X509Certificate(first.rootCAsPem);
  t.true(root.ca);
  t.true(root.checkIssued(root) && root.verify(root.publicKey), 'self-signed');

  const again = await MeshCA.loadOrCreate(dir, { trustDomain: td });
  t.is(again.rootCAsPem, first.rootCAsPem);
  // A leaf from the reloaded CA verifies against the root persisted by the first.
  const issued = again.issue({ csrPem: makeCsr({ altNames: [{ type: 6, value: spiffe }] }), identity });
  const leaf = new X509Certificate(issued.certPem);
  t.true(leaf.checkIssued(root) && leaf.verify(root.publicKey));
});

test('a stored key readable by others is refused; a directory with only one of the two files is refused', async (t) => {
  const dir = await tempDir(t);
  await MeshCA.loadOrCreate(dir, { trustDomain: td });
  await chmod(join(dir, CA_KEY_FILE), 0o644);
  const loose = await t.throwsAsync(MeshCA.loadOrCreate(dir, { trustDomain: td }), { instanceOf: CaSetupError });
  t.is(loose?.code, 'WEFT_ERR_CA_KEY_PERMISSIONS');
  await chmod(join(dir, CA_KEY_FILE), 0o600);
  await unlink(join(dir, CA_CERT_FILE));
  const incomplete = await t.throwsAsync(MeshCA.loadOrCreate(dir, { trustDomain: td }), { instanceOf: CaSetupError });
  t.is(incomplete?.code, 'WEFT_ERR_CA_STORE_INCOMPLETE');
  // Nothing was regenerated behind the operator's back.
  await t.throwsAsync(stat(join(dir, CA_CERT_FILE)));
});

test('supplied PEMs are validated: CA flag, matching key, validity, key type', (t) => {
  const root = generateRoot(td, Date.now());
  t.notThrows(() => MeshCA.fromPem(root, { trustDomain: td }));

  const other = generateRoot(td, Date.now());
  const mismatch = t.throws(() => MeshCA.fromPem({ certPem: root.certPem, keyPem: other.keyPem }, { trustDomain: td }));
  t.is((mismatch as CaSetupError).code, 'WEFT_ERR_CA_INVALID');
  t.regex(mismatch?.message ?? '', /does not match/);

  const longAgo = Date.now() - 11 * 365 * 86400_000;
  const expired = t.throws(() => MeshCA.fromPem(generateRoot(td, longAgo), { trustDomain: td }));
  t.regex(expired?.message ?? '', /expired/);

  // A leaf (CA:false) with its own key is not a CA.
  const ca = MeshCA.fromPem(root, { trustDomain: td });
  const keys = rsaKeys();
  const leaf = ca.issue({ csrPem: makeCsr({ keys }), identity });
  const notCa = t.throws(() =>
    MeshCA.fromPem(
      { certPem: leaf.certPem, keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
      { trustDomain: td },
    ),
  );
  t.regex(notCa?.message ?? '', /not a CA/);

  const garbage = t.throws(() => MeshCA.fromPem({ certPem: 'hello', keyPem: root.keyPem }, { trustDomain: td }));
  t.is((garbage as CaSetupError).code, 'WEFT_ERR_CA_INVALID');
  t.throws(() => MeshCA.fromPem(root, { trustDomain: 'Not A Domain/' }), { instanceOf: CaSetupError });
});

test('an intermediate CA needs its chain up to the root; leaves then carry leaf + intermediate, roots the root', (t) => {
  const root = generateRoot(td, Date.now());
  const intermediate = makeIntermediate(root);
  const missing = t.throws(() => MeshCA.fromPem(intermediate, { trustDomain: td }));
  t.regex(missing?.message ?? '', /chainPem/);
  const wrongChain = t.throws(() =>
    MeshCA.fromPem({ ...intermediate, chainPem: generateRoot(td, Date.now()).certPem }, { trustDomain: td }),
  );
  t.regex(wrongChain?.message ?? '', /did not issue/);

  const ca = MeshCA.fromPem({ ...intermediate, chainPem: root.certPem }, { trustDomain: td });
  t.is(ca.rootCAsPem, new X509Certificate(root.certPem).toString());
  const issued = ca.issue({ csrPem: makeCsr(), identity });
  const chain = issued.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  t.is(chain.length, 2);
  const [leaf, inter] = chain.map((c) => new X509Certificate(c));
  const rootCert = new X509Certificate(root.certPem);
  t.true(leaf.checkIssued(inter) && leaf.verify(inter.publicKey));
  t.true(inter.checkIssued(rootCert) && inter.verify(rootCert.publicKey));
});

test('leaf profile: CN and SPIFFE URI SAN from the identity only, CA:false critical, key and extended usages, serial, validity', (t) => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0, 500);
  const ca = MeshCA.fromPem(generateRoot(td, now - 1000), { trustDomain: td, now: () => now });
  const keys = rsaKeys();
  // A CSR without any identity: the leaf's identity still comes from the token's.
  const issued = ca.issue({ csrPem: makeCsr({ keys }), identity, lifetimeMs: 3600_000 });
  const leaf = new X509Certificate(issued.certPem);
  t.is(leaf.subject, 'CN=web.shop');
  t.is(leaf.subjectAltName, `URI:${spiffe}`);
  t.is(issued.spiffeId, spiffe);
  t.false(leaf.ca);
  t.deepEqual(leaf.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  t.true(leaf.checkPrivateKey(keys.privateKey));
  t.is(leaf.validFromDate.getTime(), Date.UTC(2030, 0, 1, 11, 59, 0));
  t.is(leaf.validToDate.getTime(), Date.UTC(2030, 0, 1, 13, 0, 0));
  t.is(issued.notAfter.getTime(), leaf.validToDate.getTime());
  t.is(leaf.serialNumber.toLowerCase(), issued.serialNumber);
  t.regex(issued.serialNumber, /^[0-9a-f]{32}$/, '128-bit serial');
  t.not(ca.issue({ csrPem: makeCsr({ keys }), identity }).serialNumber, issued.serialNumber);

  // Criticality is not exposed by X509Certificate; read the extensions' flags with forge.
  const parsed = forge.pki.certificateFromPem(issued.certPem);
  const ext = (name: string) => parsed.getExtension(name) as Record<string, unknown>;
  t.like(ext('basicConstraints'), { cA: false, critical: true });
  t.like(ext('keyUsage'), { digitalSignature: true, keyEncipherment: true, keyCertSign: false, critical: true });
  t.like(ext('extKeyUsage'), { serverAuth: true, clientAuth: true });
  t.is((ext('subjectAltName').altNames as unknown[]).length, 1);
  t.truthy(ext('authorityKeyIdentifier'));

  // Default lifetime is 24 h; the chain is leaf + root here (the root issued it).
  const day = ca.issue({ csrPem: makeCsr({ keys }), identity });
  t.is(day.notAfter.getTime(), Date.UTC(2030, 0, 2, 12, 0, 0));
  t.is(day.certChainPem, day.certPem + ca.certPem);
});

test('issue() refuses invalid identities and lifetimes as caller bugs', (t) => {
  const ca = MeshCA.fromPem(generateRoot(td, Date.now()), { trustDomain: td });
  const csrPem = makeCsr();
  for (const bad of [
    { namespace: 'shop/../kube-system', serviceAccount: 'web' },
    { namespace: 'shop', serviceAccount: 'web/sa/admin' },
    { namespace: '', serviceAccount: 'web' },
    { namespace: 'Shop', serviceAccount: 'web' },
  ]) {
    const err = t.throws(() => ca.issue({ csrPem, identity: bad }), { instanceOf: CaSetupError });
    t.is(err?.code, 'WEFT_ERR_CA_ISSUE_INVALID');
  }
  t.throws(() => ca.issue({ csrPem, identity, lifetimeMs: 30 * 86400_000 }), { instanceOf: CaSetupError });
  t.throws(() => ca.issue({ csrPem, identity, lifetimeMs: 0 }), { instanceOf: CaSetupError });
});

test('a leaf never outlives its CA', (t) => {
  const now = Date.now();
  const root = generateRoot(td, now);
  const caNotAfter = new X509Certificate(root.certPem).validToDate.getTime();
  const late = caNotAfter - 3600_000;
  const ca = MeshCA.fromPem(root, { trustDomain: td, now: () => late });
  const issued = ca.issue({ csrPem: makeCsr(), identity });
  t.is(issued.notAfter.getTime(), caNotAfter);
});

// The proxy's own checks of what the CA returned, and the SPIFFE ID parsing of peer certificates.
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { generateRoot, MeshCA } from '../../../controlplane/certs/ca.ts';
import { buildCsr } from '../../../sidecar/identity/csr.ts';
import { IdentityError } from '../../../sidecar/identity/errors.ts';
import { checkPeerSpiffeId, parseSubjectAltName, spiffeIdOf } from '../../../sidecar/identity/peer.ts';
import { verifyWorkloadCertificate } from '../../../sidecar/identity/verify.ts';
import { makeIntermediate, rsaKeys } from '../../controlplane/certs/support.ts';

const td = 'cluster.local';
const spiffeId = 'spiffe://cluster.local/ns/shop/sa/web';
const identity = { namespace: 'shop', serviceAccount: 'web' };
const root = generateRoot(td, Date.now());
const ca = MeshCA.fromPem(root, { trustDomain: td });
const keys = rsaKeys();
const csrPem = buildCsr(keys, { spiffeId, commonName: 'web.shop' });
const issued = ca.issue({ csrPem, identity });

const base = {
  certChainPem: issued.certChainPem,
  rootCAsPem: issued.rootCAsPem,
  trustAnchorsPem: root.certPem,
  privateKey: keys.privateKey,
  spiffeId,
  now: Date.now(),
};

function fails(t: import('ava').ExecutionContext, input: typeof base, code: string, message?: RegExp) {
  const err = t.throws(() => verifyWorkloadCertificate(input), { instanceOf: IdentityError });
  t.is(err?.code as string | undefined, code, err?.message);
  if (message) t.regex(err?.message ?? '', message);
}

test('the CSR the proxy builds carries its SPIFFE ID and CN, and the CA accepts it', (t) => {
  const leaf = new X509Certificate(issued.certPem);
  t.is(leaf.subjectAltName, `URI:${spiffeId}`);
  t.like(verifyWorkloadCertificate(base), { notAfter: issued.notAfter });
});

test('refuses a leaf for another identity, for another key, or expired', (t) => {
  fails(t, { ...base, spiffeId: 'spiffe://cluster.local/ns/shop/sa/db' }, 'WEFT_ERR_CERT_IDENTITY_MISMATCH');
  fails(t, { ...base, privateKey: rsaKeys(2048, true).privateKey }, 'WEFT_ERR_CERT_IDENTITY_MISMATCH', /key/);
  fails(t, { ...base, now: issued.notAfter.getTime() }, 'WEFT_ERR_CERT_CHAIN_INVALID', /expired/);
});

test('refuses a chain that does not lead to the configured root, or whose root the CA bundle lacks', (t) => {
  const other = generateRoot(td, Date.now());
  fails(t, { ...base, trustAnchorsPem: other.certPem }, 'WEFT_ERR_CERT_CHAIN_INVALID', /trusted root/);
  fails(t, { ...base, rootCAsPem: other.certPem }, 'WEFT_ERR_CERT_CHAIN_INVALID', /bundle/);
  // A leaf from another CA, presented with our CA's certificate appended.
  const foreign = MeshCA.fromPem(other, { trustDomain: td }).issue({ csrPem, identity });
  fails(t, { ...base, certChainPem: foreign.certPem + ca.certPem }, 'WEFT_ERR_CERT_CHAIN_INVALID');
  fails(t, { ...base, certChainPem: 'nothing' }, 'WEFT_ERR_CERT_CHAIN_INVALID');
  // A CA certificate is never a workload leaf.
  fails(t, { ...base, certChainPem: root.certPem }, 'WEFT_ERR_CERT_CHAIN_INVALID', /CA/);
});

test('walks through an intermediate to the root', (t) => {
  const intermediate = makeIntermediate(root);
  const sub = MeshCA.fromPem({ ...intermediate, chainPem: root.certPem }, { trustDomain: td });
  const viaSub = sub.issue({ csrPem, identity });
  t.notThrows(() =>
    verifyWorkloadCertificate({ ...base, certChainPem: viaSub.certChainPem, rootCAsPem: viaSub.rootCAsPem }),
  );
  // Without the intermediate the leaf does not chain.
  fails(t, { ...base, certChainPem: viaSub.certPem, rootCAsPem: viaSub.rootCAsPem }, 'WEFT_ERR_CERT_CHAIN_INVALID');
});

test('subjectaltname parsing: plain, several, and JSON-quoted values cannot smuggle a second name', (t) => {
  t.deepEqual(parseSubjectAltName(`URI:${spiffeId}`), [{ type: 'URI', value: spiffeId }]);
  t.deepEqual(parseSubjectAltName('DNS:a.example, IP Address:127.0.0.1, URI:spiffe://td/ns/a/sa/b'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'IP Address', value: '127.0.0.1' },
    { type: 'URI', value: 'spiffe://td/ns/a/sa/b' },
  ]);
  t.deepEqual(parseSubjectAltName('DNS:"evil, URI:spiffe://td/ns/kube-system/sa/admin"'), [
    { type: 'DNS', value: 'evil, URI:spiffe://td/ns/kube-system/sa/admin' },
  ]);
  t.is(spiffeIdOf({ subjectaltname: 'DNS:"evil, URI:spiffe://td/ns/kube-system/sa/admin"' }), undefined);
  // Exactly what Node 24 prints for a DNS name containing a comma (escaped as \u002c inside quotes).
  const printed = 'DNS:"evil\\u002c URI:spiffe://td/ns/a/sa/b", URI:spiffe://td/x';
  t.deepEqual(parseSubjectAltName(printed), [
    { type: 'DNS', value: 'evil, URI:spiffe://td/ns/a/sa/b' },
    { type: 'URI', value: 'spiffe://td/x' },
  ]);
  t.is(spiffeIdOf({ subjectaltname: printed }), 'spiffe://td/x');
  t.is(
    spiffeIdOf({ subjectaltname: 'URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/c/sa/d' }),
    undefined,
    'two IDs: none',
  );
  t.is(spiffeIdOf(new X509Certificate(issued.certPem)), spiffeId);
  t.is(checkPeerSpiffeId({ subjectaltname: `URI:${spiffeId}` }, new Set([spiffeId])), undefined);
  t.is(
    checkPeerSpiffeId({ subjectaltname: `URI:${spiffeId}` }, (id) => id.endsWith('/sa/db'))?.code,
    'WEFT_ERR_PEER_IDENTITY',
  );
  t.is(checkPeerSpiffeId(undefined, spiffeId)?.code, 'WEFT_ERR_PEER_IDENTITY');
});

// The CSR policy, case by case: every abusive CSR is refused with its own code, and the message says which part.
import test from 'ava';
import forge from 'node-forge';
import { checkCsr } from '../../../controlplane/certs/csr.ts';
import { CsrError } from '../../../controlplane/certs/errors.ts';
import { CA_MAX_CSR_DER_BYTES } from '../../../sidecar/config/ca-api.ts';
import { makeCsr, makeEcCsr, pemToDer, rsaKeys, tlv, toPem } from './support.ts';

const spiffeId = 'spiffe://cluster.local/ns/shop/sa/web';
const expected = { spiffeId, commonName: 'web.shop' };
const own = { type: 6, value: spiffeId };

function refused(t: import('ava').ExecutionContext, csrPem: string, code: string, message?: RegExp): void {
  const err = t.throws(() => checkCsr(csrPem, expected), { instanceOf: CsrError });
  t.is(err?.code as string | undefined, code, err?.message);
  if (message) t.regex(err?.message ?? '', message);
}

test('accepts a CSR with no identity, with the own SPIFFE ID, or with the own CN; keeps node and forge keys equal', (t) => {
  const keys = rsaKeys();
  for (const spec of [{}, { altNames: [own] }, { cn: 'web.shop', altNames: [own] }, { cn: spiffeId }]) {
    const checked = checkCsr(makeCsr({ keys, ...spec }), expected);
    t.is(checked.keyBits, 2048);
    t.true(checked.publicKey.equals(keys.publicKey));
  }
});

test('harmless requested extensions are accepted but reported as not copied', (t) => {
  const checked = checkCsr(
    makeCsr({
      altNames: [own],
      extensions: [
        { name: 'keyUsage', digitalSignature: true },
        { name: 'extKeyUsage', codeSigning: true },
      ],
    }),
    expected,
  );
  t.deepEqual(checked.ignoredExtensions, ['keyUsage', 'extKeyUsage']);
});

test('foreign SPIFFE ID in the SAN: WEFT_ERR_CSR_IDENTITY_MISMATCH naming it', (t) => {
  refused(
    t,
    makeCsr({ altNames: [{ type: 6, value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }] }),
    'WEFT_ERR_CSR_IDENTITY_MISMATCH',
    /ns\/kube-system\/sa\/admin.*token proves spiffe:\/\/cluster.local\/ns\/shop\/sa\/web/,
  );
  // Same identity in another trust domain is another identity.
  refused(
    t,
    makeCsr({ altNames: [{ type: 6, value: 'spiffe://evil.example/ns/shop/sa/web' }] }),
    'WEFT_ERR_CSR_IDENTITY_MISMATCH',
  );
  // Alongside the own one, too.
  refused(
    t,
    makeCsr({ altNames: [own, { type: 6, value: 'SPIFFE://cluster.local/ns/x/sa/y' }] }),
    'WEFT_ERR_CSR_IDENTITY_MISMATCH',
  );
});

test('a subject CN naming another workload: WEFT_ERR_CSR_IDENTITY_MISMATCH', (t) => {
  refused(
    t,
    makeCsr({ cn: 'admin.kube-system', altNames: [own] }),
    'WEFT_ERR_CSR_IDENTITY_MISMATCH',
    /CN=admin\.kube-system/,
  );
});

test('extra SANs (DNS, IP, email, other URIs, repeats) are refused, not dropped: WEFT_ERR_CSR_SAN_NOT_ALLOWED', (t) => {
  refused(
    t,
    makeCsr({ altNames: [own, { type: 2, value: 'api.bank.example' }] }),
    'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
    /DNS:api\.bank\.example/,
  );
  refused(
    t,
    makeCsr({ altNames: [own, { type: 7, ip: '10.0.0.1' }] }),
    'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
    /IP:10\.0\.0\.1/,
  );
  refused(
    t,
    makeCsr({ altNames: [{ type: 1, value: 'root@example.com' }] }),
    'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
    /email:root@example\.com/,
  );
  refused(
    t,
    makeCsr({ altNames: [{ type: 6, value: 'https://example.com/' }] }),
    'WEFT_ERR_CSR_SAN_NOT_ALLOWED',
    /URI:https/,
  );
  refused(t, makeCsr({ altNames: [own, own] }), 'WEFT_ERR_CSR_SAN_NOT_ALLOWED', /repeated/);
  const err = t.throws(() =>
    checkCsr(makeCsr({ altNames: [own, { type: 2, value: 'a.example' }, { type: 2, value: 'b.example' }] }), expected),
  ) as CsrError;
  t.deepEqual(err.details.refusedSans, ['DNS:a.example', 'DNS:b.example']);
});

test('CA powers are refused: WEFT_ERR_CSR_CA_REQUESTED', (t) => {
  refused(
    t,
    makeCsr({ altNames: [own], extensions: [{ name: 'basicConstraints', cA: true, critical: true }] }),
    'WEFT_ERR_CSR_CA_REQUESTED',
    /CA:true/,
  );
  refused(
    t,
    makeCsr({ extensions: [{ name: 'keyUsage', keyCertSign: true }] }),
    'WEFT_ERR_CSR_CA_REQUESTED',
    /keyCertSign/,
  );
  // CA:false is what a leaf is anyway.
  t.notThrows(() => checkCsr(makeCsr({ extensions: [{ name: 'basicConstraints', cA: false }] }), expected));
});

test('RSA-1024 is too weak: WEFT_ERR_CSR_KEY_WEAK', (t) => {
  refused(t, makeCsr({ keys: rsaKeys(1024), altNames: [own] }), 'WEFT_ERR_CSR_KEY_WEAK', /1024 bits/);
});

test('EC keys are refused as unsupported (forge builds RSA leaves only), weak curves as weak', (t) => {
  refused(t, makeEcCsr('P-256'), 'WEFT_ERR_CSR_KEY_UNSUPPORTED', /prime256v1/);
  refused(t, makeEcCsr('secp224r1'), 'WEFT_ERR_CSR_KEY_WEAK', /secp224r1/);
});

test('a signature by another key, or a tampered CSR, does not verify: WEFT_ERR_CSR_SIGNATURE', (t) => {
  refused(t, makeCsr({ altNames: [own], signWith: rsaKeys(2048, true) }), 'WEFT_ERR_CSR_SIGNATURE');

  // Change one letter of the CN after signing ("web.shop" → "wab.shop"): same length, still parseable DER.
  const der = pemToDer(makeCsr({ cn: 'web.shop', altNames: [own] }));
  const at = der.indexOf(Buffer.from('web.shop'));
  t.true(at > 0);
  der[at + 1] = 'a'.charCodeAt(0);
  refused(t, toPem('CERTIFICATE REQUEST', der), 'WEFT_ERR_CSR_SIGNATURE');

  // Swap in another public key after signing.
  const original = makeCsr({ altNames: [own] });
  const csr = forge.pki.certificationRequestFromPem(original);
  csr.publicKey = forge.pki.publicKeyFromPem(
    rsaKeys(2048, true).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
  csr.certificationRequestInfo = null;
  refused(t, forge.pki.certificationRequestToPem(csr), 'WEFT_ERR_CSR_SIGNATURE');
});

test('SHA-1 signatures are refused: WEFT_ERR_CSR_SIGNATURE_ALGORITHM', (t) => {
  refused(t, makeCsr({ altNames: [own], md: 'sha1' }), 'WEFT_ERR_CSR_SIGNATURE_ALGORITHM', /sha1WithRSAEncryption/);
});

test('a CSR over 16 KiB of DER is refused before parsing: WEFT_ERR_CSR_TOO_LARGE', (t) => {
  // A valid CSR carrying a 17 KiB private extension.
  const big = {
    id: '1.3.6.1.4.1.55555.1',
    value: forge.asn1.toDer(forge.asn1.create(0, 4, false, 'x'.repeat(17 * 1024))).getBytes(),
  };
  const pem = makeCsr({ altNames: [own], extensions: [big] });
  t.true(pemToDer(pem).length > CA_MAX_CSR_DER_BYTES);
  refused(t, pem, 'WEFT_ERR_CSR_TOO_LARGE', /limit is 16384/);
});

test('garbage is WEFT_ERR_CSR_MALFORMED: not PEM, wrong label, two blocks, bad base64, truncated or trailing DER', (t) => {
  const good = makeCsr({ altNames: [own] });
  const der = pemToDer(good);
  refused(t, 'hello', 'WEFT_ERR_CSR_MALFORMED');
  refused(t, '', 'WEFT_ERR_CSR_MALFORMED');
  refused(t, good.replaceAll('CERTIFICATE REQUEST', 'CERTIFICATE'), 'WEFT_ERR_CSR_MALFORMED');
  refused(t, good + good, 'WEFT_ERR_CSR_MALFORMED');
  refused(t, good.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!'), 'WEFT_ERR_CSR_MALFORMED');
  refused(t, toPem('CERTIFICATE REQUEST', der.subarray(0, der.length - 10)), 'WEFT_ERR_CSR_MALFORMED');
  refused(t, toPem('CERTIFICATE REQUEST', Buffer.concat([der, Buffer.from([0, 0])])), 'WEFT_ERR_CSR_MALFORMED');
  refused(t, toPem('CERTIFICATE REQUEST', tlv(0x30, tlv(0x02, Buffer.from([1])))), 'WEFT_ERR_CSR_MALFORMED');
  refused(
    t,
    toPem('CERTIFICATE REQUEST', Buffer.from('random bytes that are not DER at all')),
    'WEFT_ERR_CSR_MALFORMED',
  );
});

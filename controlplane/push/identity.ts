// Who may receive which config. A proxy is identified by the SPIFFE ID of its (chain-verified) client certificate;
// that identity must own the proxy id it says hello with:
//   sidecar:<ns>/<pod>    → spiffe://<td>/ns/<ns>/sa/<the pod's serviceAccountName, default "default">,
//                           the pod looked up in the control plane's current snapshot;
//   edge:<ns>/<gateway>   → spiffe://<td>/ns/<ns>/sa/<gateway>-weft, the service account weft runs a Gateway's
//                           proxy under (the name of the Service and Deployment it provisions for the Gateway;
//                           shortened the same way for Gateway names that are not DNS-1035 labels).
import type { X509Certificate } from 'node:crypto';
import { PROXY_ID, type PushErrorCode } from '../../sidecar/config/push-api.ts';
import { gatewayServiceName } from '../resources/materialize.ts';
import type { ResourceSnapshot } from '../resources/snapshot.ts';

export type AuthorizationResult =
  | { ok: true; identity: string }
  | {
      ok: false;
      code: Extract<PushErrorCode, 'WEFT_ERR_PUSH_IDENTITY' | 'WEFT_ERR_PUSH_UNKNOWN_PROXY'>;
      message: string;
    };

/** Decides whether the certificate identity `spiffeId` may receive the config of `proxyId`. */
export type ProxyAuthorizer = (proxyId: string, spiffeId: string) => AuthorizationResult;

/** The service account a Gateway's edge proxy runs as (and so its identity): `<gateway>-weft`. */
export function gatewayProxyServiceAccount(gatewayName: string): string {
  return gatewayServiceName(gatewayName);
}

const spiffe = (trustDomain: string, ns: string, sa: string) => `spiffe://${trustDomain}/ns/${ns}/sa/${sa}`;

/** The SPIFFE ID that owns `proxyId` in `snapshot`, or why there is none. */
export function expectedProxyIdentity(
  snapshot: ResourceSnapshot | undefined,
  trustDomain: string,
  proxyId: string,
): { ok: true; identity: string } | { ok: false; message: string } {
  if (!PROXY_ID.test(proxyId)) return { ok: false, message: `malformed proxy id ${JSON.stringify(proxyId)}` };
  const [, mode, rest] = /^([a-z]+):(.*)$/.exec(proxyId)!;
  const [namespace, name] = rest.split('/');
  if (!snapshot) return { ok: false, message: 'the control plane has not loaded its resources yet' };
  if (mode === 'sidecar') {
    const pod = snapshot.get('Pod', `${namespace}/${name}`);
    if (!pod) return { ok: false, message: `no pod ${namespace}/${name}` };
    return { ok: true, identity: spiffe(trustDomain, namespace, pod.spec.serviceAccountName ?? 'default') };
  }
  if (!snapshot.get('Gateway', `${namespace}/${name}`))
    return { ok: false, message: `no Gateway ${namespace}/${name}` };
  return { ok: true, identity: spiffe(trustDomain, namespace, gatewayProxyServiceAccount(name)) };
}

/** An authorizer over the control plane's latest snapshot (`snapshot()` is called per hello). */
export function snapshotAuthorizer(o: {
  snapshot: () => ResourceSnapshot | undefined;
  trustDomain: string;
}): ProxyAuthorizer {
  return (proxyId, spiffeId) => {
    const expected = expectedProxyIdentity(o.snapshot(), o.trustDomain, proxyId);
    if (!expected.ok) return { ok: false, code: 'WEFT_ERR_PUSH_UNKNOWN_PROXY', message: expected.message };
    if (expected.identity !== spiffeId) {
      return {
        ok: false,
        code: 'WEFT_ERR_PUSH_IDENTITY',
        message: `${spiffeId} may not receive the config of ${proxyId} (it belongs to ${expected.identity})`,
      };
    }
    return { ok: true, identity: spiffeId };
  };
}

/**
 * The certificate's SPIFFE ID: its one `spiffe://` URI SAN (undefined with none or several). Reads Node's
 * `subjectAltName` text, where a value with special characters is a JSON string (so a crafted
 * `DNS:"a, URI:spiffe://x"` stays one DNS name).
 */
export function certificateSpiffeId(cert: X509Certificate | undefined): string | undefined {
  const text = cert?.subjectAltName;
  if (!text) return undefined;
  const ids: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) return undefined;
    const type = text.slice(i, colon);
    let value: string;
    i = colon + 1;
    if (text[i] === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(i, end + 1)) as string;
      } catch {
        return undefined;
      }
      i = end + 1;
    } else {
      const end = text.indexOf(', ', i);
      value = text.slice(i, end === -1 ? text.length : end);
      i = end === -1 ? text.length : end;
    }
    if (type === 'URI' && value.startsWith('spiffe://')) ids.push(value);
    if (text.startsWith(', ', i)) i += 2;
    else if (i < text.length) return undefined;
  }
  return ids.length === 1 ? ids[0] : undefined;
}

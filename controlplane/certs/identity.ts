// The workload identity a token proves and a certificate carries, and the name rules it must satisfy before the
// CA puts it into a SPIFFE ID (the ID is a URI: a name with `/`, `..` or `%` in it would forge another path).
import { workloadCommonName, workloadSpiffeId } from '../../sidecar/config/ca-api.ts';

/** Who a workload is: what a TokenVerifier returns and what the CA certifies. */
export interface WorkloadIdentity {
  namespace: string;
  serviceAccount: string;
  /** The pod the token was minted for, when the token says so (logged, not certified). */
  pod?: string;
}

// Kubernetes names: a namespace is an RFC 1123 label, a ServiceAccount (and a pod) an RFC 1123 subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// SPIFFE trust domain: lowercase letters, digits, `.`, `-`, `_` (SPIFFE ID spec §2.1).
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export const isNamespaceName = (s: string): boolean => DNS_LABEL.test(s);
export const isServiceAccountName = (s: string): boolean => s.length <= 253 && DNS_SUBDOMAIN.test(s);
export const isPodName = isServiceAccountName;
export const isTrustDomain = (s: string): boolean => TRUST_DOMAIN.test(s);

/** Why `identity` cannot be certified, or undefined when it can. */
export function identityProblem(identity: { namespace: unknown; serviceAccount: unknown }): string | undefined {
  const { namespace, serviceAccount } = identity;
  if (typeof namespace !== 'string' || !isNamespaceName(namespace)) {
    return `namespace ${JSON.stringify(namespace)} is not a Kubernetes namespace name (RFC 1123 label)`;
  }
  if (typeof serviceAccount !== 'string' || !isServiceAccountName(serviceAccount)) {
    return `service account ${JSON.stringify(serviceAccount)} is not a Kubernetes name (RFC 1123 subdomain)`;
  }
  return undefined;
}

export const spiffeIdOf = (trustDomain: string, id: WorkloadIdentity): string =>
  workloadSpiffeId(trustDomain, id.namespace, id.serviceAccount);
export const commonNameOf = (id: WorkloadIdentity): string => workloadCommonName(id.namespace, id.serviceAccount);
/** `namespace/serviceAccount`: the key of rate limits and log fields. */
export const identityKey = (id: WorkloadIdentity): string => `${id.namespace}/${id.serviceAccount}`;

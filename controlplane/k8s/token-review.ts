// The mesh CA's TokenVerifier in a cluster: a TokenReview (authentication.k8s.io/v1) of the proxy's projected
// ServiceAccount token with audiences ["weft"], then a GET of the pod the token is bound to. A token is accepted only
// when the API server says it is authenticated, for audience `weft`, for a ServiceAccount
// (`system:serviceaccount:<ns>:<sa>`), and bound to a pod that still exists with the uid the token names — so a token
// copied out of a deleted pod, or minted for another audience, never yields a certificate.
//
// Every refusal is a 401 TokenError with a reason the proxy can log. When the API server cannot answer (unreachable,
// 5xx, 429, or weft's own credentials refused) the answer is WEFT_ERR_UNAVAILABLE (503, retryable): the CA cannot
// tell, and never guesses "yes".
import { CA_MAX_TOKEN_CHARS, CA_TOKEN_AUDIENCE } from '../../sidecar/config/ca-api.ts';
import { TokenError } from '../certs/errors.ts';
import { identityProblem, isPodName, type WorkloadIdentity } from '../certs/identity.ts';
import type { TokenVerifier } from '../certs/tokens.ts';
import { type KubeClient, type KubeObject, TOKEN_REVIEWS } from './client.ts';
import { KubeApiError, isNotFound } from './errors.ts';
import { KIND_INFO } from './kinds.ts';

/** `user.extra` keys the API server sets for a token bound to a pod. */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

export interface TokenReviewVerifierOptions {
  client: KubeClient;
  /** The audience the token must be for. Default `weft`. */
  audience?: string;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[] | string> };
  audiences?: string[];
  error?: string;
}

const describeApiError = (e: unknown): string =>
  e instanceof KubeApiError ? `${e.statusCode} ${e.reason}` : e instanceof Error ? e.message : String(e);

/** The one value of an `extra` entry (the API sends lists). */
function extraValue(extra: Record<string, string[] | string> | undefined, key: string): string | undefined {
  const v = extra?.[key];
  const one = Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
  return typeof one === 'string' && one !== '' ? one : undefined;
}

export class TokenReviewVerifier implements TokenVerifier {
  readonly #client: KubeClient;
  readonly #audience: string;

  constructor(options: TokenReviewVerifierOptions) {
    this.#client = options.client;
    this.#audience = options.audience ?? CA_TOKEN_AUDIENCE;
  }

  async verify(token: string): Promise<WorkloadIdentity> {
    if (typeof token !== 'string' || token.length === 0 || token.length > CA_MAX_TOKEN_CHARS)
      throw new TokenError('WEFT_ERR_TOKEN_MALFORMED', 'token is empty or too long');
    const status = await this.#review(token);
    if (status.authenticated !== true) {
      throw new TokenError(
        'WEFT_ERR_TOKEN_REJECTED',
        `the Kubernetes API server did not authenticate the token${status.error ? `: ${status.error}` : ''}`,
      );
    }
    // An audience-aware API server answers with the audiences it checked; one that is not must not be trusted
    // with a token meant for someone else.
    if (!Array.isArray(status.audiences) || !status.audiences.includes(this.#audience)) {
      throw new TokenError('WEFT_ERR_TOKEN_AUDIENCE', `token audience is not "${this.#audience}"`, {
        audiences: status.audiences ?? null,
      });
    }
    const username = status.user?.username ?? '';
    const m = SERVICE_ACCOUNT_USER.exec(username);
    if (!m)
      throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', 'token is not a ServiceAccount token', { username: username });
    const identity = { namespace: m[1], serviceAccount: m[2] };
    const problem = identityProblem(identity);
    if (problem) throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', `token user: ${problem}`);
    const pod = extraValue(status.user?.extra, POD_NAME_EXTRA);
    const uid = extraValue(status.user?.extra, POD_UID_EXTRA);
    if (pod === undefined || uid === undefined) {
      throw new TokenError(
        'WEFT_ERR_TOKEN_REJECTED',
        'token is not bound to a pod (use the projected ServiceAccount token the injector mounts)',
        { ...identity },
      );
    }
    if (!isPodName(pod))
      throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', 'token names a pod that is not a Kubernetes name');
    await this.#checkPod(identity, pod, uid);
    return { ...identity, pod };
  }

  async #review(token: string): Promise<TokenReviewStatus> {
    let review: { status?: TokenReviewStatus } | undefined;
    try {
      review = await this.#client.create<{ status?: TokenReviewStatus }>(TOKEN_REVIEWS, 'v1', undefined, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [this.#audience] },
      });
    } catch (err) {
      throw new TokenError('WEFT_ERR_UNAVAILABLE', 'cannot review the token: the Kubernetes API did not answer', {
        apiError: describeApiError(err),
      });
    }
    if (!review || typeof review !== 'object' || !review.status || typeof review.status !== 'object')
      throw new TokenError('WEFT_ERR_UNAVAILABLE', 'cannot review the token: the TokenReview came back without status');
    return review.status;
  }

  /** The pod must still exist, with the uid the token was minted for (a name can be reused by a new pod). */
  async #checkPod(identity: { namespace: string; serviceAccount: string }, name: string, uid: string): Promise<void> {
    let pod: KubeObject & { spec?: { serviceAccountName?: string } };
    try {
      pod = await this.#client.get(KIND_INFO.get('Pod')!, 'v1', identity.namespace, name);
    } catch (err) {
      if (isNotFound(err)) {
        throw new TokenError(
          'WEFT_ERR_TOKEN_REJECTED',
          `the pod ${identity.namespace}/${name} of the token no longer exists`,
          {
            ...identity,
            pod: name,
          },
        );
      }
      throw new TokenError(
        'WEFT_ERR_UNAVAILABLE',
        'cannot check the pod of the token: the Kubernetes API did not answer',
        {
          apiError: describeApiError(err),
          pod: `${identity.namespace}/${name}`,
        },
      );
    }
    if (pod.metadata?.uid !== uid) {
      throw new TokenError(
        'WEFT_ERR_TOKEN_REJECTED',
        `the pod ${identity.namespace}/${name} of the token was replaced (uid differs)`,
        { ...identity, pod: name, tokenPodUid: uid, podUid: pod.metadata?.uid ?? null },
      );
    }
    const sa = pod.spec?.serviceAccountName || 'default';
    if (sa !== identity.serviceAccount) {
      throw new TokenError(
        'WEFT_ERR_TOKEN_REJECTED',
        `the pod ${identity.namespace}/${name} runs as ServiceAccount ${sa}, not ${identity.serviceAccount}`,
        { ...identity, pod: name },
      );
    }
  }
}

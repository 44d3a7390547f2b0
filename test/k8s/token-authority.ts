// What the API server's ServiceAccount token authenticator does, for the test API server's TokenReview hook: it
// mints opaque tokens for a ServiceAccount (bound to a pod, as the kubelet's projected tokens are) with audiences,
// and answers reviews as a real server does — unauthenticated for unknown tokens and for audiences that do not
// intersect the review's, else the user `system:serviceaccount:<ns>:<sa>` with the pod in `extra` and the
// intersected audiences. It does not check that the pod still exists: that is the verifier's job under test.
import { randomBytes } from 'node:crypto';
import type { TokenReviewSpec, TokenReviewStatus } from './api-server.ts';

export interface MintedToken {
  namespace: string;
  serviceAccount: string;
  pod?: { name: string; uid: string };
  /** Default ["weft"]. */
  audiences?: string[];
}

export class TokenAuthority {
  readonly #tokens = new Map<string, MintedToken>();
  /** Reviews answered, in order (the spec each carried). */
  readonly reviews: TokenReviewSpec[] = [];

  mint(t: MintedToken): string {
    const token = `test.${randomBytes(24).toString('base64url')}`;
    this.#tokens.set(token, t);
    return token;
  }

  /** Assign to `TestApiServer.tokenReview`. */
  readonly review = (spec: TokenReviewSpec): TokenReviewStatus => {
    this.reviews.push(spec);
    const t = this.#tokens.get(spec.token);
    if (!t)
      return {
        authenticated: false,
        error: '[invalid bearer token, square/go-jose: error in cryptographic primitive]',
      };
    const own = t.audiences ?? ['weft'];
    const wanted = spec.audiences?.length ? spec.audiences : own;
    const audiences = own.filter((a) => wanted.includes(a));
    if (audiences.length === 0)
      return {
        authenticated: false,
        error: `[invalid bearer token, token audiences ${JSON.stringify(own)} is invalid for the target audiences ${JSON.stringify(wanted)}]`,
      };
    const extra: Record<string, string[]> = {};
    if (t.pod) {
      extra['authentication.kubernetes.io/pod-name'] = [t.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [t.pod.uid];
    }
    return {
      authenticated: true,
      user: {
        username: `system:serviceaccount:${t.namespace}:${t.serviceAccount}`,
        uid: 'd1b4f1a0-0000-4000-8000-000000000001',
        groups: ['system:serviceaccounts', `system:serviceaccounts:${t.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences,
    };
  };
}

// Workload tokens: how a proxy proves which ServiceAccount it runs as. The CA depends only on TokenVerifier; in a
// cluster that will be a Kubernetes TokenReview of the pod's projected ServiceAccount token (audience `weft`), in
// `weft local` it is BootstrapTokens: compact JWS-like tokens (HS256) that the control plane mints for each pod
// with a secret only it holds.
//
//   base64url({"alg":"HS256","typ":"JWT"}) . base64url({"ns","sa","pod"?,"aud":"weft","iat","exp"}) . base64url(mac)
//
// Verification order: shape, header (HS256 only — no `none`, no algorithm the token picks), MAC (constant time,
// before the payload is even parsed), audience, time (exp, iat/nbf, with leeway), then the names.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CA_MAX_TOKEN_CHARS, CA_TOKEN_AUDIENCE } from '../../sidecar/config/ca-api.ts';
import { CaSetupError, TokenError } from './errors.ts';
import { checkPrivateMode, exists, writeNew } from './files.ts';
import { identityProblem, isPodName, type WorkloadIdentity } from './identity.ts';

/** Proves a workload identity from a token. Throws TokenError (401, or WEFT_ERR_UNAVAILABLE when it cannot tell). */
export interface TokenVerifier {
  verify(token: string): Promise<WorkloadIdentity>;
}

export const BOOTSTRAP_TOKEN_KEY_FILE = 'bootstrap-token.key';
export const DEFAULT_BOOTSTRAP_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
/** Clock difference tolerated on exp and iat. */
export const DEFAULT_TOKEN_LEEWAY_MS = 30 * 1000;
const MIN_SECRET_BYTES = 32;
const HEADER = { alg: 'HS256', typ: 'JWT' } as const;
const SEGMENT = /^[A-Za-z0-9_-]+$/;

export interface BootstrapTokenClaims {
  ns: string;
  sa: string;
  pod?: string;
  aud: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
}

export interface MintOptions extends WorkloadIdentity {
  ttlMs?: number;
  /** Defaults to `weft`; only tests mint for another audience. */
  audience?: string;
}

export interface BootstrapTokensOptions {
  /** At least 32 random bytes. */
  secret: Buffer;
  now?: () => number;
  leewayMs?: number;
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');
const mac = (secret: Buffer, signingInput: string) => createHmac('sha256', secret).update(signingInput).digest();

/** A bootstrap token for one workload, signed with `secret`. */
export function mintBootstrapToken(secret: Buffer, options: MintOptions, now: number = Date.now()): string {
  if (secret.length < MIN_SECRET_BYTES)
    throw new CaSetupError('WEFT_ERR_CA_INVALID', 'bootstrap token secret too short');
  const problem = identityProblem(options);
  if (problem) throw new CaSetupError('WEFT_ERR_CA_ISSUE_INVALID', problem);
  if (options.pod !== undefined && !isPodName(options.pod)) {
    throw new CaSetupError('WEFT_ERR_CA_ISSUE_INVALID', `pod ${JSON.stringify(options.pod)} is not a Kubernetes name`);
  }
  const iat = Math.floor(now / 1000);
  const claims: BootstrapTokenClaims = {
    ns: options.namespace,
    sa: options.serviceAccount,
    ...(options.pod !== undefined ? { pod: options.pod } : {}),
    aud: options.audience ?? CA_TOKEN_AUDIENCE,
    iat,
    exp: iat + Math.ceil((options.ttlMs ?? DEFAULT_BOOTSTRAP_TOKEN_TTL_MS) / 1000),
  };
  const signingInput = `${b64url(JSON.stringify(HEADER))}.${b64url(JSON.stringify(claims))}`;
  return `${signingInput}.${mac(secret, signingInput).toString('base64url')}`;
}

function parseJsonSegment(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Mints and verifies `weft local` bootstrap tokens. */
export class BootstrapTokens implements TokenVerifier {
  readonly #secret: Buffer;
  readonly #now: () => number;
  readonly #leewayMs: number;

  constructor(options: BootstrapTokensOptions) {
    if (options.secret.length < MIN_SECRET_BYTES) {
      throw new CaSetupError(
        'WEFT_ERR_CA_INVALID',
        `bootstrap token secret must be at least ${MIN_SECRET_BYTES} bytes`,
      );
    }
    this.#secret = Buffer.from(options.secret);
    this.#now = options.now ?? Date.now;
    this.#leewayMs = options.leewayMs ?? DEFAULT_TOKEN_LEEWAY_MS;
  }

  /** The secret stored in `dir` (`bootstrap-token.key`, 0600), created on first start, so restarts keep tokens valid. */
  static async loadOrCreate(
    dir: string,
    options: Omit<BootstrapTokensOptions, 'secret'> = {},
  ): Promise<BootstrapTokens> {
    const path = join(dir, BOOTSTRAP_TOKEN_KEY_FILE);
    if (!(await exists(path))) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeNew(path, `${randomBytes(MIN_SECRET_BYTES).toString('base64')}\n`, 0o600).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
    }
    await checkPrivateMode(path);
    const secret = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    return new BootstrapTokens({ ...options, secret });
  }

  mint(options: MintOptions): string {
    return mintBootstrapToken(this.#secret, options, this.#now());
  }

  async verify(token: string): Promise<WorkloadIdentity> {
    return this.verifySync(token);
  }

  verifySync(token: string): WorkloadIdentity {
    if (typeof token !== 'string' || token.length === 0 || token.length > CA_MAX_TOKEN_CHARS) {
      throw new TokenError('WEFT_ERR_TOKEN_MALFORMED', 'token is empty or too long');
    }
    const segments = token.split('.');
    if (segments.length !== 3 || !segments.every((s) => SEGMENT.test(s))) {
      throw new TokenError('WEFT_ERR_TOKEN_MALFORMED', 'token is not three base64url segments');
    }
    const [headerB64, payloadB64, macB64] = segments;
    const header = parseJsonSegment(headerB64);
    if (!isObject(header) || header.alg !== HEADER.alg || (header.typ !== undefined && header.typ !== HEADER.typ)) {
      throw new TokenError('WEFT_ERR_TOKEN_MALFORMED', 'token header must be {"alg":"HS256","typ":"JWT"}');
    }
    const expected = mac(this.#secret, `${headerB64}.${payloadB64}`);
    const given = Buffer.from(macB64, 'base64url');
    // The MAC length is public (32 bytes); the comparison of its contents is constant-time.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new TokenError('WEFT_ERR_TOKEN_SIGNATURE', 'token signature does not verify');
    }
    const claims = parseJsonSegment(payloadB64);
    if (!isObject(claims)) throw new TokenError('WEFT_ERR_TOKEN_MALFORMED', 'token payload is not a JSON object');

    const aud = claims.aud;
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(CA_TOKEN_AUDIENCE)) {
      throw new TokenError('WEFT_ERR_TOKEN_AUDIENCE', `token audience is not "${CA_TOKEN_AUDIENCE}"`, { aud });
    }
    const now = this.#now();
    const { exp, iat, nbf } = claims;
    if (typeof exp !== 'number' || typeof iat !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) {
      throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', 'token lacks numeric exp and iat');
    }
    if (now >= exp * 1000 + this.#leewayMs) {
      throw new TokenError('WEFT_ERR_TOKEN_EXPIRED', `token expired at ${new Date(exp * 1000).toISOString()}`);
    }
    const notBefore = Math.max(iat, typeof nbf === 'number' ? nbf : 0) * 1000;
    if (notBefore > now + this.#leewayMs) {
      throw new TokenError(
        'WEFT_ERR_TOKEN_NOT_YET_VALID',
        `token not valid before ${new Date(notBefore).toISOString()}`,
      );
    }
    const identity = { namespace: claims.ns, serviceAccount: claims.sa };
    const problem = identityProblem(identity);
    if (problem) throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', `token claims: ${problem}`);
    const pod = claims.pod;
    if (pod !== undefined && (typeof pod !== 'string' || !isPodName(pod))) {
      throw new TokenError('WEFT_ERR_TOKEN_CLAIMS', 'token claim "pod" is not a Kubernetes name');
    }
    return {
      namespace: identity.namespace as string,
      serviceAccount: identity.serviceAccount as string,
      ...(pod !== undefined ? { pod } : {}),
    };
  }
}

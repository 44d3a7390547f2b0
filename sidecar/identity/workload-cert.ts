// The proxy's workload identity: a fresh RSA key per certificate (node:crypto), a CSR naming the SPIFFE ID the
// proxy expects (node-forge), a call to the mesh CA with the workload token, and checks of the answer
// (X509Certificate). It renews at two thirds of the lifetime, retries failures with jittered exponential backoff,
// and never lets a certificate lapse silently: at notAfter the credentials are dropped and `expired` is emitted,
// so the proxy answers mesh traffic with 503 instead of falling back to plaintext.
//
// Events: `change` (new credentials; swap the TLS secure context — open connections keep the old one, which stays
// valid until its own notAfter), `expired` (credentials dropped), `renewalFailed` (an attempt failed; the next is
// scheduled).
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promisify } from 'node:util';
import { workloadCommonName, workloadSpiffeId, CA_PERMANENT_ERRORS } from '../config/ca-api.ts';
import { requestCertificate } from './ca-client.ts';
import { buildCsr } from './csr.ts';
import { IdentityError } from './errors.ts';
import {
  type BackoffOptions,
  type Clock,
  DEFAULT_BACKOFF,
  ROTATE_FRACTION,
  retryDelay,
  rotationDelay,
  systemClock,
} from './rotation.ts';
import { verifyWorkloadCertificate } from './verify.ts';

const generateKeyPairAsync = promisify(generateKeyPair);
const RSA_BITS = 2048;

/** What the proxy's TLS needs, plus facts for logs, metrics and `/config_dump`. */
export interface WorkloadCredentials {
  /** Private key, PKCS#8 PEM. */
  key: string;
  /** Leaf then issuing CA(s), PEM. */
  certChain: string;
  /** Trust bundle for peers, PEM. */
  rootCAs: string;
  spiffeId: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

export interface WorkloadIdentityOptions {
  ca: {
    /** `https://host:port` (port 15012 by default in a cluster). */
    url: string;
    /** PEM roots that authenticate the CA and that issued certificates must chain to. */
    rootsPem: string;
    /** Name to verify the CA's certificate against instead of the URL's host (e.g. `weft-ca`). */
    serverName?: string;
    timeoutMs?: number;
  };
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  /** The workload token, or how to read it each time (a projected token file is refreshed by the kubelet). */
  token: string | (() => string | Promise<string>);
  clock?: Clock;
  /** [0, 1); injectable for tests. */
  random?: () => number;
  backoff?: BackoffOptions;
  rotateFraction?: number;
}

export interface RenewalFailure {
  /** Consecutive failures so far. */
  attempt: number;
  retryInMs: number;
}

type Events = {
  change: [WorkloadCredentials];
  expired: [IdentityError];
  renewalFailed: [IdentityError, RenewalFailure];
};

export class WorkloadIdentity extends EventEmitter<Events> {
  readonly spiffeId: string;
  readonly #o: WorkloadIdentityOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  #current: WorkloadCredentials | undefined;
  #started: Promise<WorkloadCredentials> | undefined;
  #settleStart: { resolve: (c: WorkloadCredentials) => void; reject: (e: Error) => void } | undefined;
  #renewTimer: unknown;
  #expiryTimer: unknown;
  #nextRenewalAt: number | undefined;
  #failures = 0;
  #renewing = false;
  #closed = false;
  #abort = new AbortController();

  constructor(options: WorkloadIdentityOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.spiffeId = workloadSpiffeId(options.trustDomain, options.namespace, options.serviceAccount);
  }

  /** Obtains the first certificate (retrying until it succeeds) and keeps renewing. Rejects only on close(). */
  start(): Promise<WorkloadCredentials> {
    if (this.#started) return this.#started;
    this.#started = new Promise<WorkloadCredentials>((resolve, reject) => {
      this.#settleStart = { resolve, reject };
    });
    void this.#renew();
    return this.#started;
  }

  /** The valid credentials, or undefined (none yet, or expired): then mesh traffic must fail, not go plaintext. */
  current(): WorkloadCredentials | undefined {
    this.#checkExpiry();
    return this.#current;
  }

  /** True while a renewal attempt is under way. */
  get renewing(): boolean {
    return this.#renewing;
  }

  /** When the next renewal (or retry) is due, by the identity's clock; undefined while one runs or after close. */
  get nextRenewalAt(): number | undefined {
    return this.#nextRenewalAt;
  }

  /** Renews now (e.g. after the trust bundle changed), unless an attempt is already running. */
  renewNow(): void {
    if (this.#closed || this.#renewing) return;
    void this.#renew();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#renewTimer);
    this.#clock.clearTimeout(this.#expiryTimer);
    this.#nextRenewalAt = undefined;
    this.#abort.abort();
    this.#settleStart?.reject(new Error('workload identity closed before it obtained a certificate'));
    this.#settleStart = undefined;
  }

  async #token(): Promise<string> {
    try {
      const t = this.#o.token;
      return typeof t === 'string' ? t : await t();
    } catch (err) {
      throw new IdentityError(
        'WEFT_ERR_TOKEN_UNAVAILABLE',
        `reading the workload token failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  async #obtain(): Promise<WorkloadCredentials> {
    const keys = (await generateKeyPairAsync('rsa', { modulusLength: RSA_BITS })) as {
      privateKey: KeyObject;
      publicKey: KeyObject;
    };
    const csr = buildCsr(keys, {
      spiffeId: this.spiffeId,
      commonName: workloadCommonName(this.#o.namespace, this.#o.serviceAccount),
    });
    const token = await this.#token();
    const answer = await requestCertificate(
      {
        url: this.#o.ca.url,
        trustedRootsPem: this.#o.ca.rootsPem,
        serverName: this.#o.ca.serverName,
        timeoutMs: this.#o.ca.timeoutMs,
        signal: this.#abort.signal,
      },
      { csr, token },
    );
    const verified = verifyWorkloadCertificate({
      certChainPem: answer.certChain,
      rootCAsPem: answer.rootCAs,
      trustAnchorsPem: this.#o.ca.rootsPem,
      privateKey: keys.privateKey,
      spiffeId: this.spiffeId,
      now: this.#clock.now(),
    });
    return {
      key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      certChain: answer.certChain,
      rootCAs: answer.rootCAs,
      spiffeId: this.spiffeId,
      serialNumber: verified.serialNumber,
      notBefore: verified.notBefore,
      notAfter: verified.notAfter,
    };
  }

  async #renew(): Promise<void> {
    if (this.#closed || this.#renewing) return;
    this.#renewing = true;
    this.#nextRenewalAt = undefined;
    this.#clock.clearTimeout(this.#renewTimer);
    let creds: WorkloadCredentials;
    try {
      creds = await this.#obtain();
    } catch (err) {
      this.#renewing = false;
      if (!this.#closed) this.#failed(err);
      return;
    }
    this.#renewing = false;
    if (this.#closed) return;
    this.#failures = 0;
    this.#current = creds;
    const receivedAt = this.#clock.now();
    const delay = rotationDelay({
      receivedAt,
      notBefore: creds.notBefore.getTime(),
      notAfter: creds.notAfter.getTime(),
      fraction: this.#o.rotateFraction ?? ROTATE_FRACTION,
    });
    this.#at(receivedAt + delay, 'renew');
    this.#at(creds.notAfter.getTime(), 'expiry');
    // Listeners run outside the attempt: a throwing listener is not a failed renewal.
    this.#settleStart?.resolve(creds);
    this.#settleStart = undefined;
    this.emit('change', creds);
  }

  #failed(err: unknown): void {
    this.#failures++;
    const error =
      err instanceof IdentityError
        ? err
        : new IdentityError('WEFT_ERR_CA_UNREACHABLE', `certificate renewal failed: ${(err as Error).message}`, {
            cause: err,
          });
    this.#checkExpiry();
    const backoff = this.#o.backoff ?? DEFAULT_BACKOFF;
    // A refusal that retrying cannot change (wrong identity, bad key…) goes straight to the slowest pace.
    const attempt = error.caCode !== undefined && CA_PERMANENT_ERRORS.has(error.caCode) ? 64 : this.#failures;
    const remaining = this.#current ? this.#current.notAfter.getTime() - this.#clock.now() : undefined;
    const retryInMs = Math.max(retryDelay(attempt, this.#random, backoff, remaining), error.retryAfterMs ?? 0);
    this.#at(this.#clock.now() + retryInMs, 'renew');
    this.emit('renewalFailed', error, { attempt: this.#failures, retryInMs });
  }

  /** Arms the renewal or the expiry timer for the absolute time `at`, re-arming if a timer fires early. */
  #at(at: number, kind: 'renew' | 'expiry'): void {
    if (this.#closed) return;
    const fire = () => {
      if (this.#closed) return;
      if (this.#clock.now() < at) {
        arm();
        return;
      }
      if (kind === 'renew') void this.#renew();
      else this.#checkExpiry();
    };
    const arm = () => {
      const handle = this.#clock.setTimeout(fire, at - this.#clock.now());
      if (kind === 'renew') this.#renewTimer = handle;
      else this.#expiryTimer = handle;
    };
    if (kind === 'renew') {
      this.#clock.clearTimeout(this.#renewTimer);
      this.#nextRenewalAt = at;
    } else {
      this.#clock.clearTimeout(this.#expiryTimer);
    }
    arm();
  }

  #checkExpiry(): void {
    const creds = this.#current;
    if (creds === undefined || this.#clock.now() < creds.notAfter.getTime()) return;
    this.#current = undefined;
    this.#clock.clearTimeout(this.#expiryTimer);
    this.emit(
      'expired',
      new IdentityError(
        'WEFT_ERR_CERT_EXPIRED',
        `workload certificate ${creds.serialNumber} for ${creds.spiffeId} expired at ${creds.notAfter.toISOString()} before a renewal succeeded`,
      ),
    );
    // Renewal keeps going: make sure one is scheduled soon.
    if (!this.#renewing && (this.#nextRenewalAt === undefined || this.#nextRenewalAt > this.#clock.now())) {
      const backoff = this.#o.backoff ?? DEFAULT_BACKOFF;
      const soon = this.#clock.now() + retryDelay(1, this.#random, backoff);
      if (this.#nextRenewalAt === undefined || soon < this.#nextRenewalAt) this.#at(soon, 'renew');
    }
  }
}

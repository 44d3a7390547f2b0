// The case files of a conformance vectors directory (README §2 of ../shared/conformance): every field the traffic
// and status harnesses read, typed; the directory listing; and which tests run under the declared features.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusCheck } from './status-checks.ts';

export type Profile = 'MESH-HTTP' | 'GATEWAY-HTTP';
export const PROFILES: readonly Profile[] = ['GATEWAY-HTTP', 'MESH-HTTP'];

export interface CaseRequest {
  host?: string;
  /** May hold the query string; `{uuid}` is a fresh UUID per probe. */
  path: string;
  method?: string;
  /** HTTP, HTTPS, H2, H2C_PRIOR_KNOWLEDGE, WebSocket, grpc. */
  protocol?: string;
  headers?: Record<string, string>;
  unfollowRedirect?: boolean;
  /** Mirror tests: appended to the path (and the expected path) with a fresh UUID. */
  pathSuffix?: string;
  url?: string;
  origin?: string;
}

export interface ExpectedRequest {
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  absentHeaders?: string[];
}

export interface CaseResponse {
  statusCodes?: number[];
  headers?: Record<string, string>;
  validHeaderValues?: Record<string, string[]>;
  absentHeaders?: string[];
  ignoreWhitespace?: boolean;
  protocol?: string;
}

export interface GatewayTarget {
  name: string;
  namespace: string;
  listener?: string;
  port: number;
  scheme: 'http' | 'https';
  note?: string;
}

export interface CaseTls {
  serverName?: string;
  /** "Secret ns/name (…)": its tls.crt is the only trusted root. */
  trustedServerCertificate?: string;
  /** "Secret ns/name (…)": presented as the client certificate. */
  clientCertificate?: string;
  mustPresentClientCertificate?: boolean;
}

export interface WeightCheck {
  totalRequests: number;
  concurrency?: number;
  tolerance: number;
  maxRetries: number;
}

export interface TrafficCase {
  name: string;
  subtest?: string;
  request: CaseRequest;
  /** Mesh: the client pod; gateway: "gateway". */
  from: 'gateway' | { namespace: string; client: string };
  gateway?: GatewayTarget;
  tls?: CaseTls;
  expectedRequest?: ExpectedRequest;
  expectedRequestDerivedFromRequest?: boolean;
  response?: CaseResponse;
  backendSetResponseHeaders?: Record<string, string>;
  redirect?: { scheme?: string; host?: string; port?: number; path?: string };
  backend?: string;
  namespace?: string;
  weights?: Record<string, number>;
  weightCheck?: WeightCheck;
  mirroredTo?: { name: string; namespace: string; percent?: number }[];
  mirrorCheck?: string;
  percentageMirrorCheck?: { totalRequests: number; concurrency: number; rounds: number };
  retrySimulation?: Record<string, string>;
  expect?: 'transportFailure';
  precededBy?: StatusCheck;
  repeatCheck?: { count: number };
  websocket?: { frames: { type: 'text' | 'binary'; send?: string; sendBytes?: number[]; expectEchoEqual: boolean }[] };
}

export interface CaseFile {
  test: string;
  description: string;
  profile: string;
  reportedUnderProfiles: { profile: string; level: 'core' | 'extended' }[];
  features: string[];
  provisional?: boolean;
  manifests: string[];
  baseManifests: string[];
  kind: 'traffic' | 'status';
  harness: string;
  cases: TrafficCase[];
  statusChecks: StatusCheck[];
  notes?: string[];
  /** Path of the case file it was read from. */
  file: string;
}

/** Every case file under `DIR/cases/*`, sorted by family then test name. */
export function loadCaseFiles(dir: string): CaseFile[] {
  const out: CaseFile[] = [];
  const casesDir = join(dir, 'cases');
  for (const family of readdirSync(casesDir).sort()) {
    const familyDir = join(casesDir, family);
    let names: string[];
    try {
      names = readdirSync(familyDir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const file = join(familyDir, name);
      const raw = JSON.parse(readFileSync(file, 'utf8')) as Omit<CaseFile, 'file'>;
      out.push({ ...raw, cases: raw.cases ?? [], statusChecks: raw.statusChecks ?? [], file });
    }
  }
  return out;
}

/** Features of the test that are not declared (empty: the test runs). */
export function unsupportedFeatures(c: Pick<CaseFile, 'features'>, declared: ReadonlySet<string>): string[] {
  return c.features.filter((f) => !declared.has(f));
}

/** The level the test is counted at in `profile`'s report, or undefined when it is not counted there. */
export function levelIn(c: Pick<CaseFile, 'reportedUnderProfiles'>, profile: string): 'core' | 'extended' | undefined {
  return c.reportedUnderProfiles.find((p) => p.profile === profile)?.level;
}

/** Whether `--profile P` selects the test: counted under P, or of P's family (tests counted in no profile). */
export function inProfile(c: Pick<CaseFile, 'reportedUnderProfiles' | 'profile'>, profile: string): boolean {
  return levelIn(c, profile) !== undefined || c.profile === profile;
}

// Results as the upstream ConformanceReport (conformance/apis/v1: apiVersion gateway.networking.k8s.io/v1, kind
// ConformanceReport, implementation, date, gatewayAPIVersion/Channel, mode, profiles with core and extended status,
// succeededProvisionalTests) and as the per-profile summary lines the runner prints. Counting follows
// utils/suite/reports.go (a test is counted in a profile when its case file says it is reported there, at that
// level; result failure > partial > success) with one difference the issue asks for: a test skipped because weft
// does not declare one of its features is counted as skipped (listed in skippedTests), never left out.
import { stringify } from 'yaml';
import { GATEWAY_FEATURES, MESH_FEATURES } from '../controlplane/translate/features.ts';
import { type CaseFile, levelIn, type Profile } from './case-file.ts';
import type { TestResult } from './suite.ts';

/** Extended features of each profile (pkg/features, README §9). */
export const EXTENDED_FEATURES: Record<Profile, readonly string[]> = {
  'MESH-HTTP': [
    'MeshClusterIPMatching',
    'MeshConsumerRoute',
    'MeshHTTPRouteRewritePath',
    'MeshHTTPRouteSchemeRedirect',
    'MeshHTTPRouteRedirectPort',
    'MeshHTTPRouteRedirectPath',
    'MeshHTTPRouteBackendRequestHeaderModification',
    'MeshHTTPRouteQueryParamMatching',
    'MeshHTTPRouteNamedRouteRule',
  ],
  'GATEWAY-HTTP': [
    'GatewayPort8080',
    'GatewayStaticAddresses',
    'GatewayHTTPListenerIsolation',
    'GatewayHTTPSListenerDetectMisdirectedRequests',
    'GatewayInfrastructurePropagation',
    'GatewayAddressEmpty',
    'GatewayBackendClientCertificate',
    'GatewayFrontendClientCertificateValidation',
    'GatewayFrontendClientCertificateValidationInsecureFallback',
    'ListenerSet',
    'HTTPRouteDestinationPortMatching',
    'HTTPRouteBackendRequestHeaderModification',
    'HTTPRouteQueryParamMatching',
    'HTTPRouteMethodMatching',
    'HTTPRouteResponseHeaderModification',
    'HTTPRoutePortRedirect',
    'HTTPRouteSchemeRedirect',
    'HTTPRoutePathRedirect',
    'HTTPRouteHostRewrite',
    'HTTPRoutePathRewrite',
    'HTTPRouteRequestMirror',
    'HTTPRouteRequestMultipleMirrors',
    'HTTPRouteRequestPercentageMirror',
    'HTTPRouteRequestTimeout',
    'HTTPRouteBackendTimeout',
    'HTTPRouteParentRefPort',
    'HTTPRouteBackendProtocolH2C',
    'HTTPRouteBackendProtocolWebSocket',
    'HTTPRouteNamedRouteRule',
    'HTTPRouteCORS',
    'HTTPRoute303RedirectStatusCode',
    'HTTPRoute307RedirectStatusCode',
    'HTTPRoute308RedirectStatusCode',
    'HTTPRouteRetry',
    'HTTPRouteRetryBackendTimeout',
    'HTTPRouteRetryConnectionError',
    'HTTPRouteBackendURLRewrite',
    'HTTPRouteBackendRequestRedirect',
    'BackendTLSPolicy',
    'BackendTLSPolicySANValidation',
  ],
};

export interface LevelStatus {
  result: 'success' | 'partial' | 'failure';
  statistics: { Failed: number; Passed: number; Skipped: number };
  skippedTests?: string[];
  failedTests?: string[];
}

export interface ProfileReport {
  name: string;
  summary: string;
  core: LevelStatus;
  extended?: LevelStatus & { supportedFeatures?: string[]; unsupportedFeatures?: string[] };
}

function level(): LevelStatus {
  return { result: 'success', statistics: { Failed: 0, Passed: 0, Skipped: 0 } };
}

function settle(s: LevelStatus): void {
  s.result = s.statistics.Failed > 0 ? 'failure' : s.statistics.Skipped > 0 ? 'partial' : 'success';
}

function summaryOf(s: LevelStatus): string {
  if (s.result === 'success') return 'succeeded';
  if (s.result === 'partial') return `partially succeeded with ${s.statistics.Skipped} test skips`;
  return `failed with ${s.statistics.Failed} test failures`;
}

export function profileReport(profile: Profile, files: CaseFile[], results: TestResult[]): ProfileReport | undefined {
  const byTest = new Map(results.map((r) => [r.test, r]));
  const core = level();
  let extended: ProfileReport['extended'];
  let counted = 0;
  for (const f of files) {
    const lvl = levelIn(f, profile);
    const r = byTest.get(f.test);
    if (!lvl || !r) continue;
    counted++;
    if (lvl === 'extended') extended ??= level();
    const s = lvl === 'core' ? core : extended!;
    if (r.outcome === 'PASS') s.statistics.Passed++;
    else if (r.outcome === 'FAIL') {
      s.statistics.Failed++;
      s.failedTests = [...(s.failedTests ?? []), f.test];
    } else {
      s.statistics.Skipped++;
      s.skippedTests = [...(s.skippedTests ?? []), f.test];
    }
  }
  if (counted === 0) return undefined;
  settle(core);
  const declared = new Set<string>([...GATEWAY_FEATURES, ...MESH_FEATURES]);
  if (extended) {
    settle(extended);
    const ext = EXTENDED_FEATURES[profile];
    const supported = ext.filter((f) => declared.has(f)).sort();
    const unsupported = ext.filter((f) => !declared.has(f)).sort();
    if (supported.length > 0) extended.supportedFeatures = supported;
    if (unsupported.length > 0) extended.unsupportedFeatures = unsupported;
  }
  let summary = `Core tests ${summaryOf(core)}`;
  if (extended) summary += `. Extended tests ${summaryOf(extended)}`;
  return { name: profile, summary: `${summary}.`, core, extended };
}

export interface ReportMeta {
  version: string;
  gatewayAPIVersion: string;
  date?: Date;
}

export function conformanceReport(
  profiles: Profile[],
  files: CaseFile[],
  results: TestResult[],
  meta: ReportMeta,
): Record<string, unknown> {
  const byTest = new Map(results.map((r) => [r.test, r]));
  const provisional = files
    .filter((f) => f.provisional && byTest.get(f.test)?.outcome === 'PASS')
    .map((f) => f.test)
    .sort();
  const report: Record<string, unknown> = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'ConformanceReport',
    implementation: {
      organization: 'weft',
      project: 'weft',
      url: 'https://weft.dev',
      version: meta.version,
      contact: ['@weft/maintainers'],
    },
    date: (meta.date ?? new Date()).toISOString(),
    gatewayAPIVersion: meta.gatewayAPIVersion,
    gatewayAPIChannel: 'experimental',
    mode: 'default',
    profiles: profiles.flatMap((p) => profileReport(p, files, results) ?? []),
  };
  if (provisional.length > 0) report.succeededProvisionalTests = provisional;
  return report;
}

export function reportYaml(report: Record<string, unknown>): string {
  return stringify(report, { lineWidth: 0 });
}

/** `GATEWAY-HTTP  core 33/33 passed  extended 41/44 passed (2 skipped, 1 failed)`. */
export function summaryLine(r: ProfileReport): string {
  const part = (name: string, s: LevelStatus) => {
    const total = s.statistics.Passed + s.statistics.Failed + s.statistics.Skipped;
    const extra = [
      s.statistics.Skipped ? `${s.statistics.Skipped} skipped` : '',
      s.statistics.Failed ? `${s.statistics.Failed} failed` : '',
    ].filter(Boolean);
    return `${name} ${s.statistics.Passed}/${total} passed${extra.length ? ` (${extra.join(', ')})` : ''}`;
  };
  return `${r.name}: ${part('core', r.core)}, ${r.extended ? part('extended', r.extended) : 'extended 0/0'}`;
}

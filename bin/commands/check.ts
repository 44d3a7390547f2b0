// `weft check`: preflight and health of weft in a cluster (controlplane/check does the checking). One line per check,
// `✓ name: what was found`, `‼ name: …` (a warning), `✗ name: what is wrong` with an indented `fix:` line, or
// `- name: skipped …`; exit 1 when any check fails. `-o json` prints the same results as JSON.
import { Command, InvalidArgumentError, Option } from 'commander';
import { isNamespaceName, isServiceAccountName } from '../../controlplane/certs/identity.ts';
import type { CheckResult } from '../../controlplane/check/result.ts';
import { CHECK_DEFAULTS } from '../../controlplane/check/run.ts';
import { CliError } from '../errors.ts';
import { camelCaseAttribute, httpUrl, named } from '../options.ts';

export interface CheckCommandOptions {
  namespace: string;
  kubeconfig?: string;
  context?: string;
  caSecret: string;
  rootCaConfigMap: string;
  service: string;
  deployment?: string;
  webhookConfiguration: string;
  gatewayClass: string;
  adminUrl?: string;
  webhookUrl?: string;
  timeoutSeconds: number;
  output: 'text' | 'json';
}

const MARK: Record<CheckResult['status'], string> = { ok: '✓', warn: '‼', fail: '✗', skip: '-' };

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError('not a whole number of seconds, at least 1');
  return n;
}

// Names go into API paths: a namespace or Service name is an RFC 1123 label, the other objects' names RFC 1123
// subdomains (the rule ServiceAccount names follow).
const namespaceName = named('namespace name', isNamespaceName);
const serviceName = named('Service name', isNamespaceName);
const objectName = (what: string) => named(`${what} name`, isServiceAccountName);

/** The text `weft check` prints: one line per check, a `fix:` line under each warning and failure, a summary. */
export function formatChecks(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.status]} ${r.name}: ${r.status === 'skip' ? `skipped (${r.message})` : r.message}`);
    if (r.fix && (r.status === 'fail' || r.status === 'warn')) lines.push(`    fix: ${r.fix}`);
  }
  const count = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  const [failed, warned, skipped] = [count('fail'), count('warn'), count('skip')];
  const summary = [
    failed === 0 ? 'no problem found' : `${failed} check${failed === 1 ? '' : 's'} failed`,
    ...(warned > 0 ? [`${warned} warning${warned === 1 ? '' : 's'}`] : []),
    ...(skipped > 0 ? [`${skipped} skipped`] : []),
  ];
  lines.push('', `weft check: ${summary.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export function checkCommand(): Command {
  return new Command('check')
    .summary('check that weft is installed and healthy in the cluster, with a fix for each problem')
    .description(
      'Check the cluster weft runs in: the Kubernetes API and its version, the Gateway API and weft CRDs, the ' +
        'GatewayClass, the control plane Deployment, the mesh root CA (validity, days to expiry) and its ConfigMaps, ' +
        'the injector webhook (caBundle, and a verified TLS handshake when run in the cluster or given --webhook-url), ' +
        'and the proxies connected to the control plane. Prints one line per check and a fix for each problem; ' +
        'exits 1 when a check fails (warnings do not).',
    )
    .option('-n, --namespace <ns>', "the control plane's namespace", namespaceName, CHECK_DEFAULTS.namespace)
    .option('--kubeconfig <file>', 'kubeconfig to use (default: $KUBECONFIG or ~/.kube/config, else in-cluster)')
    .option('--context <name>', 'kubeconfig context to use (default: the current one)')
    .option('--ca-secret <name>', 'Secret holding the mesh CA', objectName('Secret'), CHECK_DEFAULTS.caSecret)
    .addOption(
      camelCaseAttribute(
        new Option('--root-ca-configmap <name>', 'ConfigMap the root CA is published as')
          .argParser(objectName('ConfigMap'))
          .default(CHECK_DEFAULTS.rootCaConfigMap),
        'rootCaConfigMap',
      ),
    )
    .option('--service <name>', "the control plane's Service", serviceName, CHECK_DEFAULTS.service)
    .option('--deployment <name>', "the control plane's Deployment (default: --service)", objectName('Deployment'))
    .option(
      '--webhook-configuration <name>',
      'the injector’s MutatingWebhookConfiguration',
      objectName('MutatingWebhookConfiguration'),
      CHECK_DEFAULTS.webhookConfiguration,
    )
    .option('--gateway-class <name>', "weft's GatewayClass", objectName('GatewayClass'), CHECK_DEFAULTS.gatewayClass)
    .option(
      '--admin-url <url>',
      "the control plane's admin URL, e.g. after kubectl port-forward (default: through the API server)",
      httpUrl,
    )
    .option(
      '--webhook-url <url>',
      'reach the webhook here, e.g. https://127.0.0.1:9443 after kubectl port-forward',
      httpUrl,
    )
    .option('--timeout-seconds <s>', 'how long each request, connection or handshake may take', seconds, 10)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: CheckCommandOptions) => {
      const results = await runCheckCommand(opts);
      process.stdout.write(
        opts.output === 'json' ? `${JSON.stringify({ checks: results }, null, 2)}\n` : formatChecks(results),
      );
      const failed = results.filter((r) => r.status === 'fail').length;
      if (failed > 0) throw new CliError('WEFT_ERR_STATUS', `check: ${failed} check${failed === 1 ? '' : 's'} failed`);
    });
}

/** Builds the API client from the flags and runs every check. */
export async function runCheckCommand(opts: CheckCommandOptions): Promise<CheckResult[]> {
  // Heavy modules (client-node) load when the command runs, not when `weft --help` does.
  const { KubeClient, loadKubeConfig } = await import('../../controlplane/k8s/client.ts');
  const { runChecks } = await import('../../controlplane/check/run.ts');
  let client: InstanceType<typeof KubeClient> | undefined;
  let clientError: Error | undefined;
  try {
    const kc = loadKubeConfig(opts.kubeconfig);
    if (opts.context !== undefined) {
      if (!kc.contexts.some((c) => c.name === opts.context))
        throw new Error(`the kubeconfig has no context ${JSON.stringify(opts.context)}`);
      kc.setCurrentContext(opts.context);
    }
    client = new KubeClient(kc, { userAgent: 'weft-check', timeoutMs: opts.timeoutSeconds * 1000 });
  } catch (err) {
    clientError = err as Error;
  }
  try {
    return await runChecks({
      client,
      clientError,
      namespace: opts.namespace,
      caSecret: opts.caSecret,
      rootCaConfigMap: opts.rootCaConfigMap,
      service: opts.service,
      deployment: opts.deployment ?? opts.service,
      webhookConfiguration: opts.webhookConfiguration,
      gatewayClass: opts.gatewayClass,
      adminUrl: opts.adminUrl,
      webhookUrl: opts.webhookUrl,
      timeoutMs: opts.timeoutSeconds * 1000,
    });
  } finally {
    await client?.close();
  }
}

// `weft controlplane`: the control plane in a Kubernetes cluster (controlplane/k8s/cluster.ts does the wiring). This
// file parses the flags the Helm chart renders, builds the injector's settings and hands the injector's webhook to
// the control plane as the function that hosts it, then runs until SIGTERM. Heavy modules load when the command runs.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { isNamespaceName, isServiceAccountName, isTrustDomain } from '../../controlplane/certs/identity.ts';
import { parseDuration } from '../../controlplane/translate/duration.ts';
import type { InjectSettings, InjectSettingsInput } from '../../injector/index.ts';
import { CliError } from '../errors.ts';
import { camelCaseAttribute, httpUrl, named, port, ratio } from '../options.ts';

export interface ControlPlaneCommandOptions {
  namespace: string;
  kubeconfig?: string;
  trustDomain: string;
  /** Milliseconds. */
  certTtl: number;
  caSecret: string;
  rootCaConfigMap: string;
  pushPort: number;
  caPort: number;
  adminPort: number;
  webhookPort: number;
  service: string;
  webhookConfiguration: string;
  proxyImage?: string;
  leaderElect: boolean;
  otlpEndpoint?: string;
  traceSampleRatio?: number;
  logLevel: string;
  injectSettings?: string;
}

const MAX_CERT_TTL_MS = 7 * 24 * 3_600_000;

function certTtl(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError('not a duration such as 24h, 90m or 1h30m');
  if (ms < 60_000 || ms > MAX_CERT_TTL_MS) throw new InvalidArgumentError('must be between 1m and 168h');
  return ms;
}

// The control plane's own namespace, Secret, ConfigMap and Service: RFC 1123 labels. (A MutatingWebhookConfiguration
// is an RFC 1123 subdomain, the rule ServiceAccount names follow.)
const dnsLabel = (what: string) => named(`${what} name`, isNamespaceName);

function rootCaConfigMapOption(): Option {
  const o = new Option(
    '--root-ca-configmap <name>',
    'ConfigMap (key ca.crt) published into namespaces labelled weft.dev/inject=enabled and those of Gateways',
  )
    .argParser(dnsLabel('ConfigMap'))
    .default('weft-root-ca');
  return camelCaseAttribute(o, 'rootCaConfigMap');
}

export function controlplaneCommand(version: string): Command {
  return new Command('controlplane')
    .summary('run the control plane in a Kubernetes cluster')
    .description(
      'Run the weft control plane against a Kubernetes API server: watch the Gateway API and core resources, ' +
        'translate them into proxy configs and push those to the proxies (mTLS), write route and Gateway status ' +
        '(leader only), run the mesh CA (workload tokens checked by TokenReview; root kept in a Secret), host the ' +
        'injector webhook, publish the root CA to injected namespaces and keep the webhook caBundle. Runs until ' +
        'SIGTERM; /healthz and /readyz on the admin port.',
    )
    .addOption(
      new Option('--namespace <ns>', "the control plane's own namespace (CA Secret, Lease, Service)")
        .env('POD_NAMESPACE')
        .default('weft-system')
        .argParser(dnsLabel('namespace')),
    )
    .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster, else $KUBECONFIG or ~/.kube/config)')
    .option(
      '--trust-domain <domain>',
      'SPIFFE trust domain of workload identities',
      named('trust domain (lowercase letters, digits, ".", "_" and "-")', isTrustDomain),
      'cluster.local',
    )
    .addOption(
      new Option('--cert-ttl <duration>', 'lifetime of workload certificates (1m..168h)')
        .default(24 * 3_600_000, '24h')
        .argParser(certTtl),
    )
    .option(
      '--ca-secret <name>',
      'Secret in --namespace holding the root CA (created if absent)',
      dnsLabel('Secret'),
      'weft-ca',
    )
    .addOption(rootCaConfigMapOption())
    .option('--push-port <port>', 'config push port (mTLS)', port, 15010)
    .option('--ca-port <port>', 'mesh CA port (HTTPS)', port, 15012)
    .option('--admin-port <port>', 'admin port: /healthz, /readyz, /proxies, /statuses', port, 15014)
    .option('--webhook-port <port>', 'injector webhook port (HTTPS)', port, 9443)
    .option(
      '--service <name>',
      'the Service of the control plane (serving certificates carry its DNS names)',
      dnsLabel('Service'),
      'weft-controlplane',
    )
    .option(
      '--webhook-configuration <name>',
      'MutatingWebhookConfiguration whose caBundle is kept equal to the root CA',
      named('MutatingWebhookConfiguration name', isServiceAccountName),
      'weft-injector',
    )
    .option(
      '--proxy-image <image>',
      `image of the injected and Gateway proxies (default ghcr.io/weft-dev/weft:${version})`,
    )
    .option('--leader-elect', 'elect one replica to write status and publish (Lease in --namespace)', true)
    .option('--no-leader-elect', 'write status without an election (a single replica)')
    .option(
      '--otlp-endpoint <url>',
      'the control plane and the injected proxies export spans over OTLP/HTTP to this collector',
      httpUrl,
    )
    .option('--trace-sample-ratio <ratio>', 'share of new traces recorded, 0..1 (default 1)', ratio)
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
        .default('info'),
    )
    .option('--inject-settings <file>', 'injector settings, YAML or JSON (see docs/injection.md)')
    .action(async (opts: ControlPlaneCommandOptions) => {
      await runControlPlane(version, opts);
    });
}

async function readInjectSettings(file: string | undefined): Promise<Partial<InjectSettingsInput>> {
  if (!file) return {};
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError('WEFT_ERR_INPUT', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    throw new CliError('WEFT_ERR_INPUT', `${file}: not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new CliError('WEFT_ERR_INPUT', `${file}: want a mapping of injector settings`);
  return doc as Partial<InjectSettingsInput>;
}

/**
 * The injector settings: the file's, then what the flags decide (trust domain, weft's namespace, the root CA
 * ConfigMap, the image, the control plane's addresses), then tracing flags appended to the proxy's arguments (unless
 * the file gives its own proxyArgs).
 */
export function buildInjectSettings(
  version: string,
  opts: ControlPlaneCommandOptions,
  file: Partial<InjectSettingsInput>,
  context: { nativeSidecar: boolean; addresses: { push: string; ca: string } },
  injectSettings: (input: InjectSettingsInput) => InjectSettings,
): InjectSettings {
  const input: InjectSettingsInput = {
    ...file,
    version: file.version ?? version,
    trustDomain: opts.trustDomain,
    weftNamespace: opts.namespace,
    rootCaConfigMap: opts.rootCaConfigMap,
    nativeSidecar: file.nativeSidecar ?? context.nativeSidecar,
    caAddress: file.caAddress ?? context.addresses.ca,
    controlPlaneAddress: file.controlPlaneAddress ?? context.addresses.push,
  };
  if (opts.proxyImage !== undefined) input.image = opts.proxyImage;
  const settings = injectSettings(input);
  if (file.proxyArgs === undefined && opts.otlpEndpoint !== undefined) {
    settings.proxyArgs.push('--otlp-endpoint', opts.otlpEndpoint);
    if (opts.traceSampleRatio !== undefined)
      settings.proxyArgs.push('--trace-sample-ratio', String(opts.traceSampleRatio));
    settings.proxyArgs.push('--trace-service-name', '$(SERVICE_ACCOUNT).$(POD_NAMESPACE)');
  }
  return settings;
}

export async function runControlPlane(version: string, opts: ControlPlaneCommandOptions): Promise<void> {
  const { InjectError, injectSettings, startWebhook } = await import('../../injector/index.ts');
  const { controlPlaneAddresses, controlPlaneClient, startClusterControlPlane } = await import(
    '../../controlplane/k8s/cluster.ts'
  );
  const { pino } = await import('pino');

  const file = await readInjectSettings(opts.injectSettings);
  const addresses = controlPlaneAddresses({
    service: opts.service,
    namespace: opts.namespace,
    ports: { push: opts.pushPort, ca: opts.caPort },
  });
  const settingsFor = (nativeSidecar: boolean) =>
    buildInjectSettings(version, opts, file, { nativeSidecar, addresses }, injectSettings);
  try {
    settingsFor(true); // refuse bad settings before anything starts
  } catch (err) {
    if (err instanceof InjectError)
      throw new CliError('WEFT_ERR_INPUT', `${opts.injectSettings ?? 'injector settings'}: ${err.message}`);
    throw err;
  }
  let client: ReturnType<typeof controlPlaneClient>;
  try {
    client = controlPlaneClient(opts.kubeconfig);
  } catch (err) {
    throw new CliError('WEFT_ERR_INPUT', (err as Error).message);
  }
  const logger = pino({ name: 'weft-controlplane', level: opts.logLevel });
  const stop = new AbortController();
  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal) process.exit(1); // a second signal: no more waiting
    stopSignal = signal;
    logger.info({ event: 'controlplane.signal', signal }, `${signal}: stopping`);
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const stopped = new Promise<void>((resolve) =>
    stop.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  try {
    const cp = await startClusterControlPlane({
      client,
      namespace: opts.namespace,
      trustDomain: opts.trustDomain,
      certTtlMs: opts.certTtl,
      caSecret: opts.caSecret,
      rootCaConfigMap: opts.rootCaConfigMap,
      service: opts.service,
      webhookConfiguration: opts.webhookConfiguration,
      ports: { push: opts.pushPort, ca: opts.caPort, admin: opts.adminPort, webhook: opts.webhookPort },
      leaderElect: opts.leaderElect,
      // The image the injector puts into pods also runs the Gateways' edge proxies.
      proxyImage: settingsFor(true).image,
      ...(opts.otlpEndpoint
        ? { tracing: { endpoint: opts.otlpEndpoint, sampleRatio: opts.traceSampleRatio ?? 1 } }
        : {}),
      logger,
      signal: stop.signal,
      webhook: (h) =>
        startWebhook({
          port: h.port,
          host: h.host,
          tls: h.tls,
          settings: settingsFor(h.nativeSidecar),
          namespaceLookup: h.namespaceLookup,
          logger: h.logger,
        }),
    });
    await stopped;
    await cp.close();
  } catch (err) {
    // Stopped while starting (waiting for the API server): not a failure.
    if (!stopSignal) throw new CliError('WEFT_ERR_INPUT', `control plane: ${(err as Error).message}`);
    logger.warn({ event: 'controlplane.stop-error', err }, `while stopping: ${(err as Error).message}`);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await client.close();
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
  }
}

// The pure pieces of `weft controlplane`: native sidecars from /version, the Service names serving certificates
// carry, and the injector settings the flags and the settings file make together.
import test from 'ava';
import {
  buildInjectSettings,
  type ControlPlaneCommandOptions,
  controlplaneCommand,
} from '../../bin/commands/controlplane.ts';
import { controlPlaneAddresses, serviceDnsNames, supportsNativeSidecars } from '../../controlplane/k8s/cluster.ts';
import { injectSettings } from '../../injector/index.ts';
import { runWeft } from '../helpers/run-weft.ts';

test('native sidecars from /version: 1.29 and later, cloud suffixes like "29+" included', (t) => {
  const cases: [{ major?: string; minor?: string } | undefined, boolean][] = [
    [{ major: '1', minor: '28' }, false],
    [{ major: '1', minor: '29' }, true],
    [{ major: '1', minor: '29+' }, true],
    [{ major: '1', minor: '35' }, true],
    [{ major: '2', minor: '0' }, true],
    [{ major: '1', minor: '' }, false],
    [undefined, false],
  ];
  for (const [version, want] of cases) t.is(supportsNativeSidecars(version), want, JSON.stringify(version));
});

test('serving certificates name the Service every way a pod may spell it', (t) => {
  t.deepEqual(serviceDnsNames('weft-controlplane', 'weft-system', 'cluster.local'), [
    'weft-controlplane',
    'weft-controlplane.weft-system',
    'weft-controlplane.weft-system.svc',
    'weft-controlplane.weft-system.svc.cluster.local',
  ]);
});

const flags: ControlPlaneCommandOptions = {
  namespace: 'mesh',
  trustDomain: 'example.org',
  certTtl: 86_400_000,
  caSecret: 'weft-ca',
  rootCaConfigMap: 'mesh-roots',
  pushPort: 15010,
  caPort: 15012,
  adminPort: 15014,
  webhookPort: 9443,
  service: 'cp',
  webhookConfiguration: 'weft-injector',
  leaderElect: true,
  logLevel: 'info',
};

test('proxies reach the Service on the served ports; port 0 (any free port) names the default', (t) => {
  t.deepEqual(controlPlaneAddresses({ service: 'cp', namespace: 'mesh', ports: { push: 16010, ca: 0 } }), {
    push: 'cp.mesh.svc:16010',
    ca: 'cp.mesh.svc:15012',
  });
});

const addresses = { push: 'cp.mesh.svc:15010', ca: 'cp.mesh.svc:15012' };

test('injector settings: the flags decide identity, addresses and ConfigMap; the file the rest', (t) => {
  const s = buildInjectSettings(
    '1.2.3',
    flags,
    { trustDomain: 'ignored.org', logLevel: 'debug' },
    { nativeSidecar: false, addresses },
    injectSettings,
  );
  t.like(s, {
    version: '1.2.3',
    image: 'ghcr.io/weft-dev/weft:1.2.3',
    trustDomain: 'example.org',
    weftNamespace: 'mesh',
    rootCaConfigMap: 'mesh-roots',
    caAddress: 'cp.mesh.svc:15012',
    controlPlaneAddress: 'cp.mesh.svc:15010',
    nativeSidecar: false,
    logLevel: 'debug',
  });
  t.false(s.proxyArgs.includes('--otlp-endpoint'));
  const pinned = buildInjectSettings(
    '1.2.3',
    { ...flags, proxyImage: 'registry/weft:dev' },
    { nativeSidecar: true },
    { nativeSidecar: false, addresses },
    injectSettings,
  );
  t.is(pinned.image, 'registry/weft:dev');
  t.true(pinned.nativeSidecar, 'the file may pin the form whatever /version says');
});

test('tracing flags reach the injected proxy, unless the file gives its own proxyArgs', (t) => {
  const traced = { ...flags, otlpEndpoint: 'http://jaeger.tracing:4318', traceSampleRatio: 0.25 };
  const s = buildInjectSettings('1.2.3', traced, {}, { nativeSidecar: true, addresses }, injectSettings);
  const tail = s.proxyArgs.slice(-6);
  t.deepEqual(tail, [
    '--otlp-endpoint',
    'http://jaeger.tracing:4318',
    '--trace-sample-ratio',
    '0.25',
    '--trace-service-name',
    '$(SERVICE_ACCOUNT).$(POD_NAMESPACE)',
  ]);
  t.deepEqual(
    buildInjectSettings(
      '1.2.3',
      traced,
      { proxyArgs: ['proxy', '--x'] },
      { nativeSidecar: true, addresses },
      injectSettings,
    ).proxyArgs,
    ['proxy', '--x'],
  );
});

/** What commander hands runControlPlane for `args`. */
async function parse(args: string[]): Promise<ControlPlaneCommandOptions> {
  let parsed: ControlPlaneCommandOptions | undefined;
  const cmd = controlplaneCommand('1.2.3')
    .exitOverride()
    .action((opts: ControlPlaneCommandOptions) => {
      parsed = opts;
    });
  await cmd.parseAsync(args, { from: 'user' });
  return parsed!;
}

test('every flag lands in the option the command reads, with the defaults the chart relies on', async (t) => {
  const saved = process.env.POD_NAMESPACE;
  delete process.env.POD_NAMESPACE;
  t.teardown(() => {
    if (saved !== undefined) process.env.POD_NAMESPACE = saved;
  });
  t.deepEqual(await parse([]), {
    namespace: 'weft-system',
    trustDomain: 'cluster.local',
    certTtl: 86_400_000,
    caSecret: 'weft-ca',
    rootCaConfigMap: 'weft-root-ca',
    pushPort: 15010,
    caPort: 15012,
    adminPort: 15014,
    webhookPort: 9443,
    service: 'weft-controlplane',
    webhookConfiguration: 'weft-injector',
    leaderElect: true,
    logLevel: 'info',
  });
  const every: ControlPlaneCommandOptions = {
    namespace: 'mesh',
    kubeconfig: '/etc/kube/config',
    trustDomain: 'example.org',
    certTtl: 5_400_000,
    caSecret: 'roots',
    rootCaConfigMap: 'mesh-roots',
    pushPort: 1,
    caPort: 2,
    adminPort: 3,
    webhookPort: 4,
    service: 'cp',
    webhookConfiguration: 'hooks',
    proxyImage: 'registry/weft:dev',
    leaderElect: false,
    otlpEndpoint: 'http://jaeger:4318',
    traceSampleRatio: 0.5,
    logLevel: 'debug',
    injectSettings: '/etc/weft/settings.yaml',
  };
  t.deepEqual(
    await parse(
      [
        ['--namespace', 'mesh'],
        ['--kubeconfig', '/etc/kube/config'],
        ['--trust-domain', 'example.org'],
        ['--cert-ttl', '1h30m'],
        ['--ca-secret', 'roots'],
        ['--root-ca-configmap', 'mesh-roots'],
        ['--push-port', '1'],
        ['--ca-port', '2'],
        ['--admin-port', '3'],
        ['--webhook-port', '4'],
        ['--service', 'cp'],
        ['--webhook-configuration', 'hooks'],
        ['--proxy-image', 'registry/weft:dev'],
        ['--no-leader-elect'],
        ['--otlp-endpoint', 'http://jaeger:4318'],
        ['--trace-sample-ratio', '0.5'],
        ['--log-level', 'debug'],
        ['--inject-settings', '/etc/weft/settings.yaml'],
      ].flat(),
    ),
    every,
  );
});

test('a bad flag value is refused before anything starts, naming what was expected', async (t) => {
  for (const [args, message] of [
    [['--trust-domain', 'Example Org'], /not a trust domain/],
    [['--webhook-configuration', 'Hooks_1'], /not a MutatingWebhookConfiguration name/],
    [['--namespace', 'Mesh'], /not a namespace name/],
    [['--cert-ttl', '10s'], /between 1m and 168h/],
    [['--push-port', '70000'], /not a port number/],
  ] as const) {
    const err = await t.throwsAsync(parse([...args]), { code: 'commander.invalidArgument' });
    t.regex(err!.message, message, args.join(' '));
  }
  const run = await runWeft(['controlplane', '--trust-domain', 'a b']);
  t.is(run.code, 2, run.stderr);
  t.regex(run.stderr, /--trust-domain <domain>' argument 'a b' is invalid\. not a trust domain/);
});

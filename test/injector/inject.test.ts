// The pure injector: who is injected (every exclusion rule), what is added in the native and classic forms, probe
// rewriting, exclusion annotations reaching the capture step, and idempotence.
import test from 'ava';
import {
  APP_PROBES_ANNOTATION,
  type AppProbes,
  assertPod,
  type Container,
  INIT_CONTAINER,
  InjectError,
  injectionPatch,
  injectPod,
  injectSettings,
  PROXY_CONTAINER,
  type Pod,
  shouldInject,
} from '../../injector/index.ts';
import { app, classic, labelled, native, pod, probedPod, settings, unlabelled } from './support.ts';

const byName = (list: Container[] | undefined, name: string) => {
  const c = list?.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
};
const flagValue = (args: string[] | undefined, flag: string) => {
  const i = args?.indexOf(flag) ?? -1;
  return i === -1 ? undefined : args?.[i + 1];
};

// ---- who is injected

test('a pod in a namespace labelled weft.dev/inject=enabled is injected', (t) => {
  const d = shouldInject(pod(), labelled(), native());
  t.true(d.inject);
  t.regex(d.reason, /labelled weft\.dev\/inject=enabled/);
  t.falsy(d.invalid);
});

test('the pod annotation weft.dev/inject: "true" injects inside a labelled namespace only', (t) => {
  const annotated = pod((p) => {
    p.metadata!.annotations!['weft.dev/inject'] = 'true';
  });
  t.true(shouldInject(annotated, labelled(), native()).inject);
  const outside = shouldInject(annotated, unlabelled(), native());
  t.false(outside.inject);
  t.regex(outside.reason, /not labelled weft\.dev\/inject=enabled.*works only inside/);
});

test('a namespace without the label, or with another value, is not injected', (t) => {
  t.false(shouldInject(pod(), unlabelled(), native()).inject);
  t.false(shouldInject(pod(), { name: 'shop' }, native()).inject);
  t.false(shouldInject(pod(), { name: 'shop', labels: { 'weft.dev/inject': 'disabled' } }, native()).inject);
});

test('the pod annotation weft.dev/inject: "false" opts out', (t) => {
  const d = shouldInject(
    pod((p) => {
      p.metadata!.annotations!['weft.dev/inject'] = 'false';
    }),
    labelled(),
    native(),
  );
  t.false(d.inject);
  t.falsy(d.invalid);
  t.regex(d.reason, /opted out/);
});

test('a weft.dev/inject annotation that is neither "true" nor "false" is invalid, not ignored', (t) => {
  const d = shouldInject(
    pod((p) => {
      p.metadata!.annotations!['weft.dev/inject'] = 'no';
    }),
    labelled(),
    native(),
  );
  t.false(d.inject);
  t.true(d.invalid);
  t.regex(d.reason, /weft\.dev\/inject: "no" is neither/);
});

for (const ns of ['kube-system', 'kube-public', 'kube-node-lease']) {
  test(`${ns} is never injected, even labelled`, (t) => {
    const d = shouldInject(pod(), labelled(ns), native());
    t.false(d.inject);
    t.is(d.reason, `namespace ${ns} is never injected`);
  });
}

test("weft's own namespace is never injected, whatever it is called", (t) => {
  t.false(shouldInject(pod(), labelled('weft-system'), native()).inject);
  const custom = settings({ weftNamespace: 'mesh' });
  t.regex(shouldInject(pod(), labelled('mesh'), custom).reason, /weft's own/);
  t.true(shouldInject(pod(), labelled('weft-system'), custom).inject);
});

test('hostNetwork pods are never injected', (t) => {
  const d = shouldInject(
    pod((p) => {
      p.spec.hostNetwork = true;
    }),
    labelled(),
    native(),
  );
  t.false(d.inject);
  t.regex(d.reason, /hostNetwork/);
});

test('an injected pod, or one already carrying a weft-proxy container, is not injected again', (t) => {
  for (const s of [native(), classic()]) {
    const d = shouldInject(injectPod(pod(), s), labelled(), s);
    t.false(d.inject);
    t.regex(d.reason, /already injected \(weft\.dev\/injected: "0\.1\.0-test"\)/);
  }
  const manual = pod((p) => {
    p.spec.containers.push({ name: 'weft-proxy', image: 'x' });
  });
  t.regex(shouldInject(manual, labelled(), native()).reason, /already has a container named weft-proxy/);
});

test('exclusion annotations weft cannot parse make the pod invalid instead of injecting without them', (t) => {
  const cases: [string, string, RegExp][] = [
    ['weft.dev/exclude-inbound-ports', '80,http', /"http" is not 1–65535/],
    ['weft.dev/exclude-inbound-ports', '0', /"0" is not 1–65535/],
    ['weft.dev/exclude-outbound-ports', '70000', /"70000" is not 1–65535/],
    ['weft.dev/exclude-outbound-ips', '10.0.0.0/33', /"10\.0\.0\.0\/33" is not one/],
    ['weft.dev/exclude-outbound-ips', 'example.com', /"example\.com" is not one/],
    ['weft.dev/rewrite-app-probes', 'off', /is neither "true" nor "false"/],
  ];
  for (const [name, value, reason] of cases) {
    const p = pod((x) => {
      x.metadata!.annotations![name] = value;
    });
    const d = shouldInject(p, labelled(), native());
    t.false(d.inject, name);
    t.true(d.invalid, name);
    t.true(d.reason.startsWith(`annotation ${name}: `), d.reason);
    t.regex(d.reason, reason);
    const err = t.throws(() => injectPod(p, native()), { instanceOf: InjectError });
    t.is(err?.code, 'WEFT_ERR_INJECT_ANNOTATION');
  }
});

// ---- what is added

function commonChecks(t: import('ava').ExecutionContext, out: Pod, proxy: Container, init: Container) {
  t.is(out.metadata?.annotations?.['weft.dev/injected'], '0.1.0-test');
  t.is(out.metadata?.annotations?.owner, 'shop-team', 'existing annotations kept');
  t.deepEqual(out.metadata?.labels, { app: 'web' });
  t.is(out.spec.serviceAccountName, 'web');

  // The proxy: uid 1337, non-root, read-only root, no escalation, no capabilities.
  t.is(proxy.image, 'registry.test/weft:0.1.0-test');
  t.deepEqual(proxy.securityContext, {
    runAsUser: 1337,
    runAsGroup: 1337,
    runAsNonRoot: true,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  t.deepEqual(proxy.args?.slice(0, 3), ['proxy', '--mode', 'sidecar']);
  t.is(flagValue(proxy.args, '--admin-port'), '15020');
  t.is(flagValue(proxy.args, '--trust-domain'), 'cluster.local');
  t.is(flagValue(proxy.args, '--ca-url'), 'https://weft-controlplane.weft-system.svc:15012');
  t.is(flagValue(proxy.args, '--push'), 'weft-controlplane.weft-system.svc:15010');
  t.is(flagValue(proxy.args, '--token-file'), '/var/run/secrets/weft/tokens/token');
  t.is(flagValue(proxy.args, '--roots'), '/var/run/weft/root-ca/ca.crt');
  const env = Object.fromEntries((proxy.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  t.like(env, {
    POD_NAME: 'metadata.name',
    POD_NAMESPACE: 'metadata.namespace',
    SERVICE_ACCOUNT: 'spec.serviceAccountName',
  });
  t.deepEqual(proxy.volumeMounts, [
    { name: 'weft-token', mountPath: '/var/run/secrets/weft/tokens', readOnly: true },
    { name: 'weft-root-ca', mountPath: '/var/run/weft/root-ca', readOnly: true },
  ]);
  t.deepEqual(proxy.readinessProbe?.httpGet, { path: '/ready', port: 15020, scheme: 'HTTP' });
  t.deepEqual(proxy.livenessProbe?.httpGet, { path: '/live', port: 15020, scheme: 'HTTP' });
  t.deepEqual(proxy.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });

  // The capture step: root with NET_ADMIN and NET_RAW only.
  t.deepEqual(init.securityContext, {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  t.deepEqual(init.args, [
    'proxy',
    'init-iptables',
    '--proxy-uid',
    '1337',
    '--outbound-port',
    '15001',
    '--inbound-port',
    '15006',
    '--exclude-inbound-ports',
    '15020,15008',
  ]);
  t.is(init.restartPolicy, undefined);
  t.deepEqual(init.volumeMounts, [{ name: 'weft-xtables', mountPath: '/run' }]);

  // Volumes: the user's first, then the token (audience weft, 1 h), the root CA, the init step's /run.
  t.deepEqual(out.spec.volumes, [
    { name: 'data', emptyDir: {} },
    {
      name: 'weft-token',
      projected: {
        sources: [{ serviceAccountToken: { audience: 'weft', expirationSeconds: 3600, path: 'token' } }],
      },
    },
    { name: 'weft-root-ca', configMap: { name: 'weft-root-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
    { name: 'weft-xtables', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ]);
}

test('native form: the proxy is the first init container with restartPolicy Always and a startup probe', (t) => {
  const input = pod((p) => {
    p.spec.initContainers = [{ name: 'migrate', image: 'registry.test/migrate:1' }];
  });
  const out = injectPod(input, native());
  t.deepEqual(
    out.spec.initContainers?.map((c) => c.name),
    [PROXY_CONTAINER, INIT_CONTAINER, 'migrate'],
  );
  t.deepEqual(
    out.spec.containers.map((c) => c.name),
    ['web'],
  );
  const proxy = out.spec.initContainers![0];
  t.is(proxy.restartPolicy, 'Always');
  t.like(proxy.startupProbe, { httpGet: { path: '/ready', port: 15020, scheme: 'HTTP' }, periodSeconds: 1 });
  t.is(proxy.lifecycle, undefined);
  t.false(APP_PROBES_ANNOTATION in (out.metadata?.annotations ?? {}), 'no probes, no probe annotation');
  t.false('kubectl.kubernetes.io/default-container' in (out.metadata?.annotations ?? {}));
  commonChecks(t, out, proxy, out.spec.initContainers![1]);
});

test('classic form: the proxy is the first container, waiting in postStart; the capture step is the first init container', (t) => {
  const input = pod((p) => {
    p.spec.initContainers = [{ name: 'migrate', image: 'registry.test/migrate:1' }];
    p.spec.containers.push(app({ name: 'cache', ports: [] }));
  });
  const out = injectPod(input, classic());
  t.deepEqual(
    out.spec.initContainers?.map((c) => c.name),
    [INIT_CONTAINER, 'migrate'],
  );
  t.deepEqual(
    out.spec.containers.map((c) => c.name),
    [PROXY_CONTAINER, 'web', 'cache'],
  );
  const proxy = out.spec.containers[0];
  t.is(proxy.restartPolicy, undefined);
  t.is(proxy.startupProbe, undefined);
  t.deepEqual(proxy.lifecycle, {
    postStart: {
      exec: { command: ['weft', 'proxy', 'wait', '--admin-port', '15020', '--timeout-seconds', '120'] },
    },
  });
  t.is(out.metadata?.annotations?.['kubectl.kubernetes.io/default-container'], 'web');
  commonChecks(t, out, proxy, out.spec.initContainers![0]);
});

test('classic form keeps a default-container annotation the user set', (t) => {
  const input = pod((p) => {
    p.metadata!.annotations!['kubectl.kubernetes.io/default-container'] = 'other';
  });
  t.is(injectPod(input, classic()).metadata?.annotations?.['kubectl.kubernetes.io/default-container'], 'other');
});

test('a pod without metadata or annotations is injected', (t) => {
  const bare: Pod = { spec: { containers: [{ name: 'app', image: 'x' }] } };
  const out = injectPod(bare, native());
  t.deepEqual(out.metadata, { annotations: { 'weft.dev/injected': '0.1.0-test' } });
  t.is(out.spec.volumes?.length, 3);
});

test('injectPod does not change its argument', (t) => {
  const input = probedPod();
  const before = structuredClone(input);
  injectPod(input, native());
  injectPod(input, classic());
  t.deepEqual(input, before);
});

test('settings flow into the pod: ports, uid, addresses, trust domain, audience, image, resources', (t) => {
  const s = settings({
    ports: { outbound: 16001, inbound: 16006, mesh: 16008, admin: 16020 },
    proxyUid: 2000,
    proxyGid: 2001,
    trustDomain: 'prod.example',
    caAddress: 'ca.mesh.svc:443',
    controlPlaneAddress: '[fd00::1]:15010',
    tokenAudience: 'weft-prod',
    tokenExpirationSeconds: 7200,
    rootCaConfigMap: 'mesh-roots',
    proxyResources: { requests: { cpu: '1' } },
  });
  const out = injectPod(probedPod(), s);
  const proxy = byName(out.spec.initContainers, PROXY_CONTAINER);
  const init = byName(out.spec.initContainers, INIT_CONTAINER);
  t.is(flagValue(proxy.args, '--admin-port'), '16020');
  t.is(flagValue(proxy.args, '--trust-domain'), 'prod.example');
  t.is(flagValue(proxy.args, '--ca-url'), 'https://ca.mesh.svc:443');
  t.is(flagValue(proxy.args, '--push'), '[fd00::1]:15010');
  t.like(proxy.securityContext, { runAsUser: 2000, runAsGroup: 2001 });
  t.deepEqual(proxy.resources, { requests: { cpu: '1' } });
  t.is(proxy.startupProbe?.httpGet?.port, 16020);
  t.is(flagValue(init.args, '--proxy-uid'), '2000');
  t.is(flagValue(init.args, '--outbound-port'), '16001');
  t.is(flagValue(init.args, '--inbound-port'), '16006');
  t.is(flagValue(init.args, '--exclude-inbound-ports'), '16020,16008');
  t.like(
    out.spec.volumes?.find((v) => v.name === 'weft-token'),
    {
      projected: { sources: [{ serviceAccountToken: { audience: 'weft-prod', expirationSeconds: 7200 } }] },
    },
  );
  t.like(
    out.spec.volumes?.find((v) => v.name === 'weft-root-ca'),
    { configMap: { name: 'mesh-roots' } },
  );
  const web = byName(out.spec.containers, 'web');
  t.is(web.livenessProbe?.httpGet?.port, 16020);
});

test('proxyArgs given in the settings replace the built ones', (t) => {
  const s = settings({ proxyArgs: ['proxy', '--mode', 'sidecar', '--config', '/etc/weft/config.yaml'] });
  t.deepEqual(byName(injectPod(pod(), s).spec.initContainers, PROXY_CONTAINER).args, [
    'proxy',
    '--mode',
    'sidecar',
    '--config',
    '/etc/weft/config.yaml',
  ]);
});

test('invalid settings are refused with WEFT_ERR_INJECT_SETTINGS', (t) => {
  const bad: [object, RegExp][] = [
    [{ version: '' }, /version/],
    [{ version: '1', ports: { admin: 70000 } }, /ports\.admin/],
    [{ version: '1', ports: { admin: 15001 } }, /the four ports must differ/],
    [{ version: '1', caAddress: 'no-port' }, /caAddress: want host:port/],
    [{ version: '1', tokenExpirationSeconds: 60 }, /tokenExpirationSeconds/],
    [{ version: '1', trustDomain: 'Bad Domain' }, /trust domain/],
    [{ version: '1', weftNamespace: 'Weft_System' }, /weftNamespace/],
    [{ version: '1', unknown: true }, /unknown|Unrecognized/i],
  ];
  for (const [input, message] of bad) {
    const err = t.throws(() => injectSettings(input as never), { instanceOf: InjectError });
    t.is(err?.code, 'WEFT_ERR_INJECT_SETTINGS');
    t.regex(err?.message ?? '', message);
  }
});

// ---- probes

test('httpGet, tcpSocket and grpc probes go through the admin port; the originals are kept in an annotation', (t) => {
  const out = injectPod(probedPod(), native());
  const web = byName(out.spec.containers, 'web');
  t.deepEqual(web.livenessProbe, {
    periodSeconds: 7,
    failureThreshold: 4,
    httpGet: { path: '/app-health/web/livez', port: 15020, scheme: 'HTTP' },
  });
  t.deepEqual(web.readinessProbe, {
    timeoutSeconds: 2,
    httpGet: { path: '/app-health/web/readyz', port: 15020, scheme: 'HTTP' },
  });
  t.deepEqual(web.startupProbe, {
    periodSeconds: 1,
    failureThreshold: 30,
    httpGet: { path: '/app-health/web/startupz', port: 15020, scheme: 'HTTP' },
  });
  // exec runs in the container: untouched.
  t.deepEqual(byName(out.spec.containers, 'worker').livenessProbe, { exec: { command: ['/bin/true'] } });

  const probes = JSON.parse(out.metadata?.annotations?.[APP_PROBES_ANNOTATION] ?? 'null') as AppProbes;
  t.deepEqual(probes, {
    '/app-health/web/livez': {
      httpGet: { path: '/healthz', port: 8080, httpHeaders: [{ name: 'x-probe', value: '1' }] },
      timeoutSeconds: 1,
    },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
    '/app-health/web/startupz': { grpc: { port: 9090, service: 'web.Health' }, timeoutSeconds: 1 },
  });
  // The proxy reads the annotation through the downward API.
  const proxy = byName(out.spec.initContainers, PROXY_CONTAINER);
  t.deepEqual(
    proxy.env?.find((e) => e.name === 'WEFT_APP_PROBES'),
    {
      name: 'WEFT_APP_PROBES',
      valueFrom: { fieldRef: { fieldPath: "metadata.annotations['weft.dev/app-probes']" } },
    },
  );
});

test('probes are rewritten the same way in the classic form', (t) => {
  const nativeOut = injectPod(probedPod(), native());
  const classicOut = injectPod(probedPod(), classic());
  t.is(
    classicOut.metadata?.annotations?.[APP_PROBES_ANNOTATION],
    nativeOut.metadata?.annotations?.[APP_PROBES_ANNOTATION],
  );
  t.deepEqual(byName(classicOut.spec.containers, 'web'), byName(nativeOut.spec.containers, 'web'));
});

test('a pod without probes gets no probe annotation and no WEFT_APP_PROBES', (t) => {
  for (const s of [native(), classic()]) {
    const out = injectPod(pod(), s);
    t.false(APP_PROBES_ANNOTATION in (out.metadata?.annotations ?? {}));
    const proxy = byName([...(out.spec.initContainers ?? []), ...out.spec.containers], PROXY_CONTAINER);
    t.false(proxy.env?.some((e) => e.name === 'WEFT_APP_PROBES'));
  }
});

test('probes are left alone with weft.dev/rewrite-app-probes: "false", a host of their own, or an unknown port name', (t) => {
  const optedOut = probedPod();
  optedOut.metadata!.annotations!['weft.dev/rewrite-app-probes'] = 'false';
  const out = injectPod(optedOut, native());
  t.deepEqual(out.spec.containers, optedOut.spec.containers);
  t.false(APP_PROBES_ANNOTATION in (out.metadata?.annotations ?? {}));

  const odd = pod((p) => {
    p.spec.containers = [
      app({
        livenessProbe: { httpGet: { path: '/', port: 80, host: 'example.test' } },
        readinessProbe: { httpGet: { path: '/', port: 'no-such-port' } },
        startupProbe: { tcpSocket: { port: 80, host: '10.0.0.1' } },
      }),
    ];
  });
  const oddOut = injectPod(odd, native());
  t.deepEqual(oddOut.spec.containers, odd.spec.containers);
});

test('probes the proxy could not send stay with kubelet; the others of the pod are still rewritten', (t) => {
  const refused = pod((p) => {
    p.spec.containers = [
      app({
        livenessProbe: { httpGet: { path: '/', port: 80, scheme: 'FTP' } },
        readinessProbe: { httpGet: { path: '/', port: 80, httpHeaders: [{ name: 'bad header', value: '1' }] } },
        startupProbe: { httpGet: { path: '/a b', port: 80 } },
      }),
    ];
  });
  const out = injectPod(refused, native());
  t.deepEqual(out.spec.containers, refused.spec.containers);
  t.false(APP_PROBES_ANNOTATION in (out.metadata?.annotations ?? {}));

  const mixed = pod((p) => {
    p.spec.containers = [
      app({
        livenessProbe: { httpGet: { path: '/', port: 80, scheme: 'FTP' } },
        readinessProbe: { tcpSocket: { port: 80 } },
      }),
    ];
  });
  const mixedOut = injectPod(mixed, native());
  const [web] = mixedOut.spec.containers;
  t.deepEqual(web.livenessProbe, mixed.spec.containers[0].livenessProbe);
  t.deepEqual(web.readinessProbe?.httpGet, { path: `/app-health/${web.name}/readyz`, port: 15020, scheme: 'HTTP' });
  t.deepEqual(Object.keys(JSON.parse(mixedOut.metadata?.annotations?.[APP_PROBES_ANNOTATION] ?? '{}')), [
    `/app-health/${web.name}/readyz`,
  ]);
});

test("the user's own native sidecars get their probes rewritten too", (t) => {
  const input = pod((p) => {
    p.spec.initContainers = [
      { name: 'log-shipper', image: 'x', restartPolicy: 'Always', readinessProbe: { tcpSocket: { port: 2020 } } },
    ];
  });
  const out = injectPod(input, native());
  t.deepEqual(byName(out.spec.initContainers, 'log-shipper').readinessProbe?.httpGet, {
    path: '/app-health/log-shipper/readyz',
    port: 15020,
    scheme: 'HTTP',
  });
});

// ---- exclusions

test('exclusion annotations reach the capture step, normalised', (t) => {
  const input = pod((p) => {
    Object.assign(p.metadata!.annotations!, {
      'weft.dev/exclude-inbound-ports': '9090, 8081,9090',
      'weft.dev/exclude-outbound-ports': '5432,6379',
      'weft.dev/exclude-outbound-ips': '169.254.169.254, 10.0.0.0/8,fd00::/8, ::1',
    });
  });
  for (const s of [native(), classic()]) {
    const init = byName(injectPod(input, s).spec.initContainers, INIT_CONTAINER);
    t.is(flagValue(init.args, '--exclude-inbound-ports'), '15020,15008,9090,8081');
    t.is(flagValue(init.args, '--exclude-outbound-ports'), '5432,6379');
    t.is(flagValue(init.args, '--exclude-outbound-cidrs'), '169.254.169.254/32,10.0.0.0/8,fd00::/8,::1/128');
  }
});

test('without exclusion annotations the capture step gets no outbound exclusion flags', (t) => {
  const init = byName(injectPod(pod(), native()).spec.initContainers, INIT_CONTAINER);
  t.false(init.args?.includes('--exclude-outbound-ports'));
  t.false(init.args?.includes('--exclude-outbound-cidrs'));
});

// ---- idempotence

for (const [form, s] of [
  ['native', native()],
  ['classic', classic()],
] as const) {
  test(`${form} form is idempotent: a second pass changes nothing and its patch is empty`, (t) => {
    for (const input of [pod(), probedPod()]) {
      const once = injectPod(input, s);
      t.notDeepEqual(once, input);
      t.deepEqual(injectPod(once, s), once);
      t.deepEqual(injectionPatch(once, s), []);
      // Also under the other form's settings: an injected pod is never re-shaped.
      t.deepEqual(injectionPatch(once, s.nativeSidecar ? classic() : native()), []);
    }
  });
}

// ---- shape checks

test('assertPod refuses what is not a pod, naming the problem', (t) => {
  const cases: [unknown, RegExp][] = [
    [null, /not an object/],
    [{ metadata: {} }, /spec is missing/],
    [{ spec: { containers: 'web' } }, /spec\.containers is not a list/],
    [{ spec: { containers: [{ image: 'x' }] } }, /spec\.containers is not a list of named/],
    [{ spec: { containers: [], initContainers: {} } }, /spec\.initContainers/],
    [{ metadata: { annotations: { 'weft.dev/inject': false } }, spec: { containers: [] } }, /quote the values/],
    [{ metadata: [], spec: { containers: [] } }, /metadata is not an object/],
  ];
  for (const [x, message] of cases) {
    const err = t.throws(() => assertPod(x), { instanceOf: InjectError });
    t.is(err?.code, 'WEFT_ERR_INJECT_POD');
    t.regex(err?.message ?? '', message);
  }
  t.throws(() => injectPod({ spec: {} } as Pod, native()), { instanceOf: InjectError });
});

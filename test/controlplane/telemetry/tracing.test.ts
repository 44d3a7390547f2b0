// Control-plane tracing on a real pipeline (FileProvider over a temp directory) exporting to the test's OTLP/HTTP
// receiver: a translate span per cycle with the snapshot's counts and the status problems, an ERROR span for a
// translator that throws, ratio 0 records nothing, and a collector that is away is counted, not waited for.
// Push spans are covered end to end in test/local/trace-e2e.test.ts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FileProvider } from '../../../controlplane/resources/files.ts';
import { Pipeline } from '../../../controlplane/runtime/pipeline.ts';
import { Supervisor } from '../../../controlplane/runtime/runner.ts';
import { type ControlPlaneTracingOptions, startControlPlaneTracing } from '../../../controlplane/telemetry/tracing.ts';
import { translate } from '../../../controlplane/translate/translate.ts';
import { OtlpReceiver } from '../../helpers/otlp-receiver.ts';

const test = anyTest.serial as TestFn<{ dir: string }>;

test.beforeEach(async (t) => {
  t.context.dir = await mkdtemp(path.join(tmpdir(), 'weft-cp-tracing-'));
});

test.afterEach.always(async (t) => {
  await rm(t.context.dir, { recursive: true, force: true });
});

// A Service with a route whose second backend does not exist: ResolvedRefs=False on its parent.
const world = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {weft.dev/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: example.com/web:1, ports: [{containerPort: 8080}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: '', kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80}, {name: missing, port: 80}]}]
`;

async function run(
  t: import('ava').ExecutionContext<{ dir: string }>,
  options: ControlPlaneTracingOptions,
  throwAfter = Number.POSITIVE_INFINITY,
) {
  await writeFile(path.join(t.context.dir, 'world.yaml'), world);
  let translations = 0;
  const logger = pino({ level: 'silent' });
  const pipeline = new Pipeline({
    provider: () => new FileProvider({ paths: [t.context.dir], debounceMs: 10 }),
    translate: (snapshot, o) => {
      if (++translations > throwAfter) throw new Error('translator broke');
      return translate(snapshot, o);
    },
    logger,
  });
  const tracing = startControlPlaneTracing({ scheduledDelayMs: 20, ...options }, { pipeline });
  const supervisor = new Supervisor({ logger });
  for (const r of pipeline.runners) supervisor.add(r);
  const events: boolean[] = [];
  pipeline.onTranslation((e) => events.push(e.ok));
  await supervisor.start();
  t.teardown(async () => {
    await supervisor.close();
    await tracing.shutdown(500);
  });
  const until = async (n: number) => {
    for (let i = 0; i < 500 && events.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  await until(1);
  return { pipeline, tracing, events, until };
}

test('a translate span per cycle: snapshot counts, proxies, status problems; a throwing translator is an ERROR span', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  const { tracing, events, until } = await run(t, { endpoint: rx.url, serviceName: 'cp' }, 1);
  await writeFile(path.join(t.context.dir, 'more.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n');
  await until(2);
  t.deepEqual(events, [true, false]);
  await tracing.flush();
  await rx.waitFor((s) => s.length >= 2);
  const [ok, failed] = rx.spans;
  t.is(ok.name, 'translate');
  t.is(ok.resource['service.name'], 'cp');
  t.is(ok.parentSpanId, '');
  t.like(ok.attributes, {
    'weft.snapshot.Deployment': 1,
    'weft.snapshot.Pod': 2,
    'weft.snapshot.HTTPRoute': 1,
    'weft.proxies': 2,
    'weft.proxies.changed': 2,
    'weft.status.problems': 1,
  });
  t.is(ok.statusCode, 0);
  t.is(failed.name, 'translate');
  t.is(failed.statusCode, 2);
  t.false('weft.status.problems' in failed.attributes);
  t.true(BigInt(ok.endTimeUnixNano) > BigInt(ok.startTimeUnixNano));
});

test('ratio 0 records no span; a collector that is away costs counted failures, not waiting', async (t) => {
  const rx = await OtlpReceiver.start();
  t.teardown(() => rx.close());
  const quiet = await run(t, { endpoint: rx.url, sampleRatio: 0 });
  await quiet.tracing.flush();
  t.is(rx.requests, 0);

  const gone = await OtlpReceiver.start();
  const url = gone.url;
  await gone.close();
  const registry = new Registry();
  const away = await run(t, { endpoint: url, registry, exportTimeoutMs: 500 });
  await away.tracing.flush();
  const text = await registry.metrics();
  t.regex(text, /^weft_controlplane_trace_export_failures_total [1-9]/m);
  t.regex(text, /^weft_controlplane_trace_spans_dropped_total [1-9]/m);
  t.throws(() => startControlPlaneTracing({ endpoint: url, sampleRatio: 2 }), { instanceOf: RangeError });
});

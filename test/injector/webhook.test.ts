// The webhook over real HTTPS (a throwaway self-signed certificate made by openssl): AdmissionReview v1 in and out,
// dry-run, what it leaves alone, every malformed input, the body limit, the request timeout, concurrency, and
// failures inside weft answered so the failurePolicy decides.
import { request } from 'node:https';
import { connect } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import {
  applyPatch,
  injectPod,
  type NamespaceInfo,
  type PatchOperation,
  type Pod,
  type ReviewEvent,
  startWebhook,
  type WebhookOptions,
} from '../../injector/index.ts';
import { selfSigned } from '../helpers/self-signed.ts';
import { classic, labelled, native, pod, probedPod, unlabelled } from './support.ts';

const cert = selfSigned('weft-injector.weft-system.svc', 'localhost');

const namespaces = new Map<string, NamespaceInfo>([
  ['shop', labelled('shop')],
  ['plain', unlabelled('plain')],
  ['kube-system', labelled('kube-system')],
]);

async function start(t: ExecutionContext, overrides: Partial<WebhookOptions> = {}) {
  const events: ReviewEvent[] = [];
  const webhook = await startWebhook({
    port: 0,
    host: '127.0.0.1',
    tls: { cert: cert.certChain, key: cert.privateKey },
    settings: native(),
    namespaceLookup: (name) => namespaces.get(name),
    logger: pino({ level: 'silent' }),
    onReview: (e) => events.push(e),
    ...overrides,
  });
  t.teardown(() => webhook.close());
  return { webhook, events };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: the body is whatever the server sent; tests look into it
  json: any;
}

function send(
  port: number,
  body: string | Buffer | Buffer[],
  opts: { method?: string; path?: string; chunked?: boolean; ca?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const parts = Array.isArray(body) ? body : [Buffer.from(body)];
    const length = parts.reduce((n, b) => n + b.length, 0);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/inject',
        method: opts.method ?? 'POST',
        ca: opts.ca ?? cert.certChain,
        servername: 'weft-injector.weft-system.svc',
        agent: false,
        headers: {
          'content-type': 'application/json',
          ...(opts.chunked ? {} : { 'content-length': length }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

const post = (port: number, review: unknown) => send(port, JSON.stringify(review));

function review(
  object: unknown,
  edit: (request: Record<string, unknown>) => void = () => {},
  uid = '705ab4f5-6393-11e8-b7cc-42010a800002',
) {
  const request: Record<string, unknown> = {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    requestResource: { group: '', version: 'v1', resource: 'pods' },
    name: '',
    namespace: 'shop',
    operation: 'CREATE',
    userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
    object,
    oldObject: null,
    dryRun: false,
    options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
  };
  edit(request);
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

function decodePatch(response: { patch?: string; patchType?: string }): PatchOperation[] {
  return JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8'));
}

/** The pod as the API server sends it on CREATE from a ReplicaSet: generateName, no name, no namespace. */
function replicaSetPod(): Pod {
  const p = probedPod();
  p.metadata = { generateName: 'web-7d4b9c-', labels: { app: 'web' } };
  return p;
}

test('a Pod CREATE in a labelled namespace is answered with the injection as a base64 JSON Patch', async (t) => {
  const { webhook, events } = await start(t);
  const object = replicaSetPod();
  const a = await post(webhook.port, review(object));
  t.is(a.status, 200);
  t.is(a.headers['content-type'], 'application/json');
  t.is(a.json.apiVersion, 'admission.k8s.io/v1');
  t.is(a.json.kind, 'AdmissionReview');
  const r = a.json.response;
  t.is(r.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
  t.true(r.allowed);
  t.is(r.patchType, 'JSONPatch');
  t.deepEqual(applyPatch(object, decodePatch(r)), injectPod(object, native()));
  t.like(events[0], {
    outcome: 'injected',
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    namespace: 'shop',
    pod: 'web-7d4b9c-…',
    dryRun: false,
  });
  t.true((events[0].operations ?? 0) > 0);
});

test('the classic form is served when the settings say native sidecars are unsupported', async (t) => {
  const { webhook } = await start(t, { settings: classic() });
  const object = pod();
  const a = await post(webhook.port, review(object));
  const injected = applyPatch(object, decodePatch(a.json.response));
  t.deepEqual(injected, injectPod(object, classic()));
  t.is(injected.spec.containers[0].name, 'weft-proxy');
});

test('a dry-run review is answered exactly as the real one', async (t) => {
  const { webhook, events } = await start(t);
  const real = await post(webhook.port, review(replicaSetPod()));
  const dry = await post(
    webhook.port,
    review(replicaSetPod(), (r) => {
      r.dryRun = true;
    }),
  );
  t.is(dry.status, 200);
  t.deepEqual(dry.json, real.json);
  t.like(events[1], { outcome: 'injected', dryRun: true });
});

test('an injected pod is allowed with no patch', async (t) => {
  const { webhook, events } = await start(t);
  const a = await post(webhook.port, review(injectPod(pod(), native())));
  t.deepEqual(a.json.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  t.like(events[0], { outcome: 'skipped' });
  t.regex(events[0].reason, /already injected/);
});

test('pods that are not to be injected are allowed untouched, with the reason reported', async (t) => {
  const { webhook, events } = await start(t);
  const cases: [unknown, RegExp][] = [
    [
      review(pod(), (r) => {
        r.namespace = 'plain';
      }),
      /not labelled/,
    ],
    [
      review(pod(), (r) => {
        r.namespace = 'kube-system';
      }),
      /never injected/,
    ],
    [
      review(
        pod((p) => {
          p.spec.hostNetwork = true;
        }),
      ),
      /hostNetwork/,
    ],
    [
      review(
        pod((p) => {
          p.metadata!.annotations!['weft.dev/inject'] = 'false';
        }),
      ),
      /opted out/,
    ],
  ];
  for (const [body, reason] of cases) {
    const a = await post(webhook.port, body);
    t.is(a.status, 200);
    t.deepEqual(a.json.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    const e = events.at(-1);
    t.is(e?.outcome, 'skipped');
    t.regex(e?.reason ?? '', reason);
  }
});

test('only Pod CREATE is injected: other kinds, UPDATE, DELETE and subresources are allowed untouched', async (t) => {
  const { webhook, events } = await start(t);
  const cases: ((r: Record<string, unknown>) => void)[] = [
    (r) => {
      r.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
      r.resource = { group: 'apps', version: 'v1', resource: 'deployments' };
    },
    (r) => {
      r.operation = 'UPDATE';
      r.oldObject = pod();
    },
    (r) => {
      r.operation = 'DELETE';
      r.object = null;
    },
    (r) => {
      r.subResource = 'ephemeralcontainers';
      r.operation = 'UPDATE';
    },
  ];
  for (const edit of cases) {
    const a = await post(webhook.port, review(pod(), edit));
    t.is(a.status, 200);
    t.deepEqual(a.json.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    t.is(events.at(-1)?.outcome, 'skipped');
  }
  t.regex(events[0].reason, /not a Pod \(Deployment\)/);
  t.regex(events[1].reason, /operation UPDATE/);
});

test('a pod annotation weft cannot use is refused, naming the annotation', async (t) => {
  const { webhook, events } = await start(t);
  const a = await post(
    webhook.port,
    review(
      pod((p) => {
        p.metadata!.annotations!['weft.dev/exclude-outbound-ips'] = '10.0.0.0/40';
      }),
    ),
  );
  t.is(a.status, 200);
  t.false(a.json.response.allowed);
  t.is(a.json.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
  t.is(a.json.response.status.code, 400);
  t.regex(a.json.response.status.message, /annotation weft\.dev\/exclude-outbound-ips: "10\.0\.0\.0\/40"/);
  t.is(a.json.response.patch, undefined);
  t.is(events[0].outcome, 'denied');
});

test('a body that is not JSON is answered 400 with an AdmissionReview error', async (t) => {
  const { webhook, events } = await start(t);
  for (const body of ['{"apiVersion": "admission.k8s.io/v1", "kind": ', 'not json', '']) {
    const a = await send(webhook.port, body);
    t.is(a.status, 400);
    t.is(a.json.kind, 'AdmissionReview');
    t.false(a.json.response.allowed);
    t.regex(a.json.response.status.message, /not JSON/);
    t.is(events.at(-1)?.outcome, 'bad-request');
  }
});

test('a review of the wrong kind or apiVersion, or without request or uid, is refused as a bad request', async (t) => {
  const { webhook, events } = await start(t);
  const good = review(pod());
  const cases: [unknown, string, RegExp][] = [
    [{ ...good, apiVersion: 'admission.k8s.io/v1beta1' }, '705ab4f5-6393-11e8-b7cc-42010a800002', /apiVersion/],
    [{ ...good, kind: 'Pod' }, '705ab4f5-6393-11e8-b7cc-42010a800002', /want kind AdmissionReview/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, '', /no request/],
    [
      review(pod(), (r) => {
        delete r.uid;
      }),
      '',
      /no uid/,
    ],
    [review(pod(), () => {}, ''), '', /no uid/],
    [review({ spec: {} }), '705ab4f5-6393-11e8-b7cc-42010a800002', /request\.object is not a pod: spec\.containers/],
    [review(null), '705ab4f5-6393-11e8-b7cc-42010a800002', /request\.object is not a pod/],
    [[1, 2, 3], '', /not an AdmissionReview object/],
    ['a string', '', /not an AdmissionReview object/],
  ];
  for (const [body, uid, message] of cases) {
    const a = await post(webhook.port, body);
    t.is(a.status, 200);
    t.is(a.json.apiVersion, 'admission.k8s.io/v1');
    t.is(a.json.response.uid, uid);
    t.false(a.json.response.allowed);
    t.is(a.json.response.status.code, 400);
    t.regex(a.json.response.status.message, message);
    t.is(events.at(-1)?.outcome, 'bad-request');
  }
});

test('a 10 MB review is refused with 413 unparsed, and the server goes on serving', async (t) => {
  const { webhook, events } = await start(t);
  // Valid JSON, a real review, padded past the limit: 413 proves the size is checked before parsing.
  const huge = review(
    pod((p) => {
      p.metadata!.annotations!.padding = 'x'.repeat(10 * 1024 * 1024);
    }),
  );
  const a = await post(webhook.port, huge);
  t.is(a.status, 413);
  t.is(a.headers.connection, 'close');
  t.false(a.json.response.allowed);
  t.is(a.json.response.status.code, 413);
  t.is(events[0].outcome, 'bad-request');
  t.regex(events[0].reason, /larger than 3145728 bytes/);

  // Without a Content-Length (chunked), the limit holds while reading.
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const b = await send(
    webhook.port,
    Array.from({ length: 10 }, () => chunk),
    { chunked: true },
  );
  t.is(b.status, 413);

  const ok = await post(webhook.port, review(pod()));
  t.is(ok.status, 200);
  t.true(ok.json.response.allowed);
  t.is(ok.json.response.patchType, 'JSONPatch');
});

test('a review just under the limit is served', async (t) => {
  const { webhook } = await start(t, { maxBodyBytes: 64 * 1024 });
  const body = review(
    pod((p) => {
      p.metadata!.annotations!.padding = 'x'.repeat(60 * 1024);
    }),
  );
  t.is((await post(webhook.port, body)).status, 200);
  const over = review(
    pod((p) => {
      p.metadata!.annotations!.padding = 'x'.repeat(64 * 1024);
    }),
  );
  t.is((await post(webhook.port, over)).status, 413);
});

test('concurrent reviews are each answered with their own uid and patch', async (t) => {
  const { webhook, events } = await start(t);
  const n = 40;
  const pods = Array.from({ length: n }, (_, i) =>
    pod((p) => {
      p.metadata!.name = `web-${i}`;
      if (i % 2 === 0) p.spec.containers[0].readinessProbe = { tcpSocket: { port: 8000 + i } };
    }),
  );
  const answers = await Promise.all(
    pods.map((p, i) =>
      post(
        webhook.port,
        review(p, () => {}, `uid-${i}`),
      ),
    ),
  );
  answers.forEach((a, i) => {
    t.is(a.status, 200);
    t.is(a.json.response.uid, `uid-${i}`);
    t.deepEqual(applyPatch(pods[i], decodePatch(a.json.response)), injectPod(pods[i], native()));
  });
  t.is(events.filter((e) => e.outcome === 'injected').length, n);
});

test('a namespace weft does not know yet, or a failing lookup, is answered 500 so the failurePolicy decides', async (t) => {
  let fail = false;
  const { webhook, events } = await start(t, {
    namespaceLookup: (name) => {
      if (fail) throw new Error('informer not synced');
      return namespaces.get(name);
    },
  });
  const unknown = await post(
    webhook.port,
    review(pod(), (r) => {
      r.namespace = 'brand-new';
    }),
  );
  t.is(unknown.status, 500);
  t.regex(unknown.json.response.status.message, /namespace brand-new is not known/);
  t.like(events[0], { outcome: 'error', uid: '705ab4f5-6393-11e8-b7cc-42010a800002' });

  fail = true;
  const failing = await post(webhook.port, review(pod()));
  t.is(failing.status, 500);
  t.regex(failing.json.response.status.message, /informer not synced/);
  t.is(events[1].outcome, 'error');

  fail = false;
  t.is((await post(webhook.port, review(pod()))).json.response.patchType, 'JSONPatch');
});

test('an async namespace lookup is awaited', async (t) => {
  const { webhook } = await start(t, {
    namespaceLookup: async (name) => {
      await new Promise((r) => setImmediate(r));
      return namespaces.get(name);
    },
  });
  t.is((await post(webhook.port, review(pod()))).json.response.patchType, 'JSONPatch');
});

test('a throwing onReview hook does not break the answer', async (t) => {
  const { webhook } = await start(t, {
    onReview: () => {
      throw new Error('metrics broke');
    },
  });
  const a = await post(webhook.port, review(pod()));
  t.is(a.status, 200);
  t.is(a.json.response.patchType, 'JSONPatch');
});

test('other paths are 404, other methods 405, /healthz 200', async (t) => {
  const { webhook } = await start(t);
  t.is((await send(webhook.port, '{}', { path: '/mutate' })).status, 404);
  const get = await send(webhook.port, '', { method: 'GET' });
  t.is(get.status, 405);
  t.is(get.headers.allow, 'POST');
  t.is((await send(webhook.port, '', { method: 'GET', path: '/healthz' })).status, 200);
});

test('a request whose body never completes is cut off by the request timeout', async (t) => {
  const { webhook } = await start(t, { requestTimeoutMs: 300 });
  const socket = connect({
    host: '127.0.0.1',
    port: webhook.port,
    ca: cert.certChain,
    servername: 'weft-injector.weft-system.svc',
  });
  let received = '';
  socket.on('data', (d: Buffer) => {
    received += d.toString('utf8');
  });
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(
    'POST /inject HTTP/1.1\r\nHost: weft\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"apiV',
  );
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  t.regex(received, /^HTTP\/1\.1 408 /);
  // And the server still answers.
  t.is((await post(webhook.port, review(pod()))).status, 200);
});

test('the certificate can be replaced while serving', async (t) => {
  const { webhook } = await start(t);
  const next = selfSigned('weft-injector.weft-system.svc');
  webhook.updateTls({ cert: next.certChain, key: next.privateKey });
  const a = await send(webhook.port, JSON.stringify(review(pod())), { ca: next.certChain });
  t.is(a.status, 200);
  await t.throwsAsync(send(webhook.port, JSON.stringify(review(pod())), { ca: cert.certChain }), {
    message: /self[- ]signed|unable to verify|certificate/i,
  });
});

// The validators the chart test relies on find what they must: otherwise "every object validates" proves nothing.
import test from 'ava';
import { crdProblems, type KubeObject, unknownFields, validateObject } from './validate.ts';

const deployment = (container: Record<string, unknown>): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'd', namespace: 'n' },
  spec: {
    selector: { matchLabels: { app: 'd' } },
    template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'i', ...container }] } },
  },
});

test('a valid Deployment has no problem', async (t) => {
  t.deepEqual(await validateObject(deployment({ resources: { limits: { memory: '64Mi' } } })), []);
});

test('a bad quantity, a wrong type and a missing required field are found', async (t) => {
  t.regex((await validateObject(deployment({ resources: { limits: { cpu: 'lots' } } }))).join(), /quantity/);
  t.regex((await validateObject(deployment({ args: 'controlplane' }))).join(), /args.*must be array/);
  const noSelector = deployment({});
  delete (noSelector.spec as Record<string, unknown>).selector;
  t.regex((await validateObject(noSelector)).join(), /selector/);
});

test('an unknown field is found at any depth, map keys are not fields', async (t) => {
  t.deepEqual(await validateObject(deployment({ env: [{ name: 'A', valu: 'x' }] })), [
    'Deployment/d: unknown field .spec.template.spec.containers[0].env[0].valu',
  ]);
  t.deepEqual(unknownFields({ metadata: { labels: { anything: 'x' } }, data: { k: 'v' } }, 'V1ConfigMap'), []);
  const webhook = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'w' },
    webhooks: [
      {
        name: 'a.b.c',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        clientConfig: { url: 'https://x' },
        timeoutSecond: 5,
      },
    ],
  };
  t.deepEqual(await validateObject(webhook), [
    'MutatingWebhookConfiguration/w: unknown field .webhooks[0].timeoutSecond',
  ]);
});

test('a kind without a schema is a problem, not a pass', async (t) => {
  t.deepEqual(await validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }), [
    'Widget/w: no schema for example.com/v1 Widget',
  ]);
});

const crd = (schema: Record<string, unknown>): KubeObject => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: schema } }],
  },
});

test('CRDs: a structural schema passes, each broken rule is named', async (t) => {
  const good = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
          tags: { type: 'array', items: { type: 'string' } },
          extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          labels: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
  };
  t.deepEqual(await validateObject(crd(good)), []);
  t.deepEqual(crdProblems(crd({ type: 'object', properties: { spec: { properties: {} } } })), [
    'v1.spec: a type is required',
  ]);
  t.deepEqual(
    crdProblems(crd({ type: 'object', properties: { spec: { type: 'object', anyOf: [{ type: 'object' }] } } })),
    ['v1.spec.anyOf[0]: type is not allowed inside allOf/anyOf/oneOf/not'],
  );
  t.deepEqual(crdProblems(crd({ type: 'object', properties: { tags: { type: 'array' } } })), [
    'v1.tags: an array needs items',
  ]);
  t.deepEqual(
    crdProblems(crd({ type: 'object', properties: { metadata: { type: 'object', properties: { labels: {} } } } })),
    [
      'v1.metadata.labels: a type is required',
      'v1.metadata: only type object and constraints on name and generateName are allowed',
    ],
  );
  const misnamed = crd(good);
  misnamed.metadata.name = 'widget.example.com';
  t.deepEqual(crdProblems(misnamed), ['metadata.name must be widgets.example.com']);
});

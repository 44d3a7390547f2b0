// Objects the cluster tests (cluster.test.ts, controlplane-command.test.ts) put on the test API server: the chart's
// MutatingWebhookConfiguration as installed (no caBundle yet) and Deployments.

export const WEFT_NAMESPACE = 'weft-system';
const NS = WEFT_NAMESPACE;

/** The chart's MutatingWebhookConfiguration, as installed: no caBundle yet. */
export const INJECTOR_CONFIGURATION = {
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'MutatingWebhookConfiguration',
  metadata: { name: 'weft-injector' },
  webhooks: [
    {
      name: 'inject.weft.dev',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      clientConfig: { service: { namespace: NS, name: 'weft-controlplane', path: '/inject', port: 443 } },
      rules: [
        { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
      ],
      // Broad on purpose: the injector itself must refuse kube-system and opted-out pods.
      namespaceSelector: {
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [NS] }],
      },
    },
  ],
};

export function deployment(namespace: string, name: string, replicas: number, annotations?: Record<string, string>) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, ...(annotations ? { annotations } : {}) },
        spec: { containers: [{ name: 'app', image: 'echo', ports: [{ containerPort: 8080 }] }] },
      },
    },
  };
}

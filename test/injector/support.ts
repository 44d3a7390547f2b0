// Fixtures shared by the injector tests: settings, pods and namespaces as the API server would hand them over.
import { type InjectSettings, type InjectSettingsInput, injectSettings } from '../../injector/settings.ts';
import type { Container, NamespaceInfo, Pod } from '../../injector/types.ts';

export function settings(overrides: Partial<InjectSettingsInput> = {}): InjectSettings {
  return injectSettings({ version: '0.1.0-test', image: 'registry.test/weft:0.1.0-test', ...overrides });
}

export const native = () => settings({ nativeSidecar: true });
export const classic = () => settings({ nativeSidecar: false });

export const labelled = (name = 'shop'): NamespaceInfo => ({ name, labels: { 'weft.dev/inject': 'enabled' } });
export const unlabelled = (name = 'shop'): NamespaceInfo => ({ name, labels: { team: 'shop' } });

export function app(overrides: Partial<Container> = {}): Container {
  return {
    name: 'web',
    image: 'registry.test/web:1',
    ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    ...overrides,
  };
}

/** A pod with one app container; `edit` may change anything. */
export function pod(edit: (p: Pod) => void = () => {}): Pod {
  const p: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' }, annotations: { owner: 'shop-team' } },
    spec: {
      serviceAccountName: 'web',
      containers: [app()],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
  edit(p);
  return p;
}

/** A pod with one probe of each kind on its app container, and a user init container. */
export function probedPod(): Pod {
  return pod((p) => {
    p.spec.initContainers = [{ name: 'migrate', image: 'registry.test/migrate:1' }];
    p.spec.containers = [
      app({
        livenessProbe: {
          httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'x-probe', value: '1' }] },
          periodSeconds: 7,
          failureThreshold: 4,
        },
        readinessProbe: { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
        startupProbe: { grpc: { port: 9090, service: 'web.Health' }, periodSeconds: 1, failureThreshold: 30 },
      }),
      app({
        name: 'worker',
        ports: [],
        livenessProbe: { exec: { command: ['/bin/true'] } },
      }),
    ];
  });
}

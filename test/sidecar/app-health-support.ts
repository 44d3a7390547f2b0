// Shared by the app-health tests: the smallest valid sidecar config (no listeners, no identity), with which a proxy
// is ready as soon as it has it.
export const MINIMAL_SIDECAR_CONFIG = {
  apiVersion: 'weft.dev/v1alpha1',
  proxy: { id: 'sidecar:shop/web-1', mode: 'sidecar', namespace: 'shop', name: 'web-1' },
  trust: { trustDomain: 'cluster.local' },
  listeners: [],
  routeTables: {},
  clusters: {},
};

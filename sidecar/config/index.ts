// The public surface of the ProxyConfig contract: what the control plane, the injector and the
// proxy import. Everything else in sidecar/config/ is an implementation detail.
export * from './errors.ts';
export * from './proxy-config.ts';
export * from './regex.ts';
export {
  type ProxyConfigValidation,
  parseProxyConfig,
  SUPPORTED_PROXY_CONFIG_VERSIONS,
  validateProxyConfig,
} from './validate.ts';

// The injector's public surface: what bin/ (the webhook's host and `weft inject`) and tests import.
export * from './annotations.ts';
export * from './errors.ts';
export * from './inject.ts';
export * from './patch.ts';
export * from './probes.ts';
export * from './settings.ts';
export type * from './types.ts';
export * from './webhook.ts';
export * from './workloads.ts';

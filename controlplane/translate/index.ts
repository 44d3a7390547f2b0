export { GATEWAY_FEATURES, MESH_FEATURES, SUPPORTED_FEATURES } from './features.ts';
export { compareMatches, type MatchSummary, summarize } from './precedence.ts';
export { translate } from './translate.ts';
export * from './types.ts';

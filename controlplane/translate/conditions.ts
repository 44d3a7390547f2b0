import type { ConditionOut } from './types.ts';

// Condition reasons weft sets, spelled as the Gateway API defines them (apis/v1 *_types.go).
export const Reason = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Invalid: 'Invalid',
  InvalidParameters: 'InvalidParameters',
  ListenersNotValid: 'ListenersNotValid',
  UnsupportedAddress: 'UnsupportedAddress',
  AddressNotAssigned: 'AddressNotAssigned',
  AddressNotUsable: 'AddressNotUsable',
  NoConflicts: 'NoConflicts',
  HostnameConflict: 'HostnameConflict',
  OverlappingHostnames: 'OverlappingHostnames',
  ProtocolConflict: 'ProtocolConflict',
  UnsupportedProtocol: 'UnsupportedProtocol',
  UnsupportedValue: 'UnsupportedValue',
  InvalidCertificateRef: 'InvalidCertificateRef',
  InvalidRouteKinds: 'InvalidRouteKinds',
  RefNotPermitted: 'RefNotPermitted',
  NotAllowedByListeners: 'NotAllowedByListeners',
  NoMatchingListenerHostname: 'NoMatchingListenerHostname',
  NoMatchingParent: 'NoMatchingParent',
  IncompatibleFilters: 'IncompatibleFilters',
  InvalidKind: 'InvalidKind',
  BackendNotFound: 'BackendNotFound',
  SupportedVersion: 'SupportedVersion',
} as const;

export function cond(
  type: string,
  ok: boolean,
  reason: string,
  message: string,
  observedGeneration: number,
): ConditionOut {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration };
}

/**
 * Problem messages as one condition message, each said once in the order first found: two backendRefs (or
 * certificateRefs) to the same missing object are one problem to the reader, not two.
 */
export function joinMessages(messages: Iterable<string>): string {
  return [...new Set(messages)].join('; ');
}

// Errors of traffic capture: the iptables init step and the original-destination lookup. Codes are stable: the
// init step prints them and exits non-zero, tests match them.

export const CaptureErrorCode = {
  /** Options that cannot make a rule set (a port out of range, a CIDR that does not parse…). */
  BadOption: 'WEFT_ERR_CAPTURE_OPTION',
  /** Changing iptables needs root (CAP_NET_ADMIN); --dry-run does not. */
  NotRoot: 'WEFT_ERR_CAPTURE_NOT_ROOT',
  /** iptables or ip6tables is not installed. */
  NoIptables: 'WEFT_ERR_CAPTURE_NO_IPTABLES',
  /** An iptables command failed; the message names it and carries its stderr. */
  IptablesFailed: 'WEFT_ERR_CAPTURE_IPTABLES',
} as const;

export type CaptureErrorCode = (typeof CaptureErrorCode)[keyof typeof CaptureErrorCode];

export class CaptureError extends Error {
  readonly code: CaptureErrorCode;

  constructor(code: CaptureErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CaptureError';
    this.code = code;
  }
}

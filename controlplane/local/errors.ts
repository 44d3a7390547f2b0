// Errors of `weft local`, with stable codes.

export type LocalErrorCode =
  /** Another `weft local up` owns the state directory. */
  | 'WEFT_ERR_LOCAL_RUNNING'
  /** No running `weft local` was found through the state directory. */
  | 'WEFT_ERR_LOCAL_NOT_RUNNING'
  /** `--from` names no pod of the running mesh, or a pod without a sidecar. */
  | 'WEFT_ERR_LOCAL_POD_NOT_FOUND'
  /** A port of the control plane is taken. */
  | 'WEFT_ERR_LOCAL_BIND'
  /** The manifests directory does not exist or holds nothing to run. */
  | 'WEFT_ERR_LOCAL_INPUT'
  /** A request of `weft local curl` failed before any response. */
  | 'WEFT_ERR_LOCAL_REQUEST'
  /** `--netns` without root. */
  | 'WEFT_ERR_LOCAL_NOT_ROOT'
  /** Namespaces, links, chains or processes of an earlier run are still there (`weft local down` removes them). */
  | 'WEFT_ERR_LOCAL_LEFTOVERS'
  /** Setting up a pod's network namespace failed (its capture init step, its Service rules). */
  | 'WEFT_ERR_LOCAL_NETNS';

export class LocalError extends Error {
  readonly code: LocalErrorCode;
  constructor(code: LocalErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LocalError';
    this.code = code;
  }
}

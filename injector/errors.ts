// Errors of the injector. Codes are stable: the webhook and `weft inject` branch on `code`, never on the message.

export type InjectErrorCode =
  /** A `weft.dev/…` annotation on the pod has a value weft cannot use; the pod is refused, not half-injected. */
  | 'WEFT_ERR_INJECT_ANNOTATION'
  /** The injection settings are invalid (a bad image, port or address): a configuration error of the operator. */
  | 'WEFT_ERR_INJECT_SETTINGS'
  /** The object handed to the injector is not a pod (template) it can work on. */
  | 'WEFT_ERR_INJECT_POD';

export class InjectError extends Error {
  readonly code: InjectErrorCode;

  constructor(code: InjectErrorCode, message: string) {
    super(message);
    this.name = 'InjectError';
    this.code = code;
  }
}

// Errors and diagnostics of the resource loaders. Every one carries the place in the input it
// is about (file, 1-based line and column) so `weft translate` and `weft local` can print them
// the way a compiler does: `file:line:col: Kind ns/name: reason`.

export type ResourceErrorCode =
  | 'WEFT_ERR_RESOURCE_INVALID'
  | 'WEFT_ERR_YAML_SYNTAX'
  | 'WEFT_ERR_FILE_READ'
  | 'WEFT_ERR_POOL_EXHAUSTED';

export interface SourcePosition {
  file: string;
  /** 1-based; 0 when the problem concerns no particular line (an unreadable file). */
  line: number;
  /** 1-based; 0 when unknown. */
  column: number;
}

export interface ObjectRef {
  kind?: string;
  namespace?: string;
  name?: string;
}

export interface ResourceErrorInit extends SourcePosition, ObjectRef {
  reason: string;
}

function location(p: SourcePosition): string {
  if (!p.file) return '';
  if (!p.line) return `${p.file}: `;
  return `${p.file}:${p.line}:${p.column || 1}: `;
}

function subject(r: ObjectRef): string {
  if (!r.kind) return '';
  if (!r.name) return `${r.kind}: `;
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}: `;
}

/**
 * A document weft reads but cannot accept as written; the rest of the input still loads.
 * Note: `name` is the offending object's metadata.name ('' when unknown), not the class name —
 * classify errors by `code` or `instanceof`.
 */
export class ResourceError extends Error {
  readonly code: ResourceErrorCode = 'WEFT_ERR_RESOURCE_INVALID';
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly kind?: string;
  readonly namespace?: string;
  override name: string;
  readonly reason: string;

  constructor(init: ResourceErrorInit) {
    super(init.reason);
    this.file = init.file;
    this.line = init.line;
    this.column = init.column;
    if (init.kind !== undefined) this.kind = init.kind;
    if (init.namespace !== undefined) this.namespace = init.namespace;
    this.name = init.name ?? '';
    this.reason = init.reason;
    this.message = this.toString();
  }

  override toString(): string {
    return `${location(this)}${subject(this)}${this.reason}`;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      file: this.file,
      line: this.line,
      column: this.column,
      kind: this.kind,
      namespace: this.namespace,
      name: this.name || undefined,
      reason: this.reason,
    };
  }
}

/** The YAML (or JSON) text itself is malformed; nothing of that file is used. */
export class YamlSyntaxError extends ResourceError {
  override readonly code = 'WEFT_ERR_YAML_SYNTAX';
}

/** A file or directory given to the loader cannot be read. */
export class FileReadError extends ResourceError {
  override readonly code = 'WEFT_ERR_FILE_READ';
}

/** An address pool of the materializer is not a valid IPv4 CIDR, or has no free address left. */
export class AddressPoolError extends Error {
  readonly code: 'WEFT_ERR_POOL_INVALID' | 'WEFT_ERR_POOL_EXHAUSTED';
  constructor(code: AddressPoolError['code'], message: string) {
    super(message);
    this.name = 'AddressPoolError';
    this.code = code;
  }
}

/** The FileProvider's report of an AddressPoolError: the input loaded but could not be materialized. */
export class MaterializeError extends ResourceError {
  override readonly code = 'WEFT_ERR_POOL_EXHAUSTED';
}

/** A later document replaced an earlier one of the same kind and key (what `kubectl apply` does). */
export class ResourceWarning {
  readonly code = 'WEFT_WARN_DUPLICATE';
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly reason: string;
  /** Where the replaced object came from. */
  readonly previous: SourcePosition;

  constructor(
    init: SourcePosition & { kind: string; namespace?: string; name: string; reason: string; previous: SourcePosition },
  ) {
    this.file = init.file;
    this.line = init.line;
    this.column = init.column;
    this.kind = init.kind;
    if (init.namespace !== undefined) this.namespace = init.namespace;
    this.name = init.name;
    this.reason = init.reason;
    this.previous = init.previous;
  }

  toString(): string {
    return `${location(this)}${subject(this)}${this.reason}`;
  }
}

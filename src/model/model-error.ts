/**
 * A model file or download that cannot be used, with the reason in words a user can act on.
 * (Model tooling runs outside request handling, so this is not an HTTP AppError.)
 */
export class ModelError extends Error {
  constructor(
    message: string,
    readonly kind: ModelErrorKind,
  ) {
    super(message);
    this.name = 'ModelError';
  }
}

export type ModelErrorKind =
  | 'not_onnx'
  | 'unsupported_graph'
  | 'checksum_mismatch'
  | 'download_failed'
  | 'offline';

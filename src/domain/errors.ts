/**
 * Named errors, in one place, and their HTTP status (toHttpStatus). Expected per-image outcomes are
 * results with a reason, not exceptions; these are for requests that cannot be served.
 */
export class AppError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string) {
    super(message, 400, 'bad_request');
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super(message, 404, 'not_found');
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(message: string) {
    super(message, 413, 'payload_too_large');
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super(message, 409, 'conflict');
  }
}

/** The vector index was built by another model or preprocessing profile. */
export class IndexMismatchError extends AppError {
  constructor(message: string) {
    super(message, 409, 'index_mismatch');
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(message: string) {
    super(message, 503, 'unavailable');
  }
}

/**
 * A store that answers but refuses for now because it is too busy (throttled, or transactions that keep
 * conflicting): the worker waits it out like an outage instead of failing the images it was writing.
 */
export class StoreBusyError extends ServiceUnavailableError {}

/** A body of a content type the route does not take (a JSON route sent text/plain or a form). */
export class UnsupportedMediaTypeError extends AppError {
  constructor(message: string) {
    super(message, 415, 'unsupported_media_type');
  }
}

/** Too much work queued already: try again after `retryAfterSeconds` (HTTP 429 with Retry-After). */
export class TooBusyError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, 429, 'too_busy');
  }
}

/**
 * An image that cannot be decoded or is not acceptable. `code` says which kind:
 * empty, not_an_image, unsupported_format, corrupt, too_many_pixels, bad_aspect_ratio, too_large (bytes).
 */
export class ImageError extends AppError {
  constructor(
    message: string,
    readonly kind: ImageErrorKind,
  ) {
    super(message, 415, kind);
  }
}

export type ImageErrorKind =
  | 'empty'
  | 'not_an_image'
  | 'unsupported_format'
  | 'corrupt'
  | 'too_many_pixels'
  | 'bad_aspect_ratio'
  | 'too_large';

export function toHttpStatus(error: unknown): number {
  return error instanceof AppError ? error.status : 500;
}

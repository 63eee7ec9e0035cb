/**
 * One error class for the whole library. Callers branch on `code`, never on `message`.
 * The table below is the single source of codes; a new failure mode gets a row here.
 */
export const ERROR_MESSAGES = Object.freeze({
  INVALID_ARGUMENT: 'An argument is not of the expected shape or value.',
  EMPTY_TEXT: 'A text is empty (or only whitespace); every document and query needs some text.',
  NOT_A_STRING: 'A text is not a string.',
  MISSING_ID: 'A document has no id; every document needs a non-empty string id.',
  DUPLICATE_ID: 'The same document id appears more than once in one call.',
  UNKNOWN_ID: 'No document has this id.',
  INVALID_K: 'k must be a positive integer.',
  DIMENSION_MISMATCH: 'A token matrix does not have the dimension the model produces.',
  INVALID_MATRIX: 'A token matrix is malformed (its data length does not equal tokens x dim, or it holds non-finite values).',
  CLOSED: 'This search instance was closed; create a new one.',
  INVALID_DEVICE: "Unknown device; use 'auto', 'webgpu' or 'wasm'.",
  DEVICE_UNAVAILABLE: 'The requested device is not available in this environment.',
  MODEL_NOT_FOUND: 'The model could not be found at the given location.',
  MODEL_NO_ONNX: 'The model repository has no ONNX export that this library can run.',
  MODEL_LOAD_FAILED: 'The model files were found but the model could not be loaded.',
  MODEL_CONFIG_INVALID: "The model's configuration files are missing a required field or hold an invalid value.",
  NETWORK_ERROR: 'A network request failed.',
  ENCODE_FAILED: 'Running the model failed.',
  WORKER_FAILED: 'The Web Worker that runs the model failed to start or crashed.',
  UNSUPPORTED_ENVIRONMENT: 'This environment lacks a feature the requested mode needs.',
  TEXT_MISMATCH: 'The text given for an indexed document does not produce the tokens it was indexed with.',
  INDEX_MODEL_MISMATCH: 'The index was built with a different model or encoding settings; open it with the model that built it, or use another index name.',
  INDEX_CORRUPT: 'The stored index or index file is damaged or truncated (a checksum or size does not match); nothing was changed. Rebuild or re-export it.',
  INDEX_FORMAT_UNSUPPORTED: 'The index or index file was written by a newer colbert-web format; upgrade colbert-web to read it.',
  QUOTA_EXCEEDED: "The browser's storage quota is used up; the write was rolled back and nothing was lost. Free space (delete indexes or site data) and try again.",
  STORAGE_FAILED: 'IndexedDB failed (blocked, closed by the browser, or an I/O error); the write was rolled back. Reload the page and try again.',
  INTERNAL: 'An internal invariant was broken; please report this as a bug.',
  INVALID_METADATA: 'Document metadata is not JSON data (a BigInt, function, Symbol, cycle, Date, Map, class instance or non-finite number); nothing was added.',
  INVALID_FILTER: 'A search filter is malformed (an unknown operator, a wrong operand type, or a value where a filter object belongs); the message names the bad part.',
} as const);

/** Every error code this library throws. */
export type ErrorCode = keyof typeof ERROR_MESSAGES;

/** Structured, serialisable form of a {@link ColbertError}, used to cross the worker boundary. */
export interface ColbertErrorData {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * The library's only error type. `code` is stable and machine-readable; `message` says what happened,
 * what was expected and what to do; `details` carries the values involved (ids, dims, URLs).
 */
export class ColbertError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message ?? ERROR_MESSAGES[code], options);
    this.name = 'ColbertError';
    this.code = code;
    this.details = details;
  }

  /** Plain-object form (structured-clone safe). */
  toJSON(): ColbertErrorData {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error from {@link toJSON}'s output. */
  static fromJSON(data: ColbertErrorData): ColbertError {
    return new ColbertError(data.code, data.message, data.details);
  }
}

/** True when `value` is a {@link ColbertError} (also across realms, by duck typing). */
export function isColbertError(value: unknown): value is ColbertError {
  return (
    value instanceof ColbertError ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { name?: unknown }).name === 'ColbertError' &&
      typeof (value as { code?: unknown }).code === 'string' &&
      (value as { code: string }).code in ERROR_MESSAGES)
  );
}

/** Wraps any thrown value as a ColbertError with `code`, keeping a ColbertError as it is. */
export function toColbertError(err: unknown, code: ErrorCode, message?: string, details?: Record<string, unknown>): ColbertError {
  if (isColbertError(err)) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new ColbertError(code, message ? `${message}: ${reason}` : reason, details, { cause: err });
}

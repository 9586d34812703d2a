// DoveError: the one error class of dove-encoder. The native addon receives this class once
// (lib/core/native.ts calls setErrorClass), so libtorch failures arrive as real DoveError instances.
import type { NativeErrorCode } from '../../binding';

/**
 * Stable error codes. The native ones are listed in binding.d.ts (NativeErrorCode); the others
 * come from the TypeScript layer. Match on `code`, never on the message.
 */
export type DoveErrorCode =
  | NativeErrorCode
  | 'INVALID_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'INVALID_DATASET'
  | 'INVALID_ANNOTATION'
  | 'ADDON_LOAD_FAILED'
  // Codes added by other modules stay assignable; the list above is the documented set.
  | (string & {});

export class DoveError extends Error {
  readonly code: DoveErrorCode;

  constructor(message: string, code: DoveErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DoveError';
    this.code = code;
  }

  /**
   * A copy of a native error raised from the current JS frame. Errors that reject a native promise
   * are created by a libuv callback and carry no caller frames; re-throwing this copy from the
   * awaiting function gives a stack that points at the caller.
   */
  static atCallSite(error: unknown): unknown {
    if (!(error instanceof DoveError)) return error;
    const copy = new DoveError(error.message, error.code, { cause: error });
    Error.captureStackTrace(copy, DoveError.atCallSite);
    return copy;
  }
}

export function isDoveError(error: unknown, code?: DoveErrorCode): error is DoveError {
  return error instanceof DoveError && (code === undefined || error.code === code);
}

/** What `attempt` returns, or `fallback` when it throws: for probes where failing only means "not there". */
export function valueOr<T, F>(attempt: () => T, fallback: F): T | F {
  try {
    return attempt();
  } catch {
    return fallback;
  }
}

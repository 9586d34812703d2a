// Every failure leaves the server as JSON `{ code, message }` with a status that fits the code. The
// message is the DoveError's (what the caller did wrong); a 500 carries only its first line, so no
// stack trace or libtorch frame dump ever reaches a client.
import { DoveError } from '../base/errors';
import { QueueError } from './batch-queue';

/** Codes only the server raises (the library's codes keep their meaning). */
export type ServeErrorCode =
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_ACCEPTABLE'
  | 'FORBIDDEN'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'QUEUE_FULL'
  | 'TIMEOUT'
  | 'SHUTTING_DOWN'
  | 'CANCELLED';

export const STATUS_BY_CODE: { readonly [code: string]: number } = {
  INVALID_ARGUMENT: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  BODY_TOO_LARGE: 413,
  IMAGE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INVALID_IMAGE: 422,
  SHAPE_MISMATCH: 422,
  DTYPE_MISMATCH: 422,
  QUEUE_FULL: 503,
  TIMEOUT: 503,
  SHUTTING_DOWN: 503,
  // Nobody reads it (the client left); nginx's "client closed request", kept out of the 500s' log.
  CANCELLED: 499,
  DISPOSED: 503,
  DEVICE_UNAVAILABLE: 503,
};

export function httpError(message: string, code: ServeErrorCode): DoveError {
  return new DoveError(message, code);
}

export interface ErrorReply {
  status: number;
  body: { code: string; message: string };
  headers: { [name: string]: string };
}

/** Errors fastify and its plugins raise carry a statusCode and an FST_* code. */
interface FrameworkError {
  statusCode?: number;
  code?: string;
  message?: string;
}

const CODE_BY_STATUS: { readonly [status: number]: ServeErrorCode | 'INVALID_ARGUMENT' } = {
  400: 'INVALID_ARGUMENT',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  413: 'BODY_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  503: 'SHUTTING_DOWN',
};

function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** Maps any thrown value to the reply; `internal` is set when the server log should get the details. */
export function errorReply(error: unknown): ErrorReply & { internal: boolean } {
  const headers: { [name: string]: string } = {};
  if (error instanceof DoveError) {
    const status = STATUS_BY_CODE[error.code] ?? 500;
    if (error instanceof QueueError) headers['retry-after'] = String(error.retryAfterSeconds);
    else if (status === 503) headers['retry-after'] = '5';
    const message = status === 500 ? firstLine(error.message) : error.message;
    return { status, body: { code: error.code, message }, headers, internal: status === 500 };
  }
  const framework = (typeof error === 'object' && error !== null ? error : {}) as FrameworkError;
  const status = framework.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    const code = CODE_BY_STATUS[status] ?? 'INVALID_ARGUMENT';
    return { status, body: { code, message: firstLine(framework.message ?? 'Bad request') }, headers, internal: false };
  }
  if (status === 503) {
    headers['retry-after'] = '5';
    return { status, body: { code: 'SHUTTING_DOWN', message: 'The server is shutting down' }, headers, internal: false };
  }
  return { status: 500, body: { code: 'INTERNAL', message: 'Internal error; the server log has the details' }, headers, internal: true };
}

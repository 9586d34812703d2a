// Request bodies and query strings → validated inputs. Range checks stay with the library
// (resolveTokenizeOptions, Reconstructor.checkTokens); this file only turns HTTP text into typed
// values and refuses what cannot be one, with the same "Expected … but received …" wording.
import type { FastifyRequest } from 'fastify';
import { DoveError } from '../base/errors';
import { integerInRange } from '../base/validate';
import type { ResizeFit } from '../io/images';
import { parseSafetensors } from '../io/safetensors';
import type { ImageTokens, LengthMode } from '../model/tokenizer';
import { httpError } from './http-errors';
import type { EncodeRequestOptions } from './inference';

export const TOKENS_SAFETENSORS = 'application/x-safetensors';
export const IMAGE_CONTENT_TYPES = 'image/*, application/octet-stream or multipart/form-data';

type Query = { readonly [name: string]: string | string[] | undefined };

/** The query string as single values; unknown or repeated parameters are refused (typos fail loudly). */
export function queryParams(request: FastifyRequest, allowed: readonly string[]): Map<string, string> {
  const query = (request.query ?? {}) as Query;
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) {
      throw new DoveError(`Unknown query parameter ${name}; expected ${allowed.length > 0 ? `one of ${allowed.join(', ')}` : 'none'}`, 'INVALID_ARGUMENT');
    }
    if (typeof value !== 'string') throw new DoveError(`Expected one value for ${name} but received ${Array.isArray(value) ? value.length : 0}`, 'INVALID_ARGUMENT');
    out.set(name, value);
  }
  return out;
}

/** A decimal number from the query string; the range is the library's to check. */
export function numberParam(params: Map<string, string>, name: string): number | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) throw new DoveError(`Expected a number for ${name} but received '${raw}'`, 'INVALID_ARGUMENT');
  return Number(raw);
}

export interface ImageRequestOptions extends EncodeRequestOptions {
  fit?: ResizeFit;
}

export const TOKENIZE_PARAMS = ['mode', 'maxTokens', 'threshold', 'question', 'fit'] as const;
export const EXPLORE_PARAMS = ['threshold', 'question', 'fit'] as const;

/** Query → tokenize options (mode and fit are checked against their lists by the library). */
export function imageOptions(request: FastifyRequest, allowed: readonly string[]): ImageRequestOptions {
  const params = queryParams(request, allowed);
  return {
    mode: params.get('mode') as LengthMode | undefined,
    maxTokens: numberParam(params, 'maxTokens'),
    threshold: numberParam(params, 'threshold'),
    query: params.get('question'),
    fit: params.get('fit') as ResizeFit | undefined,
  };
}

function contentType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The image bytes of a request: the raw body (image/*, octet-stream) or the first file of a multipart form. */
export async function imageBody(request: FastifyRequest): Promise<Buffer> {
  const type = contentType(request);
  let bytes: Buffer | undefined;
  if (request.isMultipart()) {
    const file = await request.file();
    if (file === undefined) throw new DoveError('Expected a file in the multipart form but it has none', 'INVALID_ARGUMENT');
    bytes = await file.toBuffer();
  } else if (type.startsWith('image/') || type === 'application/octet-stream') {
    bytes = Buffer.isBuffer(request.body) ? request.body : undefined;
  } else {
    throw httpError(`Expected an image (${IMAGE_CONTENT_TYPES}) but received ${type === '' ? 'no content-type' : type}`, 'UNSUPPORTED_MEDIA_TYPE');
  }
  if (bytes === undefined || bytes.length === 0) throw new DoveError('Expected an image in the request body but it is empty', 'INVALID_ARGUMENT');
  return bytes;
}

function checkFinite(tokens: Float32Array): void {
  const bad = tokens.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new DoveError(`Expected finite floats in tokens but value ${bad} is ${tokens[bad]}`, 'INVALID_ARGUMENT');
}

function fromJson(body: unknown, dim: number): Float32Array {
  const tokens = typeof body === 'object' && body !== null ? (body as { tokens?: unknown }).tokens : undefined;
  if (!Array.isArray(tokens)) throw new DoveError('Expected a JSON object {"tokens": [[...], ...]} (one array of floats per token, or one flat array)', 'INVALID_ARGUMENT');
  const flat: unknown[] = tokens.every((row) => Array.isArray(row)) ? (tokens as unknown[][]).flat() : tokens;
  if (tokens.some((row) => Array.isArray(row) && row.length !== dim)) {
    throw new DoveError(`Expected ${dim} floats per token`, 'SHAPE_MISMATCH');
  }
  if (!flat.every((v) => typeof v === 'number')) throw new DoveError('Expected only numbers in tokens', 'INVALID_ARGUMENT');
  return Float32Array.from(flat as number[]);
}

function fromRaw(body: Buffer): Float32Array {
  if (body.length % 4 !== 0) throw new DoveError(`Expected little-endian float32 tokens (a multiple of 4 bytes) but received ${body.length} bytes`, 'SHAPE_MISMATCH');
  // A copy into a fresh (aligned) buffer: the body may start at any byte offset of its pool.
  return new Float32Array(new Uint8Array(body).buffer);
}

/** Accepts what /v1/tokenize writes: tokens (1,K,D) or (K,D) float32, and lengths (1,) when K holds more. */
function fromSafetensors(body: Buffer, dim: number): { tokens: Float32Array; length?: number } {
  const file = parseSafetensors(body, 'request body');
  const tokens = file.tensors.get('tokens');
  if (tokens === undefined || tokens.dtype !== 'F32') throw new DoveError('Expected a float32 tensor named tokens in the safetensors body', 'INVALID_ARGUMENT');
  const shape = tokens.shape;
  const ok = (shape.length === 2 && shape[1] === dim) || (shape.length === 3 && shape[0] === 1 && shape[2] === dim);
  if (!ok) throw new DoveError(`Expected tokens of shape (K, ${dim}) or (1, K, ${dim}) but received (${shape.join(', ')})`, 'SHAPE_MISMATCH');
  const lengths = file.tensors.get('lengths');
  if (lengths !== undefined && lengths.data.length !== 1) throw new DoveError(`Expected one length in the safetensors body but received ${lengths.data.length}`, 'SHAPE_MISMATCH');
  return { tokens: tokens.data as Float32Array, length: lengths === undefined ? undefined : Number(lengths.data[0]) };
}

/**
 * The tokens of a /v1/reconstruct body (JSON, raw float32 or safetensors), cut to `?length=L` or the
 * length the body states; the Reconstructor checks the result against the model before queueing.
 */
export function tokensBody(request: FastifyRequest, dim: number): ImageTokens {
  const params = queryParams(request, ['length']);
  const type = contentType(request);
  const body = request.body;
  let tokens: Float32Array;
  let stated: number | undefined;
  if (type === 'application/json') {
    tokens = fromJson(body, dim);
  } else if (type === 'application/octet-stream' && Buffer.isBuffer(body)) {
    tokens = fromRaw(body);
  } else if (type === TOKENS_SAFETENSORS && Buffer.isBuffer(body)) {
    ({ tokens, length: stated } = fromSafetensors(body, dim));
  } else {
    throw httpError(`Expected tokens as application/json, application/octet-stream (float32) or ${TOKENS_SAFETENSORS} but received ${type === '' ? 'no content-type' : type}`, 'UNSUPPORTED_MEDIA_TYPE');
  }
  if (tokens.length === 0 || tokens.length % dim !== 0) {
    throw new DoveError(`Expected a whole number of ${dim}-float tokens but received ${tokens.length} floats`, 'SHAPE_MISMATCH');
  }
  checkFinite(tokens);
  const asked = numberParam(params, 'length') ?? stated;
  const available = tokens.length / dim;
  const length = asked === undefined ? available : integerInRange(asked, 'length', 1, available);
  return { length, dim, tokens: tokens.subarray(0, length * dim), eosProbabilities: new Float32Array(0) };
}

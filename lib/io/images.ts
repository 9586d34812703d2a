// Image input for the Tokenizer: decode anything sharp reads into model-sized sRGB RGB uint8 pixels,
// and assemble batches as one contiguous (B, H, W, 3) buffer. Normalisation to float happens inside
// the model (encode_pixels takes uint8 NHWC), so no per-pixel work is done in JS.
import sharp from 'sharp';
import type { Color, OutputInfo, ResizeOptions, Sharp, SharpOptions } from 'sharp';
import { DoveError } from '../base/errors';
import { displayPath } from '../base/files';
import { readImageFile } from './image-file';
import { integerAtLeast, integerInRange } from '../base/validate';

/** Raw interleaved pixels (e.g. from a canvas or another decoder). 1 = grey, 2 = grey+alpha, 3 = RGB, 4 = RGBA. */
export interface RawPixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** A path, an encoded image in memory, a sharp pipeline (its operations are applied first), or raw pixels. */
export type ImageInput = string | Buffer | Uint8Array | Sharp | RawPixels;

/**
 * How an image that is not square at the model's size is fitted:
 * - `cover` (default): resize the short side to the model size, centre-crop the long side.
 * - `contain`: resize the long side, pad the rest with `background`.
 * - `fill`: stretch both sides (aspect ratio not kept).
 */
export type ResizeFit = 'cover' | 'contain' | 'fill';

export interface ImageOptions {
  /** Square side in pixels (the model's imageSize). */
  size: number;
  fit?: ResizeFit;
  /** Colour used for `contain` padding and to flatten transparency. Default black. */
  background?: { r: number; g: number; b: number };
  /**
   * Largest accepted input (width × height, as the file header claims) before decoding starts:
   * the guard against decompression bombs. Default 268402689 (sharp's own default, 16383²).
   */
  maxInputPixels?: number;
}

export const DEFAULT_MAX_INPUT_PIXELS = 0x3fff * 0x3fff;
const FITS: readonly ResizeFit[] = ['cover', 'contain', 'fill'];

/** A human name for an input, used in every error message. */
export function describeInput(input: ImageInput, index?: number): string {
  if (typeof input === 'string') return displayPath(input);
  const where = index === undefined ? '' : ` #${index}`;
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) return `<buffer${where}, ${input.length} bytes>`;
  if (isRawPixels(input)) return `<raw pixels${where}, ${input.width}x${input.height}x${input.channels}>`;
  return `<sharp instance${where}>`;
}

export function isRawPixels(input: unknown): input is RawPixels {
  if (typeof input !== 'object' || input === null || Buffer.isBuffer(input) || input instanceof Uint8Array) return false;
  const r = input as Partial<RawPixels>;
  return (r.data instanceof Uint8Array || r.data instanceof Uint8ClampedArray) && typeof r.width === 'number' && typeof r.height === 'number' && typeof r.channels === 'number';
}

function isSharp(input: unknown): input is Sharp {
  return typeof input === 'object' && input !== null && typeof (input as Sharp).clone === 'function' && typeof (input as Sharp).toBuffer === 'function';
}

function validateOptions(options: ImageOptions): Required<ImageOptions> {
  const { size } = options;
  integerInRange(size, 'size', 1, 8192);
  const fit = options.fit ?? 'cover';
  if (!FITS.includes(fit)) {
    throw new DoveError(`Expected one of ${FITS.join(', ')} for fit but received ${String(fit)}`, 'INVALID_ARGUMENT');
  }
  const maxInputPixels = integerAtLeast(options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS, 'maxInputPixels', 1);
  return { size, fit, maxInputPixels, background: options.background ?? { r: 0, g: 0, b: 0 } };
}

/** A sharp pipeline over one input, and what to call once it has run (a file's share of the read budget). */
interface OpenedInput {
  pipeline: Sharp;
  release(): void;
}

const NOTHING_TO_RELEASE = (): void => undefined;

/** Opens a sharp pipeline for one input; files are read here (header checked first, lib/io/image-file.ts). */
async function openPipeline(input: ImageInput, name: string, maxInputPixels: number): Promise<OpenedInput> {
  const common: SharpOptions = { limitInputPixels: maxInputPixels, failOn: 'error', autoOrient: true, sequentialRead: true };
  if (typeof input === 'string') {
    const file = await readImageFile(input, maxInputPixels);
    return { pipeline: sharp(file.bytes, common), release: file.release };
  }
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) {
    if (input.length === 0) throw new DoveError(`${name}: empty buffer, not an image`, 'INVALID_IMAGE');
    return { pipeline: sharp(input, common), release: NOTHING_TO_RELEASE };
  }
  if (isRawPixels(input)) {
    const { width, height, channels, data } = input;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new DoveError(`${name}: expected positive integer width and height but received ${width}x${height}`, 'INVALID_ARGUMENT');
    }
    if (![1, 2, 3, 4].includes(channels)) {
      throw new DoveError(`${name}: expected 1, 2, 3 or 4 channels but received ${String(channels)}`, 'INVALID_ARGUMENT');
    }
    if (data.length !== width * height * channels) {
      throw new DoveError(`${name}: expected ${width * height * channels} bytes (${width}x${height}x${channels}) but received ${data.length}`, 'SHAPE_MISMATCH');
    }
    if (width * height > maxInputPixels) {
      throw new DoveError(`${name}: ${width}x${height} exceeds the pixel limit of ${maxInputPixels} (maxInputPixels)`, 'IMAGE_TOO_LARGE');
    }
    return { pipeline: sharp(data, { raw: { width, height, channels }, limitInputPixels: maxInputPixels }), release: NOTHING_TO_RELEASE };
  }
  if (isSharp(input)) {
    // Apply the caller's pipeline as given, then run ours over its raw output.
    const { data, info } = await input.clone().raw().toBuffer({ resolveWithObject: true }).catch((error: unknown) => {
      throw decodeError(name, error, maxInputPixels);
    });
    return openPipeline({ data, width: info.width, height: info.height, channels: info.channels as RawPixels['channels'] }, name, maxInputPixels);
  }
  throw new DoveError(`Expected a path, Buffer, sharp instance or raw pixels {data,width,height,channels} for image but received ${typeof input}`, 'INVALID_ARGUMENT');
}

/** Maps sharp/libvips messages to codes; the message always starts with the input's name. */
function decodeError(name: string, error: unknown, maxInputPixels: number): DoveError {
  if (error instanceof DoveError) return error;
  const text = error instanceof Error ? error.message : String(error);
  if (/pixel limit/i.test(text)) {
    return new DoveError(`${name}: image dimensions exceed the pixel limit of ${maxInputPixels} (maxInputPixels); refusing to decode (possible decompression bomb)`, 'IMAGE_TOO_LARGE');
  }
  if (/unsupported image format/i.test(text)) {
    return new DoveError(`${name}: not an image in any format sharp reads (${text})`, 'INVALID_IMAGE');
  }
  return new DoveError(`${name}: cannot decode image (${text.split('\n')[0]})`, 'INVALID_IMAGE');
}

/**
 * Decodes one input to sRGB RGB uint8 (EXIF orientation applied, transparency flattened on
 * `background`), resized as `resize` says or at its own size; failures are DoveErrors naming it.
 */
export async function decodeRgb(
  input: ImageInput, name: string, maxInputPixels: number, background: Color, resize?: ResizeOptions,
): Promise<{ data: Buffer; info: OutputInfo }> {
  const { pipeline, release } = await openPipeline(input, name, maxInputPixels);
  try {
    const srgb = pipeline.flatten({ background }).toColourspace('srgb');
    return await (resize === undefined ? srgb : srgb.resize(resize)).removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw decodeError(name, error, maxInputPixels);
  } finally {
    release();
  }
}

/**
 * Decodes one image to exactly size×size×3 sRGB uint8 (EXIF orientation applied; grey, alpha,
 * 16-bit, CMYK and embedded ICC profiles converted). Throws a DoveError naming the input.
 */
export async function loadImage(input: ImageInput, options: ImageOptions, index?: number): Promise<Buffer> {
  const opts = validateOptions(options);
  const name = describeInput(input, index);
  const resize = { width: opts.size, height: opts.size, fit: opts.fit, position: 'centre', background: opts.background, kernel: 'lanczos3' } as const;
  const { data, info } = await decodeRgb(input, name, opts.maxInputPixels, opts.background, resize);
  if (info.width !== opts.size || info.height !== opts.size || info.channels !== 3 || data.length !== opts.size * opts.size * 3) {
    throw new DoveError(`${name}: decoder produced ${info.width}x${info.height}x${info.channels}, expected ${opts.size}x${opts.size}x3`, 'INTERNAL');
  }
  return data;
}

/** One image of a batch that failed to load. */
export interface ImageFailure {
  index: number;
  name: string;
  error: DoveError;
}

/**
 * Decodes many inputs into one contiguous (B, size, size, 3) uint8 buffer (each image is written into
 * its slot with one memcpy). Decoding runs `concurrency` images at a time (sharp uses its own threads).
 * Throws the first failure; see `loadBatchSettled` to keep going past bad images.
 */
export async function loadBatch(inputs: readonly ImageInput[], options: ImageOptions, concurrency = 4): Promise<Uint8Array> {
  const { pixels, failures } = await loadBatchSettled(inputs, options, concurrency);
  if (failures.length > 0) throw failures[0]!.error;
  return pixels;
}

/** Like loadBatch, but failed images leave their slot zeroed and are reported instead of thrown. */
export async function loadBatchSettled(
  inputs: readonly ImageInput[],
  options: ImageOptions,
  concurrency = 4,
): Promise<{ pixels: Uint8Array; failures: ImageFailure[] }> {
  const opts = validateOptions(options);
  const frame = opts.size * opts.size * 3;
  const pixels = new Uint8Array(inputs.length * frame);
  const failures: ImageFailure[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const i = next++;
      const input = inputs[i]!;
      try {
        const data = await loadImage(input, opts, inputs.length > 1 ? i : undefined);
        pixels.set(data, i * frame);
      } catch (error) {
        const name = describeInput(input, i);
        const dove = error instanceof DoveError ? error : new DoveError(`${name}: ${String(error)}`, 'INVALID_IMAGE');
        failures.push({ index: i, name, error: dove });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, inputs.length)) }, worker));
  failures.sort((a, b) => a.index - b.index);
  return { pixels, failures };
}

/**
 * loadBatchSettled without the failed images: the indices of the inputs that loaded and their pixels
 * packed as (kept, size, size, 3), for commands that report bad images and go on with the rest.
 */
export async function loadReadable(inputs: readonly ImageInput[], options: ImageOptions): Promise<{ kept: number[]; pixels: Uint8Array; failures: ImageFailure[] }> {
  const { pixels, failures } = await loadBatchSettled(inputs, options);
  const bad = new Set(failures.map((f) => f.index));
  const kept = inputs.map((_, i) => i).filter((i) => !bad.has(i));
  if (bad.size === 0) return { kept, pixels, failures };
  const frame = options.size * options.size * 3;
  const packed = new Uint8Array(kept.length * frame);
  kept.forEach((src, j) => packed.set(pixels.subarray(src * frame, (src + 1) * frame), j * frame));
  return { kept, pixels: packed, failures };
}

export type EncodeFormat = 'png' | 'jpeg' | 'webp';

/** Encodes size×size×3 RGB pixels. */
export async function encodeRgb(data: Uint8Array, width: number, height: number, format: EncodeFormat, quality?: number): Promise<Buffer> {
  if (data.length !== width * height * 3) {
    throw new DoveError(`Expected ${width * height * 3} bytes for a ${width}x${height} RGB image but received ${data.length}`, 'SHAPE_MISMATCH');
  }
  if (format !== 'png' && format !== 'jpeg' && format !== 'webp') {
    throw new DoveError(`Expected png, jpeg or webp for format but received ${String(format)}`, 'INVALID_ARGUMENT');
  }
  // A PNG is lossless: sharp's png `quality` would turn on palette quantisation.
  return sharp(data, { raw: { width, height, channels: 3 } }).toFormat(format, format === 'png' ? {} : { quality: quality ?? 90 }).toBuffer();
}

/** Format from a file extension (.png, .jpg/.jpeg, .webp). */
export function formatFromPath(path: string): EncodeFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.png')) return 'png';
  if (lower.endsWith('.jpg') || lower.endsWith('.jpeg')) return 'jpeg';
  if (lower.endsWith('.webp')) return 'webp';
  throw new DoveError(`Expected a .png, .jpg, .jpeg or .webp output path but received ${path}`, 'INVALID_ARGUMENT');
}

/** PSNR in dB between two same-sized uint8 images (data range 255; Infinity when identical). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length || a.length === 0) {
    throw new DoveError(`Expected two non-empty images of equal size for psnr but received ${a.length} and ${b.length} bytes`, 'SHAPE_MISMATCH');
  }
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

// Reconstructor: DOVE tokens back to images. A TokenBatch goes to the model as-is (its tensors, no
// copy); single results are wrapped by pointer. `sweep` reconstructs one image at several lengths
// from a single encode (the generator is causal, so a prefix of K-slot tokens is the L-token code).
import { maxOf } from '../base/arrays';
import { DoveError } from '../base/errors';
import { writeFileAtomic } from '../base/files';
import { encodeRgb, formatFromPath, loadImage, type ImageInput } from '../io/images';
import { checkTokenTensors, DoveModel, ModelUser, type LoadOptions } from './model-file';
import { Tensor } from '../core/tensor';
import { integerInRange } from '../base/validate';
import { resolveTokenizeOptions, TokenBatch, type ImageTokens, type TokenizeOptions } from './tokenizer';

/** A reconstructed (or model-sized input) image: raw sRGB RGB bytes plus encoders. */
export class RgbImage {
  readonly channels = 3;
  constructor(
    readonly data: Uint8Array,
    readonly width: number,
    readonly height: number,
  ) {}

  toPng(): Promise<Buffer> {
    return encodeRgb(this.data, this.width, this.height, 'png');
  }
  toJpeg(quality = 90): Promise<Buffer> {
    return encodeRgb(this.data, this.width, this.height, 'jpeg', quality);
  }
  toWebp(quality = 90): Promise<Buffer> {
    return encodeRgb(this.data, this.width, this.height, 'webp', quality);
  }
  /** Writes .png, .jpg/.jpeg or .webp by extension (atomically; IO_ERROR naming the path on failure). */
  async toFile(path: string): Promise<void> {
    const bytes = await encodeRgb(this.data, this.width, this.height, formatFromPath(path));
    await writeFileAtomic(path, bytes);
  }
}

export interface SweepResult {
  /** The input as the model saw it (resized/cropped). */
  input: RgbImage;
  /** One reconstruction per requested length, in the order given. */
  reconstructions: { length: number; image: RgbImage }[];
  /** The EOS-chosen length (auto mode over all slots) and its reconstruction. */
  auto: { length: number; image: RgbImage };
  /** p(EOS) for every slot. */
  eosProbabilities: Float32Array;
}

export type SweepOptions = Pick<TokenizeOptions, 'threshold' | 'fit' | 'maxInputPixels'> & { query?: string };

function isImageTokens(value: unknown): value is ImageTokens {
  return typeof value === 'object' && value !== null && (value as ImageTokens).tokens instanceof Float32Array && typeof (value as ImageTokens).length === 'number';
}

export class Reconstructor extends ModelUser {
  static async load(modelPath?: string, options: LoadOptions = {}): Promise<Reconstructor> {
    return DoveModel.loadFor((model) => new Reconstructor(model), modelPath, options);
  }

  /** Tokens of one image -> one image; a TokenBatch or an array -> one image each. */
  reconstruct(tokens: ImageTokens): Promise<RgbImage>;
  reconstruct(tokens: TokenBatch | readonly ImageTokens[]): Promise<RgbImage[]>;
  async reconstruct(tokens: ImageTokens | TokenBatch | readonly ImageTokens[]): Promise<RgbImage | RgbImage[]> {
    if (tokens instanceof TokenBatch) return this.decode(tokens.tokens, tokens.lengths);
    if (Array.isArray(tokens)) return this.reconstructMany(tokens as readonly ImageTokens[]);
    if (isImageTokens(tokens)) return (await this.reconstructMany([tokens]))[0]!;
    throw new DoveError('Expected ImageTokens, an array of them, or a TokenBatch for tokens', 'INVALID_ARGUMENT');
  }

  /**
   * Throws the error `reconstruct` would throw for these tokens, without running the model: for
   * callers that queue tokens and must refuse bad ones before they join other callers' batches.
   */
  checkTokens(items: readonly ImageTokens[]): void {
    const dim = this.model.tokenDim;
    items.forEach((item, i) => {
      if (!isImageTokens(item)) throw new DoveError(`Expected ImageTokens at index ${i}`, 'INVALID_ARGUMENT');
      if (!Number.isInteger(item.length) || item.length < 1 || item.length > this.model.maxTokens || item.tokens.length !== item.length * dim) {
        throw new DoveError(
          `Expected ${dim} floats per token and a length between 1 and ${this.model.maxTokens} at index ${i} but received ${item.tokens.length} floats for length ${item.length}`,
          'SHAPE_MISMATCH',
        );
      }
    });
  }

  private async reconstructMany(items: readonly ImageTokens[]): Promise<RgbImage[]> {
    if (items.length === 0) return [];
    const dim = this.model.tokenDim;
    this.checkTokens(items);
    const slots = maxOf(items.map((t) => t.length));
    // One image: wrap its view by pointer. Several: one padded copy (they live in separate buffers).
    let data: Float32Array;
    if (items.length === 1) {
      data = items[0]!.tokens;
    } else {
      data = new Float32Array(items.length * slots * dim);
      items.forEach((item, i) => data.set(item.tokens, i * slots * dim));
    }
    const tokens = Tensor.fromArray(data, [items.length, slots, dim], 'float32');
    const lengths = Tensor.fromArray(BigInt64Array.from(items, (t) => BigInt(t.length)), [items.length], 'int64');
    return this.decode(tokens, lengths).finally(() => Tensor.disposeAll([tokens, lengths]));
  }

  /** tokens (B,K,D) + lengths (B,) tensors -> images (views over the output tensor's memory). */
  async decode(tokens: Tensor, lengths: Tensor): Promise<RgbImage[]> {
    if (!(tokens instanceof Tensor) || !(lengths instanceof Tensor)) throw new DoveError('Expected two Tensors (tokens, lengths) for decode', 'INVALID_ARGUMENT');
    const problem = checkTokenTensors(tokens, lengths, undefined, { dim: this.model.tokenDim, minLength: 0 });
    if (problem !== undefined) throw new DoveError(`decode: ${problem}`, 'SHAPE_MISMATCH');
    if ((tokens.shape[1] ?? 0) > this.model.maxTokens) throw new DoveError(`decode: tokens have ${tokens.shape[1]} slots, the model at most ${this.model.maxTokens}`, 'SHAPE_MISMATCH');
    const { pixels } = await this.model.decodeToHost(tokens, lengths);
    const s = this.imageSize;
    const frame = s * s * 3;
    const b = pixels.length / frame;
    return Array.from({ length: b }, (_, i) => new RgbImage(pixels.subarray(i * frame, (i + 1) * frame), s, s));
  }

  /** Reconstructs one image at each length (one encode, one batched decode) plus the EOS choice. */
  async sweep(image: ImageInput, lengths: readonly number[], options: SweepOptions = {}): Promise<SweepResult> {
    const max = this.model.maxTokens;
    if (!Array.isArray(lengths) || lengths.length === 0) throw new DoveError('Expected at least one length for sweep', 'INVALID_ARGUMENT');
    for (const l of lengths) integerInRange(l, 'lengths', 1, max);
    const resolved = resolveTokenizeOptions(this.model, 1, { mode: 'auto', maxTokens: max, threshold: options.threshold, query: options.query });
    const s = this.imageSize;
    const pixels = await loadImage(image, { size: s, fit: options.fit, maxInputPixels: options.maxInputPixels });
    const result = await this.model.reconstructAtLengths(pixels, 1, [...lengths, 'auto'], { threshold: resolved.threshold, queries: resolved.queries, withEos: true });
    const images = result.frames.map(([frame]) => new RgbImage(frame!, s, s));
    return {
      input: new RgbImage(pixels, s, s),
      reconstructions: lengths.map((length, i) => ({ length, image: images[i]! })),
      auto: { length: result.autoLengths[0]!, image: images[lengths.length]! },
      eosProbabilities: result.eosProbabilities!,
    };
  }
}

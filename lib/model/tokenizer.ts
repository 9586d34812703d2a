// Tokenizer: images in (paths, Buffers, sharp pipelines, raw pixels), variable-length DOVE tokens out.
// Pixels travel as one uint8 (B,H,W,3) buffer straight into the model's encode_pixels (normalised
// there); results are views over the tensors libtorch returned, never copies.
import { DoveError } from '../base/errors';
import { integerInRange, numberBetweenExclusive } from '../base/validate';
import { describeInput, loadBatch, type ImageInput, type ResizeFit } from '../io/images';
import { checkTokenTensors, DoveModel, ModelUser, type LoadOptions } from './model-file';
import { Tensor } from '../core/tensor';

export type LengthMode = 'auto' | 'fixed' | 'capped';

export interface TokenizeOptions {
  /** auto: EOS chooses (up to maxTokens slots); fixed: exactly maxTokens; capped: min(EOS, maxTokens). Default auto. */
  mode?: LengthMode;
  /** Budget K in slots, 1..model maxTokens. Default: the model's maxTokens. */
  maxTokens?: number;
  /** EOS probability threshold in (0, 1). Default: the model's eosThreshold. */
  threshold?: number;
  /** Q-DOVE only: one query for every image, or one per image. */
  query?: string | readonly string[];
  /** Resize policy (default cover: short side + centre crop). */
  fit?: ResizeFit;
  /** Decompression-bomb guard, in input pixels. */
  maxInputPixels?: number;
}

/** Tokens of one image. `tokens` is a view (length × dim floats) over the batch's memory. */
export interface ImageTokens {
  readonly length: number;
  readonly dim: number;
  readonly tokens: Float32Array;
  /** p(EOS) for each slot that was run (K values). */
  readonly eosProbabilities: Float32Array;
}

const MODES: readonly LengthMode[] = ['auto', 'fixed', 'capped'];

/** A batch of tokenised images: the padded (B,K,D) tensor and the lengths, ready for the Reconstructor. */
export class TokenBatch {
  readonly size: number;
  readonly slots: number;
  readonly dim: number;
  /** Per-image lengths as numbers. */
  readonly lengthsArray: number[];
  #items: ImageTokens[] | undefined;

  constructor(
    /** float32 (B,K,D); slots ≥ an image's length hold the model's extra (ignored) outputs. */
    readonly tokens: Tensor,
    /** int64 (B,). */
    readonly lengths: Tensor,
    /** float32 (B,K). */
    readonly eosProbabilities: Tensor,
  ) {
    const problem = checkTokenTensors(tokens, lengths, eosProbabilities, { minLength: 0 });
    if (problem !== undefined) throw new DoveError(`TokenBatch: ${problem}`, 'SHAPE_MISMATCH');
    const [b, k, d] = tokens.shape as [number, number, number];
    this.size = b;
    this.slots = k;
    this.dim = d;
    this.lengthsArray = Array.from(lengths.data() as BigInt64Array, (v) => Number(v));
  }

  /**
   * Per-image views into `tokens` (no copies), made on first use: a batch that goes straight to the
   * Reconstructor never reads its tokens into JS. On a GPU, one host copy of each tensor.
   */
  get items(): ImageTokens[] {
    if (this.#items !== undefined) return this.#items;
    const { slots: k, dim: d } = this;
    const all = this.tokens.data() as Float32Array;
    const probs = this.eosProbabilities.data() as Float32Array;
    this.#items = this.lengthsArray.map((length, i) => ({
      length,
      dim: d,
      tokens: all.subarray(i * k * d, i * k * d + length * d),
      eosProbabilities: probs.subarray(i * k, (i + 1) * k),
    }));
    return this.#items;
  }

  dispose(): void {
    Tensor.disposeAll([this.tokens, this.lengths, this.eosProbabilities]);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface ResolvedTokenizeOptions {
  mode: LengthMode;
  budget: number;
  threshold: number;
  queries: string[] | undefined;
}

/** Validates options against the model (shared with the Reconstructor's sweep). */
export function resolveTokenizeOptions(model: DoveModel, count: number, options: TokenizeOptions): ResolvedTokenizeOptions {
  const mode = options.mode ?? 'auto';
  if (!MODES.includes(mode)) throw new DoveError(`Expected one of auto, fixed, capped for mode but received ${String(mode)}`, 'INVALID_ARGUMENT');
  const budget = integerInRange(options.maxTokens ?? model.maxTokens, 'maxTokens', 1, model.maxTokens);
  const threshold = numberBetweenExclusive(options.threshold ?? model.meta.eosThreshold, 'threshold', 0, 1);
  let queries: string[] | undefined;
  if (options.query !== undefined) {
    model.requireQDove('the query option');
    if (typeof options.query === 'string') {
      queries = new Array<string>(count).fill(options.query);
    } else if (Array.isArray(options.query) && options.query.length === count && options.query.every((q) => typeof q === 'string')) {
      queries = [...options.query];
    } else {
      throw new DoveError(`Expected a string or ${count} strings for query but received ${Array.isArray(options.query) ? `${options.query.length} values` : typeof options.query}`, 'INVALID_ARGUMENT');
    }
  }
  return { mode, budget, threshold, queries };
}

export class Tokenizer extends ModelUser {
  /** Loads a model file (the embedded default model when no path is given). */
  static async load(modelPath?: string, options: LoadOptions = {}): Promise<Tokenizer> {
    return DoveModel.loadFor((model) => new Tokenizer(model), modelPath, options);
  }

  get maxTokens(): number {
    return this.model.maxTokens;
  }
  get tokenDim(): number {
    return this.model.tokenDim;
  }

  /** One image -> its tokens; an array -> a TokenBatch (padded tensor + lengths + per-image views). */
  tokenize(input: ImageInput, options?: TokenizeOptions): Promise<ImageTokens>;
  tokenize(inputs: readonly ImageInput[], options?: TokenizeOptions): Promise<TokenBatch>;
  async tokenize(input: ImageInput | readonly ImageInput[], options: TokenizeOptions = {}): Promise<ImageTokens | TokenBatch> {
    if (Array.isArray(input)) return this.tokenizeBatch(input as readonly ImageInput[], options);
    const batch = await this.tokenizeBatch([input as ImageInput], options);
    return batch.items[0]!;
  }

  /** Decodes every input (first failure throws, naming the input), then encodes them as one batch. */
  async tokenizeBatch(inputs: readonly ImageInput[], options: TokenizeOptions = {}): Promise<TokenBatch> {
    if (inputs.length === 0) throw new DoveError('Expected at least one image but received an empty list', 'INVALID_ARGUMENT');
    const resolved = resolveTokenizeOptions(this.model, inputs.length, options);
    const pixels = await loadBatch(inputs, { size: this.imageSize, fit: options.fit, maxInputPixels: options.maxInputPixels });
    return this.tokenizePixels(pixels, inputs.length, resolved, inputs);
  }

  /** Encodes already-decoded model-sized pixels, uint8 (B, imageSize, imageSize, 3), without copying them. */
  async tokenizePixels(pixels: Uint8Array, count: number, options: ResolvedTokenizeOptions, inputs?: readonly ImageInput[]): Promise<TokenBatch> {
    const s = this.imageSize;
    if (pixels.length !== count * s * s * 3) {
      throw new DoveError(`Expected ${count * s * s * 3} bytes of (${count},${s},${s},3) pixels but received ${pixels.length}`, 'SHAPE_MISMATCH');
    }
    const tensor = Tensor.fromArray(pixels, [count, s, s, 3], 'uint8');
    try {
      const { tokens, eosProbabilities, lengths } = await this.model.encodePixels(tensor, options.mode, options.budget, options.threshold, options.queries);
      return new TokenBatch(tokens, lengths, eosProbabilities);
    } catch (error) {
      if (error instanceof DoveError && inputs !== undefined && inputs.length === 1) {
        error.message = `${describeInput(inputs[0]!)}: ${error.message}`;
      }
      throw error;
    } finally {
      tensor.dispose();
    }
  }
}

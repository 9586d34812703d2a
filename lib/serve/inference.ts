// What the server asks of the model, always through the one BatchQueue: encodes (requests with the
// same mode, budget, threshold and query presence share a forward), decodes (any tokens share a
// forward; the Reconstructor pads them to the longest) and the explorer's sweep (one encode, then
// every length 1…maxTokens decoded in chunks that queue like any other request).
import sharp from 'sharp';
import { appendAll } from '../base/arrays';
import { sweepGrid } from '../render/grid';
import { DoveError } from '../base/errors';
import { defaultLengths } from '../model/model-file';
import { ssim, SSIM_WINDOW } from '../eval/quality';
import { psnr } from '../io/images';
import type { Reconstructor, RgbImage } from '../model/reconstructor';
import { resolveTokenizeOptions, type ImageTokens, type LengthMode, type Tokenizer } from '../model/tokenizer';
import type { BatchKind, BatchQueue } from './batch-queue';
import type { ExploreReply } from './wire';

/** Tokens of one image with every slot the model ran (the first `length` are the image's code). */
export interface EncodedImage {
  length: number;
  slots: number;
  dim: number;
  /** slots × dim floats; a prefix of L tokens is the L-token code (the generator is causal). */
  tokens: Float32Array;
  /** p(EOS) per slot. */
  eosProbabilities: Float32Array;
}

export interface EncodeRequestOptions {
  mode?: LengthMode;
  maxTokens?: number;
  threshold?: number;
  query?: string;
}

interface EncodeInput {
  pixels: Uint8Array;
  query: string | undefined;
}

interface EncodeKey {
  mode: LengthMode;
  budget: number;
  threshold: number;
  withQuery: boolean;
}

/** What explore computes; the route sends it as an ExploreReply (the PNGs as data URLs). */
export type ExploreResult = Omit<ExploreReply, 'input' | 'sprite' | 'grid'> & { input: Buffer; sprite: Buffer; grid: Buffer };

/** Rows per explorer decode job: big enough to batch, small enough to let API requests in between. */
export const EXPLORE_CHUNK = 16;

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

export class InferenceService {
  private readonly encodeKind: BatchKind<EncodeInput, EncodedImage>;
  private readonly decodeKind: BatchKind<readonly ImageTokens[], RgbImage[]>;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly reconstructor: Reconstructor,
    readonly queue: BatchQueue,
  ) {
    this.encodeKind = { name: 'encode', run: (inputs, key) => this.runEncode(inputs, JSON.parse(key) as EncodeKey) };
    this.decodeKind = { name: 'decode', run: (inputs) => this.runDecode(inputs) };
  }

  get model(): Tokenizer['model'] {
    return this.tokenizer.model;
  }

  /** Refuses bad options before any image is decoded (encode checks them again; it is cheap). */
  checkOptions(options: EncodeRequestOptions): void {
    resolveTokenizeOptions(this.model, 1, options);
  }

  /** Model-sized uint8 pixels (imageSize² × 3) → tokens; options are validated before queueing. */
  encode(pixels: Uint8Array, options: EncodeRequestOptions = {}, signal?: AbortSignal): Promise<EncodedImage> {
    const s = this.model.imageSize;
    if (pixels.length !== s * s * 3) throw new DoveError(`Expected ${s * s * 3} bytes of ${s}x${s}x3 pixels but received ${pixels.length}`, 'SHAPE_MISMATCH');
    const resolved = resolveTokenizeOptions(this.model, 1, options);
    const key: EncodeKey = { mode: resolved.mode, budget: resolved.budget, threshold: resolved.threshold, withQuery: options.query !== undefined };
    return this.queue.submit(this.encodeKind, JSON.stringify(key), { pixels, query: options.query }, 1, signal);
  }

  /** Tokens → images, one per item; checked before queueing so a bad request never fails a shared batch. */
  decode(items: readonly ImageTokens[], signal?: AbortSignal): Promise<RgbImage[]> {
    if (items.length === 0) throw new DoveError('Expected at least one set of tokens', 'INVALID_ARGUMENT');
    this.reconstructor.checkTokens(items);
    return this.queue.submit(this.decodeKind, 'decode', items, items.length, signal);
  }

  /** One encode, every length decoded, quality per length, the tiles and the labelled grid. */
  async explore(pixels: Uint8Array, options: { threshold?: number; query?: string } = {}, signal?: AbortSignal): Promise<ExploreResult> {
    const max = this.model.maxTokens;
    const s = this.model.imageSize;
    const encoded = await this.encode(pixels, { mode: 'auto', maxTokens: max, threshold: options.threshold, query: options.query }, signal);
    const rows = Array.from({ length: max }, (_, i): ImageTokens => ({
      length: i + 1, dim: encoded.dim, tokens: encoded.tokens.subarray(0, (i + 1) * encoded.dim), eosProbabilities: encoded.eosProbabilities,
    }));
    const images: RgbImage[] = [];
    for (let at = 0; at < rows.length; at += EXPLORE_CHUNK) appendAll(images, await this.decode(rows.slice(at, at + EXPLORE_CHUNK), signal));
    const psnrs: (number | null)[] = [];
    const ssims: (number | null)[] = [];
    for (const image of images) {
      psnrs.push(finiteOrNull(psnr(pixels, image.data)));
      ssims.push(s >= SSIM_WINDOW ? finiteOrNull(ssim(pixels, image.data, s, s)) : null);
      // SSIM of a large image takes milliseconds: let other requests' callbacks run in between.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const columns = Math.ceil(Math.sqrt(max));
    const sprite = await this.sprite(images, columns);
    const input = await sharp(pixels, { raw: { width: s, height: s, channels: 3 } }).png().toBuffer();
    const sweep = defaultLengths(max).map((l) => ({ length: l, pixels: images[l - 1]!.data }));
    const grid = await sweepGrid(pixels, sweep, { length: encoded.length, pixels: images[encoded.length - 1]!.data }, s);
    return {
      imageSize: s,
      maxTokens: max,
      threshold: options.threshold ?? this.model.meta.eosThreshold,
      length: encoded.length,
      eosProbabilities: Array.from(encoded.eosProbabilities),
      psnr: psnrs,
      ssim: ssims,
      columns,
      input,
      sprite,
      grid,
    };
  }

  /** All reconstructions as one PNG, tile L-1 at (row, column) = divmod(L-1, columns). */
  private async sprite(images: readonly RgbImage[], columns: number): Promise<Buffer> {
    const s = this.model.imageSize;
    const rowsOfTiles = Math.ceil(images.length / columns);
    const width = columns * s;
    const out = Buffer.alloc(width * rowsOfTiles * s * 3);
    images.forEach((image, i) => {
      const x0 = (i % columns) * s;
      const y0 = Math.floor(i / columns) * s;
      for (let y = 0; y < s; y++) out.set(image.data.subarray(y * s * 3, (y + 1) * s * 3), ((y0 + y) * width + x0) * 3);
    });
    return sharp(out, { raw: { width, height: rowsOfTiles * s, channels: 3 } }).png().toBuffer();
  }

  private async runEncode(inputs: readonly EncodeInput[], key: EncodeKey): Promise<EncodedImage[]> {
    const s = this.model.imageSize;
    const frame = s * s * 3;
    const pixels = new Uint8Array(inputs.length * frame);
    inputs.forEach((input, i) => pixels.set(input.pixels, i * frame));
    const queries = key.withQuery ? inputs.map((input) => input.query ?? '') : undefined;
    const batch = await this.tokenizer.tokenizePixels(pixels, inputs.length, { ...key, queries });
    try {
      const all = batch.tokens.data() as Float32Array;
      const per = batch.slots * batch.dim;
      // Copies: the batch's tensors are freed here, and each request keeps only its own rows.
      return batch.items.map((item, i) => ({
        length: item.length,
        slots: batch.slots,
        dim: batch.dim,
        tokens: all.slice(i * per, (i + 1) * per),
        eosProbabilities: Float32Array.from(item.eosProbabilities),
      }));
    } finally {
      batch.dispose();
    }
  }

  private async runDecode(jobs: readonly (readonly ImageTokens[])[]): Promise<RgbImage[][]> {
    const images = await this.reconstructor.reconstruct(jobs.flat());
    let at = 0;
    return jobs.map((job) => images.slice(at, (at += job.length)));
  }
}

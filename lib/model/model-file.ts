// A loaded DOVE model file (docs/MODEL_FORMAT.md): the TorchScript module, its parsed dove.json,
// the Q-DOVE query tokenizer, and typed wrappers over the pixel-level methods the API uses.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { maxOf } from '../base/arrays';
import { DoveError } from '../base/errors';
import { displayPath } from '../base/files';
import { isJsonObject, parseJson, preview } from '../base/json';
import { booleanOption, booleanOrWord, integerInRange } from '../base/validate';
import { loadModule, type Module } from '../core/module';
import { packageRoot } from '../core/native';
import { Tensor, type TensorInfo } from '../core/tensor';
import { BpeTokenizer } from './bpe';
import { CompiledDove, compiledPackagePath, type CompiledChoice } from './compiled';

export const FORMAT_VERSION = 1;

/** Methods every export must have for the Tokenizer and Reconstructor (and training). */
export const REQUIRED_METHODS = ['encode', 'decode', 'select_lengths', 'encode_pixels', 'decode_pixels', 'forward'] as const;

export interface DoveMeta {
  format: string;
  formatVersion: number;
  variant: 'dove' | 'qdove';
  configName: string;
  config: unknown;
  imageSize: number;
  maxTokens: number;
  tokenDim: number;
  eosThreshold: number;
  normalization: string;
  queryTokenizer: { file: string; maxLength: number; padId: number } | null;
  exporter?: unknown;
  training?: unknown;
}

export interface LoadOptions {
  /** 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: string;
  /**
   * Optimise the loaded module for inference (default true on CPU, false on CUDA): frozen (weights
   * become constants, constant sub-graphs are computed once), convolution weights channels_last on CPU, and libtorch's
   * CPU allocations served from a block cache. Outputs match the unoptimised module within float32
   * rounding (docs/API.md gives the measured bounds); `false` runs the file exactly as Python's
   * torch.jit.load does, bit for bit.
   */
  optimize?: boolean;
  /**
   * Run encode and decode through the compiled package beside the file (`<model>.aoti.pt2`, written by
   * `python -m dove.export --compiled`) when it was compiled from these very weights for this
   * machine and `trustModel` is true (a package is a shared library that runs when it is opened;
   * CPU only), unless its compiler measured it slower than TorchScript (`dove.prefer`; 'always' ignores
   * that). Otherwise, or with `false`, TorchScript runs. `DoveModel.compiledNote` says which and why.
   */
  compiled?: CompiledChoice;
  /**
   * Load a file whose TorchScript touches files, other processes or process-wide state, which is
   * otherwise refused with `UNSAFE_MODEL`, and allow its compiled package (native code) to run: a
   * model file is code (docs/MODEL_FORMAT.md). Only for files you trust. Default false.
   */
  trustModel?: boolean;
}


// Image pixels one CPU encode or decode call covers at most (one 256x256 image): one call keeps every image's
// activations alive at once. official-70m, batch 16, 2 threads: decode peak RSS 4658 MB with one call, 1497 MB
// in calls of one image, img/s 0.88-1.11x of one call over rounds (node dist/bench/compiled/slices.js MODEL.pt);
// encode through the package on an AMD EPYC: peak RSS 4356 MB with one call, 2681 MB in calls of one image,
// img/s 1.08-1.09x of one call over 3 rounds (node dist/bench/compiled/slices.js MODEL.pt --op encode).
export const PIXELS_PER_CALL = 256 * 256;
export const sliceSize = (imageSize: number): number => Math.max(1, Math.floor(PIXELS_PER_CALL / (imageSize * imageSize)));

/** The embedded default model shipped in the package (models/dove-tiny.pt). */
export function defaultModelPath(): string {
  return join(packageRoot(), 'models', 'dove-tiny.pt');
}

function notDove(path: string, what: string): DoveError {
  return new DoveError(`${displayPath(path)}: not a DOVE export (${what}); export one with \`python -m dove.export\` (docs/MODEL_FORMAT.md)`, 'NOT_DOVE_EXPORT');
}

/** Ranges dove.json's numbers must lie in (imageSize: what lib/io/images.ts decodes to). */
const META_RANGES = {
  imageSize: [1, 8192],
  maxTokens: [1, 65536],
  tokenDim: [1, 65536],
} as const;
const QUERY_RANGES = { maxLength: [1, 65536], padId: [0, 2 ** 31 - 1] } as const;

/**
 * Parses and checks an export's dove.json (docs/MODEL_FORMAT.md). Every field the runtime uses is
 * checked for type and range, integers as integers (1.5, 1e400, -0, "64" are refused), and the
 * message names the field: a NOT_DOVE_EXPORT at load rather than a misleading failure later (a
 * fractional maxTokens would surface as a usage error about --lengths). Another formatVersion is
 * FORMAT_VERSION.
 */
export function parseDoveMeta(path: string, text: string | undefined): DoveMeta {
  const where = displayPath(path);
  if (text === undefined || text.length === 0) throw notDove(path, 'missing extra file dove.json');
  const meta = parseJson(text, 'dove.json', (message) => notDove(path, message));
  if (!isJsonObject(meta)) throw notDove(path, 'dove.json is not an object');
  if (meta.formatVersion !== FORMAT_VERSION) {
    throw new DoveError(
      `${where}: dove.json has formatVersion ${preview(meta.formatVersion)}, this runtime reads version ${FORMAT_VERSION}; re-export the model or upgrade dove-encoder`,
      'FORMAT_VERSION',
    );
  }
  const problems: string[] = [];
  const integer = (obj: Record<string, unknown>, key: string, [min, max]: readonly [number, number], prefix = ''): void => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || Object.is(v, -0) || v < min || v > max) {
      problems.push(`${prefix}${key} must be an integer between ${min} and ${max} but is ${preview(v)}`);
    }
  };
  for (const [key, range] of Object.entries(META_RANGES)) integer(meta, key, range);
  const t = meta.eosThreshold;
  if (typeof t !== 'number' || !(t > 0 && t < 1)) problems.push(`eosThreshold must be a number between 0 and 1 (exclusive) but is ${preview(t)}`);
  if (meta.variant !== 'dove' && meta.variant !== 'qdove') problems.push(`variant must be "dove" or "qdove" but is ${preview(meta.variant)}`);
  if (meta.format !== undefined && meta.format !== 'dove-encoder/model') problems.push(`format must be "dove-encoder/model" but is ${preview(meta.format)}`);
  for (const key of ['configName', 'normalization'] as const) {
    if (meta[key] !== undefined && typeof meta[key] !== 'string') problems.push(`${key} must be a string but is ${preview(meta[key])}`);
  }
  const q = meta.queryTokenizer;
  if (q === undefined || q === null) {
    if (meta.variant === 'qdove') problems.push('queryTokenizer must be {file, maxLength, padId} for a Q-DOVE export but is missing');
  } else if (!isJsonObject(q)) {
    problems.push(`queryTokenizer must be null or {file, maxLength, padId} but is ${preview(q)}`);
  } else {
    if (typeof q.file !== 'string' || q.file.length === 0) problems.push(`queryTokenizer.file must be a file name but is ${preview(q.file)}`);
    for (const [key, range] of Object.entries(QUERY_RANGES)) integer(q, key, range, 'queryTokenizer.');
  }
  if (problems.length > 0) throw notDove(path, `dove.json: ${problems.join('; ')}`);
  return {
    ...(meta as unknown as DoveMeta),
    configName: typeof meta.configName === 'string' ? meta.configName : 'custom',
    normalization: typeof meta.normalization === 'string' ? meta.normalization : 'rgb01',
    queryTokenizer: (q ?? null) as DoveMeta['queryTokenizer'],
  };
}

/** What a batch of tokens must look like; `minLength` 1 for encoder output, 0 for decoder input. */
export interface TokenShape {
  batch: number;
  slots: number;
  dim: number;
  minLength: 0 | 1;
}

/**
 * Checks tokens float32 (B,K,D), lengths int64 (B,) with every length in minLength..K, and p(EOS)
 * float32 (B,K); returns what is wrong (for the caller's message and code), or undefined. `expected`
 * fields left undefined are taken from the tensors themselves. One native call for all three.
 */
export function checkTokenTensors(tokens: Tensor, lengths: Tensor, eos: Tensor | undefined, expected: Partial<TokenShape> & { minLength: 0 | 1 }): string | undefined {
  const [t, l, e] = describeTokens(tokens, lengths, eos, false);
  return checkTokenInfo(t!, l!, e, expected);
}

/** dtype/shape of tokens, lengths (with their values) and p(EOS) (with its values when asked). */
function describeTokens(tokens: Tensor, lengths: Tensor, eos: Tensor | undefined, eosData: boolean): TensorInfo[] {
  const tensors = eos === undefined ? [tokens, lengths] : [tokens, lengths, eos];
  try {
    return Tensor.describe(tensors, [false, true, eosData].slice(0, tensors.length));
  } catch {
    // A dtype without a typed array (int8, ...): described without values, so the check names it.
    return Tensor.describe(tensors, tensors.map(() => false));
  }
}

function checkTokenInfo(tokens: TensorInfo, lengths: TensorInfo, eos: TensorInfo | undefined, expected: Partial<TokenShape> & { minLength: 0 | 1 }): string | undefined {
  const ts = tokens.shape;
  if (tokens.dtype !== 'float32' || ts.length !== 3) return `tokens are ${tokens.dtype} (${ts.join(', ')}), expected float32 (B, K, D)`;
  const [b, k, d] = ts as [number, number, number];
  if (expected.batch !== undefined && b !== expected.batch) return `tokens hold ${b} images, expected ${expected.batch}`;
  if (expected.slots !== undefined && k !== expected.slots) return `tokens have ${k} slots, expected ${expected.slots}`;
  if (expected.dim !== undefined && d !== expected.dim) return `tokens have ${d} values per token, expected ${expected.dim}`;
  const ls = lengths.shape;
  if (lengths.dtype !== 'int64' || ls.length !== 1 || ls[0] !== b) return `lengths are ${lengths.dtype} (${ls.join(', ')}), expected int64 (${b})`;
  if (eos !== undefined) {
    const es = eos.shape;
    if (eos.dtype !== 'float32' || es.length !== 2 || es[0] !== b || es[1] !== k) return `EOS probabilities are ${eos.dtype} (${es.join(', ')}), expected float32 (${b}, ${k})`;
  }
  const values = lengths.data as BigInt64Array;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < BigInt(expected.minLength) || v > BigInt(k)) return `length ${v} for image ${i}, expected ${expected.minLength}..${k}`;
  }
  return undefined;
}

/** Reconstructions of a batch of images at several lengths (views over one native output). */
export interface LengthReconstructions {
  /** frames[c][i]: image i decoded at column c's length, uint8 (H,W,3). */
  frames: Uint8Array[][];
  /** The EOS-chosen length of each image (auto mode over all maxTokens slots). */
  autoLengths: number[];
  /** p(EOS) per image and slot, (B, maxTokens), only when asked for. */
  eosProbabilities?: Float32Array;
}

/** A decode length: a token count for every image, or each image's own EOS-chosen length. */
export type LengthColumn = number | 'auto';
/** A decode's output and, where asked for, a host view of its pixels. */
type Decoded = { output: Tensor; pixels: Uint8Array | undefined };

/** The lengths a sweep shows by default: powers of two from 1 up to max, always ending at max (e.g. 64 -> 1,2,4,8,16,32,64). */
export function defaultLengths(max: number, from = 1): number[] {
  const out: number[] = [];
  for (let n = from; n < max; n *= 2) out.push(n);
  out.push(max);
  return out;
}

export interface EncodeResult {
  /** float32 (B, K, tokenDim). */
  tokens: Tensor;
  /** float32 (B, K). */
  eosProbabilities: Tensor;
  /** int64 (B,). */
  lengths: Tensor;
}

export class DoveModel {
  /** The module's device, read once (it never changes). */
  readonly device: string;
  /** References to the module: the loader's own, plus one per Tokenizer / Reconstructor built on it. */
  #references = 1;
  #ownReleased = false;

  private constructor(
    readonly path: string,
    readonly module: Module,
    readonly meta: DoveMeta,
    readonly queryTokenizer: BpeTokenizer | null,
    /** The compiled encode/decode in use, or null (TorchScript only). */
    readonly compiled: CompiledDove | null,
    /** Which inference path runs and why: 'in use: <package>' or the reason the package is not used. */
    readonly compiledNote: string,
  ) {
    this.device = module.device;
  }

  /** Loads and validates a model file; with no path, the embedded default model. */
  static async load(path?: string, options: LoadOptions = {}): Promise<DoveModel> {
    const file = path ?? defaultModelPath();
    if (path === undefined && !existsSync(file)) {
      throw new DoveError(`No embedded model at ${file}; pass a model path (a .pt written by \`python -m dove.export\`)`, 'FILE_NOT_FOUND');
    }
    const device = options.device ?? 'cpu';
    // CUDA: off unless asked (freezing is exact on any device, but only the CPU path is tested and measured).
    const optimize = options.optimize === undefined ? device === 'cpu' : options.optimize;
    const compiled = booleanOrWord('compiled', options.compiled, true, ['always'] as const);
    const trustModel = booleanOption('trustModel', options.trustModel, false);
    // Hashing the weights (a SHA-256 pass over them) is only needed to match a (CPU) package, and
    // only a trusted model's package is ever opened.
    const hashWeights = compiled !== false && trustModel && device === 'cpu' && existsSync(compiledPackagePath(file));
    const module = await loadModule(file, { device, extraFiles: ['dove.json', 'tokenizer.json'], optimize, trustModel, hashWeights });
    try {
      const meta = parseDoveMeta(file, module.extraFiles['dove.json']);
      const names = new Set(module.methodNames());
      const absent = REQUIRED_METHODS.filter((m) => !names.has(m));
      if (absent.length > 0) throw notDove(file, `missing method${absent.length > 1 ? 's' : ''} ${absent.join(', ')}`);
      let queryTokenizer: BpeTokenizer | null = null;
      if (meta.variant === 'qdove') {
        const spec = meta.queryTokenizer;
        const text = module.extraFiles[spec?.file ?? 'tokenizer.json'];
        if (spec === null || text === undefined || text.length === 0) throw notDove(file, 'Q-DOVE export without its tokenizer.json / queryTokenizer entry');
        queryTokenizer = BpeTokenizer.fromJson(text);
      }
      const outcome = compiled === false
        ? { compiled: null, note: 'not asked for (compiled: false)' }
        : meta.variant !== 'dove'
          ? { compiled: null, note: 'Q-DOVE runs TorchScript (compiled packages cover DOVE only)' }
          : await CompiledDove.open(file, module.weightsHash, module.device, meta, trustModel, compiled);
      return new DoveModel(file, module, meta, queryTokenizer, outcome.compiled, outcome.note);
    } catch (error) {
      module.dispose();
      throw error;
    }
  }

  /** Loads a model for `make` (a Tokenizer or Reconstructor, which takes its own reference) and drops the loader's. */
  static async loadFor<T>(make: (model: DoveModel) => T, path?: string, options: LoadOptions = {}): Promise<T> {
    const model = await DoveModel.load(path, options);
    try {
      return make(model);
    } finally {
      model.dispose();
    }
  }

  get imageSize(): number {
    return this.meta.imageSize;
  }
  get maxTokens(): number {
    return this.meta.maxTokens;
  }
  get tokenDim(): number {
    return this.meta.tokenDim;
  }
  get isQDove(): boolean {
    return this.meta.variant === 'qdove';
  }

  /** INVALID_ARGUMENT naming `option` unless this is a Q-DOVE export: the one check of every query option. */
  requireQDove(option: string): void {
    if (!this.isQDove) throw new DoveError(`${option} needs a Q-DOVE model; ${this.path} is a DOVE export`, 'INVALID_ARGUMENT');
  }

  /** Token ids of one query, truncated to the model's maxLength. */
  queryIds(query: string): number[] {
    const tok = this.queryTokenizer;
    const spec = this.meta.queryTokenizer;
    if (tok === null || spec === null) {
      throw new DoveError(`${this.path} is a DOVE export; queries need a Q-DOVE model`, 'INVALID_ARGUMENT');
    }
    return tok.encode(query).slice(0, spec.maxLength);
  }

  /**
   * Tokenises queries like python/dove/tokenizer.py encode_queries: ids truncated to maxLength,
   * padded with padId to the longest (at least 1), mask 1 on real tokens.
   */
  encodeQueries(queries: readonly string[]): { ids: Tensor; mask: Tensor } {
    const padId = this.meta.queryTokenizer?.padId ?? 0;
    const encoded = queries.map((q) => this.queryIds(q));
    const width = maxOf(encoded.map((e) => e.length), 1);
    const ids = new BigInt64Array(queries.length * width).fill(BigInt(padId));
    const mask = new BigInt64Array(queries.length * width);
    encoded.forEach((e, i) => {
      ids.set(e.map(BigInt), i * width);
      mask.fill(1n, i * width, i * width + e.length);
    });
    return { ids: Tensor.fromArray(ids, [queries.length, width], 'int64'), mask: Tensor.fromArray(mask, [queries.length, width], 'int64') };
  }

  /**
   * uint8 (B,H,W,3) pixels -> tokens, EOS probabilities and chosen lengths (K = budget slots).
   * Q-DOVE queries of different token counts run as separate forwards (one per count): padding a
   * query shifts the positions of the slots after it, so a padded batch would not equal the images
   * one by one.
   */
  async encodePixels(pixels: Tensor, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number, queries?: readonly string[]): Promise<EncodeResult> {
    const batch = pixels.shape[0] ?? 0;
    if (queries === undefined) return this.encodeSliced(pixels, batch, mode, budget, threshold);
    const counts = queries.map((q) => this.queryIds(q).length);
    const groups = new Map<number, number[]>();
    counts.forEach((c, i) => groups.set(c, [...(groups.get(c) ?? []), i]));
    if (groups.size === 1) return this.runEncode(pixels, batch, mode, budget, threshold, queries);
    const b = queries.length;
    const all = pixels.data() as Uint8Array;
    const frame = all.length / b;
    const gathered = new EncodedRows(b, budget, this.tokenDim);
    for (const indices of groups.values()) {
      const px = new Uint8Array(indices.length * frame);
      indices.forEach((src, j) => px.set(all.subarray(src * frame, (src + 1) * frame), j * frame));
      const input = Tensor.fromArray(px, [indices.length, ...pixels.shape.slice(1)], 'uint8');
      const part = await this.runEncode(input, indices.length, mode, budget, threshold, indices.map((i) => queries[i]!)).finally(() => input.dispose());
      gathered.take(part, indices);
    }
    return gathered.tensors();
  }

  /** encodeCall over at most sliceSize images at a time on the CPU, the outputs gathered in host buffers. */
  private async encodeSliced(pixels: Tensor, batch: number, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number): Promise<EncodeResult> {
    const slice = this.device === 'cpu' ? sliceSize(this.imageSize) : batch;
    // Other shapes go to one call, whose model reports what is wrong with them.
    if (batch <= slice || pixels.shape.length !== 4) return this.encodeCall(pixels, batch, mode, budget, threshold);
    const gathered = new EncodedRows(batch, budget, this.tokenDim);
    for (let start = 0; start < batch; start += slice) {
      const end = Math.min(batch, start + slice);
      const view = pixels.slice(start, end);
      const part = await this.encodeCall(view, end - start, mode, budget, threshold).finally(() => view.dispose());
      gathered.take(part, Array.from({ length: end - start }, (_, j) => start + j));
    }
    return gathered.tensors();
  }

  /** The whole batch in one encode call, unsliced (bench/compiled/slices.ts compares the two). */
  async encodeOnce(pixels: Tensor, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number): Promise<EncodeResult> {
    return this.encodeCall(pixels, pixels.shape[0] ?? 0, mode, budget, threshold);
  }

  /** One encode call: the compiled encoder where it takes these pixels, else encode_pixels. */
  private async encodeCall(pixels: Tensor, batch: number, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number): Promise<EncodeResult> {
    const c = this.compiled;
    const s = this.imageSize;
    const [b, h, w, ch] = pixels.shape;
    if (c !== null && pixels.dtype === 'uint8' && pixels.shape.length === 4 && h === s && w === s && ch === 3 && b! >= 1 && b! <= c.maxBatch) {
      return this.runEncodeCompiled(c, pixels, mode, budget, threshold);
    }
    return this.runEncode(pixels, batch, mode, budget, threshold, null);
  }

  /** A tensor on the model's device: the same tensor on CPU, otherwise a device copy, added to `copies` (to dispose). */
  private onDevice(tensor: Tensor, copies: Tensor[]): Tensor {
    if (this.device === 'cpu' || tensor.device === this.device) return tensor;
    const copy = tensor.to(this.device);
    copies.push(copy);
    return copy;
  }

  /**
   * encode_pixels on `batch` images, its outputs checked against the contract in one native call;
   * the lengths' values (and p(EOS)'s with `withEos`) come back as host views.
   */
  private async runEncode(
    pixels: Tensor, batch: number, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number, queries: readonly string[] | null, withEos = false,
  ): Promise<EncodeResult & { lengthValues: BigInt64Array; eosValues: Float32Array | undefined }> {
    const query = queries === null ? null : this.encodeQueries(queries);
    const moved: Tensor[] = [];
    const dev = (t: Tensor | undefined): Tensor | null => (t === undefined ? null : this.onDevice(t, moved));
    try {
      const out = await this.module.run('encode_pixels', [dev(pixels), mode, budget, threshold, dev(query?.ids), dev(query?.mask)]);
      if (!Array.isArray(out) || out.length !== 3 || !out.every((t) => t instanceof Tensor)) {
        throw new DoveError(`${displayPath(this.path)}: encode_pixels returned an unexpected value`, 'NOT_DOVE_EXPORT');
      }
      const [tokens, eosProbabilities, lengths] = out as [Tensor, Tensor, Tensor];
      try {
        const [t, l, e] = describeTokens(tokens, lengths, eosProbabilities, withEos);
        const problem = checkTokenInfo(t!, l!, e, { batch, slots: budget, dim: this.tokenDim, minLength: 1 });
        if (problem !== undefined) throw new DoveError(`${displayPath(this.path)}: encode_pixels broke the DOVE contract (docs/MODEL_FORMAT.md): ${problem}`, 'NOT_DOVE_EXPORT');
        return { tokens, eosProbabilities, lengths, lengthValues: l!.data as BigInt64Array, eosValues: e!.data as Float32Array | undefined };
      } catch (error) {
        Tensor.disposeAll([tokens, eosProbabilities, lengths]);
        throw error;
      }
    } finally {
      Tensor.disposeAll(query === null ? moved : [query.ids, query.mask, ...moved]);
    }
  }

  /**
   * encode_pixels through the compiled encoder: all maxTokens slots, then the first `budget` of
   * them and the lengths the TorchScript file's own select_lengths picks (one owner of the rule).
   */
  private async runEncodeCompiled(c: CompiledDove, pixels: Tensor, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number): Promise<EncodeResult> {
    const [tokensAll, logitsAll, probsAll] = await c.encode(pixels);
    const taken = [tokensAll, logitsAll, probsAll].map((t) => firstSlots(t, budget)) as [Tensor, Tensor, Tensor];
    const [tokens, logits, eosProbabilities] = taken;
    try {
      const lengths = await this.module.run('select_lengths', [logits, mode, budget, threshold]);
      if (!(lengths instanceof Tensor)) throw new DoveError(`${this.path}: select_lengths returned an unexpected value`, 'NOT_DOVE_EXPORT');
      return { tokens, eosProbabilities, lengths };
    } catch (error) {
      tokens.dispose();
      eosProbabilities.dispose();
      throw error;
    } finally {
      logits.dispose();
      for (const t of [tokensAll, logitsAll, probsAll]) if (!taken.includes(t)) t.dispose();
    }
  }

  /** tokens (B,K,D) float32 + lengths (B,) int64 -> uint8 (B,H,W,3). */
  async decodePixels(tokens: Tensor, lengths: Tensor): Promise<Tensor> {
    return (await this.decodeSliced(tokens, lengths, tokens.shape[0] ?? 0, false)).output;
  }

  /** decodePixels plus a host view of the pixels, checked and read in one native call. */
  async decodeToHost(tokens: Tensor, lengths: Tensor): Promise<{ output: Tensor; pixels: Uint8Array }> {
    const { output, pixels } = await this.decodeSliced(tokens, lengths, tokens.shape[0] ?? 0, true);
    return { output, pixels: pixels! };
  }

  /** decodeCall over at most sliceSize images at a time on the CPU, the pixels gathered in one host buffer. */
  private async decodeSliced(tokens: Tensor, lengths: Tensor, batch: number, withData: boolean): Promise<Decoded> {
    const [slice, s] = [this.device === 'cpu' ? sliceSize(this.imageSize) : batch, this.imageSize];
    if (batch <= slice) return this.decodeCall(tokens, lengths, withData, batch);
    // One call's model checks that the batches agree; slices of unequal batches could each agree.
    if (lengths.shape[0] !== batch) throw new DoveError(`decode: ${batch} token rows but ${lengths.shape.join('x')} lengths`, 'SHAPE_MISMATCH');
    const pixels = new Uint8Array(batch * s * s * 3);
    for (let start = 0; start < batch; start += slice) {
      const end = Math.min(batch, start + slice);
      const views = [tokens.slice(start, end), lengths.slice(start, end)] as const;
      const part = await this.decodeCall(views[0], views[1], true, end - start).finally(() => Tensor.disposeAll(views));
      pixels.set(part.pixels!, start * s * s * 3);
      part.output.dispose();
    }
    return { output: Tensor.fromArray(pixels, [batch, s, s, 3], 'uint8'), pixels };
  }

  /** The whole batch in one decode call, unsliced (bench/compiled/slices.ts compares the two). */
  async decodeOnce(tokens: Tensor, lengths: Tensor): Promise<Tensor> {
    return (await this.decodeCall(tokens, lengths, false, tokens.shape[0] ?? 0)).output;
  }

  /** One decode call: the compiled decoder where it takes these arguments, else decode_pixels. */
  private async decodeCall(tokens: Tensor, lengths: Tensor, withData: boolean, batch: number): Promise<Decoded> {
    if (this.compiled !== null && this.compiled.decodes(tokens, lengths)) {
      const output = await this.compiled.decode(tokens, lengths);
      return { output, pixels: withData ? (output.data() as Uint8Array) : undefined };
    }
    return this.runDecode(tokens, lengths, batch, withData);
  }

  private async runDecode(tokens: Tensor, lengths: Tensor, batch: number, withData: boolean): Promise<Decoded> {
    const moved: Tensor[] = [];
    const t = this.onDevice(tokens, moved);
    const l = this.onDevice(lengths, moved);
    try {
      const out = await this.module.run('decode_pixels', [t, l]);
      if (!(out instanceof Tensor)) throw new DoveError(`${displayPath(this.path)}: decode_pixels returned an unexpected value`, 'NOT_DOVE_EXPORT');
      const s = this.imageSize;
      const expected = [batch, s, s, 3];
      const { dtype, shape, data } = Tensor.describe([out], [withData && this.device === 'cpu'])[0]!;
      if (dtype !== 'uint8' || shape.length !== 4 || shape.some((d, i) => d !== expected[i])) {
        out.dispose();
        throw new DoveError(`${displayPath(this.path)}: decode_pixels broke the DOVE contract (docs/MODEL_FORMAT.md): returned ${dtype} (${shape.join(', ')}), expected uint8 (${expected.join(', ')})`, 'NOT_DOVE_EXPORT');
      }
      // Off the CPU the values are read only once the shape is known good (a device-to-host copy).
      return { output: out, pixels: withData ? ((data ?? out.data()) as Uint8Array) : undefined };
    } finally {
      Tensor.disposeAll(moved);
    }
  }

  /**
   * The model's one encode -> decode-at-several-lengths: uint8 (B,H,W,3) pixels encoded once (auto
   * mode over all maxTokens slots; the generator is causal, so a prefix of the K-slot code is the
   * L-token code), then decoded at every column's length. Tokens never leave native memory: one image
   * is decoded at all columns in one call over a view that repeats its code (no copy); a batch is
   * decoded once per column. What comes back to JS is the pixels, the chosen lengths and, with
   * `withEos`, p(EOS).
   */
  async reconstructAtLengths(
    pixels: Uint8Array, batch: number, columns: readonly LengthColumn[], options: { threshold: number; queries?: readonly string[]; withEos?: boolean },
  ): Promise<LengthReconstructions> {
    const s = this.imageSize;
    const frame = s * s * 3;
    const max = this.maxTokens;
    for (const c of columns) if (c !== 'auto') integerInRange(c, 'lengths', 1, max);
    const input = Tensor.fromArray(pixels, [batch, s, s, 3], 'uint8');
    const owned: Tensor[] = [input];
    try {
      const queries = options.queries;
      const enc = queries === undefined || new Set(queries.map((q) => this.queryIds(q).length)).size <= 1
        ? await this.runEncode(input, batch, 'auto', max, options.threshold, queries ?? null, options.withEos === true)
        : await this.encodeGrouped(input, max, options.threshold, queries, options.withEos === true);
      owned.push(enc.tokens, enc.eosProbabilities, enc.lengths);
      const autoLengths = Array.from(enc.lengthValues, Number);
      const eosProbabilities = options.withEos === true ? Float32Array.from(enc.eosValues!) : undefined;
      const split = (all: Uint8Array, count: number): Uint8Array[] => Array.from({ length: count }, (_, i) => all.subarray(i * frame, (i + 1) * frame));
      if (batch === 1) {
        const tokens = enc.tokens.expand0(columns.length);
        const lengths = Tensor.fromArray(BigInt64Array.from(columns, (c) => BigInt(c === 'auto' ? autoLengths[0]! : c)), [columns.length], 'int64');
        owned.push(tokens, lengths);
        const { pixels: out } = await this.decodeSliced(tokens, lengths, columns.length, true);
        return { frames: split(out!, columns.length).map((f) => [f]), autoLengths, eosProbabilities };
      }
      const frames: Uint8Array[][] = [];
      for (const c of columns) {
        const lengths = c === 'auto' ? enc.lengths : Tensor.fromArray(new BigInt64Array(batch).fill(BigInt(c)), [batch], 'int64');
        if (lengths !== enc.lengths) owned.push(lengths);
        const { pixels: out } = await this.decodeSliced(enc.tokens, lengths, batch, true);
        frames.push(split(out!, batch));
      }
      return { frames, autoLengths, eosProbabilities };
    } finally {
      Tensor.disposeAll(owned);
    }
  }

  /** encodePixels' per-query-count grouping, with the host values reconstructAtLengths reads. */
  private async encodeGrouped(
    input: Tensor, budget: number, threshold: number, queries: readonly string[], withEos: boolean,
  ): Promise<EncodeResult & { lengthValues: BigInt64Array; eosValues: Float32Array | undefined }> {
    const enc = await this.encodePixels(input, 'auto', budget, threshold, queries);
    const lengthValues = enc.lengths.data() as BigInt64Array;
    return { ...enc, lengthValues, eosValues: withEos ? (enc.eosProbabilities.data() as Float32Array) : undefined };
  }

  /**
   * A new reference to this model for an object that uses it (a Tokenizer, a Reconstructor): the
   * module is freed when the last reference is released. The returned release is idempotent.
   */
  retain(): () => void {
    this.#references++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#releaseOne();
    };
  }

  #releaseOne(): void {
    if (--this.#references === 0) {
      this.compiled?.dispose();
      this.module.dispose();
    }
  }

  /** Releases the loader's reference (idempotent): the module is freed once no Tokenizer or Reconstructor uses it. */
  dispose(): void {
    if (this.#ownReleased) return;
    this.#ownReleased = true;
    this.#releaseOne();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** What a Tokenizer and a Reconstructor share: a reference to their model, held until dispose(). */
export abstract class ModelUser {
  readonly #release: () => void;

  /** Holds a reference to `model` until dispose(): another Tokenizer or Reconstructor sharing it keeps it alive. */
  constructor(readonly model: DoveModel) {
    this.#release = model.retain();
  }

  get imageSize(): number {
    return this.model.imageSize;
  }

  /** Releases this object's reference to the model (freed when nothing else holds it). Idempotent. */
  dispose(): void {
    this.#release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Host buffers for a batch's encode results, filled from parts that each cover some of its rows. */
class EncodedRows {
  private readonly tokens: Float32Array;
  private readonly probs: Float32Array;
  private readonly lengths: BigInt64Array;

  constructor(private readonly batch: number, private readonly budget: number, private readonly dim: number) {
    this.tokens = new Float32Array(batch * budget * dim);
    this.probs = new Float32Array(batch * budget);
    this.lengths = new BigInt64Array(batch);
  }

  /** Row j of `part` becomes row rows[j]; part's tensors are freed. */
  take(part: EncodeResult, rows: readonly number[]): void {
    try {
      const [t, p, l] = [part.tokens.data() as Float32Array, part.eosProbabilities.data() as Float32Array, part.lengths.data() as BigInt64Array];
      const per = this.budget * this.dim;
      rows.forEach((dst, j) => {
        this.tokens.set(t.subarray(j * per, (j + 1) * per), dst * per);
        this.probs.set(p.subarray(j * this.budget, (j + 1) * this.budget), dst * this.budget);
        this.lengths[dst] = l[j]!;
      });
    } finally {
      Tensor.disposeAll([part.tokens, part.eosProbabilities, part.lengths]);
    }
  }

  tensors(): EncodeResult {
    return {
      tokens: Tensor.fromArray(this.tokens, [this.batch, this.budget, this.dim], 'float32'),
      eosProbabilities: Tensor.fromArray(this.probs, [this.batch, this.budget], 'float32'),
      lengths: Tensor.fromArray(this.lengths, [this.batch], 'int64'),
    };
  }
}

/**
 * The first `count` slots of a CPU tensor (B,K,...) as a contiguous tensor: the same tensor when
 * count = K, else a copy of those slots (the slots of one image are contiguous in both).
 */
function firstSlots(t: Tensor, count: number): Tensor {
  const [b, k] = t.shape as [number, number];
  if (count === k) return t;
  const per = t.numel / (b * k);
  const src = t.data() as Float32Array;
  const out = new Float32Array(b * count * per);
  for (let i = 0; i < b; i++) out.set(src.subarray(i * k * per, (i * k + count) * per), i * count * per);
  return Tensor.fromArray(out, [b, count, ...t.shape.slice(2)], 'float32');
}

// A loaded DOVE model file (docs/MODEL_FORMAT.md): the TorchScript module, its parsed dove.json,
// the Q-DOVE query tokenizer, and typed wrappers over the pixel-level methods the API uses.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BpeTokenizer } from './bpe';
import { CompiledDove, compiledPackagePath } from './compiled';
import { DoveError } from './errors';
import { loadModule, type Module } from './module';
import { Tensor } from './tensor';

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
   * machine (default true; CPU only). Otherwise, or with `false`, the TorchScript methods run.
   * `DoveModel.compiledNote` says which path is in use and why.
   */
  compiled?: boolean;
}


/** The embedded default model shipped in the package (models/dove-tiny.pt). */
export function defaultModelPath(): string {
  // dist/lib/model-file.js -> package root; also works from lib/ under ts-node style runners.
  const fromDist = resolve(__dirname, '..', '..', 'models', 'dove-tiny.pt');
  const fromSrc = resolve(__dirname, '..', 'models', 'dove-tiny.pt');
  return existsSync(fromDist) || !existsSync(fromSrc) ? fromDist : fromSrc;
}

function notDove(path: string, what: string): DoveError {
  return new DoveError(`${path}: not a DOVE export (${what}); export one with \`python -m dove.export\` (docs/MODEL_FORMAT.md)`, 'NOT_DOVE_EXPORT');
}

function parseMeta(path: string, text: string | undefined): DoveMeta {
  if (text === undefined || text.length === 0) throw notDove(path, 'missing extra file dove.json');
  let meta: Partial<DoveMeta>;
  try {
    meta = JSON.parse(text) as Partial<DoveMeta>;
  } catch (error) {
    throw notDove(path, `dove.json is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof meta !== 'object' || meta === null) throw notDove(path, 'dove.json is not an object');
  if (meta.formatVersion !== FORMAT_VERSION) {
    throw new DoveError(
      `${path}: dove.json has formatVersion ${JSON.stringify(meta.formatVersion)}, this runtime reads version ${FORMAT_VERSION}; re-export the model or upgrade dove-encoder`,
      'FORMAT_VERSION',
    );
  }
  const missing: string[] = [];
  for (const key of ['imageSize', 'maxTokens', 'tokenDim', 'eosThreshold'] as const) {
    if (typeof meta[key] !== 'number' || !(meta[key] > 0)) missing.push(key);
  }
  if (meta.variant !== 'dove' && meta.variant !== 'qdove') missing.push('variant');
  if (missing.length > 0) throw notDove(path, `dove.json lacks valid ${missing.join(', ')}`);
  return meta as DoveMeta;
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
  private constructor(
    readonly path: string,
    readonly module: Module,
    readonly meta: DoveMeta,
    readonly queryTokenizer: BpeTokenizer | null,
    /** The compiled encode/decode in use, or null (TorchScript only). */
    readonly compiled: CompiledDove | null,
    /** Which inference path runs and why: 'in use: <package>' or the reason the package is not used. */
    readonly compiledNote: string,
  ) {}

  /** Loads and validates a model file; with no path, the embedded default model. */
  static async load(path?: string, options: LoadOptions = {}): Promise<DoveModel> {
    const file = path ?? defaultModelPath();
    if (path === undefined && !existsSync(file)) {
      throw new DoveError(`No embedded model at ${file}; pass a model path (a .pt written by \`python -m dove.export\`)`, 'FILE_NOT_FOUND');
    }
    const device = options.device ?? 'cpu';
    // CUDA: off unless asked (freezing is exact on any device, but only the CPU path is tested and measured).
    const optimize = options.optimize === undefined ? device === 'cpu' : options.optimize;
    const useCompiled = options.compiled ?? true;
    if (typeof useCompiled !== 'boolean') throw new DoveError(`Expected boolean for compiled but received ${String(useCompiled)}`, 'INVALID_ARGUMENT');
    // Hashing the weights (a SHA-256 pass over them) is only needed to match a (CPU) package.
    const hashWeights = useCompiled && device === 'cpu' && existsSync(compiledPackagePath(file));
    const module = await loadModule(file, { device, extraFiles: ['dove.json', 'tokenizer.json'], optimize, hashWeights });
    try {
      const meta = parseMeta(file, module.extraFiles['dove.json']);
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
      const { compiled, note } = !useCompiled
        ? { compiled: null, note: 'not asked for (compiled: false)' }
        : meta.variant !== 'dove'
          ? { compiled: null, note: 'Q-DOVE runs TorchScript (compiled packages cover DOVE only)' }
          : await CompiledDove.open(file, module.weightsHash, module.device, meta);
      return new DoveModel(file, module, meta, queryTokenizer, compiled, note);
    } catch (error) {
      module.dispose();
      throw error;
    }
  }

  get device(): string {
    return this.module.device;
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
    const width = Math.max(1, ...encoded.map((e) => e.length));
    const ids = new BigInt64Array(queries.length * width).fill(BigInt(padId));
    const mask = new BigInt64Array(queries.length * width);
    encoded.forEach((e, i) => {
      e.forEach((id, j) => {
        ids[i * width + j] = BigInt(id);
        mask[i * width + j] = 1n;
      });
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
    if (queries === undefined) {
      const c = this.compiled;
      const s = this.imageSize;
      const [b, h, w, ch] = pixels.shape;
      if (c !== null && pixels.dtype === 'uint8' && pixels.shape.length === 4 && h === s && w === s && ch === 3 && b! >= 1 && b! <= c.maxBatch) {
        return this.runEncodeCompiled(c, pixels, mode, budget, threshold);
      }
      return this.runEncode(pixels, mode, budget, threshold, null);
    }
    const counts = queries.map((q) => this.queryIds(q).length);
    const groups = new Map<number, number[]>();
    counts.forEach((c, i) => groups.set(c, [...(groups.get(c) ?? []), i]));
    if (groups.size === 1) return this.runEncode(pixels, mode, budget, threshold, queries);
    const b = queries.length;
    const all = pixels.data() as Uint8Array;
    const frame = all.length / b;
    const tokens = new Float32Array(b * budget * this.tokenDim);
    const probs = new Float32Array(b * budget);
    const lengths = new BigInt64Array(b);
    for (const indices of groups.values()) {
      const px = new Uint8Array(indices.length * frame);
      indices.forEach((src, j) => px.set(all.subarray(src * frame, (src + 1) * frame), j * frame));
      const input = Tensor.fromArray(px, [indices.length, ...pixels.shape.slice(1)], 'uint8');
      let part: EncodeResult;
      try {
        part = await this.runEncode(input, mode, budget, threshold, indices.map((i) => queries[i]!));
      } finally {
        input.dispose();
      }
      const t = part.tokens.data() as Float32Array;
      const p = part.eosProbabilities.data() as Float32Array;
      const l = part.lengths.data() as BigInt64Array;
      const per = budget * this.tokenDim;
      indices.forEach((dst, j) => {
        tokens.set(t.subarray(j * per, (j + 1) * per), dst * per);
        probs.set(p.subarray(j * budget, (j + 1) * budget), dst * budget);
        lengths[dst] = l[j]!;
      });
      part.tokens.dispose();
      part.eosProbabilities.dispose();
      part.lengths.dispose();
    }
    return {
      tokens: Tensor.fromArray(tokens, [b, budget, this.tokenDim], 'float32'),
      eosProbabilities: Tensor.fromArray(probs, [b, budget], 'float32'),
      lengths: Tensor.fromArray(lengths, [b], 'int64'),
    };
  }

  /** A tensor on the model's device (the same tensor on CPU; a device copy otherwise, to dispose). */
  private onDevice(tensor: Tensor): Tensor {
    return this.device === 'cpu' || tensor.device === this.device ? tensor : tensor.to(this.device);
  }

  private async runEncode(pixels: Tensor, mode: 'auto' | 'fixed' | 'capped', budget: number, threshold: number, queries: readonly string[] | null): Promise<EncodeResult> {
    const query = queries === null ? null : this.encodeQueries(queries);
    const moved: Tensor[] = [];
    const dev = (t: Tensor | undefined): Tensor | null => {
      if (t === undefined) return null;
      const d = this.onDevice(t);
      if (d !== t) moved.push(d);
      return d;
    };
    try {
      const out = await this.module.run('encode_pixels', [dev(pixels), mode, budget, threshold, dev(query?.ids), dev(query?.mask)]);
      if (!Array.isArray(out) || out.length !== 3 || !out.every((t) => t instanceof Tensor)) {
        throw new DoveError(`${this.path}: encode_pixels returned an unexpected value`, 'NOT_DOVE_EXPORT');
      }
      const [tokens, eosProbabilities, lengths] = out as [Tensor, Tensor, Tensor];
      return { tokens, eosProbabilities, lengths };
    } finally {
      query?.ids.dispose();
      query?.mask.dispose();
      for (const t of moved) t.dispose();
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
    if (this.compiled !== null && this.compiled.decodes(tokens, lengths)) return this.compiled.decode(tokens, lengths);
    const t = this.onDevice(tokens);
    const l = this.onDevice(lengths);
    try {
      const out = await this.module.run('decode_pixels', [t, l]);
      if (!(out instanceof Tensor)) throw new DoveError(`${this.path}: decode_pixels returned an unexpected value`, 'NOT_DOVE_EXPORT');
      return out;
    } finally {
      if (t !== tokens) t.dispose();
      if (l !== lengths) l.dispose();
    }
  }

  dispose(): void {
    this.compiled?.dispose();
    this.module.dispose();
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

// The compiled inference path: encode and decode of a DOVE file as AOTInductor models
// (`python -m dove.export --compiled` writes <model>.aoti.pt2 beside <model>.pt; docs/MODEL_FORMAT.md).
// A package is used only for the file it was compiled from (same weights hash), on the device and
// CPU instructions it was compiled for; otherwise the TorchScript methods run, and `note` says why.
import { existsSync } from 'node:fs';
import type { NativeCompiledPackage } from '../../binding';
import { DoveError } from '../base/errors';
import { binding } from '../core/native';
import { Tensor, tensorFromResult } from '../core/tensor';

export const PACKAGE_FORMAT = 'dove-encoder/aoti';
export const PACKAGE_VERSION = '1';

/** Where a model's package lives: model.pt -> model.aoti.pt2 (python/dove/aoti_export.py package_path). */
export function compiledPackagePath(modelPath: string): string {
  return `${modelPath.endsWith('.pt') ? modelPath.slice(0, -3) : modelPath}.aoti.pt2`;
}

/** The package's outcome for one loaded model: the compiled pair, or why there is none. */
export interface CompiledOutcome {
  compiled: CompiledDove | null;
  /** 'in use: <path>', or why the TorchScript methods run instead. */
  note: string;
}

/** LoadOptions.compiled: 'always' also uses a package measured slower than TorchScript (`dove.prefer`). */
export type CompiledChoice = boolean | 'always';

/** Why a package model's metadata does not fit the loaded file or is not to be used, or null. */
function mismatch(meta: { [key: string]: string }, model: string, weightsHash: string, maxTokens: number, modelPath: string, choice: CompiledChoice): string | null {
  if (meta['dove.format'] !== PACKAGE_FORMAT || meta['dove.format_version'] !== PACKAGE_VERSION) return `its ${model} model is not a ${PACKAGE_FORMAT} v${PACKAGE_VERSION} package`;
  if (meta['dove.weights_hash'] !== weightsHash) return `compiled from other weights than ${modelPath} (re-export with --compiled, or python -m dove.aoti_export)`;
  if (Number(meta['dove.max_tokens']) !== maxTokens) return `compiled for ${meta['dove.max_tokens']} tokens, the model has ${maxTokens}`;
  if (choice !== 'always' && meta['dove.prefer'] === 'torchscript') return `slower than the TorchScript methods where it was compiled (${meta['dove.measured'] ?? 'no timings recorded'}); compiled: 'always' runs it anyway`;
  return null;
}

export type CompiledMethod = 'encode' | 'decode';
const METHODS: readonly CompiledMethod[] = ['encode', 'decode'];
/** A method's batch-1 model (python/dove/aoti_export.py BATCH_ONE_PREFIX). */
const batchOneModel = (method: CompiledMethod): string => `batch1_${method}`;

/**
 * The methods with a batch-1 model, from a package model's `dove.batch_one` (comma-separated, maybe
 * empty or absent), or null when it names anything else (the package is then not used).
 */
export function batchOneMethods(value: string | undefined): CompiledMethod[] | null {
  if (value === undefined || value === '') return [];
  const names = value.split(',');
  const methods = METHODS.filter((m) => names.includes(m));
  return methods.length === names.length ? methods : null;
}

/** What a package loads: encode and decode, then the batch-1 models of `batchOne`. */
export function packageModels(batchOne: readonly CompiledMethod[]): string[] {
  return [...METHODS, ...batchOne.map(batchOneModel)];
}

/** The package model that runs `method` on a batch of `batch`: its batch-1 model where the package has one. */
export function modelFor(method: CompiledMethod, batch: number, batchOne: readonly CompiledMethod[]): string {
  return batch === 1 && batchOne.includes(method) ? batchOneModel(method) : method;
}

export class CompiledDove {
  readonly maxBatch: number;

  private constructor(
    readonly path: string,
    /** encode and decode (and their batch-1 models), loaded together: one worker thread runs them all (native/compiled_model.cpp). */
    private readonly loaded: NativeCompiledPackage,
    readonly maxTokens: number,
    readonly tokenDim: number,
    /** Methods with a batch-1 model in the package, which runs their batches of one. */
    readonly batchOne: readonly CompiledMethod[],
  ) {
    this.maxBatch = Number(loaded.metadata['encode']!['dove.max_batch']);
  }

  /**
   * Opens the package next to `modelPath` if the model is trusted and the package was compiled from
   * weights with this hash for this device. Never throws for a package that does not fit: the
   * caller runs TorchScript instead.
   */
  static async open(
    modelPath: string,
    weightsHash: string | null,
    device: string,
    sizes: { maxTokens: number; tokenDim: number },
    trustModel: boolean,
    choice: CompiledChoice = true,
  ): Promise<CompiledOutcome> {
    const path = compiledPackagePath(modelPath);
    if (!existsSync(path)) return { compiled: null, note: `no compiled package (${path})` };
    // A package is a shared library whose code runs as it is opened, beyond what the TorchScript
    // check (UNSAFE_MODEL) can see: an untrusted model's package is not even read.
    if (!trustModel) return { compiled: null, note: `${path} not used: a compiled package is native code; load with trustModel: true (--trust-model) to run it` };
    if (device !== 'cpu') return { compiled: null, note: `${path} not used: compiled packages run on the CPU only` };
    if (weightsHash === null) return { compiled: null, note: `${path} not checked (the weights were not hashed)` };
    const native = binding();
    let loaded: NativeCompiledPackage;
    let batchOne: CompiledMethod[] | null = [];
    try {
      // Every model's metadata first: nothing is loaded (a shared library extracted and opened) for a package that does not fit.
      for (const model of METHODS) {
        const meta = await native.compiledMetadata(path, model);
        const why = mismatch(meta, model, weightsHash, sizes.maxTokens, modelPath, choice);
        if (why !== null) return { compiled: null, note: `${path} not used: ${why}` };
        if (model === 'encode') batchOne = batchOneMethods(meta['dove.batch_one']);
      }
      if (batchOne === null) return { compiled: null, note: `${path} not used: its dove.batch_one names methods other than ${METHODS.join(' and ')}` };
      const models = packageModels(batchOne);
      for (const model of models.slice(METHODS.length)) {
        const why = mismatch(await native.compiledMetadata(path, model), model, weightsHash, sizes.maxTokens, modelPath, choice);
        if (why !== null) return { compiled: null, note: `${path} not used: ${why}` };
      }
      loaded = await native.loadCompiled(path, models, device, trustModel);
    } catch (error) {
      return { compiled: null, note: `${path} not used: ${error instanceof Error ? error.message : String(error)}` };
    }
    return { compiled: new CompiledDove(path, loaded, sizes.maxTokens, sizes.tokenDim, batchOne), note: `in use: ${path}` };
  }

  /** uint8 (B,S,S,3) -> tokens (B,K,D), eos logits (B,K), p(EOS) (B,K) with K = maxTokens. */
  async encode(pixels: Tensor): Promise<[Tensor, Tensor, Tensor]> {
    const out = await this.run('encode', [pixels]);
    if (out.length !== 3) throw new DoveError(`${this.path}: encode returned ${out.length} tensors, expected 3`, 'NOT_DOVE_EXPORT');
    return out as [Tensor, Tensor, Tensor];
  }

  /**
   * Whether decode takes these arguments as the TorchScript method would: float32 tokens (B,K,D)
   * with 1 <= K <= maxTokens, int64 lengths (B,) between 0 and K, on the CPU. The compiled graph
   * cannot check values; arguments it does not take go to TorchScript, which raises its own errors.
   */
  decodes(tokens: Tensor, lengths: Tensor): boolean {
    const [b, k, d] = tokens.shape;
    if (tokens.dtype !== 'float32' || tokens.device !== 'cpu' || tokens.shape.length !== 3 || d !== this.tokenDim) return false;
    if (!(k! >= 1 && k! <= this.maxTokens && b! >= 1 && b! <= this.maxBatch)) return false;
    if (lengths.dtype !== 'int64' || lengths.device !== 'cpu' || lengths.shape.length !== 1 || lengths.shape[0] !== b) return false;
    const kk = BigInt(k!);
    return (lengths.data() as BigInt64Array).every((l) => l >= 0n && l <= kk);
  }

  /** Arguments `decodes` accepted -> uint8 (B,S,S,3). */
  async decode(tokens: Tensor, lengths: Tensor): Promise<Tensor> {
    const out = await this.run('decode', [tokens, lengths]);
    if (out.length !== 1) throw new DoveError(`${this.path}: decode returned ${out.length} tensors, expected 1`, 'NOT_DOVE_EXPORT');
    return out[0]!;
  }

  /** The package's loaded models (encode, decode, then the batch-1 models). */
  get models(): readonly string[] {
    return this.loaded.models;
  }

  private async run(method: CompiledMethod, inputs: Tensor[]): Promise<Tensor[]> {
    try {
      return (await this.loaded.run(modelFor(method, inputs[0]!.shape[0]!, this.batchOne), inputs.map((t) => t.native))).map(tensorFromResult);
    } catch (error) {
      throw DoveError.atCallSite(error);
    }
  }

  dispose(): void {
    this.loaded.dispose();
  }
}

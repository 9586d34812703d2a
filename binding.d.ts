// The typed surface of the native addon (native/*.cpp). This is the only place JS meets C++:
// lib/ wraps it in the public API and nothing else imports the raw binding.
//
// Conventions
// - Every heavy call (module load, method run, training step, collectives) returns a Promise and
//   runs on a native worker thread; the JS thread never blocks on libtorch.
// - Every native failure arrives as an instance of the class given to `setErrorClass` (DoveError),
//   with `code` set to one of `NativeErrorCode` and `message` carrying libtorch's text.
// - Tensors cross without copies: `tensorFromArray` wraps the typed array's memory (the tensor keeps
//   the JS buffer alive); `tensorData()` returns a typed array over the tensor's own memory for
//   contiguous CPU tensors.

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'uint8' | 'bool';

/** What tensorsInfo reports of one tensor. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
  data?: NativeTypedArray;
}

/** Typed arrays accepted for each dtype. float16/bfloat16 travel as raw 16-bit words (Uint16Array). */
export type NativeTypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array;

export type NativeErrorCode =
  | 'INVALID_ARGUMENT' // wrong JS type / shape / dtype / out-of-range value
  | 'DTYPE_MISMATCH'
  | 'SHAPE_MISMATCH'
  | 'FILE_NOT_FOUND'
  | 'NOT_TORCHSCRIPT' // the file exists but is not a TorchScript archive
  | 'NOT_DOVE_EXPORT' // TorchScript, but not a DOVE export (missing dove.json / methods)
  | 'FORMAT_VERSION' // dove.json of another format version
  | 'METHOD_NOT_FOUND'
  | 'DEVICE_UNAVAILABLE'
  | 'DISPOSED' // tensor / module used after dispose()
  | 'BUSY' // runSync on a module with async calls queued or running, or in use by a training step
  | 'TORCH_ERROR' // any other c10::Error from libtorch
  | 'IO_ERROR'
  | 'DISTRIBUTED_ERROR'
  | 'UNSAFE_MODEL' // the model's TorchScript calls an operator that touches files, other processes or process-wide state
  | 'INTERNAL';

declare const nativeTensorBrand: unique symbol;

/**
 * An opaque handle on a libtorch tensor (a napi External: no properties, no prototype). The
 * `tensor*` functions of the binding read and convert it; lib/core/tensor.ts's Tensor wraps it. A
 * handle, not a class instance, because making one costs a third of what an instance did and a
 * result handle is made on every call that returns a tensor (docs/NATIVE.md, "Tensor handles").
 */
export interface NativeTensor {
  readonly [nativeTensorBrand]: true;
}

/** Values that cross a method call. Arrays map to TorchScript List or Tuple as the method schema says. */
export type IValue =
  | NativeTensor
  | number
  | bigint
  | boolean
  | string
  | null
  | IValue[]
  | { readonly [key: string]: IValue };

export interface NativeModule {
  readonly path: string;
  readonly device: string;
  readonly disposed: boolean;
  /** Extra files read at load (e.g. dove.json, tokenizer.json), by name. Missing names are absent. */
  readonly extraFiles: { readonly [name: string]: string };
  methodNames(): string[];
  /** TorchScript schema string of a method, e.g. "encode(__torch__.X self, Tensor images, int max_tokens) -> (Tensor, Tensor)". */
  methodSchema(name: string): string;
  /**
   * Runs a method on the module's own worker thread (one per module, started on first use), one
   * call at a time in call order. In eval mode it runs under InferenceMode; in train mode with grad.
   */
  run(method: string, args: IValue[]): Promise<IValue>;
  /**
   * Runs a method on the calling (JS) thread and returns its result; blocks the event loop for the
   * whole call. Throws BUSY, without waiting, while `run`/`save` calls on this module are queued or
   * running or another native call (a training step) holds the module. Same conversions and error
   * codes as `run`.
   */
  runSync(method: string, args: IValue[]): IValue;
  train(on: boolean): void;
  readonly training: boolean;
  parameters(): NativeTensor[];
  namedParameters(): { [name: string]: NativeTensor };
  /** Atomic save (temp file + fsync + rename) with extra files. */
  save(path: string, extraFiles: { [name: string]: string }): Promise<void>;
  /** Bytes held by parameters and buffers (reported to V8 as external memory). */
  readonly nbytes: number;
  /**
   * SHA-256 (hex) of the weights as loaded, before `optimize` (native/weights_hash.h; the exporter's
   * weights_hash computes the same), when loadModule was asked for it; else null.
   */
  readonly weightsHash: string | null;
  dispose(): void;
}

/**
 * Models of an AOTInductor package (`python -m dove.export --compiled`, docs/MODEL_FORMAT.md): code
 * compiled ahead of time from DOVE's methods, run through libtorch's AOTIModelPackageLoader.
 */
/** runtime.cpuBlockCache(): the caching allocator in front of libtorch's CPU allocator. */
export interface CpuBlockCacheStats {
  /** Installed by the first optimised load or the first CPU train engine, unless DOVE_CPU_CACHE_MB=0. */
  readonly installed: boolean;
  /** DOVE_CPU_CACHE_MB in bytes: the most free memory it keeps (0 when not installed). */
  readonly capBytes: number;
  /** Free blocks held for reuse now. */
  readonly cachedBytes: number;
  /** Allocations served from the cache so far. */
  readonly reused: number;
}

export interface NativeCompiledPackage {
  readonly path: string;
  /** The loaded models' names, in load order ('encode' and 'decode' in DOVE packages). */
  readonly models: readonly string[];
  readonly device: string;
  readonly disposed: boolean;
  /** Per loaded model, the package's metadata (dove.weights_hash, dove.inputs, dove.cpu_isa, ...). */
  readonly metadata: { readonly [model: string]: { readonly [key: string]: string } };
  /**
   * Runs one loaded model on the package's worker thread (one thread for all its models, so an
   * encode and a decode in turn share one OpenMP team), one call at a time in call order, under
   * InferenceMode. The inputs are checked against that model's dove.inputs first (DTYPE_MISMATCH,
   * SHAPE_MISMATCH: the compiled code checks nothing itself); non-contiguous inputs are copied.
   * INVALID_ARGUMENT for a model that was not loaded.
   */
  run(model: string, inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
}

export interface ParamGroupSpec {
  /** Parameters whose name starts with any of these prefixes join the group ('' matches all). */
  prefixes: string[];
  lrScale: number;
  weightDecay: number;
}

export interface TrainEngineOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  /** First matching group wins; parameters matching none go to a default group (lrScale 1). */
  groups: ParamGroupSpec[];
  weightDecay: number;
  warmupSteps: number;
  totalSteps: number;
  /** Cosine floor as a fraction of lr. */
  minLrRatio: number;
  /** 0 disables clipping. */
  clipGradNorm: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  /** bf16 autocast for the forward (CUDA only; ignored on CPU). */
  autocastBf16: boolean;
  seed: number;
}

export interface StepResult {
  /** Mean over micro-batches of every scalar entry of the forward's output dict (loss, rec, eos, length...). */
  parts: { [name: string]: number };
  lr: number;
  gradNorm: number;
  step: number; // optimizer steps done after this call
  /** True when this call only accumulated gradients (no optimizer step yet). */
  accumulated: boolean;
}

export interface NativeTrainEngine {
  readonly step: number;
  /** forward(args) -> Dict[str, Tensor] with key 'loss'; backward; (all-reduce); clip; AdamW step; schedule. */
  trainStep(args: IValue[]): Promise<StepResult>;
  /** Optimizer + scheduler + RNG state, atomically written. */
  saveState(path: string): Promise<void>;
  loadState(path: string): Promise<void>;
  setProcessGroup(group: NativeProcessGroup | null): void;
  dispose(): void;
}

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** 'gloo' (CPU) or 'nccl' (CUDA). */
  backend: 'gloo' | 'nccl';
  timeoutMs: number;
}

export interface NativeProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: string;
  /**
   * In-place sum (or average) all-reduce of a tensor; resolves when done or rejects on timeout.
   * Every collective first compares what each rank passes (dtype, shape, root; see `agree`): ranks
   * that disagree reject with DISTRIBUTED_ERROR naming the difference, instead of reaching Gloo,
   * which aborts the process on mismatched sizes.
   */
  allReduce(tensor: NativeTensor, op: 'sum' | 'avg'): Promise<void>;
  broadcast(tensor: NativeTensor, root: number): Promise<void>;
  barrier(): Promise<void>;
  /**
   * Resolves when every rank passed the same `description` (64-bit hashes compared by a fixed-size
   * all-reduce); otherwise the descriptions go through the rendezvous store and every rank rejects
   * with DISTRIBUTED_ERROR naming `what`, the first rank that differs from rank 0 and the first
   * differing line. The trainer passes its parameter list
   * (name, dtype, shape per line) before broadcasting the weights.
   */
  agree(what: string, description: string): Promise<void>;
  dispose(): void;
}

export interface OperatorRule {
  name: string;
  why: string;
}

export interface OperatorAudit {
  /** Operators (and namespaces) a model may not call unless trusted. */
  unsafeOperators: OperatorRule[];
  unsafeNamespaces: OperatorRule[];
  /** Operators the registry query flags that were reviewed and allowed. */
  reviewedSafe: OperatorRule[];
  /** Every registered operator the query flags, and whether the rules refuse it. */
  registry: { name: string; flaggedBy: string; unsafe: boolean }[];
  registrySize: number;
}

export interface NativeVersions {
  addon: string;
  libtorch: string;
  napi: number;
  /** True once libtorch's CUDA libraries are loaded (lib/core/cuda-libtorch.ts loads them on demand). */
  cuda: boolean;
  cudaVersion: string | null;
  libtorchPath: string;
  /** Whether the nccl backend was built for this addon (dove_nccl.so beside it: c10d::ProcessGroupNCCL). */
  nccl: boolean;
}

/** Evaluation (native/eval_*.cpp). */
export interface GaussianStatistics {
  /** (D) float64 mean of the feature rows. */
  mean: NativeTensor;
  /** (D,D) float64 unbiased (N-1) covariance, as numpy.cov(rowvar=False). */
  covariance: NativeTensor;
}

export interface LinearProbeOptions {
  numClasses: number;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Standardise features with the train set's mean and std before the linear layer. */
  standardize: boolean;
}

export interface LinearProbeEpoch {
  epoch: number;
  trainLoss: number;
  /** Fractions in [0,1]. */
  trainTop1: number;
  testTop1: number;
  testTop5: number;
}

export interface LinearProbeResult {
  epochs: LinearProbeEpoch[];
  /** (C,D) float32, applied to (x - mean) * scale. */
  weight: NativeTensor;
  bias: NativeTensor;
  mean: NativeTensor;
  scale: NativeTensor;
}

export interface NativeBinding {
  /** Called once by lib/base/errors.ts so native failures are real DoveError instances. */
  setErrorClass(ctor: new (message: string, code: NativeErrorCode) => Error): void;
  /**
   * Called once by lib/core/native.ts with Node's `markAsUntransferable`: `tensorFromArray` pins each
   * ArrayBuffer it wraps with it, so a transfer list naming the buffer copies it instead of
   * detaching it from under a tensor (docs/NATIVE.md, "JS-backed memory").
   */
  setBufferPin(pin: (buffer: ArrayBuffer) => void): void;
  /**
   * A tensor over `data`'s memory. Refused (INVALID_ARGUMENT): views of SharedArrayBuffers,
   * resizable or detached ArrayBuffers; SHAPE_MISMATCH when the shape's element count (checked for
   * 64-bit overflow) differs from the array's length.
   */
  tensorFromArray(data: NativeTypedArray, shape: number[], dtype: DType): NativeTensor;
  /** True for a tensor handle this addon made in this thread's environment (never by duck typing). */
  isTensor(value: unknown): value is NativeTensor;
  // Reading a handle. Every function but tensorDisposed/tensorDispose throws DISPOSED after dispose.
  tensorShape(tensor: NativeTensor): number[];
  tensorStrides(tensor: NativeTensor): number[];
  tensorDtype(tensor: NativeTensor): DType;
  /** 'cpu' | 'cuda:0' ... */
  tensorDevice(tensor: NativeTensor): string;
  tensorNbytes(tensor: NativeTensor): number;
  tensorIsContiguous(tensor: NativeTensor): boolean;
  tensorDisposed(tensor: NativeTensor): boolean;
  /** Contiguous CPU: a typed array over the tensor's memory (no copy). Otherwise a copy. */
  tensorData(tensor: NativeTensor): NativeTypedArray;
  /** Address of the first element, for tests that prove memory is shared. */
  tensorDataAddress(tensor: NativeTensor): bigint;
  /** Device/dtype conversion (shares storage when nothing changes). */
  tensorTo(tensor: NativeTensor, device: string | null, dtype: DType | null): NativeTensor;
  tensorContiguous(tensor: NativeTensor): NativeTensor;
  tensorClone(tensor: NativeTensor): NativeTensor;
  /** Narrow along dim 0 (view, no copy). */
  tensorSlice0(tensor: NativeTensor, start: number, end: number): NativeTensor;
  /** (1, ...) -> (n, ...) as a view (no copy; every row is the same memory), n in 1..65536. */
  tensorExpand0(tensor: NativeTensor, n: number): NativeTensor;
  /** A single element as a number (for scalars and small checks). */
  tensorItem(tensor: NativeTensor): number;
  /** Frees the tensor now instead of at garbage collection. Idempotent. */
  tensorDispose(tensor: NativeTensor): void;
  /** dtype and shape of each tensor, and its data (as tensorData) where `withData[i]`: one call for a set of results. */
  tensorsInfo(tensors: NativeTensor[], withData: boolean[]): TensorInfo[];
  /** tensorDispose of each (idempotent). */
  tensorsDispose(tensors: NativeTensor[]): void;
  /** Contiguous, uninitialised-then-zeroed tensor owned by libtorch. */
  zeros(shape: number[], dtype: DType, device: string): NativeTensor;
  /** Stack same-shaped tensors along a new dim 0 (one copy into a fresh batch). */
  stack(tensors: NativeTensor[]): NativeTensor;
  /**
   * Every file is checked before libtorch reads or runs anything in it (native/model_inspect.h):
   * NOT_TORCHSCRIPT for corrupt or unsupported archives (tensors reaching outside their storage,
   * malformed pickles), UNSAFE_MODEL, unless `trustModel`, for TorchScript that calls operators
   * touching files, other processes or process-wide state (docs/MODEL_FORMAT.md).
   * `optimize` (default false): an inference-only module (native/module_optimize.h): frozen (no
   * parameters, cannot train), conv weights channels_last on CPU; the first such load also installs
   * the process-wide CPU block cache (DOVE_CPU_CACHE_MB, 0 = off). See docs/API.md.
   */
  loadModule(path: string, device: string, extraFileNames: string[], optimize?: boolean, trustModel?: boolean, hashWeights?: boolean): Promise<NativeModule>;
  /** A model's metadata in an AOTInductor package, read without loading its code. */
  compiledMetadata(path: string, model: string): Promise<{ [key: string]: string }>;
  /**
   * Loads models of an AOTInductor package (extracts and loads their shared libraries, which run
   * native code: UNSAFE_MODEL unless `trustModel` is true). Every model's metadata is checked before
   * any is loaded: DEVICE_UNAVAILABLE when one was compiled for another device or for CPU
   * instructions this CPU lacks, NOT_DOVE_EXPORT when the package has no such model or no dove.*
   * metadata. `models`: 1 to 64 distinct names.
   */
  loadCompiled(path: string, models: readonly string[], device: string, trustModel: boolean): Promise<NativeCompiledPackage>;
  createTrainEngine(module: NativeModule, options: TrainEngineOptions): NativeTrainEngine;
  initProcessGroup(options: ProcessGroupOptions): Promise<NativeProcessGroup>;
  /** Float64 linear-algebra helpers for evaluation (FID). */
  frechetDistance(mu1: NativeTensor, sigma1: NativeTensor, mu2: NativeTensor, sigma2: NativeTensor): Promise<number>;
  /**
   * FID between two feature sets (N,D) and (M,D), float64. Equal to frechetDistance of their
   * statistics; when N, M <= D it uses the exact low-rank form (nuclear norm of the N x M cross-Gram).
   */
  frechetDistanceFromFeatures(features1: NativeTensor, features2: NativeTensor): Promise<number>;
  /** Mean and covariance (float64) of feature rows (N,D), N >= 2. */
  gaussianStatistics(features: NativeTensor): Promise<GaussianStatistics>;
  /** Softmax-regression probe (AdamW, zero init, seeded shuffles) on frozen features (N,D) with int64/int32 labels. */
  trainLinearProbe(
    trainFeatures: NativeTensor,
    trainLabels: NativeTensor,
    testFeatures: NativeTensor,
    testLabels: NativeTensor,
    options: LinearProbeOptions,
    onEpoch?: (metrics: LinearProbeEpoch) => void,
  ): Promise<LinearProbeResult>;
  /** 'cpu', then 'cuda:N' for each GPU once libtorch's CUDA libraries are loaded. */
  devices(): string[];
  /**
   * Called after libtorch_cuda.so was loaded: true when libtorch's CUDA hooks are the real ones
   * (CUDA devices usable from now on), false when libtorch had settled on "no CUDA" before.
   */
  cudaLoaded(): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  versions(): NativeVersions;
  /** at::show_config() + at::get_parallel_info(): BLAS, OpenMP, threads. */
  buildInfo(): string;
  /** The CPU block cache (native/cpu_block_cache.h): whether it is installed, its cap, the free bytes it holds, allocations it served. */
  cpuBlockCache(): CpuBlockCacheStats;
  /** The model-file operator rules and what the registry query flags in the loaded libtorch (tests). */
  operatorAudit(): OperatorAudit;
}

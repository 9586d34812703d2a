// Public low-level TorchScript module: load a scripted file, run its methods off the JS thread
// (or, for tiny methods, synchronously with runSync).
// Values cross as Tensor (no copy), number, bigint, boolean, string, null, arrays (List or Tuple,
// as the method's schema says) and string-keyed objects (Dict[str, T]).
import type { IValue, NativeModule, NativeTensor } from '../../binding';
import { requireCudaFor } from './cuda-libtorch';
import { DoveError } from '../base/errors';
import { binding } from './native';
import { booleanOption } from '../base/validate';
import { Tensor, tensorFromResult } from './tensor';

export type Value = Tensor | number | bigint | boolean | string | null | readonly Value[] | { readonly [key: string]: Value };

export interface LoadModuleOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
  /** Extra files to read from the archive (e.g. 'dove.json'); absent ones are left out of extraFiles. */
  extraFiles?: readonly string[];
  /** Inference-only optimisation at load (docs/API.md `optimize`). Default false: the file as is. */
  optimize?: boolean;
  /** Hash the weights as loaded (before `optimize`) into `weightsHash`. Default false. */
  hashWeights?: boolean;
  /**
   * A model file is code. Without this, a file whose TorchScript calls an operator that touches
   * files, other processes or process-wide state (e.g. `aten::from_file`, `aten::save`) is refused
   * with `UNSAFE_MODEL` (docs/MODEL_FORMAT.md, "Model files are code"). `true` skips that check for
   * a file you trust; corrupt files are refused either way. Default false.
   */
  trustModel?: boolean;
}

// These run on every call, so the common cases come first and allocate nothing beyond the result:
// where an argument sits ("argument 0 of noop") is spelled out only for an error or a container.
function toNative(value: Value, where: string): IValue {
  if (value instanceof Tensor) return value.native;
  if (value === undefined) throw new DoveError(`Expected a value for ${where} but received undefined`, 'INVALID_ARGUMENT');
  if (Array.isArray(value)) return (value as readonly Value[]).map((v, i) => toNative(v, `${where}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    if (ArrayBuffer.isView(value)) {
      throw new DoveError(`Expected a Tensor for ${where} but received a typed array; wrap it with Tensor.fromArray`, 'INVALID_ARGUMENT');
    }
    const out: { [key: string]: IValue } = {};
    for (const [k, v] of Object.entries(value as { readonly [key: string]: Value })) out[k] = toNative(v, `${where}.${k}`);
    return out;
  }
  return value as IValue;
}

function argsToNative(method: string, args: readonly Value[]): IValue[] {
  const out = new Array<IValue>(args.length);
  for (let i = 0; i < args.length; i++) {
    const value = args[i];
    if (value instanceof Tensor) out[i] = value.native;
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') out[i] = value;
    else out[i] = toNative(value!, `argument ${i} of ${method}`);
  }
  return out;
}

function fromNative(value: IValue): Value {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(fromNative);
  // The binding returns tensors as handles without a prototype and dicts as plain objects.
  if (Object.getPrototypeOf(value) === null) return tensorFromResult(value as NativeTensor);
  const out: { [key: string]: Value } = {};
  for (const [k, v] of Object.entries(value as { readonly [key: string]: IValue })) out[k] = fromNative(v);
  return out;
}

export class ScriptModule {
  readonly #native: NativeModule;

  private constructor(native: NativeModule) {
    this.#native = native;
  }

  /** Loads a TorchScript archive on a worker thread. Errors: FILE_NOT_FOUND, NOT_TORCHSCRIPT, UNSAFE_MODEL, DEVICE_UNAVAILABLE. */
  static async load(path: string, options: LoadModuleOptions = {}): Promise<ScriptModule> {
    if (typeof path !== 'string' || path.length === 0) {
      throw new DoveError(`Expected a non-empty path string for load but received ${String(path)}`, 'INVALID_ARGUMENT');
    }
    const optimize = booleanOption('optimize', options.optimize, false);
    const trustModel = booleanOption('trustModel', options.trustModel, false);
    const hashWeights = booleanOption('hashWeights', options.hashWeights, false);
    try {
      requireCudaFor(options.device);
      return new ScriptModule(await binding().loadModule(path, options.device ?? 'cpu', [...(options.extraFiles ?? [])], optimize, trustModel, hashWeights));
    } catch (error) {
      throw DoveError.atCallSite(error);
    }
  }

  /** Wraps a module returned by the raw binding (lib/ internals). */
  static fromNative(native: NativeModule): ScriptModule {
    return new ScriptModule(native);
  }

  get native(): NativeModule {
    return this.#native;
  }
  get path(): string {
    return this.#native.path;
  }
  get device(): string {
    return this.#native.device;
  }
  get disposed(): boolean {
    return this.#native.disposed;
  }
  get extraFiles(): { readonly [name: string]: string } {
    return this.#native.extraFiles;
  }
  get training(): boolean {
    return this.#native.training;
  }
  /** Bytes held by parameters and buffers. */
  get nbytes(): number {
    return this.#native.nbytes;
  }
  /** SHA-256 of the weights as loaded (with `hashWeights`), else null. */
  get weightsHash(): string | null {
    return this.#native.weightsHash;
  }

  methodNames(): string[] {
    return this.#native.methodNames();
  }
  hasMethod(name: string): boolean {
    return this.methodNames().includes(name);
  }
  /** TorchScript schema, e.g. "forward(__torch__.M self, Tensor x) -> Tensor". */
  methodSchema(name: string): string {
    return this.#native.methodSchema(name);
  }

  /**
   * Runs `method` on the module's own worker thread; calls on one module run one at a time, in call
   * order.
   * Eval mode (the default after load) runs under InferenceMode; train mode records gradients.
   */
  async run(method: string, args: readonly Value[] = []): Promise<Value> {
    try {
      return fromNative(await this.#native.run(method, argsToNative(method, args)));
    } catch (error) {
      throw DoveError.atCallSite(error);
    }
  }

  /**
   * Runs `method` synchronously on the calling thread and returns its result: no thread hop, so the
   * per-call overhead of a tiny method is a few microseconds instead of an async round trip.
   *
   * It blocks the event loop for the whole call (timers, I/O and other requests wait): use it only
   * for methods that take microseconds, never for a model forward. Same argument conversion, modes
   * (InferenceMode in eval) and error codes as `run`. Throws DoveError `BUSY` instead of waiting
   * while `run`/`save` calls on this module are queued or running (await them first; this keeps
   * calls in order) or while a training step uses the module.
   */
  runSync(method: string, args: readonly Value[] = []): Value {
    try {
      return fromNative(this.#native.runSync(method, argsToNative(method, args)));
    } catch (error) {
      throw DoveError.atCallSite(error);
    }
  }

  /** Switches dropout/batch-norm behaviour and gradient recording for the calls made after it. */
  train(on = true): this {
    this.#native.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  parameters(): Tensor[] {
    return this.#native.parameters().map((p) => Tensor.fromNative(p));
  }
  namedParameters(): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(this.#native.namedParameters()).map(([name, p]) => [name, Tensor.fromNative(p)]));
  }

  /** Atomic save (temp file, fsync, rename) with extra files. */
  async save(path: string, extraFiles: { readonly [name: string]: string } = {}): Promise<void> {
    try {
      await this.#native.save(path, { ...extraFiles });
    } catch (error) {
      throw DoveError.atCallSite(error);
    }
  }

  /** Frees the weights now (after a running call finishes). Later calls reject with DISPOSED. */
  dispose(): void {
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The name lib/ code uses for the type. */
export type Module = ScriptModule;

export function loadModule(path: string, options: LoadModuleOptions = {}): Promise<ScriptModule> {
  return ScriptModule.load(path, options);
}

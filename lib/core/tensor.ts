// Public Tensor: a typed handle on a native (libtorch) tensor. Memory is shared, not copied:
// fromArray wraps the typed array's own memory and data() returns a view of the tensor's memory.
import type { DType, NativeTensor, NativeTypedArray, TensorInfo } from '../../binding';
import { requireCudaFor } from './cuda-libtorch';
import { binding } from './native';
import { DoveError } from '../base/errors';

export type { DType, NativeTypedArray, TensorInfo };

/** The typed array that holds each dtype in JS (float16/bfloat16 as raw 16-bit words). */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int64', 'uint8', 'bool'];

/** dtype of a typed array when none is given (Uint16Array is ambiguous: float16 or bfloat16). */
function inferDtype(data: NativeTypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  throw new DoveError('Expected a dtype (float16 or bfloat16) for a Uint16Array', 'INVALID_ARGUMENT');
}

export interface ToOptions {
  device?: string;
  dtype?: DType;
}

/**
 * lib/ internals: wraps a handle that the binding has just returned from a method call, without the
 * native `isTensor` check that `Tensor.fromNative` makes (a binding call per result, on every call).
 */
export let tensorFromResult: (native: NativeTensor) => Tensor;

export class Tensor {
  readonly #native: NativeTensor;

  static {
    tensorFromResult = (native) => new Tensor(native);
  }

  private constructor(native: NativeTensor) {
    this.#native = native;
  }

  /**
   * A tensor over `data`'s memory (no copy): writes on either side are seen by the other, and the
   * tensor keeps the array's buffer alive and marks it untransferable. Views of SharedArrayBuffers
   * and of resizable or detached ArrayBuffers are refused (INVALID_ARGUMENT, by the addon: it owns
   * the rules for JS memory, docs/NATIVE.md "JS-backed memory"). `shape` defaults to [data.length].
   */
  static fromArray<D extends DType>(data: TypedArrayOf[D], shape?: readonly number[], dtype?: D): Tensor;
  static fromArray(data: NativeTypedArray, shape?: readonly number[], dtype?: DType): Tensor;
  static fromArray(data: NativeTypedArray, shape?: readonly number[], dtype?: DType): Tensor {
    if (!ArrayBuffer.isView(data) || data instanceof DataView) {
      throw new DoveError(`Expected a typed array or Buffer for data but received ${describe(data)}`, 'INVALID_ARGUMENT');
    }
    const dims = shape === undefined ? [data.length] : [...shape];
    return new Tensor(binding().tensorFromArray(data, dims, dtype ?? inferDtype(data)));
  }

  static zeros(shape: readonly number[], dtype: DType = 'float32', device = 'cpu'): Tensor {
    requireCudaFor(device);
    return new Tensor(binding().zeros([...shape], dtype, device));
  }

  /** Stacks same-shaped tensors along a new first dimension (one copy). */
  static stack(tensors: readonly Tensor[]): Tensor {
    return new Tensor(binding().stack(tensors.map((t) => t.native)));
  }

  /** Wraps a tensor returned by the raw binding (lib/ internals). */
  static fromNative(native: NativeTensor): Tensor {
    if (!binding().isTensor(native)) throw new DoveError('Expected a native tensor', 'INVALID_ARGUMENT');
    return new Tensor(native);
  }

  /** The raw handle, for lib/ code that talks to the addon directly. */
  get native(): NativeTensor {
    return this.#native;
  }
  get shape(): number[] {
    return binding().tensorShape(this.#native);
  }
  get strides(): number[] {
    return binding().tensorStrides(this.#native);
  }
  get dtype(): DType {
    return binding().tensorDtype(this.#native);
  }
  get device(): string {
    return binding().tensorDevice(this.#native);
  }
  get nbytes(): number {
    return binding().tensorNbytes(this.#native);
  }
  get isContiguous(): boolean {
    return binding().tensorIsContiguous(this.#native);
  }
  get disposed(): boolean {
    return binding().tensorDisposed(this.#native);
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Contiguous CPU tensors: a view of the tensor's memory (no copy). CUDA / strided: a copy. */
  data(): NativeTypedArray {
    return binding().tensorData(this.#native);
  }

  /** Address of the first element (proves memory sharing in tests). */
  dataAddress(): bigint {
    return binding().tensorDataAddress(this.#native);
  }

  /** Converts device and/or dtype; with nothing to change, shares storage with this tensor. */
  to(target: string | ToOptions): Tensor {
    const options = typeof target === 'string' ? { device: target } : target;
    requireCudaFor(options.device);
    return new Tensor(binding().tensorTo(this.#native, options.device ?? null, options.dtype ?? null));
  }

  contiguous(): Tensor {
    return new Tensor(binding().tensorContiguous(this.#native));
  }

  clone(): Tensor {
    return new Tensor(binding().tensorClone(this.#native));
  }

  /** Rows [start, end) of the first dimension, sharing memory. */
  slice(start: number, end: number): Tensor {
    return new Tensor(binding().tensorSlice0(this.#native, start, end));
  }

  /** A (1, ...) tensor as (n, ...): every row is the same memory (a view, no copy). */
  expand0(n: number): Tensor {
    return new Tensor(binding().tensorExpand0(this.#native, n));
  }

  /** dtype and shape of each tensor, and a host view of its data where `withData[i]`, in one native call. */
  static describe(tensors: readonly Tensor[], withData: readonly boolean[]): TensorInfo[] {
    return binding().tensorsInfo(tensors.map((t) => t.#native), [...withData]);
  }

  /** dispose() of each tensor, in one native call. */
  static disposeAll(tensors: readonly Tensor[]): void {
    if (tensors.length > 0) binding().tensorsDispose(tensors.map((t) => t.#native));
  }

  item(): number {
    return binding().tensorItem(this.#native);
  }

  /** Frees the native tensor now instead of at garbage collection. Idempotent. */
  dispose(): void {
    binding().tensorDispose(this.#native);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a plain array';
  return typeof value === 'object' ? (Object.getPrototypeOf(value)?.constructor?.name ?? 'an object') : typeof value;
}

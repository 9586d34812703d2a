// Loads the raw native binding the benchmark measures (build/Release/dove.node, or DOVE_ADDON) and
// small helpers over it. The benchmark talks to binding.d.ts directly, the layer every API sits on.
// lib/core/native.ts loads it (DOVE_ADDON, e.g. a sanitizer build, else node-gyp-build's pick: the local
// build), after the CUDA stand-ins; a CUDA device needs libtorch's CUDA libraries loaded first
// (lib/core/cuda-libtorch.ts).
import type { IValue, NativeBinding, NativeTensor } from '../../binding';
import { requireCudaFor } from '../../lib/core/cuda-libtorch';
import { binding } from '../../lib/core/native';
import { sliceSize } from '../../lib/model/model-file';

/** The binding, with libtorch's CUDA libraries loaded when `device` is a CUDA device. */
export function loadBinding(device = 'cpu'): NativeBinding {
  const loaded = binding();
  requireCudaFor(device);
  return loaded;
}

export function isTensor(v: IValue): v is NativeTensor {
  return loadBinding().isTensor(v);
}

/** Frees every tensor inside a method result now instead of waiting for the GC. */
export function disposeAll(v: IValue): void {
  if (isTensor(v)) loadBinding().tensorDispose(v);
  else if (Array.isArray(v)) v.forEach(disposeAll);
  else if (typeof v === 'object' && v !== null) Object.values(v).forEach(disposeAll);
}

/** Tuple element `i` of a method result, as a tensor. */
export function tensorAt(v: IValue, i: number, what: string): NativeTensor {
  if (!Array.isArray(v) || !isTensor(v[i])) throw new Error(`Expected a tuple with a tensor at ${i} from ${what}`);
  return v[i] as NativeTensor;
}

/** Deterministic pseudo-random floats (mulberry32): the same inputs in every runtime and every run. */
export function seededFloats(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * scale) + offset;
  }
  return out;
}

/**
 * `call` over the slices the API encodes and decodes a CPU batch in (sliceSize, lib/model/model-file.ts):
 * every input sliced along its first dimension; `each` receives every slice's output (to settle it)
 * before it is freed.
 */
export async function inSlices(
  inputs: readonly NativeTensor[], imageSize: number, device: string,
  call: (...slices: NativeTensor[]) => Promise<IValue>, each: (out: IValue) => void = () => {},
): Promise<void> {
  const b = loadBinding();
  const batch = b.tensorShape(inputs[0]!)[0] ?? 0;
  const slice = device === 'cpu' ? sliceSize(imageSize) : batch;
  if (batch <= slice) {
    const out = await call(...inputs);
    each(out);
    disposeAll(out);
    return;
  }
  for (let start = 0; start < batch; start += slice) {
    const end = Math.min(batch, start + slice);
    const views = inputs.map((t) => b.tensorSlice0(t, start, end));
    try {
      const out = await call(...views);
      each(out);
      disposeAll(out);
    } finally {
      views.forEach((t) => b.tensorDispose(t));
    }
  }
}

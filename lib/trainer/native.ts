// The trainer's view of the native addon: it drives the raw binding (createTrainEngine,
// initProcessGroup, module save) and keeps every NativeTensor it creates inside this folder.
import type { IValue, NativeBinding, NativeModule, NativeTensor } from '../../binding';
import { requireCudaFor } from '../cuda-libtorch';
import { binding } from '../native';

export { requireCudaFor };

export type { IValue, NativeModule, NativeTensor };

export function native(): NativeBinding {
  return binding();
}

/** First tensor in a method result (a tensor or a tuple/list starting with tensors). */
export function tensorAt(value: IValue, index: number, what: string): NativeTensor {
  const item = Array.isArray(value) ? value[index] : index === 0 ? value : undefined;
  if (!binding().isTensor(item)) throw new Error(`${what}: expected a tensor at position ${index} of the result`);
  return item;
}

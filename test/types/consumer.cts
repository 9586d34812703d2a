// A consumer of the published types: compiled by test/types/types.test.ts with `tsc --noEmit
// --strict` against `dove-encoder` resolved like an installed package (package.json "types").
// Not part of the project's own compile (the .cts extension keeps it out of tsconfig's include).
import {
  DoveError,
  ScriptModule,
  Tensor,
  devices,
  isDoveError,
  loadModule,
  setNumThreads,
  versions,
  type DType,
  type DoveErrorCode,
  type Value,
} from 'dove-encoder';

// Fails to compile when T is `any`: a type that silently resolved to any is a broken declaration.
type IsAny<T> = 0 extends 1 & T ? true : false;
type AssertNotAny<T> = IsAny<T> extends true ? never : true;
const shapeTyped: AssertNotAny<Tensor['shape']> = true;
const nativeTyped: AssertNotAny<Tensor['native']> = true;
const dataTyped: AssertNotAny<ReturnType<Tensor['data']>> = true;
const runTyped: AssertNotAny<Awaited<ReturnType<ScriptModule['run']>>> = true;
const versionsTyped: AssertNotAny<ReturnType<typeof versions>> = true;

export async function consume(path: string): Promise<number> {
  const dtype: DType = 'float32';
  const x: Tensor = Tensor.fromArray(new Float32Array([1, 2, 3]), [3], dtype);
  const shape: number[] = x.shape;
  const data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array = x.data();
  const module: ScriptModule = await loadModule(path, { device: devices()[0], extraFiles: ['dove.json'] });
  const meta: string | undefined = module.extraFiles['dove.json'];
  const args: Value[] = [x, 1, 'text', null, [1, 2], { key: x }, 3n, true];
  const out: Value = await module.run('forward', args);
  setNumThreads(2);
  const cudaVersion: string | null = versions().cudaVersion;
  try {
    await module.save(`${path}.copy`, { 'dove.json': meta ?? '{}' });
  } catch (error) {
    if (error instanceof DoveError) {
      const code: DoveErrorCode = error.code;
      return code.length;
    }
    if (isDoveError(error, 'IO_ERROR')) return -1;
  }
  {
    using scoped = Tensor.zeros([2, 2]);
    scoped.to({ dtype: 'float64' });
  }
  module.dispose();
  x.dispose();
  return shape.length + data.length + (out === null ? 0 : 1) + (cudaVersion === null ? 0 : 1) +
    Number(shapeTyped && nativeTyped && dataTyped && runTyped && versionsTyped);
}

// Tensors cross the boundary without copies, validate their input, and fail with DoveError codes.
import test from 'ava';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { devices } from '../../lib/core/runtime';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL } from './helpers';

test('a Float32Array-backed tensor shares memory in both directions', async (t) => {
  const array = new Float32Array([1, 2, 3, 4, 5, 6]);
  const tensor = Tensor.fromArray(array, [2, 3]);
  t.deepEqual(tensor.shape, [2, 3]);
  t.deepEqual(tensor.strides, [3, 1]);
  t.is(tensor.dtype, 'float32');
  t.is(tensor.device, 'cpu');
  t.is(tensor.nbytes, 24);

  // JS -> tensor: a write into the array is what libtorch reads.
  array[4] = 50;
  t.is(tensor.slice(1, 2).clone().data()[1], 50);

  // tensor -> JS: libtorch writes in place (add_ inside TorchScript), the array sees it.
  const module = await loadModule(CORE_MODEL);
  const out = await module.run('add_inplace', [tensor, 10]);
  t.deepEqual([...array], [11, 12, 13, 14, 60, 16]);
  t.true(out instanceof Tensor);
  t.is((out as Tensor).dataAddress(), tensor.dataAddress(), 'the result is the same memory');

  // data() of a JS-backed tensor is the caller's own buffer.
  const view = tensor.data();
  t.is(view.buffer, array.buffer);
  module.dispose();
});

test('a subarray keeps its byte offset and a Buffer works as uint8', (t) => {
  const backing = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
  const tensor = Tensor.fromArray(backing.subarray(2, 6), [2, 2]);
  t.deepEqual([...tensor.data()], [2, 3, 4, 5]);
  const addressOfStart = Tensor.fromArray(backing, [8]).dataAddress();
  t.is(tensor.dataAddress(), addressOfStart + 8n, 'two floats past the buffer start');

  const buffer = Buffer.from([1, 2, 3, 250]);
  const bytes = Tensor.fromArray(buffer, [4]);
  t.is(bytes.dtype, 'uint8');
  buffer[0] = 9;
  t.is(bytes.slice(0, 1).item(), 9);
});

test('data() of a libtorch-owned tensor is a view: same address twice, writes shared', (t) => {
  const tensor = Tensor.zeros([4, 5]);
  const before = tensor.dataAddress();
  const a = tensor.data() as Float32Array;
  const b = tensor.data() as Float32Array;
  t.is(tensor.dataAddress(), before, 'data() did not move or copy the storage');
  t.is(a.buffer, b.buffer, 'one ArrayBuffer over the tensor memory, not a copy per call');
  a[7] = 3.5;
  t.is(b[7], 3.5, 'both typed arrays are the same memory');
  t.is(tensor.clone().data()[7], 3.5, 'libtorch reads what JS wrote');
  t.is(a.byteLength, 80);
});

test('non-contiguous tensors come back as a copy in logical order', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const transposed = (await module.run('transposed', [x])) as Tensor;
  t.false(transposed.isContiguous);
  t.deepEqual(transposed.shape, [3, 2]);
  t.deepEqual([...transposed.data()], [1, 4, 2, 5, 3, 6]);
  module.dispose();
});

test('every dtype round-trips with its typed array', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const out = (await module.run('dtypes')) as Tensor[];
  t.deepEqual(out.map((x) => x.dtype), ['float32', 'float64', 'int32', 'int64', 'uint8', 'bool', 'float16', 'bfloat16']);
  t.deepEqual([...(out[0]!.data() as Float32Array)], [0, 0.5, 1, 1.5, 2, 2.5]);
  t.deepEqual([...(out[1]!.data() as Float64Array)], [0, 0.25, 0.5, 0.75, 1, 1.25]);
  t.deepEqual([...(out[2]!.data() as Int32Array)], [-3, -2, -1, 0, 1, 2]);
  t.deepEqual([...(out[3]!.data() as BigInt64Array)], [0n, 1n, 2n, 3n, 4n, 5n].map((v) => v * 1000000000000n));
  t.deepEqual([...(out[4]!.data() as Uint8Array)], [250, 251, 252, 253, 254, 255]);
  t.deepEqual([...(out[5]!.data() as Uint8Array)], [1, 0, 1, 0, 1, 0]);
  // IEEE half 0.5 = 0x3800, bfloat16 0.5 = 0x3f00
  t.is((out[6]!.data() as Uint16Array)[1], 0x3800);
  t.is((out[7]!.data() as Uint16Array)[1], 0x3f00);

  // The same arrays go back in without conversion.
  for (const [array, dtype] of [
    [new Float64Array([1.5, 2]), 'float64'],
    [new Int32Array([-7, 8]), 'int32'],
    [new BigInt64Array([-(2n ** 40n), 3n]), 'int64'],
    [new Uint8Array([1, 0]), 'bool'],
    [new Uint16Array([0x3c00, 0x4000]), 'float16'],
    [new Uint16Array([0x3f80, 0x4000]), 'bfloat16'],
  ] as const) {
    const tensor = Tensor.fromArray(array, [2], dtype);
    t.is(tensor.dtype, dtype);
    t.is(tensor.data().buffer, array.buffer, `${dtype} shares memory`);
  }
  t.is(Tensor.fromArray(new Uint16Array([0x3c00]), [1], 'float16').to({ dtype: 'float32' }).item(), 1);
  t.is(Tensor.fromArray(new Uint16Array([0x3f80]), [1], 'bfloat16').to({ dtype: 'float32' }).item(), 1);
  module.dispose();
});

test('bad shapes and wrong dtypes reject with DoveError codes', (t) => {
  const array = new Float32Array(6);
  const shape = t.throws(() => Tensor.fromArray(array, [4, 2]), { instanceOf: DoveError });
  t.is(shape?.code, 'SHAPE_MISMATCH');
  t.regex(shape?.message ?? '', /Shape \[4, 2\] needs 8 elements but the Float32Array has 6/);

  const dtype = t.throws(() => Tensor.fromArray(array, [6], 'int32'), { instanceOf: DoveError });
  t.is(dtype?.code, 'DTYPE_MISMATCH');
  t.regex(dtype?.message ?? '', /Expected Int32Array for dtype int32 but received Float32Array/);

  const negative = t.throws(() => Tensor.fromArray(array, [-1, 6]), { instanceOf: DoveError });
  t.is(negative?.code, 'INVALID_ARGUMENT');
  const fractional = t.throws(() => Tensor.fromArray(array, [1.5, 4]), { instanceOf: DoveError });
  t.is(fractional?.code, 'INVALID_ARGUMENT');
  const unknown = t.throws(() => Tensor.fromArray(array, [6], 'complex64' as 'float32'), { instanceOf: DoveError });
  t.is(unknown?.code, 'INVALID_ARGUMENT');
  const notArray = t.throws(() => Tensor.fromArray([1, 2, 3] as unknown as Float32Array, [3]), { instanceOf: DoveError });
  t.is(notArray?.code, 'INVALID_ARGUMENT');
  const badBool = t.throws(() => Tensor.fromArray(new Uint8Array([0, 2]), [2], 'bool'), { instanceOf: DoveError });
  t.is(badBool?.code, 'INVALID_ARGUMENT');
  const ambiguous = t.throws(() => Tensor.fromArray(new Uint16Array(2)), { instanceOf: DoveError });
  t.is(ambiguous?.code, 'INVALID_ARGUMENT');
  const slice = t.throws(() => Tensor.zeros([3]).slice(2, 5), { instanceOf: DoveError });
  t.is(slice?.code, 'INVALID_ARGUMENT');
  const item = t.throws(() => Tensor.zeros([3]).item(), { instanceOf: DoveError });
  t.is(item?.code, 'SHAPE_MISMATCH');
  const stack = t.throws(() => Tensor.stack([Tensor.zeros([2]), Tensor.zeros([3])]), { instanceOf: DoveError });
  t.is(stack?.code, 'SHAPE_MISMATCH');
});

test('zeros, stack, to, contiguous', (t) => {
  const a = Tensor.fromArray(new Float32Array([1, 2]));
  const b = Tensor.fromArray(new Float32Array([3, 4]));
  const stacked = Tensor.stack([a, b]);
  t.deepEqual(stacked.shape, [2, 2]);
  t.deepEqual([...stacked.data()], [1, 2, 3, 4]);
  const same = a.to({ device: 'cpu', dtype: 'float32' });
  t.is(same.dataAddress(), a.dataAddress(), 'to() with nothing to change shares storage');
  const doubled = a.to({ dtype: 'float64' });
  t.is(doubled.dtype, 'float64');
  t.deepEqual([...doubled.data()], [1, 2]);
  t.is(Tensor.zeros([2, 0]).data().length, 0);
  t.deepEqual([...Tensor.zeros([2], 'int64').data()], [0n, 0n]);
});

test('dispose() and Symbol.dispose free the tensor; later use is DISPOSED', (t) => {
  const tensor = Tensor.zeros([8]);
  tensor.dispose();
  t.true(tensor.disposed);
  tensor.dispose(); // idempotent
  const error = t.throws(() => tensor.data(), { instanceOf: DoveError });
  t.is(error?.code, 'DISPOSED');
  t.is(t.throws(() => tensor.shape, { instanceOf: DoveError })?.code, 'DISPOSED');

  let escaped: Tensor | undefined;
  {
    using scoped = Tensor.zeros([2]);
    escaped = scoped;
    t.false(scoped.disposed);
  }
  t.true(escaped.disposed, 'leaving the block disposed it');
});

// Chosen at load time, so the summary shows which of the two cannot run on this machine.
const HAS_CUDA = devices().includes('cuda:0');

(HAS_CUDA ? test.skip : test)(`cuda without a GPU is DEVICE_UNAVAILABLE${HAS_CUDA ? ' [skipped: cuda:0 present]' : ''}`, (t) => {
  const tensor = Tensor.fromArray(new Float32Array([1, 2, 3]));
  const error = t.throws(() => tensor.to('cuda'), { instanceOf: DoveError });
  t.is(error?.code, 'DEVICE_UNAVAILABLE');
  t.is(t.throws(() => Tensor.zeros([1], 'float32', 'cuda:0'), { instanceOf: DoveError })?.code, 'DEVICE_UNAVAILABLE');
});

(HAS_CUDA ? test : test.skip)(`with a GPU, tensors move to cuda:0 and come back; a missing index is DEVICE_UNAVAILABLE${HAS_CUDA ? '' : ' [skipped: no CUDA device on this machine]'}`, (t) => {
  const tensor = Tensor.fromArray(new Float32Array([1, 2, 3]));
  const onGpu = tensor.to('cuda:0');
  t.is(onGpu.device, 'cuda:0');
  t.deepEqual([...onGpu.data()], [1, 2, 3], 'data() copies device memory back');
  const missing = `cuda:${devices().length}`;
  t.is(t.throws(() => tensor.to(missing), { instanceOf: DoveError })?.code, 'DEVICE_UNAVAILABLE');
});

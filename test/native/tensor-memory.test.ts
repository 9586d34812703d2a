// Tensors over JS memory under attack (issue 15, rows 1 and 2): shapes whose element count
// overflows, buffers that are shrunk, detached, transferred or shared. Each case runs in a child
// process: a crash is a signal there, not a dead test runner.
import test from 'ava';
import { join } from 'node:path';
import { CORE_MODEL, describeExit, runChild, ROOT } from './helpers';

const TINY_DOVE = join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt');

test('a shape whose element count overflows int64 is SHAPE_MISMATCH for every dtype, and zeros() refuses it too', (t) => {
  const r = runChild(`
const { Tensor } = lib;
// 4*5*5581*8681*49477*384773 wraps around int64 to exactly 4; other shapes wrap to other lengths.
const wraps = [[4, 5, 5581, 8681, 49477, 384773], [2 ** 32, 2 ** 32, 4], [2 ** 53 - 1, 2 ** 53 - 1], [0, 2 ** 53 - 1, 2 ** 53 - 1, 3]];
const arrays = {
  float32: () => new Float32Array(4), float64: () => new Float64Array(4), int32: () => new Int32Array(4),
  int64: () => new BigInt64Array(4), uint8: () => new Uint8Array(4), bool: () => new Uint8Array(4),
  float16: () => new Uint16Array(4), bfloat16: () => new Uint16Array(4),
};
const out = {};
for (const [dtype, make] of Object.entries(arrays)) {
  for (const shape of wraps) out[dtype + ' ' + shape.join('x')] = codeOf(() => Tensor.fromArray(make(), shape, dtype));
}
out.zeros = codeOf(() => Tensor.zeros([4, 5, 5581, 8681, 49477, 384773]));
// Zero elements with huge other sizes is a real (empty) tensor when the product of the others fits.
const empty = Tensor.fromArray(new Float32Array(0), [0, 2 ** 40]);
out.empty = empty.shape.join('x') + ' ' + empty.numel;
report(out);
`);
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const out = r.result as Record<string, string>;
  for (const [name, code] of Object.entries(out)) {
    if (name === 'empty') continue;
    t.true(code === 'SHAPE_MISMATCH' || (name === 'zeros' && code === 'INVALID_ARGUMENT'), `${name}: ${code}`);
  }
  t.is(out.empty, `0x${2 ** 40} 0`);
});

test('SharedArrayBuffer views, resizable and detached ArrayBuffers are refused with INVALID_ARGUMENT', (t) => {
  const r = runChild(`
const { Tensor } = lib;
const shared = new Float32Array(new SharedArrayBuffer(16));
const growable = new Float32Array(new SharedArrayBuffer(16, { maxByteLength: 64 }));
const resizable = new Float32Array(new ArrayBuffer(16, { maxByteLength: 64 }));
const tracking = new Float32Array(new ArrayBuffer(16, { maxByteLength: 64 }));  // length-tracking view
const detached = new Float32Array(4);
structuredClone(detached.buffer, { transfer: [detached.buffer] });
// Redefining the property on the buffer does not hide that it is resizable.
const disguised = new ArrayBuffer(16, { maxByteLength: 64 });
Object.defineProperty(disguised, 'resizable', { value: false });
report({
  shared: codeOf(() => Tensor.fromArray(shared, [4])),
  growable: codeOf(() => Tensor.fromArray(growable, [4])),
  resizable: codeOf(() => Tensor.fromArray(resizable, [4])),
  tracking: codeOf(() => Tensor.fromArray(tracking)),
  detached: codeOf(() => Tensor.fromArray(detached, [0])),
  disguised: codeOf(() => Tensor.fromArray(new Float32Array(disguised), [4])),
  plain: codeOf(() => Tensor.fromArray(new Float32Array(4), [4])),
});
`);
  t.is(r.signal, null, describeExit(r));
  t.deepEqual(r.result, {
    shared: 'INVALID_ARGUMENT',
    growable: 'INVALID_ARGUMENT',
    resizable: 'INVALID_ARGUMENT',
    tracking: 'INVALID_ARGUMENT',
    detached: 'INVALID_ARGUMENT',
    disguised: 'INVALID_ARGUMENT',
    plain: 'no error',
  });
});

test('a buffer wrapped by a tensor cannot be transferred away: structuredClone and postMessage copy it, every use still works', (t) => {
  const r = runChild(`
const { Tensor } = lib;
const { MessageChannel } = require('node:worker_threads');
const data = Float32Array.from({ length: 1 << 16 }, (_, i) => i);
const tensor = Tensor.fromArray(data, [256, 256]);
const copy = structuredClone(data.buffer, { transfer: [data.buffer] });
const { port1 } = new MessageChannel();
port1.postMessage(data.buffer, [data.buffer]);
port1.close();
global.gc();
const view = tensor.slice(3, 4).data();
report({
  byteLength: data.buffer.byteLength,
  copyLength: copy.byteLength,
  clone: tensor.clone().data()[1000],
  to: tensor.to({ dtype: 'float64' }).data()[65535],
  slice: view[5],
  contiguous: tensor.contiguous().data()[7],
  shared: tensor.data() === data || tensor.data().buffer === data.buffer,
});
`, { nodeArgs: ['--expose-gc'] });
  t.is(r.signal, null, describeExit(r));
  t.deepEqual(r.result, { byteLength: 1 << 18, copyLength: 1 << 18, clone: 1000, to: 65535, slice: 3 * 256 + 5, contiguous: 7, shared: true });
});

test('a tensor whose buffer was detached anyway (WebAssembly memory grows) fails every use with INVALID_ARGUMENT', async (t) => {
  const r = runChild(`
const { Tensor, loadModule } = lib;
const module = await loadModule(${JSON.stringify(CORE_MODEL)});
const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
const view = new Float32Array(memory.buffer, 0, 16);
view.fill(2);
const tensor = Tensor.fromArray(view, [16]);
const before = tensor.clone().data()[0];
memory.grow(1);  // detaches the old ArrayBuffer
const out = { before, detached: view.length === 0 };
for (const [name, use] of Object.entries({
  clone: () => tensor.clone(), to: () => tensor.to({ dtype: 'float64' }), contiguous: () => tensor.contiguous(),
  slice: () => tensor.slice(0, 1), data: () => tensor.data(), item: () => tensor.slice(0, 1).item(),
  shape: () => tensor.shape, runSync: () => module.runSync('noop', [tensor]),
})) out[name] = codeOf(use);
out.run = await codeOfAsync(module.run('scale', [tensor, 2]));
out.stack = codeOf(() => Tensor.stack([tensor, tensor]));
report(out);
`);
  t.is(r.signal, null, describeExit(r));
  t.deepEqual(r.result, {
    before: 2,
    detached: true,
    clone: 'INVALID_ARGUMENT',
    to: 'INVALID_ARGUMENT',
    contiguous: 'INVALID_ARGUMENT',
    slice: 'INVALID_ARGUMENT',
    data: 'INVALID_ARGUMENT',
    item: 'INVALID_ARGUMENT',
    shape: 'INVALID_ARGUMENT',
    runSync: 'INVALID_ARGUMENT',
    run: 'INVALID_ARGUMENT',
    stack: 'INVALID_ARGUMENT',
  });
});

test('an input detached while its call is queued or running fails the call (no result from memory that changed owner)', (t) => {
  const r = runChild(`
const { Tensor, loadModule } = lib;
const module = await loadModule(${JSON.stringify(CORE_MODEL)});
const slow = Tensor.fromArray(new Float32Array(256).fill(0.5), [1, 256]);
const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
const view = new Float32Array(memory.buffer, 0, 16).fill(3);
const input = Tensor.fromArray(view, [16]);
const running = module.run('slow', [slow, 200]);   // keeps the module busy
const queued = module.run('scale', [input, 2]);     // waits behind it
memory.grow(1);
report({ running: await codeOfAsync(running), queued: await codeOfAsync(queued) });
`);
  t.is(r.signal, null, describeExit(r));
  t.deepEqual(r.result, { running: 'no error', queued: 'INVALID_ARGUMENT' });
});

test('tokenizePixels over a buffer transferred or detached while queued: the right lengths or a DoveError, never wrong ones', (t) => {
  const r = runChild(`
const { Tokenizer } = lib;
const tokenizer = await Tokenizer.load(${JSON.stringify(TINY_DOVE)});
const s = tokenizer.imageSize;
const options = { mode: 'auto', budget: tokenizer.maxTokens, threshold: tokenizer.model.meta.eosThreshold, queries: undefined };
const fill = (a) => { for (let i = 0; i < a.length; i++) a[i] = (i * 7919) % 251; return a; };
const reference = (await tokenizer.tokenizePixels(fill(new Uint8Array(2 * s * s * 3)), 2, options)).lengthsArray;
// 1. structuredClone with a transfer list while the call is queued: the buffer is pinned, so it is
//    copied, not detached, and the call reads the same bytes.
const pixels = fill(new Uint8Array(2 * s * s * 3));
const pending = tokenizer.tokenizePixels(pixels, 2, options);
structuredClone(pixels.buffer, { transfer: [pixels.buffer] });
global.gc();
new Uint8Array(pixels.length).fill(255);  // what reused memory would hold
const lengths = (await pending).lengthsArray;
// 2. memory that is detached by a route no pin covers (WebAssembly.Memory.grow): a DoveError.
const memory = new WebAssembly.Memory({ initial: 1, maximum: 64 });
const wasm = fill(new Uint8Array(memory.buffer, 0, 2 * s * s * 3));
const detachedCall = tokenizer.tokenizePixels(wasm, 2, options);
memory.grow(1);
report({ reference, lengths, byteLength: pixels.buffer.byteLength, detached: await codeOfAsync(detachedCall) });
`, { nodeArgs: ['--expose-gc'] });
  t.is(r.signal, null, describeExit(r));
  const out = r.result as { reference: number[]; lengths: number[]; byteLength: number; detached: string };
  t.deepEqual(out.lengths, out.reference);
  t.true(out.byteLength > 0, 'the transfer copied instead of detaching');
  t.is(out.detached, 'INVALID_ARGUMENT');
});

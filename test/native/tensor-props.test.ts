// Property tests of tensor construction from JS (fast-check, issue 15): random shapes (including
// products that overflow 64 bits, zeros, non-integers, negatives), dtypes, typed-array types,
// buffers (plain, offset views, shared, resizable, detached) and the operations on what was made.
// Every outcome must be either a tensor that matches the array element for element, or a DoveError
// with the code the input calls for. It runs in a child process, so a crash is a signal, not a lost
// test runner. DOVE_FUZZ_RUNS (default 1000) and DOVE_FUZZ_SEED set the run; a failure prints the
// seed and the counterexample.
import test from 'ava';
import { describeExit, ROOT, runChild } from './helpers';
import { join } from 'node:path';

const RUNS = Number(process.env.DOVE_FUZZ_RUNS ?? 1000);
const SEED = process.env.DOVE_FUZZ_SEED;

test(`tensor construction from JS: ${RUNS} random cases end in an equal tensor or the right DoveError, never a signal`, (t) => {
  const r = runChild(`
const fc = require(${JSON.stringify(join(ROOT, 'node_modules', 'fast-check'))});
const { Tensor, DoveError } = lib;
const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array,
  uint8: Uint8Array, bool: Uint8Array, float16: Uint16Array, bfloat16: Uint16Array,
};
const OTHER = [Int8Array, Int16Array, Uint32Array, BigUint64Array, Uint8ClampedArray];
const dims = fc.oneof(
  fc.integer({ min: 0, max: 6 }),
  fc.constantFrom(0, 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 5581, 8681, 49477, 384773),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(-1, 0.5, NaN, Infinity, 2 ** 53, 1e300),
);
const bufferKind = fc.constantFrom('plain', 'plain', 'plain', 'plain', 'offset', 'offset', 'shared', 'resizable', 'detached', 'wasm-grown');
const rarely = (arb) => fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary: arb, weight: 1 });
const caseArb = fc.record({
  dtype: fc.constantFrom(...Object.keys(ARRAYS)),
  wrongArray: rarely(fc.constantFrom(...OTHER, Float32Array, Float64Array, Int32Array)),
  length: fc.integer({ min: 0, max: 64 }),
  offset: fc.integer({ min: 0, max: 8 }),
  kind: bufferKind,
  // null: a shape made from the length (split into factors, or off by one); else an arbitrary one
  shape: rarely(fc.array(dims, { maxLength: 7 })),
  split: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 4 }),
  matchShape: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  boolByte: fc.integer({ min: 0, max: 3 }),
  slice: fc.tuple(fc.integer({ min: -2, max: 70 }), fc.integer({ min: -2, max: 70 })),
  to: fc.constantFrom(null, 'float32', 'float64', 'int32', 'int64', 'uint8', 'bool', 'float16', 'bfloat16'),
});

function makeArray(c) {
  const Type = c.wrongArray ?? ARRAYS[c.dtype];
  const bytes = Type.BYTES_PER_ELEMENT;
  const total = (c.length + c.offset) * bytes;
  let buffer;
  let memory = null;
  if (c.kind === 'shared') buffer = new SharedArrayBuffer(total);
  else if (c.kind === 'resizable') buffer = new ArrayBuffer(total, { maxByteLength: total * 2 + 8 });
  else if (c.kind === 'wasm-grown') { memory = new WebAssembly.Memory({ initial: 1, maximum: 2 }); buffer = memory.buffer; }
  else buffer = new ArrayBuffer(total);
  const offset = c.kind === 'offset' ? c.offset : 0;
  const view = new Type(buffer, offset * bytes, c.length);
  const wide = Type === BigInt64Array || Type === BigUint64Array;
  for (let i = 0; i < view.length; i++) view[i] = wide ? BigInt(i * 3 + 1) : c.dtype === 'bool' ? i % 2 : (i * 3 + 1) % 120;
  if (c.dtype === 'bool' && view.length > 0 && !wide) view[0] = c.boolByte;
  if (c.kind === 'detached') structuredClone(buffer, { transfer: [buffer] });
  return { view, memory };
}

// The code each input calls for, in the order the checks run, judged here with BigInt arithmetic.
function expected(c, view, shape) {
  if (shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > Number.MAX_SAFE_INTEGER)) return 'INVALID_ARGUMENT';
  if (view.constructor !== ARRAYS[c.dtype]) return 'DTYPE_MISMATCH';
  if (c.kind === 'shared' || c.kind === 'resizable' || c.kind === 'detached') return 'INVALID_ARGUMENT';
  let product = 1n;
  let nonZero = 1n;
  for (const d of shape) { product *= BigInt(d); if (d !== 0) nonZero *= BigInt(d); }
  if (nonZero >= 2n ** 63n || product !== BigInt(view.length)) return 'SHAPE_MISMATCH';
  if (c.dtype === 'bool' && view.length > 0 && view[0] > 1) return 'INVALID_ARGUMENT';
  return 'ok';
}

const codeOfUse = (use) => { try { use(); return 'no error'; } catch (e) { if (!(e instanceof DoveError)) throw e; return e.code; } };

let made = 0, refused = 0;
const codes = {};
const property = fc.property(caseArb, (c) => {
  const { view, memory } = makeArray(c);
  let shape = c.shape;
  if (shape === null) {
    shape = [];
    let rest = view.length;
    for (const k of c.split) if (rest % k === 0) { shape.push(k); rest /= k; }
    shape.push(c.matchShape ? rest : rest + 1);
  }
  const want = expected(c, view, shape);
  let tensor;
  try {
    tensor = Tensor.fromArray(view, shape, c.dtype);
  } catch (e) {
    if (!(e instanceof DoveError)) throw new Error('not a DoveError: ' + e);
    refused++;
    codes[e.code] = (codes[e.code] ?? 0) + 1;
    if (e.code !== want) throw new Error('code ' + e.code + ' where ' + want + ' was expected: ' + e.message);
    return;
  }
  if (want !== 'ok') throw new Error('made a tensor where ' + want + ' was expected');
  made++;
  if (tensor.numel !== view.length) throw new Error('numel ' + tensor.numel + ' for ' + view.length + ' elements');
  if (JSON.stringify(tensor.shape) !== JSON.stringify(shape)) throw new Error('shape ' + tensor.shape);
  if (view.length > 0) {
    const data = tensor.data();
    if (data.buffer !== view.buffer || data.byteOffset !== view.byteOffset) throw new Error('data() is not a view of the array');
    const clone = tensor.clone().data();
    for (let i = 0; i < view.length; i++) {
      if (data[i] !== view[i]) throw new Error('element ' + i + ' differs');
      if (clone[i] !== view[i]) throw new Error('clone element ' + i + ' differs');
    }
  }
  if (c.to !== null) {
    const code = codeOfUse(() => tensor.to({ dtype: c.to }).dispose());
    if (code !== 'no error') throw new Error('to(' + c.to + ') failed: ' + code);
  }
  if (shape.length > 0) {
    const [start, end] = c.slice;
    const valid = start >= 0 && end >= start && end <= shape[0];
    const code = codeOfUse(() => {
      const s = tensor.slice(start, end);
      if (s.shape[0] !== end - start) throw new Error('slice of ' + (end - start) + ' rows has ' + s.shape[0]);
    });
    if (code !== (valid ? 'no error' : 'INVALID_ARGUMENT')) throw new Error('slice(' + start + ', ' + end + '): ' + code);
  }
  if (memory !== null && view.length > 0) {
    memory.grow(1);  // detaches the buffer under the tensor
    for (const [name, use] of Object.entries({ clone: () => tensor.clone(), data: () => tensor.data(), to: () => tensor.to({ dtype: 'float64' }) })) {
      const code = codeOfUse(use);
      if (code !== 'INVALID_ARGUMENT') throw new Error(name + ' on a detached buffer: ' + code);
    }
  }
  tensor.dispose();
});
const seed = ${SEED === undefined ? 'Date.now() % 2147483647' : Number(SEED)};
const result = fc.check(property, { numRuns: ${RUNS}, seed, interruptAfterTimeLimit: 45000 });
report({ failed: result.failed, counterexample: result.failed ? String(fc.stringify(result.counterexample)) : null,
  error: result.failed ? String(result.errorInstance && result.errorInstance.message || result.error) : null,
  seed, numRuns: result.numRuns, made, refused, codes });
`, { timeoutMs: 120_000 });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const out = r.result as { failed: boolean; counterexample: string | null; error: string | null; seed: number; numRuns: number; made: number; refused: number; codes: Record<string, number> };
  t.false(out.failed, `seed ${out.seed}: ${out.error} for ${out.counterexample}`);
  t.log(`seed ${out.seed}: ${out.numRuns} cases, ${out.made} tensors made, ${out.refused} refused ${JSON.stringify(out.codes)}`);
  t.true(out.made > 0 && out.refused > 0, 'both outcomes were exercised');
});

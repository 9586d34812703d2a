// AOTInductor packages through the binding (native/compiled_model.cpp): loading, the weights hash
// that ties a package to its TorchScript file, the input checks the compiled code does not make,
// and the packages the loader must refuse. Fixtures: python/dove_fixtures/compiled.py.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeCompiledPackage, NativeTensor } from '../../binding';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { binding } from '../../lib/core/native';
import { Tensor } from '../../lib/core/tensor';
import { describeExit, maxAbsDiff, ROOT, runChild } from '../native/helpers';

const DIR = join(ROOT, 'test', 'fixtures', 'generated', 'compiled');
const INFO = join(DIR, 'compiled.json');
const MICRO = join(DIR, 'micro.pt');
const PACKAGE = join(DIR, 'micro.aoti.pt2');

interface CompiledInfo {
  config: { imageSize: number; maxTokens: number; tokenDim: number };
  error: string | null;
}

function info(): CompiledInfo {
  if (!existsSync(INFO)) throw new Error(`${INFO} is missing: run scripts/setup (its fixture step compiles the package)`);
  const i = JSON.parse(readFileSync(INFO, 'utf8')) as CompiledInfo;
  if (i.error !== null) throw new Error(`the fixture step could not compile the micro package:\n${i.error}`);
  return i;
}

/** `call` may throw at once (argument checks on the JS thread) or reject later; both count. */
async function rejects(t: import('ava').ExecutionContext, call: () => Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const error = await t.throwsAsync(Promise.resolve().then(call), { instanceOf: DoveError });
  t.is(error?.code, code, error?.message);
  t.regex(error?.message ?? '', pattern);
}

test('a package carries the weights hash the runtime computes from its TorchScript file', async (t) => {
  info();
  const hashed = await loadModule(MICRO, { hashWeights: true, optimize: true });
  const plain = await loadModule(MICRO);
  try {
    t.regex(hashed.weightsHash ?? '', /^[0-9a-f]{64}$/);
    t.is(plain.weightsHash, null, 'not computed unless asked for');
    const meta = await binding().compiledMetadata(PACKAGE, 'encode');
    t.is(meta['dove.weights_hash'], hashed.weightsHash!, 'Python (exporter) and C++ (loader) hash the same bytes');
    t.is((await binding().compiledMetadata(PACKAGE, 'decode'))['dove.weights_hash'], hashed.weightsHash!);
    const other = await loadModule(join(DIR, 'other-weights.pt'), { hashWeights: true });
    t.not(other.weightsHash, hashed.weightsHash, 'other weights, other hash');
    other.dispose();
  } finally {
    hashed.dispose();
    plain.dispose();
  }
});

test('compiled encode and decode run and equal the TorchScript methods within float32 rounding', async (t) => {
  const { config } = info();
  const s = config.imageSize;
  const k = config.maxTokens;
  const pkg = await binding().loadCompiled(PACKAGE, ['encode', 'decode'], 'cpu', true);
  const module = await loadModule(MICRO);
  try {
    t.deepEqual(pkg.models, ['encode', 'decode']);
    t.is(pkg.device, 'cpu');
    t.is(pkg.metadata['encode']!['dove.method'], 'encode');
    t.is(pkg.metadata['decode']!['dove.method'], 'decode');
    const pixels = Tensor.fromArray(Uint8Array.from({ length: 3 * s * s * 3 }, (_, i) => (i * 131) % 256), [3, s, s, 3], 'uint8');
    const [tokens, logits, probs] = (await pkg.run('encode', [pixels.native])).map((h) => Tensor.fromNative(h));
    t.deepEqual(tokens!.shape, [3, k, config.tokenDim]);
    t.deepEqual(probs!.shape, [3, k]);
    const [refTokens, refLogits] = (await module.run('encode', [pixels, k])) as Tensor[];
    const diff = (a: Tensor, b: Tensor): number => maxAbsDiff(a.data() as ArrayLike<number>, b.data() as ArrayLike<number>);
    t.true(diff(tokens!, refTokens!) < 1e-4, `tokens differ by ${diff(tokens!, refTokens!)}`);
    t.true(diff(logits!, refLogits!) < 1e-4, `eos logits differ by ${diff(logits!, refLogits!)}`);
    const sigmoid = (logits!.data() as Float32Array).map((v) => 1 / (1 + Math.exp(-v)));
    t.true(diff(probs!, Tensor.fromArray(sigmoid, [3, k])) < 1e-6, 'p(EOS) = sigmoid(logits)');
    // Fewer slots than the maximum, and lengths at both ends of their range.
    const slots = Math.max(1, k - 3);
    const short = Tensor.fromArray((tokens!.data() as Float32Array).slice(0, 3 * slots * config.tokenDim), [3, slots, config.tokenDim]);
    const lengths = Tensor.fromArray(new BigInt64Array([0n, 1n, BigInt(slots)]), [3], 'int64');
    const [pixelsOut] = (await pkg.run('decode', [short.native, lengths.native])).map((h) => Tensor.fromNative(h));
    const ref = (await module.run('decode_pixels', [short, lengths])) as Tensor;
    t.deepEqual(pixelsOut!.shape, [3, s, s, 3]);
    t.is(pixelsOut!.dtype, 'uint8');
    t.true(diff(pixelsOut!, ref) <= 1, 'uint8 pixels within one level (rounding)');
  } finally {
    pkg.dispose();
    module.dispose();
  }
});

// /proc/self/task is Linux's.
(process.platform === 'linux' ? test : test.skip)('the models of one package run on one thread, so an encode and a decode in turn share its OpenMP team', (t) => {
  const { config } = info();
  const s = config.imageSize;
  const k = config.maxTokens;
  const d = config.tokenDim;
  // One OpenMP thread: every 'dove-module' thread counted is an executor (libgomp's workers inherit the name).
  const r = runChild(`
    const { readdirSync, readFileSync } = require('node:fs');
    const moduleThreads = () => readdirSync('/proc/self/task')
      .map((id) => { try { return readFileSync('/proc/self/task/' + id + '/comm', 'utf8').trim(); } catch { return ''; } })
      .filter((name) => name === 'dove-module').length;
    const b = binding();
    b.setNumThreads(1);
    const px = b.tensorFromArray(new Uint8Array(${s * s * 3}), [1, ${s}, ${s}, 3], 'uint8');
    const tokens = b.tensorFromArray(new Float32Array(${k * d}), [1, ${k}, ${d}], 'float32');
    const lengths = b.tensorFromArray(new BigInt64Array([${k}n]), [1], 'int64');
    const inTurn = async (encode, decode) => {
      for (let i = 0; i < 5; i++) { await encode(); await decode(); }
      return moduleThreads();
    };
    const pkg = await b.loadCompiled(${JSON.stringify(PACKAGE)}, ['encode', 'decode'], 'cpu', true);
    const shared = await inTurn(() => pkg.run('encode', [px]), () => pkg.run('decode', [tokens, lengths]));
    pkg.dispose();
    // The control: one package object per model, as the runtime loaded them before.
    const enc = await b.loadCompiled(${JSON.stringify(PACKAGE)}, ['encode'], 'cpu', true);
    const dec = await b.loadCompiled(${JSON.stringify(PACKAGE)}, ['decode'], 'cpu', true);
    const separate = await inTurn(() => enc.run('encode', [px]), () => dec.run('decode', [tokens, lengths]));
    enc.dispose();
    dec.dispose();
    report({ shared, separate });
  `);
  t.is(r.status, 0, describeExit(r));
  t.deepEqual(r.result, { shared: 1, separate: 2 });
});

test('calls the compiled code cannot take are refused before they run', async (t) => {
  const { config } = info();
  const s = config.imageSize;
  const k = config.maxTokens;
  const d = config.tokenDim;
  const pkg = await binding().loadCompiled(PACKAGE, ['encode', 'decode'], 'cpu', true);
  const enc = (inputs: NativeTensor[]): Promise<NativeTensor[]> => pkg.run('encode', inputs);
  const dec = (inputs: NativeTensor[]): Promise<NativeTensor[]> => pkg.run('decode', inputs);
  const b = binding();
  try {
    const px = b.tensorFromArray(new Uint8Array(2 * s * s * 3), [2, s, s, 3], 'uint8');
    await rejects(t, () => enc([px, px]), 'INVALID_ARGUMENT', /takes 1 input tensor\(s\) but received 2/);
    await rejects(t, () => enc([b.tensorFromArray(new Float32Array(2 * s * s * 3), [2, s, s, 3], 'float32')]), 'DTYPE_MISMATCH', /Expected uint8\[B,/);
    await rejects(t, () => enc([b.tensorFromArray(new Uint8Array(2 * s * s * 4), [2, s, s, 4], 'uint8')]), 'SHAPE_MISMATCH', /received shape \[2, 16, 16, 4\]|received shape/);
    await rejects(t, () => enc([b.tensorFromArray(new Uint8Array(0), [0, s, s, 3], 'uint8')]), 'SHAPE_MISMATCH', /B/);
    const tokens = b.tensorFromArray(new Float32Array(2 * k * d), [2, k, d], 'float32');
    await rejects(t, () => dec([tokens, b.tensorFromArray(new BigInt64Array(3), [3], 'int64')]), 'SHAPE_MISMATCH', /B the same in every input/);
    await rejects(t, () => dec([b.tensorFromArray(new Float32Array(2 * (k + 1) * d), [2, k + 1, d], 'float32'), b.tensorFromArray(new BigInt64Array(2), [2], 'int64')]), 'SHAPE_MISMATCH', /1\.\.\d+/);
    await rejects(t, () => dec([tokens, b.tensorFromArray(new Int32Array(2), [2], 'int32')]), 'DTYPE_MISMATCH', /int64\[B\]/);
    await rejects(t, () => enc(['pixels' as never]), 'INVALID_ARGUMENT', /Expected a Tensor for input/);
    // A non-contiguous input is copied, not read with the wrong strides.
    const wide = Tensor.fromArray(Uint8Array.from({ length: 4 * s * s * 3 }, (_, i) => i % 251), [4, s, s, 3], 'uint8');
    const direct = (await enc([b.tensorContiguous(b.tensorSlice0(wide.native, 1, 3))])).map((h) => Tensor.fromNative(h));
    t.true(direct.length === 3);
    await rejects(t, () => pkg.run('forward', [px]), 'INVALID_ARGUMENT', /one of the loaded models \(encode, decode\).*'forward'/);
    await rejects(t, () => pkg.run(7 as never, [px]), 'INVALID_ARGUMENT', /model name/);
  } finally {
    pkg.dispose();
  }
});

test('packages for another device, another CPU, or no package at all are refused with their reason', async (t) => {
  info();
  const b = binding();
  await rejects(t, () => b.loadCompiled(join(DIR, 'wrong-device.aoti.pt2'), ['encode'], 'cpu', true), 'DEVICE_UNAVAILABLE', /compiled for cuda/);
  await rejects(t, () => b.loadCompiled(join(DIR, 'wrong-isa.aoti.pt2'), ['encode'], 'cpu', true), 'DEVICE_UNAVAILABLE', /no_such_isa/);
  await rejects(t, () => b.loadCompiled(join(DIR, 'absent.aoti.pt2'), ['encode'], 'cpu', true), 'FILE_NOT_FOUND', /does not exist/);
  await rejects(t, () => b.loadCompiled(MICRO, ['encode'], 'cpu', true), 'NOT_DOVE_EXPORT', /no compiled model 'encode'/);
  // One model the package lacks refuses the whole load.
  await rejects(t, () => b.loadCompiled(PACKAGE, ['encode', 'forward'], 'cpu', true), 'NOT_DOVE_EXPORT', /no compiled model 'forward'/);
  await rejects(t, () => b.compiledMetadata(MICRO, 'encode'), 'NOT_DOVE_EXPORT', /not an AOTInductor package/);
  // The shared library inside runs when it is loaded: refused before anything is extracted unless trusted.
  const unsafe = t.throws<DoveError>(() => b.loadCompiled(PACKAGE, ['encode'], 'cpu', false), { instanceOf: DoveError, message: /compiled package: a shared library.*trustModel: true/ });
  t.is(unsafe?.code, 'UNSAFE_MODEL');
  for (const models of [[], [''], ['encode', 'encode'], 'encode', [7], Array.from({ length: 65 }, (_, i) => `m${i}`)]) {
    const error = t.throws<DoveError>(() => b.loadCompiled(PACKAGE, models as string[], 'cpu', true), { instanceOf: DoveError, message: /non-empty array of distinct model names/ });
    t.is(error?.code, 'INVALID_ARGUMENT', JSON.stringify(models));
  }
  t.throws(() => b.loadCompiled(PACKAGE, ['encode'], 'tpu', true), { instanceOf: DoveError });
});

test('concurrent loads of packages and of a TorchScript file neither crash nor mix up their archives', (t) => {
  info();
  // libtorch's loader extracts each archive to a temporary folder; run unserialised on libuv's
  // threads, these loads corrupted the heap or found the package's model inside micro.pt.
  const r = runChild(`
    const b = binding();
    const outcomes = { loaded: 0, refused: 0, other: [] };
    for (let round = 0; round < 25; round++) {
      const calls = [];
      for (let i = 0; i < 4; i++) {
        calls.push(b.loadCompiled(${JSON.stringify(PACKAGE)}, ['encode', 'decode'], 'cpu', true).then((m) => { outcomes.loaded++; m.dispose(); }, (e) => outcomes.other.push('package: ' + e.message)));
        calls.push(b.loadCompiled(${JSON.stringify(MICRO)}, ['encode'], 'cpu', true).then(
          (m) => { outcomes.other.push('micro.pt loaded as ' + m.models.join()); m.dispose(); },
          (e) => { if (e.code === 'NOT_DOVE_EXPORT') outcomes.refused++; else outcomes.other.push('micro.pt: ' + e.code); }));
        calls.push(b.compiledMetadata(${JSON.stringify(PACKAGE)}, 'decode').then((m) => { if (!m['dove.inputs']) outcomes.other.push('metadata without dove.inputs'); }));
      }
      await Promise.all(calls);
    }
    report(outcomes);
  `, { env: { UV_THREADPOOL_SIZE: '8' } });
  t.is(r.status, 0, describeExit(r));
  t.deepEqual(r.result, { loaded: 100, refused: 100, other: [] });
});

test('a disposed compiled package rejects DISPOSED, also for calls queued before dispose', async (t) => {
  const { config } = info();
  const s = config.imageSize;
  const pkg: NativeCompiledPackage = await binding().loadCompiled(PACKAGE, ['encode'], 'cpu', true);
  const px = binding().tensorFromArray(new Uint8Array(s * s * 3), [1, s, s, 3], 'uint8');
  const calls = [pkg.run('encode', [px]), pkg.run('encode', [px]), pkg.run('encode', [px])];
  pkg.dispose();
  t.true(pkg.disposed);
  const settled = await Promise.allSettled(calls);
  for (const r of settled) {
    if (r.status === 'rejected') t.is((r.reason as DoveError).code, 'DISPOSED');
  }
  t.true(settled.some((r) => r.status === 'rejected'), 'queued calls after dispose reject');
  await rejects(t, () => pkg.run('encode', [px]), 'DISPOSED', /after dispose/);
  pkg.dispose();
});

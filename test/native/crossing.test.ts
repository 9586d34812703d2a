// The tensor crossing (native/tensor_wrap.cpp): tensor handles are napi Externals recognised by
// the slabs their boxes live in (never by shape or prototype), each result is a handle of its own, and
// all of it works on worker threads too.
import test from 'ava';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { NativeBinding } from '../../binding';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { binding } from '../../lib/core/native';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, ROOT } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuildPath = (require('node-gyp-build') as { path(dir: string): string }).path;

function thrown(call: () => unknown): DoveError | undefined {
  try {
    call();
  } catch (error) {
    if (error instanceof DoveError) return error;
    throw error;
  }
  return undefined;
}

test('a tensor handle is an opaque External: no prototype, no properties, read only through the binding', (t) => {
  const x = Tensor.fromArray(new Float32Array([1, 2]));
  const handle = x.native as unknown as object;
  t.is(typeof handle, 'object');
  t.is(Object.getPrototypeOf(handle), null);
  t.deepEqual(Reflect.ownKeys(handle), []);
  t.true(Object.isFrozen(handle));
  t.true(binding().isTensor(handle));
  t.deepEqual(binding().tensorShape(x.native), [2]);
  // Nothing JS can build passes for one.
  const fakes: [unknown, string][] = [
    [{}, 'object'], [Object.create(null), 'null-prototype object'], [Object.freeze(Object.create(null)), 'frozen null-prototype object'],
    [[x.native], 'array holding a handle'], [new Float32Array(2), 'typed array'], [null, 'null'], [undefined, 'undefined'], [1, 'number'], ['x', 'string'],
  ];
  for (const [fake, what] of fakes) t.false(binding().isTensor(fake), what);
  const error = thrown(() => binding().tensorShape({} as never));
  t.is(error?.code, 'INVALID_ARGUMENT');
  t.is(error?.message, 'Expected a native tensor for the first argument of tensorShape but received an object');
  t.is(thrown(() => binding().tensorSlice0(null as never, 0, 1))?.message,
    'Expected a native tensor for the first argument of tensorSlice0 but received null');
  t.deepEqual([...x.data()], [1, 2]);
});

test('values that only look like tensors are INVALID_ARGUMENT, never unwrapped', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
  const raw = module.native;
  // Made by the addon and napi-wrapped, but another class: a NativeModule.
  const otherModule = await loadModule(CORE_MODEL);
  // A real External, made by another copy of this addon (another library instance, so another
  // set of slabs): an External of another addon is never read as a tensor of this one.
  const copyDir = mkdtempSync(join(tmpdir(), 'dove-addon-copy-'));
  const copy = join(copyDir, 'dove.node');
  copyFileSync(process.env.DOVE_ADDON ?? nodeGypBuildPath(ROOT), copy);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const other = require(copy) as NativeBinding;
  const foreign = other.tensorFromArray(new Float32Array([1, 2, 3]), [3], 'float32');
  t.true(other.isTensor(foreign));
  t.false(binding().isTensor(foreign));
  // A plain object with the same methods.
  const lookalike = { shape: [3], dtype: 'float32', data: () => new Float32Array(3) };
  const expected = (what: string): string => `Expected Tensor for argument 'x' of noop but received ${what}`;
  for (const [fake, what] of [
    [otherModule.native, 'an object'],
    [foreign, 'an object'],
    [lookalike, 'an object'],
  ] as const) {
    const sync = thrown(() => raw.runSync('noop', [fake as never]));
    t.is(sync?.code, 'INVALID_ARGUMENT');
    t.is(sync?.message, expected(what));
    // The native run converts on the calling thread, so it throws rather than rejects.
    const error = await (async () => raw.run('noop', [fake as never]))().then(() => undefined, (e: unknown) => e as DoveError);
    t.is(error?.code, 'INVALID_ARGUMENT');
    t.is(error?.message, expected(what));
    // Other entry points that take tensors go through the same check.
    t.is(thrown(() => binding().stack([x.native, fake as never]))?.code, 'INVALID_ARGUMENT');
    t.is(thrown(() => binding().tensorData(fake as never))?.code, 'INVALID_ARGUMENT');
  }
  // Typed arrays and primitives keep their descriptions.
  t.is(thrown(() => raw.runSync('noop', [new Float32Array(1) as never]))?.message,
    expected('a typed array (wrap it in a Tensor first)'));
  t.is(thrown(() => raw.runSync('noop', [null as never]))?.message, expected('null'));
  // The real tensor still works after all that, and so does the other copy's.
  t.deepEqual([...(module.runSync('noop', [x]) as Tensor).data()], [1, 2, 3]);
  t.deepEqual([...other.tensorData(foreign)], [1, 2, 3]);
  other.tensorDispose(foreign);
  module.dispose();
  otherModule.dispose();
  rmSync(copyDir, { recursive: true, force: true });
});

test('each result is a new object over the same memory; disposing it leaves the input alone', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const array = new Float32Array([4, 5, 6]);
  const x = Tensor.fromArray(array);
  const results = Array.from({ length: 3 }, () => module.runSync('noop', [x]) as Tensor);
  for (const y of results) {
    t.not(y.native, x.native);
    t.is(y.dataAddress(), x.dataAddress());
    t.is(y.data().buffer, array.buffer);
  }
  t.not(results[0]!.native, results[1]!.native);
  results[0]!.dispose();
  t.true(results[0]!.disposed);
  t.false(x.disposed);
  t.false(results[1]!.disposed);
  array[0] = 40;
  t.is(results[1]!.data()[0], 40);
  // A disposed input is DISPOSED, through the fast path and through containers alike.
  const gone = Tensor.fromArray(new Float32Array([1]));
  gone.dispose();
  t.is(thrown(() => module.runSync('noop', [gone]))?.code, 'DISPOSED');
  t.is(thrown(() => binding().stack([gone.native]))?.code, 'DISPOSED');
  module.dispose();
});

test('scalar arguments: the same values and errors from run and runSync', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2]));
  // What each argument must give: the result's values (scale: x * k), its length (noise(n): n
  // random numbers, so run and runSync differ in values), or the error code.
  type Outcome = { values: number[] } | { length: number } | { code: string };
  const cases: [string, unknown[], Outcome][] = [
    ['scale', [x, 2], { values: [2, 4] }], // int-valued number for float
    ['scale', [x, 0.5], { values: [0.5, 1] }],
    ['scale', [x, Number.NaN], { values: [Number.NaN, Number.NaN] }], // NaN is a float
    ['scale', [x, 2n], { code: 'INVALID_ARGUMENT' }], // bigint for float
    ['scale', [x, true], { code: 'INVALID_ARGUMENT' }],
    ['noise', [3], { length: 3 }],
    ['noise', [3n], { length: 3 }], // bigint for int
    ['noise', [1.5], { code: 'INVALID_ARGUMENT' }], // non-integer for int
    ['noise', [2 ** 60], { code: 'INVALID_ARGUMENT' }], // beyond 2^53
    ['noise', [Infinity], { code: 'INVALID_ARGUMENT' }],
    ['noise', [true], { code: 'INVALID_ARGUMENT' }],
    ['noise', ['one'], { code: 'INVALID_ARGUMENT' }],
  ];
  for (const [method, args, expected] of cases) {
    const label = `${method}(${args.slice(method === 'scale' ? 1 : 0).map(String).join(', ')})`;
    const outcomes: Outcome[] = [];
    try {
      outcomes.push(describe(method, module.runSync(method, args as never)));
    } catch (error) {
      outcomes.push({ code: (error as DoveError).code });
    }
    try {
      outcomes.push(describe(method, await module.run(method, args as never)));
    } catch (error) {
      outcomes.push({ code: (error as DoveError).code });
    }
    t.deepEqual(outcomes[0], expected, `runSync ${label}`);
    t.deepEqual(outcomes[1], expected, `run ${label}`);
    if ('code' in expected) {
      // The same message from both paths, naming the argument.
      const syncMessage = thrown(() => module.runSync(method, args as never))?.message;
      const asyncMessage = ((await module.run(method, args as never).catch((e: unknown) => e)) as DoveError).message;
      t.is(syncMessage, asyncMessage, label);
      t.regex(syncMessage ?? '', method === 'scale' ? /argument 'k' of scale/ : /argument 'n' of noise/, label);
    }
  }
  module.dispose();

  function describe(method: string, result: unknown): Outcome {
    if (!(result instanceof Tensor)) throw new Error(`${method}: expected a tensor, got ${String(result)}`);
    const data = [...(result.data() as Float32Array)];
    return method === 'scale' ? { values: data } : { length: data.length };
  }
});

test('tensors cross on worker threads too, alongside the main thread', async (t) => {
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { loadModule } = require(workerData.root + '/dist/lib/core/module');
    const { Tensor } = require(workerData.root + '/dist/lib/core/tensor');
    (async () => {
      const module = await loadModule(workerData.model);
      const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
      let sum = 0;
      for (let i = 0; i < 2000; i++) sum += module.runSync('scale', [x, 2]).data()[2];
      const same = module.runSync('noop', [x]);
      let rejected = '';
      try { module.runSync('noop', [Object.create(null)]); } catch (e) { rejected = e.code; }
      parentPort.postMessage({ sum, same: same.dataAddress() === x.dataAddress(), rejected });
      module.dispose();
    })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
  `;
  const runWorker = (): Promise<{ sum: number; same: boolean; rejected: string; error?: string }> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(script, { eval: true, workerData: { root: ROOT, model: join(CORE_MODEL) } });
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  const workers = [runWorker(), runWorker()];
  // Meanwhile the main thread keeps making and checking tensors.
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
  for (let i = 0; i < 2000; i++) t.is((module.runSync('scale', [x, 3]) as Tensor).data()[2], 9);
  for (const result of await Promise.all(workers)) {
    t.is(result.error, undefined);
    t.is(result.sum, 2000 * 6);
    t.true(result.same);
    t.is(result.rejected, 'INVALID_ARGUMENT');
  }
  // A worker that has exited took its env with it; this thread's tensors are unaffected.
  t.deepEqual([...(module.runSync('scale', [x, 1]) as Tensor).data()], [1, 2, 3]);
  module.dispose();
});

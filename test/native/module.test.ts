// TorchScript modules exported by PyTorch: loading, Python parity, value conversion, errors, save.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { loadModule, ScriptModule } from '../../lib/core/module';
import { devices } from '../../lib/core/runtime';
import { Tensor } from '../../lib/core/tensor';
import { CORE, CORE_MODEL, maxAbsDiff, parityMeta, readF32 } from './helpers';

test('a scripted module loads with its methods and extra files', async (t) => {
  const meta = parityMeta();
  const module = await loadModule(CORE_MODEL, { extraFiles: ['core.json', 'notes.txt', 'absent.json'] });
  t.is(module.device, 'cpu');
  t.is(module.path, CORE_MODEL);
  t.false(module.training, 'eval mode after load');
  t.true(module.nbytes > 0);
  t.deepEqual(module.extraFiles, meta.extraFiles, 'absent names are left out');
  for (const name of ['forward', 'project', 'echo', 'slow', 'noop']) t.true(module.hasMethod(name), name);
  t.regex(module.methodSchema('project'), /^project\(.* self, Tensor x, float scale, int bias\) -> \(\(Tensor, Tensor\)\)$/);
  t.true(meta.torch.startsWith('2.11'), `fixtures exported by torch ${meta.torch}`);
  module.dispose();
});

test('forward and a second method give the numbers Python gave (1e-6)', async (t) => {
  const meta = parityMeta();
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(readF32('parity_input.bin'), meta.inputShape);
  const forward = (await module.run('forward', [x])) as Tensor;
  t.deepEqual(forward.shape, meta.forwardShape);
  const forwardDiff = maxAbsDiff(forward.data() as Float32Array, readF32('parity_forward.bin'));
  t.true(forwardDiff <= 1e-6, `forward max |diff| ${forwardDiff}`);

  const [hidden, projected] = (await module.run('project', [x, meta.projectArgs.scale, meta.projectArgs.bias])) as Tensor[];
  const hiddenDiff = maxAbsDiff(hidden!.data() as Float32Array, readF32('parity_hidden.bin'));
  const projectDiff = maxAbsDiff(projected!.data() as Float32Array, readF32('parity_project.bin'));
  t.true(hiddenDiff <= 1e-6, `project hidden max |diff| ${hiddenDiff}`);
  t.true(projectDiff <= 1e-6, `project output max |diff| ${projectDiff}`);
  t.log(`max |node - python|: forward ${forwardDiff}, project ${hiddenDiff} / ${projectDiff}`);
  module.dispose();
});

test('values convert both ways as the schema declares', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
  const table = { a: Tensor.fromArray(new Float32Array([1, 2])), b: Tensor.fromArray(new Float32Array([10])) };
  const out = (await module.run('echo', [x, 1.25, 41, true, 'name', [1, 2, 3], [0.5, 1], [7, 'seven'], table, null])) as unknown[];
  t.is(out.length, 11);
  t.deepEqual([...(out[0] as Tensor).data()], [2, 4, 6]);
  t.is(out[1], 2.5);
  t.is(out[2], 42);
  t.is(out[3], false);
  t.is(out[4], 'name!');
  t.deepEqual(out[5], [1, 2, 3, 3]);
  t.deepEqual(out[6], [0.5, 1]);
  t.deepEqual(out[7], [7, 'seven']);
  t.deepEqual(out[8], { a: 3, b: 10 });
  t.is(out[9], null);
  const list = out[10] as Tensor[];
  t.deepEqual(list.map((v) => [...v.data()]), [[1, 2, 3], [2, 3, 4]]);

  // Optional given, default filled when left out, bigint for int.
  const given = (await module.run('echo', [x, 0, 1n, false, '', [], [], [0, ''], {}, x])) as unknown[];
  t.true(given[9] instanceof Tensor);
  t.is(given[2], 2);
  const defaulted = (await module.run('echo', [x, 0, 1, false, '', [], [], [0, ''], {}])) as unknown[];
  t.is(defaulted[9], null);
  t.is(await module.run('nothing'), null);
  module.dispose();
});

test('wrong arguments reject with INVALID_ARGUMENT naming the argument and type', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array(16), [1, 16]);
  const cases: [string, unknown[], RegExp][] = [
    ['forward', [], /forward expects 1 argument\(s\) \(x: Tensor\) but received 0/],
    ['forward', [x, x], /forward expects 1 argument\(s\)/],
    ['forward', [3], /Expected Tensor for argument 'x' of forward but received 3/],
    ['project', [x, 'a', 1], /Expected float for argument 'scale' of project but received string 'a'/],
    ['project', [x, 1, 1.5], /Expected integer for argument 'bias' of project but received 1.5/],
    ['echo', [x, 1, 1, 'yes', '', [], [], [0, ''], {}], /Expected bool for argument 'flag' of echo/],
    ['echo', [x, 1, 1, true, '', [1, 'b'], [], [0, ''], {}], /Expected int for argument 'ints' of echo\[1\]/],
    ['echo', [x, 1, 1, true, '', [], [], [0], {}], /Expected an array of length 2 \(Tuple\[int, str\]\) for argument 'pair'/],
    ['echo', [x, 1, 1, true, '', [], [], [0, ''], { k: 1 }], /Expected Tensor for argument 'table' of echo\['k'\]/],
  ];
  for (const [method, args, message] of cases) {
    const error = await t.throwsAsync(module.run(method, args as never[]), { instanceOf: DoveError });
    t.is(error?.code, 'INVALID_ARGUMENT', `${method}(${args.length} args)`);
    t.regex(error?.message ?? '', message);
  }
  const typed = await t.throwsAsync(module.run('forward', [new Float32Array(3) as unknown as Tensor]), { instanceOf: DoveError });
  t.regex(typed?.message ?? '', /wrap it with Tensor.fromArray/);
  module.dispose();
});

test('a shape error inside TorchScript is TORCH_ERROR with the libtorch message first', async (t) => {
  const module = await loadModule(CORE_MODEL);
  async function callerOfWants2d(): Promise<unknown> {
    return await module.run('wants_2d', [Tensor.zeros([2, 3])]);
  }
  const error = await t.throwsAsync(callerOfWants2d(), { instanceOf: DoveError });
  t.is(error?.code, 'TORCH_ERROR');
  t.regex(error?.message ?? '', /^mat1 and mat2 shapes cannot be multiplied \(2x3 and 16x32\)/);
  t.regex(error?.message ?? '', /TorchScript traceback:/);
  t.notRegex(error?.message ?? '', /frame #\d/);
  // The JS stack names the awaiting caller (re-thrown at the call site), not only native internals.
  t.regex(error?.stack ?? '', /at async callerOfWants2d/);
  module.dispose();
});

test('missing file, non-TorchScript files, unknown method and an unknown device have their codes', async (t) => {
  const missing = await t.throwsAsync(loadModule(join(CORE, 'nope.pt')), { instanceOf: DoveError });
  t.is(missing?.code, 'FILE_NOT_FOUND');
  const text = await t.throwsAsync(loadModule(join(CORE, 'not_a_model.pt')), { instanceOf: DoveError });
  t.is(text?.code, 'NOT_TORCHSCRIPT');
  const stateDict = await t.throwsAsync(loadModule(join(CORE, 'state_dict.pt')), { instanceOf: DoveError });
  t.is(stateDict?.code, 'NOT_TORCHSCRIPT');
  t.regex(stateDict?.message ?? '', /could not be loaded as TorchScript/);
  const directory = await t.throwsAsync(loadModule(CORE), { instanceOf: DoveError });
  t.is(directory?.code, 'NOT_TORCHSCRIPT');

  const module = await loadModule(CORE_MODEL);
  const method = await t.throwsAsync(module.run('does_not_exist', []), { instanceOf: DoveError });
  t.is(method?.code, 'METHOD_NOT_FOUND');
  t.regex(method?.message ?? '', /has no method 'does_not_exist' \(methods: forward, /);
  t.is(t.throws(() => module.methodSchema('nope'), { instanceOf: DoveError })?.code, 'METHOD_NOT_FOUND');
  module.dispose();

  const badDevice = await t.throwsAsync(loadModule(CORE_MODEL, { device: 'tpu' }), { instanceOf: DoveError });
  t.is(badDevice?.code, 'INVALID_ARGUMENT');
});

// Chosen at load time, so the summary shows which of the two cannot run on this machine.
const HAS_CUDA = devices().includes('cuda:0');

(HAS_CUDA ? test.skip : test)(`loading on cuda without a GPU is DEVICE_UNAVAILABLE${HAS_CUDA ? ' [skipped: cuda:0 present]' : ''}`, async (t) => {
  const cuda = await t.throwsAsync(loadModule(CORE_MODEL, { device: 'cuda' }), { instanceOf: DoveError });
  t.is(cuda?.code, 'DEVICE_UNAVAILABLE');
});

(HAS_CUDA ? test : test.skip)(`on cuda:0 forward gives the numbers Python gave (1e-5)${HAS_CUDA ? '' : ' [skipped: no CUDA device on this machine]'}`, async (t) => {
  const onGpu = await loadModule(CORE_MODEL, { device: 'cuda:0' });
  const x = Tensor.fromArray(readF32('parity_input.bin'), parityMeta().inputShape).to('cuda:0');
  const y = (await onGpu.run('forward', [x])) as Tensor;
  t.is(y.device, 'cuda:0');
  const diff = maxAbsDiff(y.data() as Float32Array, readF32('parity_forward.bin'));
  t.true(diff <= 1e-5, `cuda forward max |diff| ${diff}`);
  onGpu.dispose();
});

test('train mode records gradients, eval mode runs under InferenceMode', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.zeros([1, parityMeta().inFeatures]);
  t.false(await module.run('grad_probe', [x]));
  module.train();
  t.true(module.training);
  t.true(await module.run('grad_probe', [x]));
  module.eval();
  t.false(await module.run('grad_probe', [x]));
  // A call runs in the mode set when it was made, even if train() comes before it runs.
  const queuedInEval = module.run('grad_probe', [x]);
  module.train(true);
  const queuedInTrain = module.run('grad_probe', [x]);
  module.train(false);
  t.deepEqual(await Promise.all([queuedInEval, queuedInTrain]), [false, true]);
  const params = module.namedParameters();
  t.deepEqual(Object.keys(params), ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
  t.deepEqual(params['fc1.weight']!.shape, [32, 16]);
  t.is(module.parameters().length, 4);
  // Parameters are the module's own memory: a write through data() changes the next forward.
  const before = (((await module.run('forward', [x])) as Tensor).data() as Float32Array)[0]!;
  (params['fc2.bias']!.data() as Float32Array)[0] += 1;
  const after = (((await module.run('forward', [x])) as Tensor).data() as Float32Array)[0]!;
  t.true(Math.abs(after - before - 1) < 1e-6);
  module.dispose();
});

test('save is atomic (no temp file left) and the copy loads with new extra files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dove-core-save-'));
  try {
    const module = await loadModule(CORE_MODEL);
    const target = join(dir, 'copy.pt');
    await module.save(target, { 'extra.json': '{"saved":true}' });
    t.deepEqual(readdirSync(dir), ['copy.pt']);
    const copy = await ScriptModule.load(target, { extraFiles: ['extra.json'] });
    t.deepEqual(copy.extraFiles, { 'extra.json': '{"saved":true}' });
    const x = Tensor.fromArray(readF32('parity_input.bin'), parityMeta().inputShape);
    const a = ((await module.run('forward', [x])) as Tensor).data() as Float32Array;
    const b = ((await copy.run('forward', [x])) as Tensor).data() as Float32Array;
    t.is(maxAbsDiff(a, b), 0);
    const noDir = await t.throwsAsync(module.save(join(dir, 'missing', 'x.pt')), { instanceOf: DoveError });
    t.is(noDir?.code, 'IO_ERROR');
    t.false(existsSync(join(dir, 'missing')));
    module.dispose();
    copy.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a disposed module rejects with DISPOSED; Symbol.dispose disposes', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.zeros([1, 16]);
  const inFlight = module.run('forward', [x]);
  module.dispose();
  t.true(module.disposed);
  // A call queued before dispose() either finished first or is told the module went away.
  await inFlight.then(
    (value) => t.true(value instanceof Tensor),
    (error: unknown) => t.is((error as DoveError).code, 'DISPOSED'),
  );
  const after = await t.throwsAsync(module.run('forward', [x]), { instanceOf: DoveError });
  t.is(after?.code, 'DISPOSED');
  let escaped: ScriptModule | undefined;
  {
    using scoped = await loadModule(CORE_MODEL);
    escaped = scoped;
  }
  t.true(escaped.disposed);
});

test('NativeModule cannot be constructed from JS, with or without arguments', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const NativeModule = (module.native as unknown as { constructor: new (...args: unknown[]) => unknown }).constructor;
  for (const args of [[], [{}], [module.native]]) {
    const error = t.throws(() => new NativeModule(...args));
    t.is((error as { code?: string } | undefined)?.code, 'INVALID_ARGUMENT');
  }
  // Loading still works after the refusals (the constructor's slot was left empty).
  const again = await loadModule(CORE_MODEL);
  t.true(again.methodNames().includes('noop'));
  again.dispose();
  module.dispose();
});

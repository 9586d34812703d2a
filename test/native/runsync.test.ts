// runSync (the synchronous path on the JS thread) and the life cycle of a module's worker thread:
// same results and error codes as run, BUSY instead of overtaking queued async calls, and an idle
// module never holds the process open.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, ROOT, SLOWDOWN, parityMeta } from './helpers';

function codeOf(call: () => unknown): string | undefined {
  try {
    call();
  } catch (error) {
    return error instanceof DoveError ? error.code : `not a DoveError: ${String(error)}`;
  }
  return undefined;
}

async function asyncError(call: () => Promise<unknown>): Promise<DoveError | undefined> {
  try {
    await call();
  } catch (error) {
    return error as DoveError;
  }
  return undefined;
}

test('runSync returns the same results as run, in the mode the module is in', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, 2.5, -3]));
  const sync = module.runSync('scale', [x, 3]) as Tensor;
  const viaAsync = (await module.run('scale', [x, 3])) as Tensor;
  t.deepEqual([...sync.data()], [3, 7.5, -9]);
  t.deepEqual([...sync.data()], [...viaAsync.data()]);
  // No copy either way: noop hands back the caller's memory.
  const same = module.runSync('noop', [x]) as Tensor;
  t.is(same.dataAddress(), x.dataAddress());
  t.is(module.runSync('nothing'), null);
  // Interleaved with awaited async calls, calls run in program order.
  t.is(await module.run('tick'), 1);
  t.is(module.runSync('tick'), 2);
  t.is(await module.run('tick'), 3);
  t.is(module.runSync('tick'), 4);
  // Eval runs under InferenceMode, train mode records gradients, as with run.
  const probe = Tensor.zeros([1, parityMeta().inFeatures]);
  t.false(module.runSync('grad_probe', [probe]));
  module.train();
  t.true(module.runSync('grad_probe', [probe]));
  module.eval();
  t.false(module.runSync('grad_probe', [probe]));
  module.dispose();
});

test('runSync throws the DoveError codes run rejects with', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const cases: [string, unknown[]][] = [
    ['nope', []], // METHOD_NOT_FOUND
    ['wants_2d', [Tensor.zeros([2, 3])]], // TORCH_ERROR (shape error inside TorchScript)
    ['scale', [Tensor.zeros([2]), 'two']], // INVALID_ARGUMENT (wrong type)
    ['scale', [Tensor.zeros([2])]], // INVALID_ARGUMENT (missing argument)
  ];
  for (const [method, args] of cases) {
    const rejected = await asyncError(() => module.run(method, args as never));
    let thrown: DoveError | undefined;
    try {
      module.runSync(method, args as never);
    } catch (error) {
      thrown = error as DoveError;
    }
    t.true(rejected instanceof DoveError, `run ${method}`);
    t.true(thrown instanceof DoveError, `runSync ${method}`);
    t.is(thrown?.code, rejected?.code, `${method}: same code`);
    t.is(thrown?.message, rejected?.message, `${method}: same message`);
  }
  t.is(codeOf(() => module.runSync('nope')), 'METHOD_NOT_FOUND');
  t.is(codeOf(() => module.runSync('wants_2d', [Tensor.zeros([2, 3])])), 'TORCH_ERROR');
  module.dispose();
  t.is(codeOf(() => module.runSync('noop', [Tensor.zeros([1])])), 'DISPOSED');
});

test('runSync is BUSY while async calls on the module are queued or running', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const dim = parityMeta().slowDim;
  const x = Tensor.zeros([16, dim]);
  const one = Tensor.zeros([1]);
  const running = module.run('slow', [x, 200]);
  const queued = module.run('tick');
  const busy = t.throws(() => module.runSync('noop', [one]), { instanceOf: DoveError });
  t.is(busy?.code, 'BUSY');
  t.regex(busy?.message ?? '', /2 async call/);
  await running;
  t.is(await queued, 1);
  t.is(module.runSync('tick'), 2, 'free again once every async call settled');
  // Even a call that has already finished on the worker counts until its promise settles.
  const quick = module.run('noop', [one]);
  t.is(codeOf(() => module.runSync('noop', [one])), 'BUSY');
  await quick;
  t.truthy(module.runSync('noop', [one]));
  module.dispose();
});

// A child process that must end by itself; returns how long it took after its last line of output.
function runChild(t: { log: (...values: unknown[]) => void }, body: string): { status: number | null; signal: string | null; tailMs: number; stdout: string; stderr: string } {
  const script = `
    const { loadModule } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'module.js'))});
    const { Tensor } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'tensor.js'))});
    const model = ${JSON.stringify(CORE_MODEL)};
    (async () => { ${body} })().catch((e) => { console.error(e); process.exitCode = 1; });
  `;
  const started = Date.now();
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 * SLOWDOWN, env: { ...process.env, OMP_WAIT_POLICY: 'passive' } });
  const ended = Date.now();
  const lastLine = child.stdout.trim().split('\n').pop() ?? '';
  const lastAt = Number(lastLine.split(' ').pop());
  const tailMs = Number.isFinite(lastAt) && lastAt > 0 ? ended - lastAt : ended - started;
  t.log(`child: status ${child.status}, signal ${child.signal}, exited ${tailMs} ms after its last output (${ended - started} ms in all)`);
  return { status: child.status, signal: child.signal, tailMs, stdout: child.stdout, stderr: child.stderr };
}

test('an idle loaded module does not keep the process alive', async (t) => {
  const child = runChild(t, `
    const m = await loadModule(model);
    const r = await m.run('noop', [Tensor.fromArray(new Float32Array([5]))]);
    await Promise.all(Array.from({ length: 64 }, () => m.run('tick')));
    console.log('ran', r.data()[0], m.runSync('tick'), Date.now());
  `);
  t.is(child.stderr.trim(), '');
  t.is(child.status, 0);
  t.is(child.signal, null);
  t.regex(child.stdout, /ran 5 65 /);
  t.true(child.tailMs < 5000 * SLOWDOWN, `exited ${child.tailMs} ms after its last call`);
});

test('a disposed module, and process.exit with calls still queued, end the process cleanly', async (t) => {
  const disposed = runChild(t, `
    const m = await loadModule(model);
    const pending = m.run('tick');
    m.dispose();
    const outcome = await pending.then((v) => 'value ' + v, (e) => e.code);
    console.log(outcome, Date.now());
  `);
  t.is(disposed.status, 0);
  t.regex(disposed.stdout, /^(value 1|DISPOSED) /);
  t.true(disposed.tailMs < 5000 * SLOWDOWN, `exited ${disposed.tailMs} ms after its last call`);

  const exiting = runChild(t, `
    const m = await loadModule(model);
    const x = Tensor.zeros([16, ${parityMeta().slowDim}]);
    for (let i = 0; i < 5; i++) m.run('slow', [x, 200]);
    setTimeout(() => { console.log('exit', Date.now()); process.exit(7); }, 20);
  `);
  t.is(exiting.signal, null, 'no crash at teardown');
  t.is(exiting.status, 7);
  t.is(exiting.stderr.trim(), '');
});

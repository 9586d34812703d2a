// The native engine's optimizer against PyTorch's: the same module, batches and hyper-parameters
// through native/train_engine.cpp (AdamW with the `vqgan.` group at a scaled lr and its own weight
// decay, global-norm clipping, warm-up + cosine schedule held at its floor) and through
// torch.optim.AdamW + clip_grad_norm_ + LambdaLR (python/dove_fixtures/optim.py). Per step: the lr and
// the gradient norm; at the end: every weight and AdamW's state (moments and step count per parameter,
// and each group's lr and weight decay), read back from the engine's optimizer.pt by
// python/dove/engine_state.py.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonPath } from '../../bench/lib/paths';
import type { TrainEngineOptions } from '../../binding';
import { readSafetensors, type SafetensorsFile } from '../../lib/io/safetensors';
import { binding as native } from '../../lib/core/native';
import { maxAbsDiff } from '../native/helpers';
import { ROOT, tempDir } from './helpers';

const OPTIM = join(ROOT, 'test', 'fixtures', 'generated', 'optim');

interface OptimFixture {
  model: string;
  batches: string;
  reference: string;
  steps: number;
  options: TrainEngineOptions;
  paramGroups: string[][];
  clippedSteps: number;
}

function values(file: SafetensorsFile, key: string): Float64Array {
  const tensor = file.tensors.get(key);
  if (tensor === undefined) throw new Error(`${key} missing`);
  return Float64Array.from(tensor.data as ArrayLike<number>);
}

/** Largest |a - b| / (atol + rtol·|b|): at most 1 means within tolerance everywhere. */
function worstRatio(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)));
  return worst;
}

test('AdamW, clipping and the lr schedule of the native engine match torch.optim over 13 steps', async (t) => {
  const fixtureFile = join(OPTIM, 'optim.json');
  if (!existsSync(fixtureFile)) return t.fail('optimizer fixture missing: run scripts/setup');
  const fixture = JSON.parse(readFileSync(fixtureFile, 'utf8')) as OptimFixture;
  const batches = await readSafetensors(join(OPTIM, fixture.batches));
  const reference = await readSafetensors(join(OPTIM, fixture.reference));
  const { dir, cleanup } = tempDir('optim');
  t.teardown(cleanup);

  const b = native();
  const module = await b.loadModule(join(OPTIM, fixture.model), 'cpu', []);
  t.teardown(() => module.dispose());
  const engine = b.createTrainEngine(module, fixture.options);
  t.teardown(() => engine.dispose());
  const lrs: number[] = [];
  const norms: number[] = [];
  for (let k = 0; k < fixture.steps; k++) {
    const args = ['x', 'y'].map((name) => {
      const tensor = batches.tensors.get(`${name}.${k}`)!;
      return b.tensorFromArray(tensor.data as Float32Array, tensor.shape, 'float32');
    });
    const result = await engine.trainStep(args);
    lrs.push(result.lr);
    norms.push(result.gradNorm);
  }
  t.is(engine.step, fixture.steps);

  // The schedule and the norm before clipping, step by step (float64 on both sides).
  t.true(worstRatio(lrs, values(reference, 'lr'), 0, 1e-12) <= 1, `lr per step: ${lrs.join(', ')}`);
  t.true(worstRatio(norms, values(reference, 'grad_norm'), 0, 1e-5) <= 1, `grad norms: ${norms.join(', ')}`);
  const clipped = norms.filter((n) => n > fixture.options.clipGradNorm).length;
  t.is(clipped, fixture.clippedSteps, 'clipped and unclipped steps both ran');

  // Weights after the last step, including the parameter that never had a gradient (unchanged).
  const weights = module.namedParameters();
  t.deepEqual(Object.keys(weights).sort(), fixture.paramGroups.flat().sort());
  let weightDiff = 0;
  for (const [name, tensor] of Object.entries(weights)) {
    const got = b.tensorData(tensor) as Float32Array;
    weightDiff = Math.max(weightDiff, maxAbsDiff(got, values(reference, `weight.${name}`)));
    const ratio = worstRatio(got, values(reference, `weight.${name}`), 1e-6, 1e-5);
    t.true(ratio <= 1, `weight ${name}: worst |node - torch| is ${ratio.toFixed(2)}× the tolerance`);
  }

  // AdamW's state, through the file the Trainer checkpoints.
  const saved = join(dir, 'optimizer.pt');
  await engine.saveState(saved);
  const asTensors = join(dir, 'state.safetensors');
  execFileSync(pythonPath(), ['-m', 'dove.engine_state', saved, '-o', asTensors], { cwd: join(ROOT, 'python'), stdio: 'pipe' });
  const state = await readSafetensors(asTensors);
  const stateKeys = [...reference.tensors.keys()].filter((k) => k.startsWith('state.') || k.startsWith('group.') || k === 'step');
  t.deepEqual([...state.tensors.keys()].sort(), stateKeys.sort(), 'the same parameters have state, in the same groups');
  t.true(stateKeys.some((k) => k.startsWith('state.0.')), 'the vqgan. group has state');
  const stateDiff = { exp_avg: 0, exp_avg_sq: 0 };
  for (const key of stateKeys) {
    const moment = key.endsWith('.exp_avg_sq') ? 'exp_avg_sq' : key.endsWith('.exp_avg') ? 'exp_avg' : undefined;
    if (moment !== undefined) stateDiff[moment] = Math.max(stateDiff[moment], maxAbsDiff(values(state, key), values(reference, key)));
    const [atol, rtol] = key.endsWith('.exp_avg_sq') ? [1e-9, 1e-5] : key.endsWith('.exp_avg') ? [1e-7, 1e-5] : [0, 1e-12];
    const ratio = worstRatio(values(state, key), values(reference, key), atol, rtol);
    t.true(ratio <= 1, `${key}: worst |node - torch| is ${ratio.toFixed(2)}× the tolerance`);
  }
  t.log(`${fixture.steps} steps (${clipped} clipped): max |node - torch| weights ${weightDiff.toExponential(1)}, exp_avg ${stateDiff.exp_avg.toExponential(1)}, exp_avg_sq ${stateDiff.exp_avg_sq.toExponential(1)}`);
});

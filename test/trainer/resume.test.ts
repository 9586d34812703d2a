// Resume is exact: 3 steps, stop() (finish the step, checkpoint), resume for the rest gives the same
// weights as the uninterrupted run, on the stochastic DOVE loss (random training lengths), so the
// saved RNG state, optimizer moments, schedule position and data order all have to be right.
import test from 'ava';
import { join } from 'node:path';
import { Trainer, type StepEvent } from '../../lib/trainer';
import { readState } from '../../lib/trainer/checkpoint';
import { fixturesReady, IMAGES, MINI, maxWeightDifference, tempDir } from './helpers';

const common = { model: MINI, images: IMAGES, batchSize: 4, epochs: 2, lr: 2e-3, warmupSteps: 2, threads: 1, seed: 5, plots: false } as const;

test('N steps + stop + resume for M steps equals N+M uninterrupted steps', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('resume');
  t.teardown(cleanup);

  const full = await new Trainer({ ...common, outDir: join(dir, 'full') }).fit();
  t.is(full.step, 8);

  const first = new Trainer({ ...common, outDir: join(dir, 'split') });
  first.on('step', (e: StepEvent) => {
    if (e.step === 3) first.stop();
  });
  const stopped = await first.fit();
  t.true(stopped.stopped);
  t.is(stopped.step, 3);
  const state = await readState(stopped.checkpoint!);
  t.deepEqual([state.epoch, state.stepInEpoch, state.step], [0, 3, 3]);

  const resumed = await new Trainer({ ...common, outDir: join(dir, 'split'), resume: true }).fit();
  t.is(resumed.step, 8);
  const diff = await maxWeightDifference(join(full.checkpoint!, 'model.pt'), join(resumed.checkpoint!, 'model.pt'));
  t.log(`max |w_full - w_resumed| over ${diff.count} parameters: ${diff.max}`);
  t.true(diff.count > 10);
  t.true(diff.max <= 1e-5, `max difference ${diff.max}`);

  // And the weights really moved (the comparison is not between two untouched models).
  const moved = await maxWeightDifference(MINI, join(full.checkpoint!, 'model.pt'));
  t.true(moved.max > 1e-3);
});

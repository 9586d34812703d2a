// Crash safety: a trainer SIGKILLed inside a checkpoint write (after model.pt, after optimizer.pt,
// after trainer.json but before the rename) leaves the committed checkpoints loadable (model,
// optimizer state, trainer state) and resumable. The child stops itself at the chosen point
// (DOVE_TEST_STOP_IN_CHECKPOINT, lib/trainer/checkpoint.ts), so every kill lands inside a write.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Trainer } from '../../lib/trainer';
import { DoveError } from '../../lib/base/errors';
import { checkpointName, checkpointStopFromEnv, listCheckpoints, readState, STOP_IN_CHECKPOINT_ENV } from '../../lib/trainer/checkpoint';
import { binding as native } from '../../lib/core/native';
import { fixturesReady, IMAGES, MINI, tempDir } from './helpers';

interface KilledRun {
  /** The steps the child trained, as it reported them. */
  steps: number[];
  pid: number;
}

/** Runs the child until it stops itself inside the checkpoint write `stopAt`, then SIGKILLs it. */
async function killInsideCheckpoint(out: string, stopAt: string): Promise<KilledRun> {
  const child = spawn(process.execPath, [join(__dirname, 'crash-child.js'), MINI, IMAGES, out], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [STOP_IN_CHECKPOINT_ENV]: stopAt },
  });
  const steps: number[] = [];
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.startsWith('step ')) steps.push(Number(line.slice(5)));
  });
  // 'close', not 'exit': every line the child wrote before it stopped has been read by then.
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('close', (_code, signal) => resolve(signal)));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
    // The child writes this line, then stops: the kill cannot land anywhere else.
    if (stderr.includes(`${STOP_IN_CHECKPOINT_ENV}: stopped after writing`)) child.kill('SIGKILL');
  });
  const signal = await exited;
  if (signal !== 'SIGKILL') throw new Error(`child ended before the kill (${String(signal)}): ${stderr}`);
  return { steps, pid: child.pid! };
}

async function assertLoadable(dir: string): Promise<number> {
  const b = native();
  const state = await readState(dir);
  const module = await b.loadModule(join(dir, 'model.pt'), 'cpu', ['dove.json']);
  try {
    const meta = JSON.parse(module.extraFiles['dove.json']!) as { training: { steps: number } };
    if (meta.training.steps !== state.step) throw new Error(`dove.json says ${meta.training.steps} steps, trainer.json ${state.step}`);
    const engine = b.createTrainEngine(module, {
      lr: 1e-3, betas: [0.9, 0.95], eps: 1e-8, groups: [{ prefixes: ['vqgan.'], lrScale: 0.1, weightDecay: 0.01 }], weightDecay: 0.01,
      warmupSteps: 0, totalSteps: 10, minLrRatio: 0.1, clipGradNorm: 1, accumulate: 1, autocastBf16: false, seed: 0,
    });
    await engine.loadState(join(dir, 'optimizer.pt'));
    const step = engine.step;
    engine.dispose();
    return step;
  } finally {
    module.dispose();
  }
}

test('SIGKILL inside a checkpoint write leaves the previous checkpoints loadable and resumable', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('crash');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  const root = join(out, 'checkpoints');
  // The child checkpoints every step and keeps the last 2; each round resumes from the newest one.
  const rounds = [
    { stopAt: 3, after: 'model.pt', written: ['model.pt'] },
    { stopAt: 4, after: 'optimizer.pt', written: ['model.pt', 'optimizer.pt'] },
    { stopAt: 5, after: 'trainer.json', written: ['model.pt', 'optimizer.pt', 'trainer.json'] },
  ];
  for (const round of rounds) {
    const killed = await killInsideCheckpoint(out, `${round.stopAt}:${round.after}`);
    const label = `killed after ${round.after} of step ${round.stopAt}`;
    // Round 1 starts fresh; later rounds resume from the newest checkpoint, two steps before the kill.
    const firstStep = round === rounds[0] ? 1 : round.stopAt - 1;
    t.deepEqual(killed.steps, Array.from({ length: round.stopAt - firstStep + 1 }, (_, i) => firstStep + i), `${label}: steps trained`);
    // The kill landed inside the write: the partial folder holds exactly the files written so far.
    const partial = join(root, `${checkpointName(round.stopAt)}.partial-${killed.pid}`);
    t.deepEqual((await fs.readdir(partial)).sort(), round.written, `${label}: partial folder`);
    // The committed checkpoints are the two before it, each complete.
    const committed = await listCheckpoints(out);
    t.deepEqual(committed.map((c) => c.slice(root.length + 1)), [checkpointName(round.stopAt - 2), checkpointName(round.stopAt - 1)], label);
    for (const c of committed) t.is(await assertLoadable(c), (await readState(c)).step, `${label}: ${c}`);
  }
  // The earlier rounds' partial folders were removed when the next run started.
  t.deepEqual((await fs.readdir(root)).filter((n) => n.includes('.partial-')).length, 1);
  // A resumed run starts from the newest committed checkpoint (step 4) and cleans the crash leftover.
  const from = (await readState(join(root, checkpointName(4)))).step;
  t.is(from, 4);
  const done = await new Trainer({ model: MINI, images: IMAGES, outDir: out, batchSize: 4, epochs: 1000, lr: 1e-3, threads: 1, plots: false, resume: true, maxSteps: from + 1, keepLast: 2 }).fit();
  t.is(done.step, from + 1);
  t.is(await assertLoadable(done.checkpoint!), from + 1);
  t.false((await fs.readdir(root)).some((n) => n.includes('.partial-')));
});

test('the stop hook reads <step>:<file> and rejects anything else by name', (t) => {
  t.is(checkpointStopFromEnv({}), null);
  t.deepEqual(checkpointStopFromEnv({ [STOP_IN_CHECKPOINT_ENV]: '12:optimizer.pt' }), { step: 12, file: 'optimizer.pt' });
  for (const bad of ['3', '3:model', '0:model.pt', 'x:trainer.json', '3:model.pt:extra']) {
    const error = t.throws(() => checkpointStopFromEnv({ [STOP_IN_CHECKPOINT_ENV]: bad }), { instanceOf: DoveError });
    t.is(error?.code, 'INVALID_ARGUMENT');
    t.is(error?.message, `Expected <step>:<model.pt|optimizer.pt|trainer.json> for ${STOP_IN_CHECKPOINT_ENV} but received '${bad}'`);
  }
});

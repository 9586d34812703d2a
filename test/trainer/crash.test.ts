// Crash safety: a trainer SIGKILLed at various moments around its checkpoint writes always leaves
// the committed checkpoints loadable (model, optimizer state, trainer state) and resumable.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Trainer } from '../../lib/trainer';
import { listCheckpoints, readState, resolveCheckpoint } from '../../lib/trainer/checkpoint';
import { native } from '../../lib/trainer/native';
import { fixturesReady, IMAGES, MINI, tempDir } from './helpers';

/** Runs the child until it has printed `steps` step lines, waits `delayMs`, SIGKILLs it. */
async function killDuringRun(out: string, steps: number, delayMs: number): Promise<number> {
  const child = spawn(process.execPath, [join(__dirname, 'crash-child.js'), MINI, IMAGES, out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = 0;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    seen += chunk.split('\n').filter((l) => l.startsWith('step ')).length;
    // The step event comes just before the checkpoint is written: the delay lands inside it.
    if (seen >= steps) setTimeout(() => child.kill('SIGKILL'), delayMs);
  });
  const signal = await exited;
  if (signal !== 'SIGKILL') throw new Error(`child ended before the kill (${String(signal)}): ${stderr}`);
  return seen;
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

test('SIGKILL while checkpointing leaves the previous checkpoint loadable and resumable', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('crash');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  for (const [round, delay] of [2, 15].entries()) {
    await killDuringRun(out, 2, delay);
    const committed = await listCheckpoints(out);
    t.true(committed.length >= 1, `round ${round}: no committed checkpoint`);
    for (const c of committed) {
      const step = await assertLoadable(c);
      t.is(step, (await readState(c)).step);
    }
  }
  const names = await fs.readdir(join(out, 'checkpoints'));
  t.log(`after 2 kills: ${names.join(' ')}`);
  // A resumed run starts from the newest committed checkpoint and cleans crash leftovers.
  const from = (await readState(await resolveCheckpoint(out))).step;
  const done = await new Trainer({ model: MINI, images: IMAGES, outDir: out, batchSize: 4, epochs: 1000, lr: 1e-3, threads: 1, plots: false, resume: true, maxSteps: from + 1, keepLast: 2 }).fit();
  t.is(done.step, from + 1);
  t.false((await fs.readdir(join(out, 'checkpoints'))).some((n) => n.includes('.partial-')));
});

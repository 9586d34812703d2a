// Learning is real: a few steps on four smooth images halve their reconstruction error, and the run
// leaves its log, plots and a checkpoint that loads as a model.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Tokenizer } from '../../lib/model/tokenizer';
import { Trainer, type TrainerEvent } from '../../lib/trainer';
import { fixturesReady, MINI, reconstructionMse, tempDir } from './helpers';

const SIZE = 32;

/** Smooth pictures (gradients and a flat field): what a tiny model can learn in seconds. */
function picture(kind: number): Buffer {
  const data = Buffer.alloc(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = (y * SIZE + x) * 3;
      data[i] = kind === 0 ? 200 : (x * 255) / (SIZE - 1);
      data[i + 1] = kind === 1 ? (y * 255) / (SIZE - 1) : 60 + kind * 40;
      data[i + 2] = kind === 3 ? ((x + y) * 255) / (2 * SIZE - 2) : 120;
    }
  }
  return data;
}

test('training on four images lowers their reconstruction error by more than half', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('learn');
  t.teardown(cleanup);
  const images = join(dir, 'images');
  await fs.mkdir(images);
  const pixels = new Uint8Array(4 * SIZE * SIZE * 3);
  for (let k = 0; k < 4; k++) {
    const raw = picture(k);
    pixels.set(raw, k * raw.length);
    // Four copies each: four steps per epoch, so the run is not all epoch-end checkpoints.
    for (let c = 0; c < 4; c++) await sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(join(images, `p${k}-${c}.png`));
  }
  const before = await reconstructionMse(MINI, pixels, 4, SIZE, 16);

  const out = join(dir, 'out');
  const trainer = new Trainer({ model: MINI, images, outDir: out, batchSize: 4, epochs: 6, lr: 3e-3, warmupSteps: 2, augment: false, threads: 1, sampleImages: 2, keepLast: 1 });
  const seen: TrainerEvent[] = [];
  const iterate = (async () => {
    for await (const e of trainer.events()) seen.push(e);
  })();
  const done = await trainer.fit();
  await iterate;
  t.is(done.step, 24);
  t.false(done.stopped);
  const after = await reconstructionMse(join(done.checkpoint!, 'model.pt'), pixels, 4, SIZE, 16);
  t.log(`full-length reconstruction MSE ${before.toFixed(4)} -> ${after.toFixed(4)}`);
  t.true(after < before / 2, `MSE ${before} -> ${after}`);

  // Events through the async iterator match the steps; the log has one line per step.
  t.is(seen.filter((e) => e.type === 'step').length, 24);
  t.is(seen.filter((e) => e.type === 'epoch').length, 6);
  t.is(seen[seen.length - 1]!.type, 'done');
  const log = (await fs.readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; lr?: number });
  t.is(log.filter((l) => l.type === 'step').length, 24);
  // Warm-up then cosine: lr rises for 2 steps, then falls.
  const lrs = log.filter((l) => l.type === 'step').map((l) => l.lr!);
  t.true(lrs[0]! < lrs[1]! && lrs[1]! > lrs[23]!);
  const curve = await sharp(join(out, 'loss-curve.png')).metadata();
  t.is(curve.format, 'png');
  const grid = await sharp(join(out, 'reconstructions-epoch-006.png')).metadata();
  t.is(grid.format, 'png');
  // keepLast 1: only the newest checkpoint stays.
  t.deepEqual(await fs.readdir(join(out, 'checkpoints')), ['step-00000024']);
  const meta = JSON.parse(await fs.readFile(join(done.checkpoint!, 'trainer.json'), 'utf8')) as { step: number; epoch: number };
  t.is(meta.step, 24);
  t.is(meta.epoch, 6);
  // The checkpoint is a normal model file: the Tokenizer loads it as is and sees the training record.
  const tokenizer = await Tokenizer.load(join(done.checkpoint!, 'model.pt'));
  t.deepEqual((tokenizer.model.meta.training as { steps: number }).steps, 24);
  const tokens = await tokenizer.tokenize(join(images, 'p0-0.png'));
  t.true(tokens.length >= 1 && tokens.length <= 16);
});

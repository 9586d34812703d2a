// Length learning is real: trained on a mix of flat-colour and noisy pictures, the EOS head gives the
// flat ones clearly fewer tokens than the noisy ones (design doc section 7), on pictures it has not seen.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Trainer } from '../../lib/trainer';
import { rng } from '../eval/fixtures';
import { autoLengths, fixturesReady, MINI, tempDir } from './helpers';

const SIZE = 32;
const MAX_TOKENS = 16;

// The EOS rule is relative: a sample reconstructed worse than the batch mean is pushed longer, better
// shorter. Muted colours (channels 90..165) keep a flat picture's error below a noisy one's from the
// first steps, while the model still reconstructs everything as the mean picture; saturated colours
// would first need the model to learn colour before the rule sees a difference.
function flat(random: () => number): Buffer {
  const c = [0, 1, 2].map(() => Math.round(90 + 75 * random()));
  const data = Buffer.alloc(SIZE * SIZE * 3);
  for (let i = 0; i < SIZE * SIZE; i++) data.set(c, i * 3);
  return data;
}

function noisy(random: () => number): Buffer {
  const data = Buffer.alloc(SIZE * SIZE * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(256 * random());
  return data;
}

function pack(images: Buffer[]): Uint8Array {
  const out = new Uint8Array(images.length * SIZE * SIZE * 3);
  images.forEach((img, i) => out.set(img, i * img.length));
  return out;
}

test('after training on flat and noisy pictures, flat ones get clearly shorter EOS lengths', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('length');
  t.teardown(cleanup);
  const images = join(dir, 'images');
  await fs.mkdir(images);
  const random = rng(7);
  for (let k = 0; k < 16; k++) {
    for (const [kind, make] of [['flat', flat], ['noisy', noisy]] as const) {
      await sharp(make(random), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(join(images, `${kind}-${k}.png`));
    }
  }
  // Unseen pictures of both kinds for the measurement.
  const heldFlat = pack(Array.from({ length: 8 }, () => flat(random)));
  const heldNoisy = pack(Array.from({ length: 8 }, () => noisy(random)));
  const before = [await autoLengths(MINI, heldFlat, 8, SIZE, MAX_TOKENS), await autoLengths(MINI, heldNoisy, 8, SIZE, MAX_TOKENS)];

  const trainer = new Trainer({ model: MINI, images, outDir: join(dir, 'out'), batchSize: 8, epochs: 15, lr: 3e-3, warmupSteps: 5, augment: false, threads: 1, seed: 3, sampleImages: 0, keepLast: 1 });
  const done = await trainer.fit();
  t.is(done.step, 60);
  const model = join(done.checkpoint!, 'model.pt');
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const flatLen = mean(await autoLengths(model, heldFlat, 8, SIZE, MAX_TOKENS));
  const noisyLen = mean(await autoLengths(model, heldNoisy, 8, SIZE, MAX_TOKENS));
  t.log(`mean EOS length before: flat ${mean(before[0]!)}, noisy ${mean(before[1]!)}; after 60 steps: flat ${flatLen}, noisy ${noisyLen}`);
  // Untrained, the head cannot tell them apart (both at the budget); trained, flat is at most half of noisy.
  t.is(mean(before[0]!), mean(before[1]!));
  t.true(flatLen * 2 <= noisyLen, `flat ${flatLen} vs noisy ${noisyLen}`);
});

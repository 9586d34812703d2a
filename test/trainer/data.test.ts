// The data pipeline: seeded order sharded by rank, crops that stay inside the image, unreadable
// files reported and skipped (never fatal mid-epoch), and batches as one contiguous buffer.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Trainer } from '../../lib/trainer';
import { BatchLoader, buildSamples, randomCrop } from '../../lib/trainer/data';
import { epochPermutation, Rng } from '../../lib/trainer/rng';
import { fixturesReady, IMAGES, MINI, tempDir } from './helpers';

test('epoch order is a seeded permutation; ranks take disjoint slices of each global batch', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const p = epochPermutation(16, 7, 0);
  t.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i));
  t.deepEqual(epochPermutation(16, 7, 0), p);
  t.notDeepEqual(epochPermutation(16, 7, 1), p);
  const samples = await buildSamples(IMAGES, false);
  const opts = { size: 16, batchSize: 2, seed: 7, worldSize: 2, augment: null, prefetch: 1, maxInputPixels: 1e8, onSkip: () => undefined };
  const r0 = new BatchLoader(samples, { ...opts, rank: 0 });
  const r1 = new BatchLoader(samples, { ...opts, rank: 1 });
  t.is(r0.stepsPerEpoch, 4);
  const seen = new Set<string>();
  for (let s = 0; s < 4; s++) {
    const [a, b] = await Promise.all([r0.get(0, s), r1.get(0, s)]);
    t.is(a.pixels.length, 2 * 16 * 16 * 3);
    for (const f of [...a.files, ...b.files]) {
      t.false(seen.has(f), `${f} twice in one epoch`);
      seen.add(f);
    }
  }
  t.is(seen.size, 16);
});

test('random resized crops stay inside the image and are reproducible', (t) => {
  for (let i = 0; i < 200; i++) {
    const c = randomCrop(50 + i, 30 + (i % 17), new Rng(i), { scale: [0.2, 1], ratio: [0.75, 1.333], flip: true });
    t.true(c.left >= 0 && c.top >= 0 && c.width >= 1 && c.height >= 1 && c.left + c.width <= 50 + i && c.top + c.height <= 30 + (i % 17));
    t.deepEqual(randomCrop(50 + i, 30 + (i % 17), new Rng(i), { scale: [0.2, 1], ratio: [0.75, 1.333], flip: true }), c);
  }
});

test('an unreadable image is reported once and skipped, the epoch goes on', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('data');
  t.teardown(cleanup);
  for (const name of (await fs.readdir(IMAGES)).slice(0, 7)) await fs.copyFile(join(IMAGES, name), join(dir, name));
  await fs.writeFile(join(dir, 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n this is not really a png'));
  const skipped: string[] = [];
  const samples = await buildSamples(dir, false);
  t.is(samples.length, 8);
  const loader = new BatchLoader(samples, { size: 16, batchSize: 4, seed: 1, rank: 0, worldSize: 1, augment: null, prefetch: 2, maxInputPixels: 1e8, onSkip: (f) => skipped.push(f) });
  let images = 0;
  for (let epoch = 0; epoch < 2; epoch++) {
    for (let s = 0; s < loader.stepsPerEpoch; s++) {
      const b = await loader.get(epoch, s);
      t.is(b.pixels.length, b.count * 16 * 16 * 3);
      images += b.count;
    }
  }
  t.deepEqual(skipped, [join(dir, 'broken.png')]);
  t.is(images, 14);
});

test("fit() runs with libvips' operation cache off and restores the limits it found, also after a failure", async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('vips-cache');
  t.teardown(cleanup);
  const before = sharp.cache();
  t.teardown(() => sharp.cache({ memory: before.memory.max, files: before.files.max, items: before.items.max }));
  const limits = { memory: 17, files: 3, items: 11 };
  sharp.cache(limits);
  const during: number[] = [];
  const trainer = new Trainer({ model: MINI, images: IMAGES, outDir: join(dir, 'out'), batchSize: 4, epochs: 1, maxSteps: 2, threads: 1, plots: false, sampleImages: 0 });
  trainer.on('step', () => {
    const now = sharp.cache();
    during.push(now.memory.max, now.files.max, now.items.max);
  });
  await trainer.fit();
  t.true(during.length > 0, 'no step event');
  t.deepEqual([...new Set(during)], [0], 'the cache was on during a step');
  const after = sharp.cache();
  t.deepEqual({ memory: after.memory.max, files: after.files.max, items: after.items.max }, limits);

  // A fit that fails after the model loaded (an image folder with nothing readable) restores them too.
  const empty = join(dir, 'empty');
  await fs.mkdir(empty);
  await fs.writeFile(join(empty, 'broken.png'), 'not a png');
  await t.throwsAsync(new Trainer({ model: MINI, images: empty, outDir: join(dir, 'out2'), batchSize: 1, epochs: 1, threads: 1, plots: false, sampleImages: 0 }).fit());
  const afterFailure = sharp.cache();
  t.deepEqual({ memory: afterFailure.memory.max, files: afterFailure.files.max, items: afterFailure.items.max }, limits);
});

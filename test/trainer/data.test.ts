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

test('batches reuse their memory round-robin and each stays intact until the second get() after it', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const samples = await buildSamples(IMAGES, false);
  const opts = { size: 16, batchSize: 2, seed: 3, rank: 0, worldSize: 1, augment: { scale: [0.3, 1] as [number, number], ratio: [0.75, 1.333] as [number, number], flip: true }, maxInputPixels: 1e8, onSkip: () => undefined };
  const pooled = new BatchLoader(samples, { ...opts, prefetch: 1 });
  const steps = pooled.stepsPerEpoch;
  const seen: { pixels: Uint8Array; copy: Uint8Array }[] = [];
  for (let i = 0; i < 2 * steps; i++) {
    const b = await pooled.get(Math.floor(i / steps), i % steps);
    seen.push({ pixels: b.pixels, copy: b.pixels.slice() });
    if (i >= 1) t.deepEqual(seen[i - 1]!.pixels, seen[i - 1]!.copy, `batch ${i - 1} changed before the second get() after it`);
  }
  // prefetch 1: four buffers in turn, in the order the batches were requested.
  for (let i = 0; i + 4 < seen.length; i++) {
    t.is(seen[i + 4]!.pixels.buffer, seen[i]!.pixels.buffer);
    for (let k = 1; k < 4; k++) t.not(seen[i + k]!.pixels.buffer, seen[i]!.pixels.buffer);
  }
  // The same crops as a loader whose batches were each read before the next was built.
  const fresh = new BatchLoader(samples, { ...opts, prefetch: 0 });
  for (let i = 0; i < 2 * steps; i++) t.deepEqual((await fresh.get(Math.floor(i / steps), i % steps)).pixels, seen[i]!.copy, `batch ${i}`);
  // Skipping around (a resume, a caller that jumps): the same crops, and still intact until the second get() after.
  const jumping = new BatchLoader(samples, { ...opts, prefetch: 1 });
  const held: { at: number; pixels: Uint8Array }[] = [];
  for (const at of [0, 5, 1, 7, 2, 3, 6, 4, 12, 8]) {
    const b = await jumping.get(Math.floor(at / steps), at % steps);
    t.deepEqual(b.pixels, seen[at]!.copy, `batch ${at} after a jump`);
    held.push({ at, pixels: b.pixels });
    if (held.length >= 2) t.deepEqual(held[held.length - 2]!.pixels, seen[held[held.length - 2]!.at]!.copy, 'a batch changed before the second get() after it');
  }
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

test('a batch with nothing readable repeats the last good batch, in memory of its own', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('repeat');
  t.teardown(cleanup);
  for (const name of (await fs.readdir(IMAGES)).slice(0, 4)) await fs.copyFile(join(IMAGES, name), join(dir, name));
  for (let i = 0; i < 4; i++) await fs.writeFile(join(dir, `broken${i}.png`), 'not a png');
  const samples = await buildSamples(dir, false);
  const broken = (i: number): boolean => samples[i]!.file.includes('broken');
  const opts = { size: 16, batchSize: 2, rank: 0, worldSize: 1, augment: null, prefetch: 2, maxInputPixels: 1e8, onSkip: () => undefined };
  // A seed whose epoch 0 has an unreadable pair after a readable batch (positions follow the seeded order).
  const seed = Array.from({ length: 100 }, (_, s) => s).find((s) => {
    const order = epochPermutation(samples.length, s, 0);
    const bad = [0, 1, 2, 3].map((k) => broken(order[2 * k]!) && broken(order[2 * k + 1]!));
    return !bad[0] && bad.slice(1).some(Boolean);
  })!;
  const order = epochPermutation(samples.length, seed, 0);
  const loader = new BatchLoader(samples, { ...opts, seed });
  let last: { files: string[]; pixels: Uint8Array } | undefined;
  let repeats = 0;
  const held: Uint8Array[] = [];
  for (let k = 0; k < loader.stepsPerEpoch; k++) {
    const b = await loader.get(0, k);
    if (broken(order[2 * k]!) && broken(order[2 * k + 1]!)) {
      repeats++;
      t.deepEqual(b.files, last!.files);
      t.deepEqual(b.pixels, last!.pixels);
    } else {
      last = { files: b.files, pixels: b.pixels.slice() };
    }
    held.push(b.pixels);
    if (k >= 1) t.not(held[k]!.buffer, held[k - 1]!.buffer, 'two batches in use share memory');
  }
  t.true(repeats > 0);
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

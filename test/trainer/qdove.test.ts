// Q-DOVE training: annotations in the original's format drive the region mask and the query; a
// malformed entry is rejected with its index and field before any step runs.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Trainer, parseAnnotations, type StepEvent } from '../../lib/trainer';
import { boxMask } from '../../lib/trainer/annotations';
import { ANNOTATIONS, fixturesReady, IMAGES, MINI, MINI_QDOVE, tempDir } from './helpers';

test('Q-DOVE trains from annotations: region and query reach the loss', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('qdove');
  t.teardown(cleanup);
  const trainer = new Trainer({ model: MINI_QDOVE, images: IMAGES, annotations: ANNOTATIONS, outDir: dir, batchSize: 4, epochs: 1, maxSteps: 3, lr: 1e-3, threads: 1, sampleImages: 2 });
  const steps: StepEvent[] = [];
  trainer.on('step', (e: StepEvent) => steps.push(e));
  const done = await trainer.fit();
  t.is(done.step, 3);
  t.is(steps.length, 3);
  for (const s of steps) {
    t.true(Number.isFinite(s.parts.rel) && Number.isFinite(s.parts.irr), JSON.stringify(s.parts));
    // The relevant-region term is not the whole-image error: the mask really arrived.
    t.not(s.parts.rel, s.parts.rec);
  }
  const meta = JSON.parse((await fs.readFile(join(done.checkpoint!, 'trainer.json'), 'utf8'))) as { step: number };
  t.is(meta.step, 3);
});

test('a DOVE model refuses annotations and a Q-DOVE model requires them', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('qdove-args');
  t.teardown(cleanup);
  await t.throwsAsync(new Trainer({ model: MINI, images: IMAGES, annotations: ANNOTATIONS, outDir: dir, batchSize: 4 }).fit(), { message: /annotations need a Q-DOVE model/ });
  await t.throwsAsync(new Trainer({ model: MINI_QDOVE, images: IMAGES, outDir: dir, batchSize: 4 }).fit(), { message: /needs annotations/ });
});

test('a malformed annotation file is rejected with the entry index and field before training', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('qdove-bad');
  t.teardown(cleanup);
  const good = JSON.parse(await fs.readFile(ANNOTATIONS, 'utf8')) as Record<string, unknown>[];
  const cases: [string, (e: Record<string, unknown>[]) => void, RegExp][] = [
    ['box with 3 numbers', (e) => (e[5]!.bounding_box = [[1, 2, 3]]), /entry 5: bounding_box\[0\] must be \[x, y, w, h\]/],
    ['negative width', (e) => (e[2]!.bounding_box = [[0, 0, 4, 4], [1, 1, -2, 3]]), /entry 2: bounding_box\[1\] needs .* w > 0/],
    ['missing question', (e) => delete e[7]!.question, /entry 7: question must be a non-empty string/],
    ['answer a number', (e) => (e[3]!.answer = 42), /entry 3: answer must be a string or null/],
    ['unknown image', (e) => (e[9]!.image_id = 'no_such_image'), /entry 9: image_id "no_such_image" matches no image/],
  ];
  for (const [name, mutate, expected] of cases) {
    const entries = structuredClone(good);
    mutate(entries);
    const file = join(dir, `${name.replace(/ /g, '_')}.json`);
    await fs.writeFile(file, JSON.stringify(entries));
    const out = join(dir, `out-${name.replace(/ /g, '_')}`);
    const error = await t.throwsAsync(new Trainer({ model: MINI_QDOVE, images: IMAGES, annotations: file, outDir: out, batchSize: 4 }).fit());
    t.regex(error!.message, expected, name);
    t.is((error as Error & { code?: string }).code, 'INVALID_ANNOTATION');
    // Rejected before training: no log was written.
    await t.throwsAsync(fs.access(join(out, 'log.jsonl')));
  }
  t.throws(() => parseAnnotations('x.json', { not: 'an array' }), { message: /expected a JSON array/ });
});

test('boxes follow the crop, the resize and the flip into the region mask', (t) => {
  const size = 8;
  const mask = new Float32Array(size * size);
  // Crop (10,20) 40x40 of the original, resized to 8x8 (scale 0.2): box (10,20,20,10) -> cols 0..3, rows 0..1.
  boxMask([[10, 20, 20, 10]], { left: 10, top: 20, width: 40, height: 40 }, size, false, mask, 0);
  const rows = (m: Float32Array): string[] => Array.from({ length: size }, (_, r) => Array.from(m.subarray(r * size, (r + 1) * size), (v) => (v ? '#' : '.')).join(''));
  t.deepEqual(rows(mask).slice(0, 3), ['####....', '####....', '........']);
  const flipped = new Float32Array(size * size);
  boxMask([[10, 20, 20, 10]], { left: 10, top: 20, width: 40, height: 40 }, size, true, flipped, 0);
  t.deepEqual(rows(flipped).slice(0, 3), ['....####', '....####', '........']);
  // A box outside the crop leaves the mask empty.
  const outside = new Float32Array(size * size);
  boxMask([[0, 0, 5, 5]], { left: 10, top: 20, width: 40, height: 40 }, size, false, outside, 0);
  t.is(outside.reduce((a, v) => a + v, 0), 0);
});

import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { thumbnailPsnr, thumbnailReconstruction, thumbnailSide } from '../../lib/eval/thumbnail';
import { ROOT } from '../support';

// The project's shared reference tool sits beside a checkout on the team's machines, not in clones.
const SHARED_TOOL = join(ROOT, '..', 'shared', 'tools', 'thumbnail-baseline.js');

/** Seeded pseudo-photo: smooth gradients plus a little high-frequency texture. */
function pattern(size: number, seed: number): Uint8Array {
  const px = new Uint8Array(size * size * 3);
  let s = seed >>> 0;
  const rnd = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        const v = 128 + 90 * Math.sin((x * (c + 1)) / 9 + seed) * Math.cos(y / (7 + c)) + 30 * (rnd() - 0.5);
        px[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return px;
}

test('the thumbnail stores floor(sqrt(floats / 3)) pixels a side, between 1 and the image side', (t) => {
  t.is(thumbnailSide(32, 64), 3);
  t.is(thumbnailSide(4096, 64), 36);
  t.is(thumbnailSide(1, 64), 1);
  t.is(thumbnailSide(1e9, 64), 64);
});

test('a full-size thumbnail is lossless and a flat image survives any size', (t) => {
  const px = pattern(16, 3);
  t.deepEqual(thumbnailReconstruction(px, 16, 3 * 16 * 16), px);
  const flat = new Uint8Array(16 * 16 * 3).fill(77);
  for (const floats of [3, 27, 300]) t.is(thumbnailPsnr(flat, 16, floats), Infinity);
});

test('more floats, better thumbnail', (t) => {
  const px = pattern(64, 1);
  const values = [32, 128, 512, 2048].map((f) => thumbnailPsnr(px, 64, f));
  for (let i = 1; i < values.length; i++) t.true(values[i]! > values[i - 1]!, `${values.join(' < ')}`);
});

test('known values of the reference tool (computed with thumbnail-baseline.js on this pattern)', (t) => {
  const px = pattern(64, 1);
  t.true(Math.abs(thumbnailPsnr(px, 64, 32) - 14.679150363198776) < 1e-9);
  t.true(Math.abs(thumbnailPsnr(px, 64, 2048) - 29.746156029161174) < 1e-9);
});

test('bad sizes are a DoveError', (t) => {
  t.throws(() => thumbnailPsnr(new Uint8Array(10), 4, 12), { instanceOf: DoveError, message: /Expected 4×4×3 RGB bytes/ });
  t.throws(() => thumbnailPsnr(new Uint8Array(48), 4, -1), { instanceOf: DoveError, message: /non-negative number of floats/ });
});

const shared = existsSync(SHARED_TOOL);
(shared ? test : test.skip)(`same numbers as the shared reference tool${shared ? '' : ' (skipped: ../shared/tools/thumbnail-baseline.js is not beside this checkout)'}`, (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const reference = require(SHARED_TOOL) as { thumbnailPsnr(x: Uint8Array, s: number, floats: number): number };
  for (const seed of [1, 2, 3]) {
    const px = pattern(64, seed);
    for (const floats of [32, 64, 128, 256, 512, 1024, 2048, 4096]) {
      // Equal up to the order of a float64 sum (lib/io/images.ts psnr sums the squared error its own way).
      const ours = thumbnailPsnr(px, 64, floats);
      const theirs = reference.thumbnailPsnr(px, 64, floats);
      t.true(Math.abs(ours - theirs) < 1e-9, `seed ${seed}, ${floats} floats: ${ours} vs ${theirs}`);
    }
  }
});

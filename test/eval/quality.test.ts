import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readRgb } from '../../lib/eval/folders';
import { folderQuality, perLengthQuality, psnr, ssim } from '../../lib/eval/quality';
import { dove, EVAL, tempDir } from './fixtures';

const Q = join(EVAL, 'quality');

interface Ref {
  psnr: number | 'inf';
  ssim: number;
}
const reference = JSON.parse(readFileSync(join(Q, 'quality-reference.json'), 'utf8')) as {
  pairs: Record<string, Ref>;
  perLength: Record<string, Record<string, Ref>>;
};
const refPsnr = (r: Ref): number => (r.psnr === 'inf' ? Infinity : r.psnr);

test('PSNR and SSIM equal scikit-image on the same PNGs (square, non-square, identical)', async (t) => {
  for (const [name, ref] of Object.entries(reference.pairs)) {
    const real = await readRgb(join(Q, 'real', `${name}.png`));
    const fake = await readRgb(join(Q, 'fake', `${name}.png`));
    const p = psnr(real.data, fake.data);
    const s = ssim(real.data, fake.data, real.width, real.height);
    if (ref.psnr === 'inf') t.is(p, Infinity, name);
    else t.true(Math.abs(p - ref.psnr) < 1e-9, `${name}: psnr ${p} vs skimage ${ref.psnr}`);
    t.true(Math.abs(s - ref.ssim) < 1e-9, `${name}: ssim ${s} vs skimage ${ref.ssim}`);
  }
});

test('folderQuality pairs by name and summarises; identical pairs are reported, not averaged', async (t) => {
  const q = await folderQuality(join(Q, 'real'), join(Q, 'fake'));
  t.is(q.images.length, Object.keys(reference.pairs).length);
  t.is(q.summary.identical, 1);
  const finite = Object.values(reference.pairs).filter((r) => r.psnr !== 'inf').map(refPsnr);
  t.true(Math.abs(q.summary.psnr - finite.reduce((a, b) => a + b, 0) / finite.length) < 1e-9);
  const all = Object.values(reference.pairs);
  const meanSsim = all.reduce((a, r) => a + r.ssim, 0) / all.length;
  t.true(Math.abs(q.summary.ssim - meanSsim) < 1e-9);
});

test('per-length quality reads the reconstruct-batch layout and matches scikit-image per image', async (t) => {
  const results = await perLengthQuality(join(Q, 'real'), join(Q, 'recon'));
  t.deepEqual(results.map((r) => r.label), ['8', '16', '32', 'auto']);
  for (const r of results) {
    for (const img of r.result.images) {
      const ref = reference.perLength[r.label]![img.name]!;
      t.true(Math.abs(img.psnr - refPsnr(ref)) < 1e-9 && Math.abs(img.ssim - ref.ssim) < 1e-9, `${r.label}/${img.name}`);
    }
  }
  // The fixture's error shrinks with length, so quality must rise.
  const psnrs = results.slice(0, 3).map((r) => r.result.summary.psnr);
  t.true(psnrs[0]! < psnrs[1]! && psnrs[1]! < psnrs[2]!);
});

test('real images are resized to the reconstruction size before comparison', async (t) => {
  const dir = tempDir('resize');
  const real = await readRgb(join(Q, 'real', 'img0.png')); // 64x64
  await sharp(Buffer.from(real.data), { raw: { width: 64, height: 64, channels: 3 } }).resize(32, 32).png().toFile(join(dir, 'img0.png'));
  const q = await folderQuality(join(Q, 'real'), dir);
  t.is(q.images.length, 1);
  t.true(q.images[0]!.psnr > 30, `psnr ${q.images[0]!.psnr}`);
  t.deepEqual(q.pairing.onlyFake, []);
  t.true(q.pairing.onlyReal.includes('img1'));
});

test('bad inputs: mismatched sizes, too small for the SSIM window, no pairs', async (t) => {
  t.throws(() => psnr(new Uint8Array(3), new Uint8Array(6)), { message: /equal size/ });
  t.throws(() => ssim(new Uint8Array(8 * 8 * 3), new Uint8Array(8 * 8 * 3), 8, 8), { message: /at least 11x11/ });
  t.throws(() => ssim(new Uint8Array(10), new Uint8Array(10), 12, 12), { message: /Expected two images of 432 bytes/ });
  await t.throwsAsync(folderQuality(join(Q, 'real'), tempDir('empty')), { message: /has a same-named image/ });
  await t.throwsAsync(folderQuality(join(Q, 'nope'), join(Q, 'fake')), { message: /nope: folder not found/ });
});

test('dove quality --per-length prints a table and writes CSV and plots', (t) => {
  const out = tempDir('quality-cli');
  const csv = join(out, 'q.csv');
  const plot = join(out, 'q.png');
  const r = dove(['quality', join(Q, 'real'), '--per-length', join(Q, 'recon'), '--csv', csv, '--plot', plot, '--quiet']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /tokens\s+images\s+psnr_db\s+ssim/);
  t.regex(r.stdout, /^auto\s+3\s+\d+\.\d+/m);
  const lines = readFileSync(csv, 'utf8').trim().split('\n');
  t.is(lines[0], 'tokens,image,psnr,ssim');
  t.is(lines.length, 1 + 4 * 3);
  t.true(existsSync(plot) && existsSync(join(out, 'q-ssim.png')));
  t.deepEqual([...readFileSync(plot).subarray(1, 4)], [0x50, 0x4e, 0x47]); // PNG
});

test('dove quality flags: wrong folder count is a usage error', (t) => {
  const r = dove(['quality', join(Q, 'real')]);
  t.is(r.status, 2);
  t.regex(r.stderr, /Expected <real-dir> <fake-dir>/);
});

import test from 'ava';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { FidFeatureExtractor, fidFromFeatures, fidStatistics, frechetDistance, disposeStatistics, folderFid } from '../../lib/eval/fid';
import { readRgb } from '../../lib/eval/folders';
import { binding as getBinding } from '../../lib/core/native';
import { loadImage } from '../../lib/io/images';
import { dove, EVAL, normal, rng, tempDir } from './fixtures';

interface FrechetCase {
  dim: number;
  mu1: number[];
  sigma1: number[][];
  mu2: number[];
  sigma2: number[][];
  fid: number;
}
const frechetRef = JSON.parse(readFileSync(join(EVAL, 'frechet-reference.json'), 'utf8')) as { cases: FrechetCase[] };

const vec = (v: number[]) => getBinding().tensorFromArray(Float64Array.from(v), [v.length], 'float64');
const mat = (m: number[][]) => getBinding().tensorFromArray(Float64Array.from(m.flat()), [m.length, m.length], 'float64');

function randomFeatures(n: number, d: number, seed: number): Float32Array {
  const g = normal(rng(seed));
  return Float32Array.from({ length: n * d }, g);
}

test('FID of a set against itself is 0 (full rank and rank-deficient covariances)', async (t) => {
  for (const [n, d] of [
    [400, 16],
    [300, 512], // fewer images than dimensions: singular covariance, tiny negative eigenvalues
  ] as const) {
    const f = randomFeatures(n, d, n + d);
    const fid = await fidFromFeatures(f, f, d);
    t.true(Math.abs(fid) < 1e-6, `n=${n} d=${d}: ${fid}`);
  }
});

test('the low-rank feature route equals the Fréchet distance of the statistics', async (t) => {
  for (const [n1, n2, d] of [
    [50, 40, 64], // fewer images than dimensions: nuclear norm of the cross-Gram
    [90, 70, 8], // more: statistics route
  ] as const) {
    const a = randomFeatures(n1, d, 1);
    const b = Float32Array.from(randomFeatures(n2, d, 2), (v, i) => 1.5 * v + (i % d) * 0.1);
    const viaFeatures = await fidFromFeatures(a, b, d);
    const sa = await fidStatistics(a, d);
    const sb = await fidStatistics(b, d);
    const viaStats = await frechetDistance(sa, sb);
    disposeStatistics(sa);
    disposeStatistics(sb);
    t.true(viaFeatures > 1, `n=${n1},${n2} d=${d}: ${viaFeatures}`);
    t.true(Math.abs(viaFeatures - viaStats) < 1e-9 * viaStats, `${viaFeatures} vs ${viaStats}`);
  }
});

test('FID of two Gaussians with commuting covariances equals the closed form', async (t) => {
  // Σ1 = diag(a), Σ2 = diag(b): FID = |μ1-μ2|² + Σ (√a_i - √b_i)²; a rotation Q Σ Qᵀ changes nothing.
  const d = 6;
  const a = [0.5, 1, 2, 3, 4, 9];
  const b = [1, 1, 0.25, 5, 2, 1];
  const mu1 = [0, 1, 2, -1, 0.5, 3];
  const mu2 = [1, 1, 0, 0, 0.5, -1];
  const c = Math.cos(0.7);
  const s = Math.sin(0.7);
  const q: number[][] = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1 : 0)));
  // Givens rotations in planes (0,1), (2,3), (4,5).
  for (const p of [0, 2, 4]) {
    q[p]![p] = c;
    q[p]![p + 1] = -s;
    q[p + 1]![p] = s;
    q[p + 1]![p + 1] = c;
  }
  const rotate = (diag: number[]) =>
    Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => diag.reduce((acc, v, k) => acc + q[i]![k]! * v * q[j]![k]!, 0)));
  const expected = mu1.reduce((acc, v, i) => acc + (v - mu2[i]!) ** 2, 0) + a.reduce((acc, v, i) => acc + (Math.sqrt(v) - Math.sqrt(b[i]!)) ** 2, 0);
  const fid = await getBinding().frechetDistance(vec(mu1), mat(rotate(a)), vec(mu2), mat(rotate(b)));
  t.true(Math.abs(fid - expected) < 1e-9, `${fid} vs ${expected}`);
});

test('FID of general Gaussians equals pytorch-fid (scipy sqrtm) to 1e-6 relative', async (t) => {
  for (const c of frechetRef.cases) {
    const fid = await getBinding().frechetDistance(vec(c.mu1), mat(c.sigma1), vec(c.mu2), mat(c.sigma2));
    t.true(Math.abs(fid - c.fid) <= 1e-6 * Math.max(1, c.fid), `d=${c.dim}: ${fid} vs ${c.fid}`);
  }
});

test('FID of features drawn from two known Gaussians approaches the closed form', async (t) => {
  const c = frechetRef.cases[0]!; // d = 3
  const d = c.dim;
  const cholesky = (m: number[][]): number[][] => {
    const l = m.map((row) => row.map(() => 0));
    for (let i = 0; i < d; i++)
      for (let j = 0; j <= i; j++) {
        let sum = m[i]![j]!;
        for (let k = 0; k < j; k++) sum -= l[i]![k]! * l[j]![k]!;
        l[i]![j] = i === j ? Math.sqrt(sum) : sum / l[j]![j]!;
      }
    return l;
  };
  const sample = (mu: number[], sigma: number[][], n: number, seed: number): Float64Array => {
    const l = cholesky(sigma);
    const g = normal(rng(seed));
    const out = new Float64Array(n * d);
    const z = new Array<number>(d);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < d; i++) z[i] = g();
      for (let i = 0; i < d; i++) {
        let v = mu[i]!;
        for (let k = 0; k <= i; k++) v += l[i]![k]! * z[k]!;
        out[r * d + i] = v;
      }
    }
    return out;
  };
  const n = 40000;
  const fid = await fidFromFeatures(sample(c.mu1, c.sigma1, n, 1), sample(c.mu2, c.sigma2, n, 2), d);
  // Sampling error of the estimated statistics at n = 40000 is well under 3%.
  t.true(Math.abs(fid - c.fid) < 0.03 * c.fid, `${fid} vs closed form ${c.fid}`);
  // And the statistics themselves are the unbiased estimates (numpy.cov semantics).
  const stats = await fidStatistics(Float64Array.from([1, 2, 3, 4, 5, 9]), 2);
  t.deepEqual([...(getBinding().tensorData(stats.mean) as Float64Array)], [3, 5]);
  t.deepEqual([...(getBinding().tensorData(stats.covariance) as Float64Array)], [4, 7, 7, 13]);
  disposeStatistics(stats);
});

test('frechetDistance rejects bad shapes, dtypes, non-finite values and non-PSD matrices', async (t) => {
  const b = getBinding();
  const i2 = mat([
    [1, 0],
    [0, 1],
  ]);
  await t.throwsAsync(async () => b.frechetDistance(vec([0, 0, 0]), i2, vec([0, 0, 0]), i2), { message: /sigma1 of shape \(3, 3\)/ });
  await t.throwsAsync(async () => b.frechetDistance(vec([0, 0]), i2, vec([0]), i2), { message: /mu2 of shape \(2\)/ });
  const ints = b.tensorFromArray(Int32Array.from([0, 0]), [2], 'int32');
  await t.throwsAsync(async () => b.frechetDistance(ints, i2, vec([0, 0]), i2), { message: /floating-point tensor for mu1/ });
  await t.throwsAsync(async () => b.frechetDistance(vec([0, NaN]), i2, vec([0, 0]), i2), { message: /finite values in mu1/ });
  const neg = mat([
    [1, 0],
    [0, -1],
  ]);
  const e = await t.throwsAsync(async () => b.frechetDistance(vec([0, 0]), neg, vec([0, 0]), i2), { message: /sigma1 to be positive semi-definite/ });
  t.is((e as { code?: string }).code, 'INVALID_ARGUMENT');
  await t.throwsAsync(fidStatistics(new Float32Array(3), 3), { message: /at least 2 images/ });
  const s = await fidStatistics(randomFeatures(10, 2, 5), 2);
  t.true(Math.abs(await frechetDistance(s, s)) < 1e-12);
  disposeStatistics(s);
});

test('the FID Inception export equals pytorch-fid\'s network (random weights) on the same PNGs', async (t) => {
  const ref = JSON.parse(readFileSync(join(EVAL, 'inception-reference.json'), 'utf8')) as { images: string[]; features: number[][] };
  const extractor = await FidFeatureExtractor.load(join(EVAL, 'inception-random.pt'));
  try {
    const images = await Promise.all(ref.images.map((f) => readRgb(join(EVAL, 'fid-images', f))));
    const feats = await extractor.featuresOf(images);
    let maxDiff = 0;
    let meanAbs = 0;
    ref.features.forEach((row, i) =>
      row.forEach((v, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - feats[i * 2048 + j]!));
        meanAbs += Math.abs(v) / (row.length * ref.features.length);
      }),
    );
    t.true(meanAbs > 0.1, `features of O(1) scale (${meanAbs})`);
    t.true(maxDiff < 1e-4, `max |ours - pytorch-fid| = ${maxDiff}`);
    // Folder FID of a set against itself through the whole pipeline.
    const fid = await folderFid(extractor, join(EVAL, 'fid-images'), join(EVAL, 'fid-images'));
    t.true(Math.abs(fid.fid) < 1e-6, `${fid.fid}`);
  } finally {
    extractor.dispose();
  }
});

test('dove fid without --features explains where to get the weights; a wrong file is refused', (t) => {
  const r = dove(['fid', join(EVAL, 'fid-images'), join(EVAL, 'fid-images')], { DOVE_FID_FEATURES: '' });
  t.is(r.status, 2);
  t.regex(r.stderr, /pt_inception-2015-12-05-6726825d\.pth/);
  t.regex(r.stderr, /python -m dove\.inception --weights/);
  const missing = dove(['fid', join(EVAL, 'fid-images'), join(EVAL, 'fid-images'), '--features', join(tempDir('fid'), 'inception.pt')]);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /inception\.pt: FID feature extractor not found/);
  const notFid = dove(['fid', join(EVAL, 'fid-images'), join(EVAL, 'fid-images'), '--features', join(EVAL, '..', 'tiny-dove.pt')]);
  t.is(notFid.status, 1);
  t.regex(notFid.stderr, /not an FID Inception export/);
});

test('dove fid --per-length writes table, CSV and plot (random-weight network)', async (t) => {
  const out = tempDir('fid-cli');
  const r = dove([
    'fid',
    join(EVAL, 'quality', 'real'),
    '--per-length',
    join(EVAL, 'quality', 'recon'),
    '--features',
    join(EVAL, 'inception-random.pt'),
    '--csv',
    join(out, 'fid.csv'),
    '--plot',
    join(out, 'fid.png'),
    '--quiet',
  ]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /tokens\s+images\s+fid/);
  const lines = readFileSync(join(out, 'fid.csv'), 'utf8').trim().split('\n');
  t.is(lines[0], 'tokens,images,fid');
  t.deepEqual(lines.slice(1).map((l) => l.split(',')[0]), ['8', '16', '32', 'auto']);
  // Each row is the FID of that length's folder against the real images brought to the
  // reconstructions' size (64×64) the way the Tokenizer brings them (loadImage, cover).
  const realDir = join(EVAL, 'quality', 'real');
  const realAt64 = join(out, 'real-64');
  mkdirSync(realAt64);
  for (const name of readdirSync(realDir)) {
    const pixels = await loadImage(join(realDir, name), { size: 64 });
    await sharp(pixels, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(join(realAt64, name.replace(/\.\w+$/, '.png')));
  }
  const extractor = await FidFeatureExtractor.load(join(EVAL, 'inception-random.pt'));
  const files = (folder: string): string[] => readdirSync(folder).sort().map((name) => join(folder, name));
  try {
    const real = await extractor.featuresOfFiles(files(realAt64));
    for (const line of lines.slice(1)) {
      const [label, count, fid] = line.split(',');
      const fakes = files(join(EVAL, 'quality', 'recon', label!));
      const direct = await fidFromFeatures(real, await extractor.featuresOfFiles(fakes), extractor.featureDim);
      t.is(Number(count), fakes.length, `${label}: images`);
      t.true(Math.abs(Number(fid) - direct) <= 1e-6 * direct, `${label}: CSV ${fid} vs the FID of the resized real images ${direct}`);
    }
  } finally {
    extractor.dispose();
  }
  t.deepEqual([...readFileSync(join(out, 'fid.png')).subarray(1, 4)], [0x50, 0x4e, 0x47]);
});

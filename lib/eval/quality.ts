// PSNR and SSIM as scikit-image computes them for uint8 RGB (data_range 255): SSIM with Wang et al.'s
// settings (gaussian_weights=True, sigma 1.5, truncate 3.5 -> 11 taps, population covariance,
// K1 0.01, K2 0.03, scipy 'reflect' borders, per-channel mean over the image cropped by the
// filter radius, then the mean over channels). Separable filtering on Float64Arrays: O(HW·11) per map.
import { DoveError } from '../base/errors';
import { integerAtLeast } from '../base/validate';
import { psnr } from '../io/images';
import { lengthDirs, pairByName, readRgb, readRgbAt, type LengthDir, type Pairing } from './folders';

export const SSIM_SIGMA = 1.5;
const TRUNCATE = 3.5;
export const SSIM_RADIUS = Math.trunc(TRUNCATE * SSIM_SIGMA + 0.5); // 5, as scipy.ndimage computes it
export const SSIM_WINDOW = 2 * SSIM_RADIUS + 1; // 11

const KERNEL: Float64Array = (() => {
  const k = new Float64Array(SSIM_WINDOW);
  let sum = 0;
  for (let i = -SSIM_RADIUS; i <= SSIM_RADIUS; i++) {
    const v = Math.exp((-0.5 * i * i) / (SSIM_SIGMA * SSIM_SIGMA));
    k[i + SSIM_RADIUS] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  return k;
})();

/** scipy.ndimage 'reflect' (d c b a | a b c d | d c b a): the edge sample is repeated. */
function reflect(i: number, n: number): number {
  const period = 2 * n;
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - 1 - j;
}

/** Gaussian filter of a H×W plane (rows then columns), into `out`. */
function gaussianFilter(src: Float64Array, w: number, h: number, tmp: Float64Array, out: Float64Array): void {
  const r = SSIM_RADIUS;
  const colIndex = new Int32Array(w + 2 * r);
  for (let x = -r; x < w + r; x++) colIndex[x + r] = reflect(x, w);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = 0; k < SSIM_WINDOW; k++) acc += KERNEL[k]! * src[row + colIndex[x + k]!]!;
      tmp[row + x] = acc;
    }
  }
  const rowIndex = new Int32Array(h + 2 * r);
  for (let y = -r; y < h + r; y++) rowIndex[y + r] = reflect(y, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = 0; k < SSIM_WINDOW; k++) acc += KERNEL[k]! * tmp[rowIndex[y + k]! * w + x]!;
      out[y * w + x] = acc;
    }
  }
}

function checkImages(a: Uint8Array, b: Uint8Array, width: number, height: number, channels: number): void {
  integerAtLeast(width, 'width', 1);
  integerAtLeast(height, 'height', 1);
  const n = width * height * channels;
  if (a.length !== n || b.length !== n) {
    throw new DoveError(`Expected two images of ${n} bytes (${width}x${height}x${channels}) but received ${a.length} and ${b.length}`, 'SHAPE_MISMATCH');
  }
}

// One PSNR for the whole package: lib/io/images.ts (reconstruct-batch uses it too).
export { psnr };

/** Mean SSIM of two interleaved uint8 images (H×W×channels), averaged over channels. */
export function ssim(a: Uint8Array, b: Uint8Array, width: number, height: number, channels = 3): number {
  checkImages(a, b, width, height, channels);
  if (width < SSIM_WINDOW || height < SSIM_WINDOW) {
    throw new DoveError(`SSIM needs images of at least ${SSIM_WINDOW}x${SSIM_WINDOW} pixels (its Gaussian window) but received ${width}x${height}`, 'INVALID_ARGUMENT');
  }
  const C1 = (0.01 * 255) ** 2;
  const C2 = (0.03 * 255) ** 2;
  const n = width * height;
  const [x, y, prod, tmp, ux, uy, uxx, uyy, uxy] = Array.from({ length: 9 }, () => new Float64Array(n));
  let total = 0;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < n; i++) {
      x[i] = a[i * channels + c]!;
      y[i] = b[i * channels + c]!;
    }
    gaussianFilter(x, width, height, tmp, ux);
    gaussianFilter(y, width, height, tmp, uy);
    for (let i = 0; i < n; i++) prod[i] = x[i]! * x[i]!;
    gaussianFilter(prod, width, height, tmp, uxx);
    for (let i = 0; i < n; i++) prod[i] = y[i]! * y[i]!;
    gaussianFilter(prod, width, height, tmp, uyy);
    for (let i = 0; i < n; i++) prod[i] = x[i]! * y[i]!;
    gaussianFilter(prod, width, height, tmp, uxy);
    // Mean of the SSIM map over the region the window fits without borders (skimage's crop).
    let sum = 0;
    const r = SSIM_RADIUS;
    for (let yy = r; yy < height - r; yy++) {
      for (let xx = r; xx < width - r; xx++) {
        const i = yy * width + xx;
        const mx = ux[i]!;
        const my = uy[i]!;
        const vx = uxx[i]! - mx * mx;
        const vy = uyy[i]! - my * my;
        const vxy = uxy[i]! - mx * my;
        sum += ((2 * mx * my + C1) * (2 * vxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
      }
    }
    total += sum / ((width - 2 * r) * (height - 2 * r));
  }
  return total / channels;
}

export interface PairQuality {
  name: string;
  real: string;
  fake: string;
  psnr: number;
  ssim: number;
}

export interface QualitySummary {
  count: number;
  /** Mean over images (PSNR: of finite values; identical pairs are reported in `identical`). */
  psnr: number;
  ssim: number;
  identical: number;
}

export interface FolderQuality {
  images: PairQuality[];
  summary: QualitySummary;
  pairing: Pairing;
}

export function summarize(images: readonly PairQuality[]): QualitySummary {
  const finite = images.filter((q) => Number.isFinite(q.psnr));
  const mean = (xs: number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((s, v) => s + v, 0) / xs.length);
  return {
    count: images.length,
    psnr: finite.length === 0 && images.length > 0 ? Infinity : mean(finite.map((q) => q.psnr)),
    ssim: mean(images.map((q) => q.ssim)),
    identical: images.length - finite.length,
  };
}

/** PSNR and SSIM of every same-named pair; real images are brought to the reconstruction's size first. */
export async function folderQuality(realDir: string, fakeDir: string, onImage?: (q: PairQuality) => void): Promise<FolderQuality> {
  const pairing = await pairByName(realDir, fakeDir);
  const images: PairQuality[] = [];
  for (const pair of pairing.pairs) {
    const fake = await readRgb(pair.fake);
    const real = await readRgbAt(pair.real, fake.width, fake.height);
    const q = { ...pair, psnr: psnr(real.data, fake.data), ssim: ssim(real.data, fake.data, fake.width, fake.height) };
    images.push(q);
    onImage?.(q);
  }
  return { images, summary: summarize(images), pairing };
}

export interface LengthQuality extends LengthDir {
  result: FolderQuality;
}

/** Quality of every ROOT/<len>/ and ROOT/auto/ folder against the same real images. */
export async function perLengthQuality(realDir: string, root: string, onLength?: (q: LengthQuality) => void): Promise<LengthQuality[]> {
  const out: LengthQuality[] = [];
  for (const length of await lengthDirs(root)) {
    const q = { ...length, result: await folderQuality(realDir, length.dir) };
    out.push(q);
    onLength?.(q);
  }
  return out;
}

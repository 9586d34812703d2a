// The reference codec a tokenizer is judged against: a thumbnail storing the same number of floats as
// the tokens. Keep an n×n thumbnail (area average down, n = floor(sqrt(floats / 3))), rebuild S×S with
// bicubic interpolation (Keys, a = -0.5, edges clamped), round to uint8. Same arithmetic as the
// project's shared reference tool (thumbnail-baseline.js), checked against it in test/eval.
import { DoveError } from '../base/errors';
import { psnr } from '../io/images';

/** Side of the thumbnail that stores `floats` numbers of an S×S RGB image. */
export function thumbnailSide(floats: number, size: number): number {
  return Math.max(1, Math.min(size, Math.floor(Math.sqrt(floats / 3))));
}

function areaDown(x: Uint8Array, size: number, n: number): Float64Array {
  const out = new Float64Array(n * n * 3);
  for (let oy = 0; oy < n; oy++) {
    const y0 = (oy * size) / n;
    const y1 = ((oy + 1) * size) / n;
    for (let ox = 0; ox < n; ox++) {
      const x0 = (ox * size) / n;
      const x1 = ((ox + 1) * size) / n;
      const sums = [0, 0, 0];
      let weights = 0;
      for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let xx = Math.floor(x0); xx < Math.ceil(x1); xx++) {
          const w = wy * (Math.min(xx + 1, x1) - Math.max(xx, x0));
          const i = (y * size + xx) * 3;
          for (let c = 0; c < 3; c++) sums[c]! += w * x[i + c]!;
          weights += w;
        }
      }
      const o = (oy * n + ox) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = sums[c]! / weights;
    }
  }
  return out;
}

function cubic(t: number): number {
  const a = -0.5;
  const u = Math.abs(t);
  if (u <= 1) return (a + 2) * u ** 3 - (a + 3) * u ** 2 + 1;
  if (u < 2) return a * u ** 3 - 5 * a * u ** 2 + 8 * a * u - 4 * a;
  return 0;
}

function bicubicUp(t: Float64Array, n: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  const clamp = (v: number): number => Math.min(n - 1, Math.max(0, v));
  for (let oy = 0; oy < size; oy++) {
    const sy = ((oy + 0.5) * n) / size - 0.5;
    const iy = Math.floor(sy);
    for (let ox = 0; ox < size; ox++) {
      const sx = ((ox + 0.5) * n) / size - 0.5;
      const ix = Math.floor(sx);
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let j = -1; j <= 2; j++) {
          for (let i = -1; i <= 2; i++) {
            v += cubic(sy - (iy + j)) * cubic(sx - (ix + i)) * t[(clamp(iy + j) * n + clamp(ix + i)) * 3 + c]!;
          }
        }
        out[(oy * size + ox) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}

/** The thumbnail codec's reconstruction of an S×S RGB uint8 image from `floats` stored numbers. */
export function thumbnailReconstruction(pixels: Uint8Array, size: number, floats: number): Uint8Array {
  if (!Number.isInteger(size) || size < 1 || pixels.length !== size * size * 3) {
    throw new DoveError(`Expected ${size}×${size}×3 RGB bytes for the thumbnail baseline but received ${pixels.length}`, 'INVALID_ARGUMENT');
  }
  if (!Number.isFinite(floats) || floats < 0) {
    throw new DoveError(`Expected a non-negative number of floats for the thumbnail baseline but received ${floats}`, 'INVALID_ARGUMENT');
  }
  const n = thumbnailSide(floats, size);
  return bicubicUp(areaDown(pixels, size, n), n, size);
}

/** PSNR (dB) of the same-floats thumbnail against the image itself. */
export function thumbnailPsnr(pixels: Uint8Array, size: number, floats: number): number {
  return psnr(pixels, thumbnailReconstruction(pixels, size, floats));
}

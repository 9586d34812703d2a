// Shared fixtures for the Trainer tests: the tiny training exports and image folder written by
// python/dove_fixtures/train.py, temp folders, and weight comparison through the raw binding.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DoveModel } from '../../lib/model/model-file';
import { Tensor } from '../../lib/core/tensor';
import { binding as native } from '../../lib/core/native';
import { FIXTURES } from '../support';

export { CLI, ROOT, tempDir } from '../support';
export const TRAIN_FIXTURES = join(FIXTURES, 'train');
export const MINI = join(TRAIN_FIXTURES, 'train-mini.pt');
export const MINI_DET = join(TRAIN_FIXTURES, 'train-mini-det.pt');
export const MINI_QDOVE = join(TRAIN_FIXTURES, 'train-mini-qdove.pt');
export const IMAGES = join(TRAIN_FIXTURES, 'images');
export const ANNOTATIONS = join(TRAIN_FIXTURES, 'annotations.json');

export function fixturesReady(): boolean {
  return existsSync(MINI) && existsSync(IMAGES);
}

/** Largest absolute difference between same-named parameters of two saved modules. */
export async function maxWeightDifference(a: string, b: string): Promise<{ max: number; count: number }> {
  const bind = native();
  const [ma, mb] = await Promise.all([bind.loadModule(a, 'cpu', []), bind.loadModule(b, 'cpu', [])]);
  try {
    const pa = ma.namedParameters();
    const pb = mb.namedParameters();
    let max = 0;
    let count = 0;
    for (const [name, ta] of Object.entries(pa)) {
      const tb = pb[name];
      if (tb === undefined) throw new Error(`parameter ${name} missing in ${b}`);
      const da = native().tensorData(ta) as Float32Array;
      const db = native().tensorData(tb) as Float32Array;
      for (let i = 0; i < da.length; i++) max = Math.max(max, Math.abs(da[i]! - db[i]!));
      count += 1;
    }
    return { max, count };
  } finally {
    ma.dispose();
    mb.dispose();
  }
}

/** Mean squared error (pixels in [0,1]) of full-length reconstructions of the given images. */
export async function reconstructionMse(model: string, pixels: Uint8Array, count: number, size: number, maxTokens: number): Promise<number> {
  const m = await DoveModel.load(model, { optimize: false });
  try {
    if (m.imageSize !== size) throw new Error(`${model} reads ${m.imageSize}px images, not ${size}px`);
    const { frames } = await m.reconstructAtLengths(pixels, count, [maxTokens], { threshold: 0.5 });
    let sum = 0;
    frames[0]!.forEach((rec, i) => {
      for (let j = 0; j < rec.length; j++) sum += ((rec[j]! - pixels[i * rec.length + j]!) / 255) ** 2;
    });
    return sum / (count * size * size * 3);
  } finally {
    m.dispose();
  }
}

/** EOS-chosen length of each image (auto mode over maxTokens slots, threshold 0.5). */
export async function autoLengths(model: string, pixels: Uint8Array, count: number, size: number, maxTokens: number): Promise<number[]> {
  const m = await DoveModel.load(model, { optimize: false });
  const images = Tensor.fromArray(pixels, [count, size, size, 3], 'uint8');
  try {
    const enc = await m.encodePixels(images, 'auto', maxTokens, 0.5);
    const lengths = Array.from(enc.lengths.data() as BigInt64Array, Number);
    Tensor.disposeAll([enc.tokens, enc.lengths, enc.eosProbabilities]);
    return lengths;
  } finally {
    images.dispose();
    m.dispose();
  }
}

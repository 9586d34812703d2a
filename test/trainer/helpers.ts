// Shared fixtures for the Trainer tests: the tiny training exports and image folder written by
// python/dove_fixtures/train.py, temp folders, and weight comparison through the raw binding.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { native } from '../../lib/trainer/native';

export const ROOT = resolve(__dirname, '..', '..', '..');
export const TRAIN_FIXTURES = join(ROOT, 'test', 'fixtures', 'generated', 'train');
export const MINI = join(TRAIN_FIXTURES, 'train-mini.pt');
export const MINI_DET = join(TRAIN_FIXTURES, 'train-mini-det.pt');
export const MINI_QDOVE = join(TRAIN_FIXTURES, 'train-mini-qdove.pt');
export const IMAGES = join(TRAIN_FIXTURES, 'images');
export const ANNOTATIONS = join(TRAIN_FIXTURES, 'annotations.json');
export const CLI = join(ROOT, 'dist', 'lib', 'cli', 'main.js');

export function fixturesReady(): boolean {
  return existsSync(MINI) && existsSync(IMAGES);
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `dove-train-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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
  const bind = native();
  const m = await bind.loadModule(model, 'cpu', []);
  try {
    const images = bind.tensorFromArray(pixels, [count, size, size, 3], 'uint8');
    const enc = (await m.run('encode_pixels', [images, 'fixed', maxTokens, 0.5, null, null])) as unknown[];
    const out = await m.run('decode_pixels', [enc[0] as never, enc[2] as never]);
    if (!bind.isTensor(out)) throw new Error('decode_pixels returned no tensor');
    const rec = bind.tensorData(out) as Uint8Array;
    let sum = 0;
    for (let i = 0; i < rec.length; i++) sum += ((rec[i]! - pixels[i]!) / 255) ** 2;
    return sum / rec.length;
  } finally {
    m.dispose();
  }
}

/** Mean EOS-chosen length per image group. */
export async function autoLengths(model: string, pixels: Uint8Array, count: number, size: number, maxTokens: number): Promise<number[]> {
  const bind = native();
  const m = await bind.loadModule(model, 'cpu', []);
  try {
    const images = bind.tensorFromArray(pixels, [count, size, size, 3], 'uint8');
    const enc = await m.run('encode_pixels', [images, 'auto', maxTokens, 0.5, null, null]);
    const lengths = Array.isArray(enc) ? enc[2] : undefined;
    if (!bind.isTensor(lengths)) throw new Error('encode_pixels returned no lengths tensor');
    return Array.from(bind.tensorData(lengths) as BigInt64Array, Number);
  } finally {
    m.dispose();
  }
}

// Paths and small helpers shared by the native core tests.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Repository root (tests run from dist/test/native). */
export const ROOT = resolve(__dirname, '..', '..', '..');
/** Written by python/dove/fixtures_core.py during scripts/setup. */
export const CORE = join(ROOT, 'test', 'fixtures', 'generated', 'core');
export const CORE_MODEL = join(CORE, 'core.pt');

export interface ParityMeta {
  torch: string;
  seed7Rand4: number[];
  inputShape: number[];
  forwardShape: number[];
  hiddenShape: number[];
  projectShape: number[];
  projectArgs: { scale: number; bias: number };
  slowDim: number;
  inFeatures: number;
  extraFiles: Record<string, string>;
}

export function parityMeta(): ParityMeta {
  return JSON.parse(readFileSync(join(CORE, 'parity.json'), 'utf8')) as ParityMeta;
}

/** Little-endian float32 file written by numpy. */
export function readF32(name: string): Float32Array {
  const bytes = readFileSync(join(CORE, name));
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/**
 * How much slower child processes are here: scripts/asan preloads AddressSanitizer, and each
 * process then also scans its memory for leaks when it exits (seconds with libtorch loaded).
 */
export const SLOWDOWN = /libasan/.test(process.env.LD_PRELOAD ?? '') ? 10 : 1;

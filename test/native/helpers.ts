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

/**
 * Repeats `attempt(iters)` (one call of the fixture's `slow` method, measured) with more iterations
 * until a call really lasted `targetMs`, and returns that call's measurements. The count grows from
 * the wall time just measured, so a machine that got faster (load gone) or slower (load arrived)
 * between calls only costs another attempt; load never makes a call shorter, so this ends.
 */
export async function slowCallLasting<T extends { wallMs: number }>(
  targetMs: number,
  attempt: (iters: number) => Promise<T>,
  firstIters = 50,
): Promise<T & { iters: number }> {
  let iters = firstIters;
  const tried: string[] = [];
  for (let round = 0; round < 20; round++) {
    const measured = await attempt(iters);
    if (measured.wallMs >= targetMs) return { ...measured, iters };
    tried.push(`${iters} iterations: ${measured.wallMs.toFixed(0)} ms`);
    const factor = Math.min(20, Math.max(1.5, (1.5 * targetMs) / Math.max(measured.wallMs, 1)));
    iters = Math.ceil(iters * factor);
  }
  throw new Error(`slow() never lasted ${targetMs} ms: ${tried.join(', ')}`);
}

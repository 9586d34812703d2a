// Locations shared by the evaluation tests: the seeded fixtures that scripts/setup generates
// (python/dove_fixtures/eval.py) and the compiled CLI.
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

import { CLI, FIXTURES, tempDir as supportTempDir } from '../support';

export { CLI, ROOT } from '../support';
export const EVAL = join(FIXTURES, 'eval');

/** A fresh temp folder's path (the eval tests leave theirs to the system's temp cleanup). */
export function tempDir(prefix: string): string {
  return supportTempDir(`eval-${prefix}`).dir;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `dove <args>` in a child process (the real CLI, as a user runs it). The timeout only guards
 * against a hang: on the shared 2-core machine under load, `dove fid --per-length` (29 s of CPU)
 * took 3 min 40 s of wall time.
 */
export function dove(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Deterministic uniform [0,1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller). */
export function normal(next: () => number): () => number {
  return () => {
    const u = Math.max(next(), 1e-300);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
}

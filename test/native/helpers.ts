// Paths and small helpers shared by the native core tests.
import { spawnSync, type SpawnSyncOptionsWithStringEncoding } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { FIXTURES, ROOT } from '../support';

export { ROOT };
/** Written by python/dove_fixtures/core.py during scripts/setup. */
export const CORE = join(FIXTURES, 'core');
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

/** Written by python/dove_fixtures/hostile.py: model files an attacker could hand a user. */
export const HOSTILE = join(ROOT, 'test', 'fixtures', 'generated', 'hostile');

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What the child passed to report() last, parsed. */
  result: unknown;
  ms: number;
}

/**
 * Runs `body` in a fresh node process, so that a crash shows as a signal instead of taking the test
 * runner down. In `body`: `lib` is the package (dist/lib), `binding()` the raw addon, and
 * `report(value)` hands a JSON value back. DOVE_TEST_LIB_DIR points it at another build's dist/lib
 * (e.g. /work/main/dist/lib, to see a test fail there).
 */
export function runChild(
  body: string,
  options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; nodeArgs?: string[]; shellPrefix?: string } = {},
): ChildResult {
  const libDir = process.env.DOVE_TEST_LIB_DIR ?? join(ROOT, 'dist', 'lib');
  const script = `
const LIB_DIR = ${JSON.stringify(libDir)};
const lib = require(${JSON.stringify(join(libDir, 'index.js'))});
const binding = () => require(${JSON.stringify(join(libDir, 'core', 'native.js'))}).binding();
const report = (value) => process.stdout.write('RESULT ' + JSON.stringify(value) + '\\n');
const codeOf = (fn) => { try { fn(); return 'no error'; } catch (e) { return e instanceof lib.DoveError ? e.code : 'plain ' + (e && e.name); } };
const codeOfAsync = async (promise) => { try { await promise; return 'no error'; } catch (e) { return e instanceof lib.DoveError ? e.code : 'plain ' + (e && e.name); } };
(async () => {
${body}
})().catch((e) => { process.stderr.write('UNCAUGHT ' + (e && e.stack || e) + '\\n'); process.exit(70); });
`;
  const started = Date.now();
  const args = [...(options.nodeArgs ?? []), '-e', script];
  const child = options.shellPrefix === undefined
    ? spawnSync(process.execPath, args, childOptions(options))
    : spawnSync('bash', ['-c', `${options.shellPrefix} exec "$0" "$@"`, process.execPath, ...args], childOptions(options));
  const stdout = child.stdout ?? '';
  const line = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).pop();
  return {
    status: child.status,
    signal: child.signal,
    stdout,
    stderr: child.stderr ?? '',
    result: line === undefined ? undefined : JSON.parse(line.slice('RESULT '.length)),
    ms: Date.now() - started,
  };
}

function childOptions(options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): SpawnSyncOptionsWithStringEncoding {
  return {
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: (options.timeoutMs ?? 120_000) * SLOWDOWN,
    killSignal: 'SIGKILL',
    env: { ...process.env, ...options.env },
    maxBuffer: 64 * 1024 * 1024,
  };
}

/** "exit 0" / "signal SIGSEGV" / "timed out" plus the end of stderr, for assertion messages. */
export function describeExit(r: ChildResult): string {
  const how = r.signal !== null ? `signal ${r.signal}` : `exit ${String(r.status)}`;
  return `${how} after ${r.ms} ms; stderr: ${r.stderr.slice(-1500)}`;
}

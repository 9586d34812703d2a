// Runs one benchmark section in its own process (so no runtime shares a heap, an allocator or a
// thread pool with another) and reads back the JSON it writes.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from './paths';

export interface ChildResult<T> {
  ok: boolean;
  value: T | null;
  error: string | null;
  seconds: number;
}

/**
 * Thread settings every child gets, so BLAS/OpenMP pools match across runtimes. 'default' (the
 * default here) leaves OMP_WAIT_POLICY unset, as a user's process has it: libgomp's workers spin a
 * bounded while between parallel regions, as ORT's intra-op threads do (bench/README.md, "Threads").
 * PASSIVE makes them sleep at once (every region then pays a wake-up per worker: libtorch's tiny
 * batch-1 encode took 11 ms instead of 6, ORT's 6 either way); ACTIVE spins without end, which on a
 * shared machine made one runtime lose 100x (a tiny encode took 2-7 s instead of 16 ms).
 */
export function threadEnv(threads: number, ompWait: 'passive' | 'active' | 'default'): NodeJS.ProcessEnv {
  const n = String(threads);
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n };
  if (ompWait === 'default') delete env.OMP_WAIT_POLICY;
  else env.OMP_WAIT_POLICY = ompWait.toUpperCase();
  return env;
}

/**
 * Starts `command args... --plan <file> --out <file>` and returns the parsed output file. stdout and
 * stderr pass through with a prefix so a long run shows progress. A child that runs past timeoutMs
 * is killed (SIGKILL to its process group is not used: we only end the process we started).
 */
export function runSection<T>(
  name: string,
  command: string,
  args: string[],
  plan: unknown,
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string },
): Promise<ChildResult<T>> {
  const dir = join(tmpDir(), 'sections');
  mkdirSync(dir, { recursive: true });
  const planFile = join(dir, `${name}.plan.json`);
  const outFile = join(dir, `${name}.out.json`);
  writeFileSync(planFile, JSON.stringify(plan, null, 2));
  if (existsSync(outFile)) rmSync(outFile);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, [...args, '--plan', planFile, '--out', outFile], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const prefix = (chunk: Buffer): string =>
      chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => `  [${name}] ${l}\n`)
        .join('');
    child.stdout.on('data', (c: Buffer) => process.stderr.write(prefix(c)));
    let tail = '';
    child.stderr.on('data', (c: Buffer) => {
      process.stderr.write(prefix(c));
      tail = (tail + c.toString('utf8')).slice(-2000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (Date.now() - started) / 1000;
      let value: T | null = null;
      if (existsSync(outFile)) {
        try {
          value = JSON.parse(readFileSync(outFile, 'utf8')) as T;
        } catch (e) {
          resolve({ ok: false, value: null, error: `unreadable output ${outFile}: ${String(e)}`, seconds });
          return;
        }
      }
      if (code === 0 && value !== null) {
        resolve({ ok: true, value, error: null, seconds });
        return;
      }
      const why = timedOut
        ? `timed out after ${Math.round(options.timeoutMs / 1000)} s`
        : `exited with ${code ?? signal}${tail ? `: ${errorLine(tail)}` : ''}`;
      resolve({ ok: false, value, error: why, seconds });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, value: null, error: `could not start ${command}: ${e.message}`, seconds: 0 });
    });
  });
}

/** The most telling line of a child's stderr: the last one naming an error, else the last line. */
function errorLine(tail: string): string {
  const lines = tail.trim().split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  return [...lines].reverse().find((l) => /error/i.test(l) && !/^at /.test(l)) ?? lines[lines.length - 1] ?? '';
}

/** Reads --plan / --out from a section child's argv. */
export function sectionArgs(argv: string[]): { plan: string; out: string } {
  const get = (flag: string): string => {
    const i = argv.indexOf(flag);
    if (i < 0 || i + 1 >= argv.length) throw new Error(`Expected ${flag} <file> on the command line`);
    return argv[i + 1];
  };
  return { plan: get('--plan'), out: get('--out') };
}

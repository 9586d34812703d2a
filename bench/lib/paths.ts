// Where the benchmark finds the repository, its python, the native addon and its scratch space.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Walks up from this compiled file (dist/bench/lib) to the folder holding dove-encoder's package.json. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dove-encoder') {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`dove-encoder's package.json not found above ${__dirname}`);
    dir = parent;
  }
}

/** Scratch space (git-ignored): exported models, plans, per-section JSON. */
export function tmpDir(): string {
  return join(repoRoot(), 'bench', 'results', 'tmp');
}

export function resultsDir(): string {
  return process.env.DOVE_BENCH_RESULTS ?? join(repoRoot(), 'bench', 'results');
}

let cachedPython: string | undefined;
/** The torch virtualenv's python (scripts/lib.sh decides where it lives); DOVE_PYTHON overrides. */
export function pythonPath(): string {
  if (process.env.DOVE_PYTHON) return process.env.DOVE_PYTHON;
  if (cachedPython === undefined) {
    const root = repoRoot();
    cachedPython = execFileSync('bash', ['-c', `source "${join(root, 'scripts', 'lib.sh')}" && dove_py`], {
      encoding: 'utf8',
    }).trim();
  }
  return cachedPython;
}

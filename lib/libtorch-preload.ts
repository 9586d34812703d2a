// Finding libtorch for an addon whose RUNPATH does not lead to one (a prebuilt binary from the npm
// package, built on another machine). The dynamic linker reads LD_LIBRARY_PATH only at process
// start, so instead the libtorch libraries are loaded here by absolute path, RTLD_GLOBAL, before the
// addon: when the addon is then opened, its DT_NEEDED entries (libc10.so, libtorch_cpu.so, ...) match
// the already-loaded sonames and the RUNPATH is never consulted.
//
// Where libtorch is looked for, in order: LIBTORCH (an unpacked libtorch, or a torch wheel's
// site-packages/torch), then the virtualenvs scripts/setup caches under ~/.cache/dove-encoder
// (or DOVE_CACHE). process.dlopen is Node's only dlopen; on a library that is not an addon it throws
// "did not self-register" and closes the handle, so RTLD_NODELETE keeps the library loaded anyway.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The libtorch the prebuilt addons are linked against (scripts/lib.sh DOVE_TORCH_VERSION). */
export const LIBTORCH_VERSION = '2.11.0';

// glibc's RTLD_NODELETE; node's os.constants.dlopen does not list it.
const RTLD_NODELETE = 0x1000;
// Load order: each library's own dependencies first (libtorch.so needs libtorch_cpu, which needs libc10).
const LIBS = ['libc10.so', 'libtorch_cpu.so', 'libc10_cuda.so', 'libtorch_cuda.so', 'libtorch.so'];

export interface LibtorchCandidate {
  dir: string;
  from: string;
  version: string | null;
}

/** The version a libtorch directory declares (wheel: ../version.py; unpacked zip: ../build-version). */
export function libtorchVersion(libDir: string): string | null {
  const wheel = join(libDir, '..', 'version.py');
  if (existsSync(wheel)) {
    const m = /__version__\s*=\s*['"]([^'"+]+)/.exec(readFileSync(wheel, 'utf8'));
    if (m !== null) return m[1]!;
  }
  const zip = join(libDir, '..', 'build-version');
  if (existsSync(zip)) return readFileSync(zip, 'utf8').trim().split('+')[0]!;
  return null;
}

function libDirOf(root: string): string | null {
  for (const dir of [join(root, 'lib'), root, join(root, 'torch', 'lib')]) {
    if (existsSync(join(dir, 'libc10.so')) && existsSync(join(dir, 'libtorch_cpu.so'))) return dir;
  }
  return null;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Every libtorch directory LIBTORCH and the setup's cache offer, in the order they are tried. */
export function libtorchCandidates(env: NodeJS.ProcessEnv = process.env): LibtorchCandidate[] {
  const out: LibtorchCandidate[] = [];
  if (env.LIBTORCH) {
    const dir = libDirOf(env.LIBTORCH);
    if (dir !== null) out.push({ dir, from: `LIBTORCH=${env.LIBTORCH}`, version: libtorchVersion(dir) });
  }
  const cache = env.DOVE_CACHE ?? join(homedir(), '.cache', 'dove-encoder');
  for (const venv of list(cache).filter((n) => n.startsWith(`torch-${LIBTORCH_VERSION}-py`)).reverse()) {
    for (const py of list(join(cache, venv, 'lib')).filter((n) => n.startsWith('python'))) {
      const dir = join(cache, venv, 'lib', py, 'site-packages', 'torch', 'lib');
      if (libDirOf(dir) !== null) out.push({ dir, from: `the setup's cache (${join(cache, venv)})`, version: libtorchVersion(dir) });
    }
  }
  return out;
}

export interface PreloadResult {
  loaded: LibtorchCandidate | null;
  /** One line per candidate that was skipped or failed, for the error message. */
  tried: string[];
}

/**
 * Loads the first usable libtorch (right version, every library the addon needs opens) with
 * RTLD_GLOBAL so a prebuilt addon can bind to it. `needed` are the addon's DT_NEEDED libtorch
 * libraries when known (e.g. a CUDA build needs libtorch_cuda.so too).
 */
export function preloadLibtorch(needed: readonly string[] = ['libc10.so', 'libtorch_cpu.so', 'libtorch.so'], env: NodeJS.ProcessEnv = process.env): PreloadResult {
  const tried: string[] = [];
  if (process.platform !== 'linux') return { loaded: null, tried: [`preloading libtorch is only done on Linux (this is ${process.platform})`] };
  const flags = constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE;
  for (const c of libtorchCandidates(env)) {
    if (c.version !== null && c.version !== LIBTORCH_VERSION) {
      tried.push(`${c.dir} (from ${c.from}): libtorch ${c.version}, the addon needs ${LIBTORCH_VERSION}`);
      continue;
    }
    const missing = needed.filter((l) => !existsSync(join(c.dir, l)));
    if (missing.length > 0) {
      tried.push(`${c.dir} (from ${c.from}): lacks ${missing.join(', ')}`);
      continue;
    }
    let failed: string | null = null;
    for (const lib of LIBS.filter((l) => existsSync(join(c.dir, l)))) {
      try {
        process.dlopen({ exports: {} } as NodeJS.Module, join(c.dir, lib), flags);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Expected: the library opened (and stays, RTLD_NODELETE) but is not a Node addon.
        if (!/did not self-register/.test(message)) {
          failed = `${lib}: ${message.split('\n')[0]}`;
          break;
        }
      }
    }
    if (failed === null) return { loaded: c, tried };
    tried.push(`${c.dir} (from ${c.from}): ${failed}`);
  }
  if (tried.length === 0) tried.push('no LIBTORCH set and no torch virtualenv in the setup cache');
  return { loaded: null, tried };
}

/** The libtorch libraries an ELF addon lists as DT_NEEDED (read from its dynamic string table). */
export function neededLibtorch(addonPath: string): string[] {
  try {
    const bytes = readFileSync(addonPath);
    return LIBS.filter((l) => bytes.includes(Buffer.from(`${l}\0`)));
  } catch {
    return [];
  }
}

const MISSING_LIBTORCH = /lib(torch|c10)[^:\s]*\.so[^:]*: cannot open shared object file/;

/**
 * After the addon failed to load: when the cause is a libtorch library the dynamic linker could not
 * find, preload libtorch (preloadLibtorch) and load the addon again. `loaded` is the addon when
 * that worked; otherwise `note` lists what was tried, for the one error message the loader throws.
 */
export function retryWithLibtorch(root: string, error: unknown, load: () => unknown): { loaded?: unknown; note: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (!MISSING_LIBTORCH.test(message)) return { note: '' };
  let addon: string | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = (require('node-gyp-build') as { path(dir: string): string }).path(root);
  } catch {
    addon = undefined;
  }
  const result = preloadLibtorch(addon !== undefined ? neededLibtorch(addon) : undefined);
  if (result.loaded !== null) {
    try {
      return { loaded: load(), note: '' };
    } catch (again) {
      result.tried.push(`${result.loaded.dir}: loaded, but the addon still failed: ${again instanceof Error ? again.message.split('\n')[0] : String(again)}`);
    }
  }
  return { note: ['', '  libtorch was also looked for in:', ...result.tried.map((t) => `    ${t}`), `  fix without a build: LIBTORCH=/path/to/libtorch-${LIBTORCH_VERSION} (an unpacked libtorch, or a torch==${LIBTORCH_VERSION} wheel's site-packages/torch)`].join('\n') };
}

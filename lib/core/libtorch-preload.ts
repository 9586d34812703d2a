// Where libtorch comes from, and loading it before the addon. The addon links libc10.so and
// libtorch_cpu.so by name. A local build (build/Release/dove.node) finds them through its RUNPATH;
// a prebuilt addon (prebuilds/, no RUNPATH) cannot, so its libtorch is loaded here by absolute path,
// RTLD_GLOBAL, before the addon: the addon's DT_NEEDED entries then match the already-loaded
// libraries. The dynamic linker reads LD_LIBRARY_PATH only at process start, hence this.
//
// Where libtorch is looked for, in order:
//   1. the platform package @dove-encoder/libtorch-<platform>-<arch> (an optional dependency of the
//      npm package, found with require.resolve from the package root);
//   2. LIBTORCH (an unpacked libtorch, or a torch wheel's site-packages/torch);
//   3. the virtualenvs scripts/setup caches under ~/.cache/dove-encoder (or DOVE_CACHE).
//
// libtorch_cpu.so from the PyPI wheel also names the CUDA runtime (libcudart.so.13, libcupti.so.13)
// although only its GPU profiler calls it. Before libtorch_cpu.so, the CUDA stand-ins (native/stubs;
// a cuda-stubs/ folder beside a built addon and in the platform package's lib/) are loaded under
// those names, so a CPU process maps no CUDA library; lib/core/cuda-libtorch.ts loads the real ones when
// a CUDA device is asked for.
//
// process.dlopen is Node's only dlopen; on a library that is not an addon it throws "did not
// self-register" and closes the handle, so RTLD_NODELETE keeps the library loaded anyway.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { constants, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { valueOr } from '../base/errors';
import { readElfDynamic } from './elf';

/** The libtorch the prebuilt addons are linked against (scripts/lib.sh DOVE_TORCH_VERSION). */
export const LIBTORCH_VERSION = '2.11.0';

/** The npm package holding libtorch's CPU libraries for this platform (npm/libtorch-linux-x64/). */
export const LIBTORCH_PACKAGE = `@dove-encoder/libtorch-${process.platform}-${process.arch}`;

/** The folder (beside a built addon, inside the platform package's lib/) holding the CUDA stand-ins. */
export const STAND_IN_FOLDER = 'cuda-stubs';

// glibc's RTLD_NODELETE; node's os.constants.dlopen does not list it.
const RTLD_NODELETE = 0x1000;
const GLOBAL_FLAGS = constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE;

/** What a libtorch directory says about its build (null where it does not say). */
export interface LibtorchBuild {
  version: string | null;
  /** The PyTorch commit it was built from. */
  git: string | null;
  /** The CUDA version it was built for ('13.0'), null for a CPU-only build or when unknown. */
  cuda: string | null;
}

export interface LibtorchCandidate {
  dir: string;
  from: string;
  build: LibtorchBuild;
}

function readText(path: string): string | null {
  return valueOr(() => readFileSync(path, 'utf8'), null);
}

/**
 * The build a libtorch lib/ directory belongs to: the platform package's versions.json, a wheel's
 * ../version.py, or an unpacked libtorch zip's ../build-version and ../build-hash.
 */
export function libtorchBuild(libDir: string): LibtorchBuild {
  const manifest = readText(join(libDir, '..', 'versions.json'));
  if (manifest !== null) {
    const m = valueOr(() => JSON.parse(manifest) as { libtorch?: unknown; git?: unknown; cuda?: unknown }, null);
    const text = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
    return { version: text(m?.libtorch), git: text(m?.git), cuda: text(m?.cuda) };
  }
  const wheel = readText(join(libDir, '..', 'version.py'));
  if (wheel !== null) {
    const field = (name: string): string | null => new RegExp(`^${name}[^=\\n]*=\\s*['"]([^'"]+)['"]`, 'm').exec(wheel)?.[1] ?? null;
    return { version: field('__version__')?.split('+')[0] ?? null, git: field('git_version'), cuda: field('cuda') };
  }
  const zip = readText(join(libDir, '..', 'build-version'));
  if (zip !== null) {
    const [version, local] = zip.trim().split('+');
    const cu = /^cu(\d+)(\d)$/.exec(local ?? '');
    return { version: version ?? null, git: readText(join(libDir, '..', 'build-hash'))?.trim() || null, cuda: cu === null ? null : `${cu[1]}.${cu[2]}` };
  }
  return { version: null, git: null, cuda: null };
}

function libDirOf(root: string): string | null {
  for (const dir of [join(root, 'lib'), root, join(root, 'torch', 'lib')]) {
    if (existsSync(join(dir, 'libc10.so')) && existsSync(join(dir, 'libtorch_cpu.so'))) return dir;
  }
  return null;
}

function list(dir: string): string[] {
  return valueOr(() => readdirSync(dir).sort(), []);
}

/** The platform package's lib/ folder as seen from the dove-encoder package at `root`, or null. */
export function platformPackageDir(root: string): { dir: string; version: string } | null {
  const manifest = valueOr(() => require.resolve(`${LIBTORCH_PACKAGE}/package.json`, { paths: [root] }), null);
  if (manifest === null) return null;
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version ?? '?';
  return { dir: join(dirname(manifest), 'lib'), version };
}

/** Every libtorch directory the platform package, LIBTORCH and the setup's cache offer, in the order they are tried. */
export function libtorchCandidates(root: string, env: NodeJS.ProcessEnv = process.env): LibtorchCandidate[] {
  const out: LibtorchCandidate[] = [];
  const pkg = platformPackageDir(root);
  if (pkg !== null) out.push({ dir: pkg.dir, from: `the platform package ${LIBTORCH_PACKAGE}@${pkg.version}`, build: libtorchBuild(pkg.dir) });
  if (env.LIBTORCH) {
    const dir = libDirOf(env.LIBTORCH);
    if (dir !== null) out.push({ dir, from: `LIBTORCH=${env.LIBTORCH}`, build: libtorchBuild(dir) });
  }
  const cache = env.DOVE_CACHE ?? join(homedir(), '.cache', 'dove-encoder');
  for (const venv of list(cache).filter((n) => n.startsWith(`torch-${LIBTORCH_VERSION}-py`)).reverse()) {
    for (const py of list(join(cache, venv, 'lib')).filter((n) => n.startsWith('python'))) {
      const dir = join(cache, venv, 'lib', py, 'site-packages', 'torch', 'lib');
      if (libDirOf(dir) !== null) out.push({ dir, from: `the setup's cache (${join(cache, venv)})`, build: libtorchBuild(dir) });
    }
  }
  return out;
}

/** Loads a shared library RTLD_GLOBAL and keeps it loaded; returns why it failed, or null. */
export function loadGlobal(path: string): string | null {
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, path, GLOBAL_FLAGS);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // Expected: the library opened (and stays, RTLD_NODELETE) but is not a Node addon.
    if (!/did not self-register/.test(message)) return message.split('\n')[0]!;
  }
  return null;
}

/** The CUDA stand-ins libtorch_cpu.so in `libDir` names, as absolute paths found in `standInDirs` (cuda-stubs folders). */
export function standInsFor(libDir: string, standInDirs: readonly string[]): string[] {
  return valueOr(() => readElfDynamic(join(libDir, 'libtorch_cpu.so')).needed, [])
    .map((name) => standInDirs.map((dir) => join(dir, name)).find((path) => existsSync(path)))
    .filter((path): path is string => path !== undefined);
}

/** Loads the CUDA stand-ins, then libc10.so and libtorch_cpu.so from `dir`. Returns why it failed, or null. */
export function preloadLibtorch(dir: string, standIns: readonly string[]): string | null {
  if (process.platform !== 'linux') return `preloading libtorch is only done on Linux (this is ${process.platform})`;
  for (const lib of [...standIns, join(dir, 'libc10.so'), join(dir, 'libtorch_cpu.so')]) {
    const failed = loadGlobal(lib);
    if (failed !== null) return failed;
  }
  return null;
}

export interface LibtorchChoice {
  chosen: LibtorchCandidate | null;
  standIns: string[];
  /** One line per candidate that was skipped or failed, for the error message. */
  tried: string[];
}

/** Loads the first usable libtorch among `candidates` (right version, its libraries open). */
export function loadFirstLibtorch(candidates: readonly LibtorchCandidate[], standInDirs: readonly string[]): LibtorchChoice {
  const tried: string[] = [];
  for (const c of candidates) {
    if (c.build.version !== null && c.build.version !== LIBTORCH_VERSION) {
      tried.push(`${c.dir} (from ${c.from}): libtorch ${c.build.version}, the addon needs ${LIBTORCH_VERSION}`);
      continue;
    }
    const standIns = standInsFor(c.dir, [join(c.dir, STAND_IN_FOLDER), ...standInDirs]);
    const failed = preloadLibtorch(c.dir, standIns);
    if (failed === null) return { chosen: c, standIns, tried };
    tried.push(`${c.dir} (from ${c.from}): ${failed}`);
  }
  if (candidates.length === 0) tried.push(`no ${LIBTORCH_PACKAGE} package, no LIBTORCH set and no torch virtualenv in the setup cache`);
  return { chosen: null, standIns: [], tried };
}

/** The directory in an addon's RUNPATH that holds libtorch_cpu.so, or null (a prebuilt addon has none). */
export function runpathLibtorch(addonPath: string): string | null {
  return valueOr(() => readElfDynamic(addonPath).searchPath.find((d) => existsSync(join(d, 'libtorch_cpu.so'))) ?? null, null);
}

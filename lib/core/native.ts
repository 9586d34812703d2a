// The one loader of the native addon. node-gyp-build picks build/Release (a local build) or a
// matching prebuilds/<platform>-<arch>/ addon. A local build finds libtorch through its RUNPATH; a
// prebuilt addon gets its libtorch loaded first (lib/core/libtorch-preload.ts: the platform package,
// LIBTORCH, the setup's cache). When loading fails, the error says what was looked for, what was
// found and the command that fixes it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { markAsUntransferable } from 'node:worker_threads';
import type { NativeBinding } from '../../binding';
import { readElfDynamic } from './elf';
import { DoveError, valueOr } from '../base/errors';
import {
  LIBTORCH_PACKAGE,
  LIBTORCH_VERSION,
  STAND_IN_FOLDER,
  libtorchBuild,
  libtorchCandidates,
  loadFirstLibtorch,
  loadGlobal,
  runpathLibtorch,
  standInsFor,
  type LibtorchCandidate,
} from './libtorch-preload';

// node-gyp-build ships no type declarations; its contract is (dir) => the addon's exports, and
// .path(dir) => the file it would load.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };

/** How the addon was loaded: which file, which libtorch (and where it came from), which CUDA stand-ins. */
export interface AddonLoad {
  addon: string;
  /** True for an addon without a RUNPATH to its libtorch (the prebuilt one in the npm package). */
  prebuilt: boolean;
  libtorch: LibtorchCandidate;
  /** The CUDA stand-ins loaded in place of libtorch_cpu.so's CUDA runtime libraries. */
  standIns: string[];
}

let loadRecord: AddonLoad | undefined;
let cached: NativeBinding | undefined;

/** A JSON file's value, or undefined when it is missing or not JSON. */
function readJson(file: string): unknown {
  return valueOr(() => JSON.parse(readFileSync(file, 'utf8')) as unknown, undefined);
}

/** The package root (the folder holding package.json), from lib/core/ or dist/lib/core/. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if ((readJson(join(dir, 'package.json')) as { name?: unknown } | undefined)?.name === 'dove-encoder') return dir;
    const parent = dirname(dir);
    if (parent === dir) return join(__dirname, '..', '..', '..');
    dir = parent;
  }
}

/** What scripts/build-native recorded about the build (libtorch it linked). */
export interface BuildRecord {
  libtorchDir: string;
  torchVersion: string;
  addonVersion: string;
}

export function buildRecord(root = packageRoot()): BuildRecord | null {
  return (readJson(join(root, 'build', 'Release', 'dove-build.json')) as BuildRecord | undefined) ?? null;
}

function listNodeFiles(dir: string): string[] {
  return valueOr(() => readdirSync(dir).filter((f) => f.endsWith('.node')), []);
}

function packageVersion(root: string): string {
  return (readJson(join(root, 'package.json')) as { version?: string } | undefined)?.version ?? '?';
}

function describeFailure(root: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const platform = `${process.platform}-${process.arch}`;
  const prebuildDir = join(root, 'prebuilds', platform);
  const releaseDir = join(root, 'build', 'Release');
  const prebuilds = listNodeFiles(prebuildDir);
  const builds = listNodeFiles(releaseDir);
  const record = buildRecord(root);
  const lines = ['dove-encoder: the native addon could not be loaded.'];
  lines.push(`  looked for: ${join(releaseDir, '*.node')} -> ${builds.length ? builds.join(', ') : 'none'}`);
  lines.push(`              ${join(prebuildDir, '*.node')} -> ${prebuilds.length ? prebuilds.join(', ') : 'none'}`);
  const missingLib = /lib(torch|c10)[^:\s]*\.so[^:]*: cannot open shared object file/.exec(message);
  if (missingLib !== null) {
    const where = record === null ? 'an unknown libtorch' : `${record.libtorchDir} (${existsSync(record.libtorchDir) ? 'present' : 'missing'})`;
    lines.push(`  found the addon, but libtorch did not load: ${missingLib[0]}`);
    lines.push(`  the addon was built against ${where}`);
    lines.push(`  fix: run \`npm run setup\` in ${root} (recreates the torch ${LIBTORCH_VERSION} virtualenv under ~/.cache/dove-encoder and rebuilds),`);
    lines.push(`       or point LIBTORCH=/path/to/libtorch at an unpacked libtorch ${LIBTORCH_VERSION} and run \`npm run build:native\`.`);
  } else if (builds.length === 0 && prebuilds.length === 0) {
    lines.push(`  no addon is built for ${platform} (node ${process.version}, N-API ${process.versions.napi ?? '?'})`);
    lines.push(`  fix: run \`npm run setup\` in ${root} (installs torch ${LIBTORCH_VERSION} and builds the addon with cmake-js; needs cmake, ninja and a C++17 compiler).`);
  } else {
    lines.push(`  error: ${message.split('\n')[0]}`);
    lines.push(`  fix: rebuild with \`npm run build:native\` in ${root}; if that fails, \`npm run setup\`.`);
  }
  return lines.join('\n');
}

function describeMissingLibtorch(root: string, addon: string, tried: readonly string[]): string {
  // An addon not readable as ELF counts as prebuilt here: the dlopen below reports what is wrong with it.
  const runpath = valueOr(() => readElfDynamic(addon).searchPath, []);
  const how = runpath.length === 0 ? `prebuilt: it loads libtorch ${LIBTORCH_VERSION} from one of the places below` : `its RUNPATH ${runpath.join(':')} holds no libtorch_cpu.so`;
  return [
    'dove-encoder: the native addon could not be loaded: libtorch was not found.',
    `  addon: ${addon} (${how})`,
    '  libtorch was looked for in:',
    ...tried.map((t) => `    ${t}`),
    `  fix: npm install ${LIBTORCH_PACKAGE}@${packageVersion(root)} (an optional dependency of dove-encoder: --omit=optional`,
    '       or --no-optional skip it, and it exists for linux-x64 with glibc >= 2.28 only),',
    `       or LIBTORCH=/path/to/libtorch-${LIBTORCH_VERSION} (an unpacked libtorch, or a torch==${LIBTORCH_VERSION} wheel's site-packages/torch),`,
    '       or, in a checkout of dove-encoder, `npm run setup`.',
  ].join('\n');
}

/**
 * Makes the addon's libtorch loadable: a local build's RUNPATH libtorch (only its CUDA stand-ins are
 * loaded here), otherwise the first usable libtorch candidate. Throws ADDON_LOAD_FAILED when none.
 */
function prepareLibtorch(root: string, addon: string): AddonLoad {
  const standInDirs = [join(dirname(addon), STAND_IN_FOLDER)];
  const own = runpathLibtorch(addon);
  if (own !== null) {
    const standIns = standInsFor(own, standInDirs).filter((lib) => loadGlobal(lib) === null);
    return { addon, prebuilt: false, libtorch: { dir: own, from: 'the RUNPATH of the local build', build: libtorchBuild(own) }, standIns };
  }
  const choice = loadFirstLibtorch(libtorchCandidates(root), standInDirs);
  if (choice.chosen === null) throw new DoveError(describeMissingLibtorch(root, addon, choice.tried), 'ADDON_LOAD_FAILED');
  return { addon, prebuilt: true, libtorch: choice.chosen, standIns: choice.standIns };
}

/** The raw native binding (loaded once). Only lib/ uses it; the public API wraps it. */
export function binding(): NativeBinding {
  if (cached !== undefined) return cached;
  const root = packageRoot();
  // DOVE_ADDON: an addon file to load instead (scripts/asan points it at its sanitizer build, so
  // the tests check exactly that code).
  const override = process.env.DOVE_ADDON;
  let addon: string;
  try {
    addon = override ? resolve(override) : nodeGypBuild.path(root);
  } catch (error) {
    throw new DoveError(describeFailure(root, error), 'ADDON_LOAD_FAILED', { cause: error });
  }
  const record = prepareLibtorch(root, addon);
  let loaded: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(addon) as NativeBinding;
  } catch (error) {
    throw new DoveError(describeFailure(root, error), 'ADDON_LOAD_FAILED', { cause: error });
  }
  loaded.setErrorClass(DoveError);
  // A tensor made over a JS buffer reads that memory from other threads: the buffer must never be
  // detached by a transfer (docs/NATIVE.md, "JS-backed memory").
  loaded.setBufferPin(markAsUntransferable);
  loadRecord = record;
  cached = loaded;
  return loaded;
}

/** How the addon and its libtorch were loaded (loads them first if needed). */
export function addonLoad(): AddonLoad {
  binding();
  if (loadRecord === undefined) throw new DoveError('the addon was loaded without a load record', 'INTERNAL');
  return loadRecord;
}

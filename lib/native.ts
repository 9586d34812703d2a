// The one loader of the native addon. node-gyp-build picks build/Release (a local build) or a
// matching prebuilds/<platform>-<arch>/ addon; when loading fails, the error says what was looked
// for, what was found and the command that fixes it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { markAsUntransferable } from 'node:worker_threads';
import type { NativeBinding } from '../binding';
import { DoveError } from './errors';
import { retryWithLibtorch } from './libtorch-preload';

// node-gyp-build ships no type declarations; its contract is (dir) => the addon's exports.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild: (dir: string) => unknown = require('node-gyp-build');

let cached: NativeBinding | undefined;

/** The package root (the folder holding package.json), from lib/ or dist/lib/. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'dove-encoder') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return join(__dirname, '..', '..');
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
  const file = join(root, 'build', 'Release', 'dove-build.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as BuildRecord;
  } catch {
    return null;
  }
}

function listNodeFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.node'));
  } catch {
    return [];
  }
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
    lines.push(`  fix: run \`npm run setup\` in ${root} (recreates the torch 2.11.0 virtualenv under ~/.cache/dove-encoder and rebuilds),`);
    lines.push('       or point LIBTORCH=/path/to/libtorch at an unpacked libtorch 2.11 and run `npm run build:native`.');
  } else if (builds.length === 0 && prebuilds.length === 0) {
    lines.push(`  no addon is built for ${platform} (node ${process.version}, N-API ${process.versions.napi ?? '?'})`);
    lines.push(`  fix: run \`npm run setup\` in ${root} (installs torch 2.11.0 and builds the addon with cmake-js; needs cmake, ninja and a C++17 compiler).`);
  } else {
    lines.push(`  error: ${message.split('\n')[0]}`);
    lines.push(`  fix: rebuild with \`npm run build:native\` in ${root}; if that fails, \`npm run setup\`.`);
  }
  return lines.join('\n');
}

/** The raw native binding (loaded once). Only lib/ uses it; the public API wraps it. */
export function binding(): NativeBinding {
  if (cached !== undefined) return cached;
  const root = packageRoot();
  let loaded: NativeBinding;
  // DOVE_ADDON: an addon file to load instead (scripts/asan points it at its sanitizer build, so
  // the tests check exactly that code).
  const override = process.env.DOVE_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = (override ? require(resolve(override)) : nodeGypBuild(root)) as NativeBinding;
  } catch (error) {
    // A prebuilt addon whose RUNPATH misses libtorch: load libtorch from LIBTORCH or the setup's
    // cache (lib/libtorch-preload.ts), then try once more.
    const retry = retryWithLibtorch(root, error, () => nodeGypBuild(root));
    if (retry.loaded === undefined) throw new DoveError(describeFailure(root, error) + retry.note, 'ADDON_LOAD_FAILED', { cause: error });
    loaded = retry.loaded as NativeBinding;
  }
  loaded.setErrorClass(DoveError);
  // A tensor made over a JS buffer reads that memory from other threads: the buffer must never be
  // detached by a transfer (docs/NATIVE.md, "JS-backed memory").
  loaded.setBufferPin(markAsUntransferable);
  cached = loaded;
  return loaded;
}

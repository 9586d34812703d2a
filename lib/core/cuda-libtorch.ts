// libtorch's CUDA half, loaded at run time. The addon links only libc10.so and libtorch_cpu.so, so
// one binary serves CPU and GPU machines and a CPU process maps no CUDA library. When a CUDA device
// is asked for (a device option, `--device cuda`, devices()), this loads libc10_cuda.so and
// libtorch_cuda.so of the same libtorch build; their static initialisers register libtorch's CUDA
// kernels, allocator and hooks. The real CUDA runtime libraries behind the stand-ins (see
// lib/core/libtorch-preload.ts) are loaded first, from libtorch_cuda.so's own RUNPATH.
//
// Where libtorch_cuda.so is looked for: beside the loaded libtorch_cpu.so (a torch wheel or a
// CUDA libtorch), then LIBTORCH and the setup's cache. It must be libtorch 2.11.0 from the same
// PyTorch commit and CUDA version as the libtorch_cpu.so already loaded.
import { existsSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DoveError } from '../base/errors';
import { readElfDynamic } from './elf';
import { LIBTORCH_VERSION, libtorchCandidates, loadGlobal, type LibtorchBuild, type LibtorchCandidate } from './libtorch-preload';
import { addonLoad, binding, packageRoot } from './native';

export interface CudaLibtorch {
  loaded: boolean;
  /** The libtorch directory libtorch_cuda.so came from, and how it was found. */
  libtorch: LibtorchCandidate | null;
  /** The real CUDA runtime libraries loaded in place of the stand-ins. */
  runtime: string[];
  /** One line per place that was looked at and why it was not used. */
  tried: string[];
}

const CUDA_LIBS = ['libc10_cuda.so', 'libtorch_cuda.so'];

/**
 * Paths of CUDA libraries (NVIDIA's and libtorch's CUDA half), by file name, for checks of what a
 * process maps. The stand-ins share two of these names; they live in a cuda-stubs folder.
 */
export const CUDA_LIBRARY_FILE =
  /\/(libtorch_cuda[\w.]*|libc10_cuda|libcudart|libcupti|libcublas|libcublasLt|libcudnn\w*|libnccl|libcufft|libcusparse|libcusparseLt|libcurand|libcusolver|libnvrtc|libnvJitLink|libcufile|libnvshmem\w*|libcuda)\.so[\d.]*$/;

let state: CudaLibtorch | undefined;

/** Why libtorch_cuda.so from `cuda` cannot join the loaded `cpu` libtorch, or null when it can. */
function mismatch(cpu: LibtorchBuild, cuda: LibtorchBuild): string | null {
  if (cuda.version !== null && cuda.version !== LIBTORCH_VERSION) return `libtorch ${cuda.version}, the addon needs ${LIBTORCH_VERSION}`;
  if (cpu.git !== null && cuda.git !== null && cpu.git !== cuda.git) return `built from PyTorch commit ${cuda.git.slice(0, 12)}, the loaded libtorch_cpu.so from ${cpu.git.slice(0, 12)}`;
  if (cpu.cuda !== null && cuda.cuda !== null && cpu.cuda !== cuda.cuda) return `built for CUDA ${cuda.cuda}, the loaded libtorch_cpu.so for CUDA ${cpu.cuda}`;
  if (cpu.cuda === null && cpu.version !== null && cuda.cuda !== null) return `built for CUDA ${cuda.cuda}, the loaded libtorch_cpu.so is a CPU-only build`;
  return null;
}

/** The real library for each loaded stand-in, from libtorch_cuda.so's RUNPATH (and its own folder). */
function realRuntime(dir: string, standIns: readonly string[]): { libs: string[]; missing: string | null } {
  const search = [...readElfDynamic(join(dir, 'libtorch_cuda.so')).searchPath, dir];
  const libs: string[] = [];
  for (const standIn of standIns) {
    const name = basename(standIn);
    const real = search.map((d) => join(d, name)).find((p) => existsSync(p) && realpathSync(p) !== realpathSync(standIn));
    if (real === undefined) return { libs, missing: `${name} (the CUDA runtime) is not in libtorch_cuda.so's RUNPATH or folder: ${search.join(':')}` };
    libs.push(real);
  }
  return { libs, missing: null };
}

/**
 * Loads libtorch's CUDA libraries once per process (later calls return the first answer). Never
 * throws for a missing or unusable CUDA libtorch: `loaded` is false and `tried` says why.
 */
export function loadCudaLibtorch(): CudaLibtorch {
  if (state !== undefined) return state;
  const native = binding();
  const load = addonLoad();
  const tried: string[] = [];
  const candidates = [load.libtorch, ...libtorchCandidates(packageRoot())];
  // Each directory once: the loaded libtorch usually reappears among the candidates.
  for (const c of candidates.filter((c, i) => candidates.findIndex((other) => other.dir === c.dir) === i)) {
    const absent = CUDA_LIBS.filter((l) => !existsSync(join(c.dir, l)));
    const why = absent.length > 0 ? `no ${absent.join(', ')} (a CPU-only libtorch)` : mismatch(load.libtorch.build, c.build);
    const runtime = why === null ? realRuntime(c.dir, load.standIns) : null;
    if (runtime === null || runtime.missing !== null) {
      tried.push(`${c.dir} (from ${c.from}): ${why ?? runtime!.missing}`);
      continue;
    }
    // From here on libraries get loaded and stay: a failure ends the search, since a second
    // libc10_cuda.so would bind to the first one's already-loaded dependencies.
    for (const lib of [...runtime.libs, ...CUDA_LIBS.map((l) => join(c.dir, l))]) {
      const failed = loadGlobal(lib);
      if (failed !== null) {
        tried.push(`${c.dir} (from ${c.from}): ${basename(lib)} did not load: ${failed}`);
        return (state = { loaded: false, libtorch: null, runtime: [], tried });
      }
    }
    if (!native.cudaLoaded()) {
      tried.push(
        `${c.dir} (from ${c.from}): libtorch_cuda.so loaded, but libtorch had already looked up its CUDA support in this process ` +
          '(it does so once); ask for the CUDA device before other libtorch work, e.g. load the CUDA model first',
      );
      return (state = { loaded: false, libtorch: null, runtime: [], tried });
    }
    return (state = { loaded: true, libtorch: c, runtime: runtime.libs, tried });
  }
  if (tried.length === 0) tried.push('no libtorch directory to look in');
  return (state = { loaded: false, libtorch: null, runtime: [], tried });
}

function cudaOfWheel(): string {
  const cuda = addonLoad().libtorch.build.cuda;
  return cuda === null ? '' : ` (PyPI's wheel, built for CUDA ${cuda} like the loaded libtorch_cpu.so)`;
}

/** For a 'cuda' / 'cuda:N' device: loads libtorch's CUDA libraries, or throws DEVICE_UNAVAILABLE saying what is missing. */
export function requireCudaFor(device: string | null | undefined): void {
  if (typeof device !== 'string' || !/^cuda(:\d+)?$/.test(device)) return;
  const cuda = loadCudaLibtorch();
  if (cuda.loaded) return;
  throw new DoveError(
    [
      `Device '${device}' was requested but libtorch's CUDA libraries (libtorch_cuda.so, libc10_cuda.so of libtorch ${LIBTORCH_VERSION}) could not be loaded.`,
      '  looked in:',
      ...cuda.tried.map((t) => `    ${t}`),
      `  fix: pip install torch==${LIBTORCH_VERSION}${cudaOfWheel()} and set LIBTORCH to its site-packages/torch,`,
      `       or LIBTORCH=/path/to/libtorch (libtorch ${LIBTORCH_VERSION} with CUDA, unpacked), or in a checkout \`npm run setup\`.`,
    ].join('\n'),
    'DEVICE_UNAVAILABLE',
  );
}

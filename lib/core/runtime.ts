// Process-wide runtime settings and facts of the native addon and its libtorch.
import type { CpuBlockCacheStats, NativeVersions } from '../../binding';
import { loadCudaLibtorch } from './cuda-libtorch';
import { binding } from './native';
import { integerAtLeast, integerInRange } from '../base/validate';

export type { CpuBlockCacheStats, NativeVersions as Versions };

/** 'cpu' followed by every visible 'cuda:N' (loads libtorch's CUDA libraries when a CUDA libtorch is found). */
export function devices(): string[] {
  loadCudaLibtorch();
  return binding().devices();
}

/** True when `device` ('cpu', 'cuda', 'cuda:N') exists on this machine. */
export function hasDevice(device: string): boolean {
  const list = devices();
  return list.includes(device) || (device === 'cuda' && list.includes('cuda:0'));
}

/** libtorch intra-op threads used by every forward/backward (applies to running workers too). */
export function setNumThreads(n: number): void {
  binding().setNumThreads(integerInRange(n, 'numThreads', 1, 1024));
}

export function getNumThreads(): number {
  return binding().getNumThreads();
}

/** Seeds libtorch's CPU and CUDA generators (dropout, randn inside TorchScript). */
export function manualSeed(seed: number): void {
  binding().manualSeed(integerAtLeast(seed, 'seed', 0));
}

export function versions(): NativeVersions {
  return binding().versions();
}

/**
 * The block cache in front of libtorch's CPU allocator (docs/API.md, "optimize"): installed by the first
 * optimised load or the first CPU training engine, unless DOVE_CPU_CACHE_MB=0.
 */
export function cpuBlockCache(): CpuBlockCacheStats {
  return binding().cpuBlockCache();
}

/** libtorch's build configuration and parallel settings (BLAS, OpenMP, threads). */
export function buildInfo(): string {
  // libtorch's configuration includes its CUDA part, and reading it settles CUDA support for the process.
  loadCudaLibtorch();
  return binding().buildInfo();
}

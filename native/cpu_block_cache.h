// A caching allocator in front of libtorch's CPU allocator, installed once per process by the first
// optimised load (module_wrap.cpp) or the first CPU train engine (train_engine.cpp). Freed blocks of
// 128 KiB and more are kept for reuse by size instead of going back to glibc, which unmaps them, so
// the next call page-faults the same memory in again (measured: 3-4 ms of kernel time per tiny
// encode, ~25% of the call). In training, glibc's adaptive mmap threshold otherwise keeps the freed
// step tensors in its heaps instead, with an RSS saw-tooth of about +-20 MiB between steps (docs/TRAINING.md,
// "Memory over a long run"). At most DOVE_CPU_CACHE_MB (default 512) MiB are kept free;
// DOVE_CPU_CACHE_MB=0 leaves libtorch's allocator alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "glibc_baseline.h"

namespace dove {

// Installs the cache unless it is installed or turned off; returns whether it is installed.
bool installCpuBlockCache();

struct CpuBlockCacheStats {
  bool installed = false;
  std::size_t capBytes = 0;
  std::size_t cachedBytes = 0;  // free blocks held for reuse
  std::uint64_t reused = 0;     // allocations served from the cache
};
CpuBlockCacheStats cpuBlockCacheStats();

}  // namespace dove

// Shared by the CUDA runtime stubs (cudart.cpp, cupti.cpp). libtorch_cpu.so from the PyPI torch
// wheel names libcudart.so.13 and libcupti.so.13 as DT_NEEDED, although it only calls them from
// Kineto's GPU profiler. A CPU process gets these stubs instead (same file name, SONAME and symbol
// version), so it maps no CUDA library. Every stub function forwards to the real library once one
// is loaded in the process (lib/core/cuda-libtorch.ts loads the real libcudart.so.13 before libtorch_cuda.so when
// a CUDA device is asked for); until then it answers like a CUDA runtime on a machine without a
// driver. The real library is found by file name among the loaded objects, skipping this stub.
#pragma once

#include <dlfcn.h>
#include <link.h>

#include <limits.h>

#include <atomic>
#include <cstring>

#include "../glibc_baseline.h"

#define DOVE_STUB_API extern "C" __attribute__((visibility("default")))

namespace dove_stub {

struct Search {
  const char* fileName;
  ElfW(Addr) self;
  char path[PATH_MAX];  // no std::string: the stubs need nothing beyond libc
};

inline int findOther(struct dl_phdr_info* info, size_t, void* data) {
  auto* search = static_cast<Search*>(data);
  const char* name = info->dlpi_name;
  if (name == nullptr || info->dlpi_addr == search->self) return 0;
  const char* slash = std::strrchr(name, '/');
  if (std::strcmp(slash == nullptr ? name : slash + 1, search->fileName) != 0) return 0;
  if (std::strlen(name) >= sizeof(search->path)) return 0;
  std::strcpy(search->path, name);
  return 1;
}

// The function `symbol` of the real `fileName` library, or nullptr while none is loaded. Found
// once per function, then cached; a miss is not cached (the real library may be loaded later).
template <typename Fn>
Fn real(std::atomic<void*>& slot, const char* fileName, const char* symbol) {
  if (void* known = slot.load(std::memory_order_acquire)) return reinterpret_cast<Fn>(known);
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&findOther), &self) == 0) return nullptr;
  Search search{fileName, reinterpret_cast<ElfW(Addr)>(self.dli_fbase), {}};
  dl_iterate_phdr(findOther, &search);  // dlopen must not run inside the callback (loader lock)
  if (search.path[0] == '\0') return nullptr;
  void* handle = dlopen(search.path, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return nullptr;
  void* fn = dlsym(handle, symbol);
  // RTLD_NOLOAD took a reference; the library stays loaded by whoever loaded it (RTLD_NODELETE).
  dlclose(handle);
  if (fn != nullptr) slot.store(fn, std::memory_order_release);
  return reinterpret_cast<Fn>(fn);
}

}  // namespace dove_stub

// Inside a stub function: return the real function's result when the real library is loaded.
#define DOVE_FORWARD(library, fn, ...)                                                  \
  do {                                                                                  \
    static std::atomic<void*> slot{nullptr};                                            \
    if (auto realFn = dove_stub::real<decltype(&fn)>(slot, library, #fn)) return realFn(__VA_ARGS__); \
  } while (0)
// A stub function that only forwards: without the real library it returns `failure`.
#define DOVE_STUB(library, failure, fn, params, ...) \
  DOVE_STUB_API int fn params {                      \
    DOVE_FORWARD(library, fn, __VA_ARGS__);          \
    return failure;                                  \
  }

// The 'nccl' backend of initProcessGroup: c10d::ProcessGroupNCCL, which lives in libtorch_cuda.so.
// The addon links only libtorch's CPU libraries, so ProcessGroupNCCL is reached through dove_nccl.so
// (native/nccl/nccl_backend.cpp), built beside the addon when the build found nccl.h and the CUDA
// headers (CMakeLists.txt defines DOVE_HAVE_NCCL then), and opened here only after
// lib/core/cuda-libtorch.ts has loaded libtorch_cuda.so, whose symbols it needs.
#include "dist_group.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include "cuda_state.h"

namespace dove {
namespace {

namespace fs = std::filesystem;

using CreateBackend = c10d::Backend* (*)(const c10::intrusive_ptr<c10d::Store>*, int, int, int64_t, int*);

// dove_nccl.so in the addon's own folder, or "" when the addon's path cannot be found.
std::string pluginPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&ncclCompiledIn), &info) == 0 || info.dli_fname == nullptr) return "";
  return (fs::path(info.dli_fname).parent_path() / "dove_nccl.so").string();
}

// Opened once and kept for the life of the process (ProcessGroupNCCL's watchdog threads run its code).
CreateBackend plugin() {
  static std::once_flag once;
  static CreateBackend create = nullptr;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = pluginPath();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      error = "cannot open '" + path + "': " + (why != nullptr ? why : "unknown error");
      return;
    }
    create = reinterpret_cast<CreateBackend>(dlsym(lib, "dove_nccl_create_backend"));
    if (create == nullptr) error = "'" + path + "' has no dove_nccl_create_backend";
  });
  DOVE_CHECK(create != nullptr, "DISTRIBUTED_ERROR", "the nccl backend could not be loaded: " + error);
  return create;
}

}  // namespace

bool ncclCompiledIn() {
#ifdef DOVE_HAVE_NCCL
  std::error_code ec;
  const std::string path = pluginPath();
  return !path.empty() && fs::is_regular_file(path, ec);
#else
  return false;
#endif
}

void checkNcclUsable() {
  DOVE_CHECK(ncclCompiledIn(), "DISTRIBUTED_ERROR",
             "the nccl backend is not compiled into this addon (dove_nccl.so beside it is built only where the build "
             "found nccl.h / cuda_runtime.h under the torch wheel's site-packages/nvidia/*/include); use backend 'gloo'");
  // Not before libtorch_cuda.so is loaded: libtorch looks its CUDA hooks up once per process (cuda_state.h).
  DOVE_CHECK(cudaLibtorchLoaded() && torch::cuda::is_available(), "DEVICE_UNAVAILABLE",
             "the nccl backend needs a CUDA device; this process sees none (libtorch's CUDA libraries load when a "
             "CUDA device is asked for)");
}

c10::intrusive_ptr<c10d::Backend> createNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int worldSize,
                                                    std::chrono::milliseconds timeout, c10::Device& device) {
  checkNcclUsable();
  int index = 0;
  c10d::Backend* backend = plugin()(&store, rank, worldSize, static_cast<int64_t>(timeout.count()), &index);
  device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  return c10::intrusive_ptr<c10d::Backend>::reclaim(backend);
}

}  // namespace dove

#include "openmp_team.h"

#include "glibc_baseline.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace dove {

namespace {

using PauseAll = int (*)(int kind);

// libgomp's omp_pause_resource_all ends only the calling thread's team; LLVM's libomp pauses the
// whole process (teams still computing included), so the call is taken from a loaded libgomp only.
PauseAll findLibgompPause() {
  const char* keep = std::getenv("DOVE_OMP_RELEASE");
  if (keep != nullptr && std::strcmp(keep, "0") == 0) return nullptr;
#if defined(__linux__)
  std::string path;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* found) -> int {
        const char* slash = info->dlpi_name == nullptr ? nullptr : std::strrchr(info->dlpi_name, '/');
        if (slash == nullptr || std::strncmp(slash + 1, "libgomp", 7) != 0) return 0;
        *static_cast<std::string*>(found) = info->dlpi_name;
        return 1;
      },
      &path);
  // Opened after dl_iterate_phdr, which holds the loader's lock; RTLD_NOLOAD: only if already loaded.
  void* handle = path.empty() ? nullptr : dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle != nullptr) return reinterpret_cast<PauseAll>(dlsym(handle, "omp_pause_resource_all"));
#endif
  return nullptr;
}

}  // namespace

void releaseOpenMpTeam() noexcept {
  static const PauseAll pause = findLibgompPause();
  if (pause != nullptr) pause(1);  // omp_pause_soft
}

namespace {
std::atomic<unsigned long> startedJobs{0};
std::atomic<int> idleTeams{0};
}  // namespace

void startJob(std::chrono::microseconds maxWait) noexcept {
  startedJobs.fetch_add(1, std::memory_order_acq_rel);
  if (idleTeams.load(std::memory_order_acquire) == 0) return;
  const auto until = std::chrono::steady_clock::now() + maxWait;
  while (idleTeams.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
}

unsigned long jobsStarted() noexcept { return startedJobs.load(std::memory_order_acquire); }

IdleTeam::IdleTeam() noexcept { idleTeams.fetch_add(1, std::memory_order_acq_rel); }

IdleTeam::~IdleTeam() noexcept {
  if (counted_) idleTeams.fetch_sub(1, std::memory_order_acq_rel);
}

void IdleTeam::release() noexcept {
  if (!counted_) return;
  releaseOpenMpTeam();
  counted_ = false;
  idleTeams.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace dove

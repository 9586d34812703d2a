#include "openmp_team.h"

#include "glibc_baseline.h"
#include "env_number.h"

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

// An oversubscribed machine (other processes' threads on our cores) makes the release itself slow:
// libgomp's pause waits until every worker of the team has run to its exit, and a worker without a
// core waits for one. With one busy loop beside tiny's compiled encode and decode in turn, a
// release took 1.7 ms (median; p90 8 ms) against 39 us on an idle machine, the starting job waited
// for it, and the next call paid for new threads the same way: 53-110 ms a pair against 10 ms with
// the teams kept (node dist/bench/compiled/alternate.js, 2 cores). So after kSlowReleasesToKeep
// releases in a row took kSlowRelease or more, idle teams are kept (and nobody waits for them)
// for DOVE_OMP_KEEP_MS (default 1000, 0 = never); the next release after that measures again.
constexpr auto kSlowRelease = std::chrono::milliseconds(1);
constexpr int kSlowReleasesToKeep = 2;
std::atomic<int> slowReleases{0};
std::atomic<int64_t> keepTeamsUntilNs{0};

int64_t steadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::chrono::milliseconds keepAfterSlowReleases() {
  static const std::chrono::milliseconds keep(nonNegativeFromEnv("DOVE_OMP_KEEP_MS", 1000, 3600000));
  return keep;
}

bool keepingTeams() { return steadyNowNs() < keepTeamsUntilNs.load(std::memory_order_relaxed); }

void noteReleaseTime(std::chrono::steady_clock::duration took) {
  if (took < kSlowRelease) {
    slowReleases.store(0, std::memory_order_relaxed);
    return;
  }
  if (slowReleases.fetch_add(1, std::memory_order_relaxed) + 1 < kSlowReleasesToKeep) return;
  slowReleases.store(0, std::memory_order_relaxed);
  const int64_t keepNs = std::chrono::duration_cast<std::chrono::nanoseconds>(keepAfterSlowReleases()).count();
  keepTeamsUntilNs.store(steadyNowNs() + keepNs, std::memory_order_relaxed);
}
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

IdleTeam::IdleTeam() noexcept : counted_(!keepingTeams()) {
  if (counted_) idleTeams.fetch_add(1, std::memory_order_acq_rel);
}

IdleTeam::~IdleTeam() noexcept {
  if (counted_) idleTeams.fetch_sub(1, std::memory_order_acq_rel);
}

void IdleTeam::release() noexcept {
  if (!counted_) return;
  const auto began = std::chrono::steady_clock::now();
  releaseOpenMpTeam();
  noteReleaseTime(std::chrono::steady_clock::now() - began);
  counted_ = false;
  idleTeams.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace dove

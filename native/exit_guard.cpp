// Bounded exits with calls that never return (exit_guard.h).
#include "exit_guard.h"
#include "glibc_baseline.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace dove {
namespace {

std::atomic<int> gRunning{0};

// Runs inside exit(), before the handlers and static destructors registered before it (it is
// registered last, when the process is already exiting): with a call still running, nothing may be
// torn down under it, so the process ends here with exit()'s status.
void endNowIfStillRunning(int status, void*) {
  if (gRunning.load() == 0) return;
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace

std::chrono::milliseconds stopWait() {
  static const std::chrono::milliseconds wait = [] {
    long ms = 2000;
    if (const char* env = std::getenv("DOVE_STOP_WAIT_MS"); env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long parsed = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && parsed >= 0 && parsed <= 600000) ms = parsed;
    }
    return std::chrono::milliseconds(ms);
  }();
  return wait;
}

RunningCall::RunningCall() { gRunning.fetch_add(1); }
RunningCall::~RunningCall() { gRunning.fetch_sub(1); }

void guardProcessExit(std::chrono::steady_clock::time_point deadline) {
  while (gRunning.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (gRunning.load() == 0) return;
  static std::once_flag once;
  std::call_once(once, [] { ::on_exit(&endNowIfStillRunning, nullptr); });
}

}  // namespace dove

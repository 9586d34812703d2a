// Calls that never return. A TorchScript method can loop forever (a model file is code), and
// nothing can stop a thread inside libtorch. Exits must still be bounded: a module's thread is
// abandoned rather than joined after a short wait (module_executor.cpp), and when the process
// exits with such a call still running it ends at once (_exit) instead of running static
// destructors under that call or joining its thread forever (libuv joins its pool threads at
// exit). docs/NATIVE.md, "Calls that never return", has the trade-off.
#pragma once

#include <chrono>

namespace dove {

// How long dispose-at-exit, worker termination and process exit wait for a running call before
// abandoning it: DOVE_STOP_WAIT_MS (0..600000), default 2000.
std::chrono::milliseconds stopWait();

// Marks a native call as running on some thread for as long as it lives (RAII; any thread).
class RunningCall {
 public:
  RunningCall();
  ~RunningCall();
  RunningCall(const RunningCall&) = delete;
  RunningCall& operator=(const RunningCall&) = delete;
};

// JS thread, from the process 'exit' event: waits until `deadline` for running calls to finish;
// if some still run, makes exit() end the process at once with its status.
void guardProcessExit(std::chrono::steady_clock::time_point deadline);

}  // namespace dove

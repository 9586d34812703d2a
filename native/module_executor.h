// A loaded module's own worker thread. Runs and saves on one module are queued here, run one at a
// time in call order, and settle their promises on the JS thread.
//
// Why not a libuv work item per call: each call then costs a pool-thread wake-up, a uv_async wake
// of the JS thread and, to keep calls in order without parking pool threads, a JS-side FIFO that
// queues the next call only after the previous one settled (bench/boundary measured 28-125+ us per
// no-op call). Here the thread takes the next job itself, spins briefly before parking so a call
// made right after the previous one settled needs no futex wake, and completed jobs are handed to
// the JS thread in batches through one thread-safe function.
#pragma once

#include <condition_variable>
#include <deque>

#include "common.h"

namespace dove {

class ModuleExecutor;
// The thread-safe function's callback: settles the completed jobs on the JS thread.
void deliverModuleJobs(Napi::Env env, Napi::Function, ModuleExecutor* executor, void*);

class ModuleExecutor : public std::enable_shared_from_this<ModuleExecutor> {
 public:
  using Work = std::function<c10::IValue()>;
  using ToJs = std::function<Napi::Value(Napi::Env, c10::IValue&)>;
  // JS thread: true when the first job is queued on an idle executor, false when the last one settled.
  // The module object uses it to stay alive (ObjectWrap::Ref) exactly while it has jobs.
  using Hold = std::function<void(bool busy)>;

  static std::shared_ptr<ModuleExecutor> create(std::string name, Hold hold);
  ~ModuleExecutor();
  ModuleExecutor(const ModuleExecutor&) = delete;
  ModuleExecutor& operator=(const ModuleExecutor&) = delete;

  // JS thread. Starts the thread on first use; the promise settles on the JS thread.
  Napi::Promise submit(Napi::Env env, Work work, ToJs toJs);
  // JS thread: jobs submitted whose promise has not settled yet (queued, running or completing).
  std::size_t pending() const { return pending_; }
  // JS thread: no more submissions (the module was disposed). Jobs already queued still run (they
  // reject DISPOSED themselves); the thread is joined once the last one settled, or now when idle.
  void close(Napi::Env env);
  // JS thread: stops now. Queued jobs that have not started are dropped unsettled (the module is
  // being finalized or the env torn down, so nobody can await them); a running job finishes first.
  void shutdown();
  // JS thread: shutdown() of every started executor of this thread's env. Called from the process
  // 'exit' event (lib/native.ts): process.exit() runs static destructors next (libtorch's among them),
  // and a thread still inside a TorchScript call would race them (AddressSanitizer caught a double
  // free in libtorch's schema registry that way). The running job finishes; queued ones are dropped.
  static void shutdownAll();

 private:
  struct Job;
  friend void deliverModuleJobs(Napi::Env, Napi::Function, ModuleExecutor*, void*);
  ModuleExecutor(std::string name, Hold hold);
  void start(Napi::Env env);
  void loop();
  void deliver(Napi::Env env);
  void finish(bool abort);
  static void onEnvCleanup(void* self);

  const std::string name_;
  Hold hold_;

  // Shared with the thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::deque<std::unique_ptr<Job>> done_;
  std::atomic<std::size_t> queued_{0};  // queue_.size(), read by the spinning thread without the lock
  std::atomic<bool> stop_{false};
  bool closing_ = false;
  bool parked_ = false;
  bool deliveryScheduled_ = false;

  // JS thread only.
  std::thread thread_;
  std::size_t pending_ = 0;
  bool started_ = false;
  bool finished_ = false;
  napi_env env_ = nullptr;  // for the env cleanup hook, set on start
  bool cleanupHook_ = false;
  // Wakes the JS thread to settle done_; referenced (keeps the loop alive) only while pending_ > 0.
  Napi::TypedThreadSafeFunction<ModuleExecutor, void, deliverModuleJobs> tsfn_;
};

}  // namespace dove

// A loaded module's own worker thread. Runs and saves on one module are queued here, run one at a
// time in call order, and settle their promises on the JS thread: polled by the JS thread for a
// short window after each submit, otherwise through one thread-safe function. docs/NATIVE.md
// ("One module, one call at a time") says why each part is there and what it costs.
#pragma once

#include <chrono>
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

  // JS thread. Starts the thread on first use; the promise settles on the JS thread, after checking
  // that the JS-backed `inputs` kept their memory (JsInputs), naming the call `what`.
  Napi::Promise submit(Napi::Env env, Work work, ToJs toJs, JsInputs inputs = {}, std::string what = "a module call");
  // JS thread: jobs submitted whose promise has not settled yet (queued, running or completing).
  std::size_t pending() const { return pending_; }
  // JS thread: no more submissions (the module was disposed). Jobs already queued still run (they
  // reject DISPOSED themselves); the thread is joined once the last one settled, or now when idle.
  void close(Napi::Env env);
  // JS thread: stops now. Queued jobs that have not started are dropped unsettled (the module is
  // being finalized or the env torn down, so nobody can await them). A running job gets until
  // `deadline` (default: stopWait() from now) to finish; one that is still running then (a method
  // that never returns) is abandoned: the thread is detached and keeps this executor, its job and
  // the module alive until the call returns, if ever, and touches nothing of the env after that
  // (exit_guard.h). Returns within the wait either way.
  void shutdown(std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + stopWait());
  // JS thread: shutdown() of every started executor of this thread's env, sharing one deadline.
  // Called from the process 'exit' event (module_wrap.cpp): process.exit() runs static destructors
  // next (libtorch's among them), and a thread still inside a TorchScript call would race them
  // (a double free in libtorch's schema registry under AddressSanitizer); a call that is
  // still running at the deadline makes the process end without them (guardProcessExit). The
  // promises of the dropped jobs are rejected (DISPOSED) without running them.
  static void shutdownAll(std::chrono::steady_clock::time_point deadline);

  // JS thread, from the poller (the idle handle's callback): settles what has finished. Returns
  // false when this executor should no longer be polled: nothing pending, or the window ran out
  // (then the thread-safe function delivers the rest; see stopPolling).
  bool poll(Napi::Env env, std::chrono::steady_clock::time_point now, napi_value& uncaught);
  // JS thread: whether poll() has anything to do (a job finished, or the window ran out), without
  // taking the lock: the poller asks on every turn of the loop.
  bool pollDue(std::chrono::steady_clock::time_point now) const {
    return hasDone_.load(std::memory_order_acquire) || now >= pollUntil_ || !inPoller_;
  }
  // JS thread: the poller lets go of this executor (env teardown). Completions go through the
  // thread-safe function from now on.
  void stopPolling();

 private:
  struct Job;
  using Jobs = std::deque<std::unique_ptr<Job>>;
  friend void deliverModuleJobs(Napi::Env, Napi::Function, ModuleExecutor*, void*);
  ModuleExecutor(std::string name, Hold hold);
  void start(Napi::Env env);
  void loop();
  void deliver(Napi::Env env);
  void settle(Napi::Env env, Jobs& done, napi_value& uncaught);
  void finish(bool abort, std::chrono::steady_clock::time_point deadline);
  static void onEnvCleanup(void* self);

  const std::string name_;
  Hold hold_;

  // Shared with the thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable wake_;
  Jobs queue_;
  Jobs done_;
  std::atomic<std::size_t> queued_{0};  // queue_.size(), read by the spinning thread without the lock
  std::atomic<bool> stop_{false};
  bool closing_ = false;
  bool parked_ = false;
  bool running_ = false;    // the thread is inside a job's work
  bool abandoned_ = false;  // finish() gave up waiting for that job: the thread must not touch the env
  std::condition_variable idle_;  // signalled when a job's work returns
  // Set when abandoned: the thread's own reference to this executor, dropped when it ends.
  std::shared_ptr<ModuleExecutor> abandonedSelf_;
  bool deliveryScheduled_ = false;
  // The JS thread is polling done_: a finished job needs no thread-safe function call. Cleared
  // together with a last look at done_ (one critical section), so no completion is left unseen.
  bool jsPolling_ = false;
  std::atomic<bool> hasDone_{false};  // !done_.empty(), for the poller's lock-free look
  // How long the last job ran (thread writes, JS reads): longer than the poll window means the
  // next call is not worth polling for.
  std::atomic<int64_t> lastRunNs_{0};

  // JS thread only.
  std::thread thread_;
  std::size_t pending_ = 0;
  bool started_ = false;
  bool finished_ = false;
  napi_env env_ = nullptr;  // for the env cleanup hook, set on start
  bool cleanupHook_ = false;
  bool rejectDropped_ = false;  // set by shutdownAll: JS can still run, so dropped jobs are settled
  bool inPoller_ = false;  // in this thread's poller list (jsPolling_ may still be set while being removed)
  std::chrono::steady_clock::time_point pollUntil_{};
  // No polling before this (set when polling picked jobs up late; see poll()).
  std::chrono::steady_clock::time_point noPollUntil_{};
  std::chrono::steady_clock::duration pollBackoff_{};
  std::chrono::steady_clock::time_point lastSubmitAt_{};
  // Wakes the JS thread to settle done_; referenced (keeps the loop alive) only while pending_ > 0.
  Napi::TypedThreadSafeFunction<ModuleExecutor, void, deliverModuleJobs> tsfn_;
};

}  // namespace dove

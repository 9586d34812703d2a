// The per-module worker thread (see module_executor.h for why it exists).
#include "module_executor.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <vector>
#include <cstdlib>
#include <optional>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dove {

namespace {

// Started, not yet finished executors of the env whose JS thread this is (only that thread starts
// and finishes them).
thread_local std::vector<ModuleExecutor*> liveExecutors;

// How long the thread keeps polling for the next job before it parks on the condition variable.
// A sequential `await module.run(...)` loop submits the next call within a few microseconds of the
// previous promise settling; catching it while still polling saves a futex wake on both sides. 50 us
// bounds the CPU spent per idle period; DOVE_RUN_SPIN_US overrides it (0 parks at once).
std::chrono::nanoseconds spinBudget() {
  static const std::chrono::nanoseconds budget = [] {
    const char* env = std::getenv("DOVE_RUN_SPIN_US");
    long us = 50;
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long parsed = std::strtol(env, &end, 10);
      if (end != env && parsed >= 0) us = std::min(parsed, 100000L);
    }
    return std::chrono::nanoseconds(us * 1000);
  }();
  return budget;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

struct ModuleExecutor::Job {
  Napi::Promise::Deferred deferred;
  Work work;
  ToJs toJs;
  JobOutcome<c10::IValue> outcome;
};

std::shared_ptr<ModuleExecutor> ModuleExecutor::create(std::string name, Hold hold) {
  return std::shared_ptr<ModuleExecutor>(new ModuleExecutor(std::move(name), std::move(hold)));
}

ModuleExecutor::ModuleExecutor(std::string name, Hold hold) : name_(std::move(name)), hold_(std::move(hold)) {}

ModuleExecutor::~ModuleExecutor() {
  // Normally shutdown() already joined it; never let a joinable std::thread terminate the process.
  stop_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ModuleExecutor::start(Napi::Env env) {
  env_ = env;
  // The finalizer's copy keeps this object alive until the last queued delivery has been handled,
  // even if the module object was finalized first.
  tsfn_ = decltype(tsfn_)::New(env, "dove.moduleExecutor", 0, 1, this,
                               [](Napi::Env, std::shared_ptr<ModuleExecutor>* keep, ModuleExecutor*) { delete keep; },
                               new std::shared_ptr<ModuleExecutor>(shared_from_this()));
  // Registered after the thread-safe function, so it runs before the env's own cleanup of it
  // (cleanup hooks run in reverse order): the thread is joined while the function still exists.
  napi_add_env_cleanup_hook(env, &ModuleExecutor::onEnvCleanup, this);
  cleanupHook_ = true;
  thread_ = std::thread([this] { loop(); });
  started_ = true;
  liveExecutors.push_back(this);
}

void ModuleExecutor::shutdownAll() {
  const std::vector<ModuleExecutor*> live = liveExecutors;
  for (ModuleExecutor* executor : live) executor->shutdown();
}

Napi::Promise ModuleExecutor::submit(Napi::Env env, Work work, ToJs toJs) {
  DOVE_CHECK(!finished_ && !closing_, "DISPOSED", "Module '" + name_ + "' was disposed");
  if (!started_) start(env);
  auto job = std::make_unique<Job>(Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(toJs), {}});
  Napi::Promise promise = job->deferred.Promise();
  if (pending_++ == 0) {
    // Busy: keep the loop alive for the completion and the module object alive for the job.
    tsfn_.Ref(env);
    if (hold_) hold_(true);
  }
  bool parked;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
    queued_.fetch_add(1, std::memory_order_release);
    parked = parked_;
  }
  // A polling thread sees queued_ by itself; only a parked one needs the (syscall) wake-up.
  if (parked) wake_.notify_one();
  return promise;
}

void ModuleExecutor::loop() {
  pthread_setname_np(pthread_self(), "dove-module");
  const auto budget = spinBudget();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (stop_.load(std::memory_order_relaxed)) break;
    if (queue_.empty()) {
      if (closing_) break;
      if (budget.count() > 0) {
        lock.unlock();
        const auto until = std::chrono::steady_clock::now() + budget;
        unsigned spins = 0;
        while (queued_.load(std::memory_order_acquire) == 0 && !stop_.load(std::memory_order_relaxed)) {
          cpuRelax();
          // Check the clock (and give a loaded core to the JS thread) only now and then.
          if ((++spins & 63) == 0) {
            if (std::chrono::steady_clock::now() >= until) break;
            std::this_thread::yield();
          }
        }
        lock.lock();
      }
      if (queue_.empty() && !closing_ && !stop_) {
        parked_ = true;
        wake_.wait(lock, [this] { return !queue_.empty() || closing_ || stop_; });
        parked_ = false;
      }
      continue;
    }
    std::unique_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();
    // Guards (InferenceMode, grad mode) are thread-local: the work sets them itself, per job.
    job->outcome.run(job->work);
    job->work = nullptr;  // drop the arguments here rather than on the JS thread
    lock.lock();
    done_.push_back(std::move(job));
    if (!deliveryScheduled_) {
      // One wake-up of the JS thread settles everything done by the time it runs.
      deliveryScheduled_ = true;
      lock.unlock();
      tsfn_.NonBlockingCall();
      lock.lock();
    }
  }
}

void deliverModuleJobs(Napi::Env env, Napi::Function, ModuleExecutor* executor, void*) {
  if (env == nullptr || executor == nullptr) return;  // aborted at env teardown
  executor->deliver(env);
}

void ModuleExecutor::deliver(Napi::Env env) {
  // Settling runs JS (promise hooks, conversions): the module may be disposed or finalized meanwhile.
  std::shared_ptr<ModuleExecutor> keep = shared_from_this();
  std::deque<std::unique_ptr<Job>> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    deliveryScheduled_ = false;
    done.swap(done_);
  }
  // A JS exception while settling one job (a throwing DoveError constructor) must not strand the
  // others: settle them all, then let the first such exception reach JS.
  std::optional<Napi::Error> uncaught;
  for (auto& job : done) {
    --pending_;
    try {
      job->outcome.settle(env, job->deferred, job->toJs);
    } catch (const Napi::Error& e) {
      if (!uncaught) uncaught = e;
    }
    job.reset();
  }
  if (pending_ == 0 && !finished_) {
    Hold hold = hold_;  // finish() clears hold_, but the module must still be let go
    if (closing_) {
      finish(false);
    } else {
      tsfn_.Unref(env);
    }
    if (hold) hold(false);
  }
  if (uncaught) throw *uncaught;
}

void ModuleExecutor::close(Napi::Env env) {
  if (finished_ || closing_) return;
  if (!started_) {
    finished_ = true;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  wake_.notify_all();
  // With jobs in flight the thread drains the queue and exits; the last delivery joins it.
  if (pending_ == 0) finish(false);
}

void ModuleExecutor::shutdown() {
  if (finished_) return;
  if (!started_) {
    finished_ = true;
    return;
  }
  finish(true);
}

void ModuleExecutor::finish(bool abort) {
  finished_ = true;
  liveExecutors.erase(std::remove(liveExecutors.begin(), liveExecutors.end(), this), liveExecutors.end());
  stop_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The thread is gone: nothing calls the thread-safe function any more.
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dropped.swap(queue_);
    queued_ = 0;
    if (abort) done_.clear();
  }
  dropped.clear();
  if (abort) {
    tsfn_.Abort();
  } else {
    tsfn_.Release();
  }
  if (cleanupHook_) {
    napi_remove_env_cleanup_hook(env_, &ModuleExecutor::onEnvCleanup, this);
    cleanupHook_ = false;
  }
  hold_ = nullptr;
}

void ModuleExecutor::onEnvCleanup(void* self) {
  auto* executor = static_cast<ModuleExecutor*>(self);
  executor->cleanupHook_ = false;  // it ran: removing it again is not allowed
  executor->shutdown();
}

}  // namespace dove

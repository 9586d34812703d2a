// The per-module worker thread (see module_executor.h for why it exists).
#include "module_executor.h"

#include "env_number.h"
#include "exit_guard.h"
#include "openmp_team.h"

#include <pthread.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <vector>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dove {

namespace {

// Started, not yet finished executors of the env whose JS thread this is (only that thread starts
// and finishes them).
thread_local std::vector<ModuleExecutor*> liveExecutors;

std::chrono::nanoseconds microsFromEnv(const char* name, long fallback) {
  return std::chrono::nanoseconds(nonNegativeFromEnv(name, fallback, 100000) * 1000);
}

// How long the thread keeps polling for the next job before it parks on the condition variable.
// A sequential `await module.run(...)` loop submits the next call within a few microseconds of the
// previous promise settling; catching it while still polling saves a futex wake on both sides. 50 us
// bounds the CPU spent per idle period; DOVE_RUN_SPIN_US overrides it (0 parks at once).
std::chrono::nanoseconds spinBudget() {
  static const std::chrono::nanoseconds budget = microsFromEnv("DOVE_RUN_SPIN_US", 50);
  return budget;
}

// How long the JS thread polls for finished jobs after a submit (or after the last completion it
// saw) before it leaves them to the thread-safe function. Long enough to cover a short method and
// the hop back (a no-op takes ~3 us, 64 queued ones ~200 us), short enough that a long call costs
// the JS thread's core little: polling turns the loop without blocking. DOVE_RUN_POLL_US
// overrides it (0: never poll, every completion wakes the JS thread through the function).
std::chrono::nanoseconds pollBudget() {
  static const std::chrono::nanoseconds budget = microsFromEnv("DOVE_RUN_POLL_US", 200);
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

// The JS thread's poller: one libuv idle handle per env, active while some executor of that env
// is polled. An active idle handle makes the loop poll for I/O without blocking, so it turns over
// and over (timers and I/O still run in between) and calls onIdle each time; the handle is unref'd,
// so it never keeps the process alive (the thread-safe function's reference does that while calls
// are pending). Settling happens inside a callback scope: when it closes, the microtasks run, i.e.
// the code awaiting the call resumes in the same turn and usually submits the next call at once.
namespace {

class JsPoller {
 public:
  static JsPoller& get(napi_env env) {
    if (instance == nullptr) instance = new JsPoller(env);
    return *instance;
  }
  static JsPoller* current() { return instance; }

  void add(std::shared_ptr<ModuleExecutor> executor) {
    polled_.push_back(std::move(executor));
    if (polled_.size() == 1) uv_idle_start(idle_, &JsPoller::onIdle);
  }
  void remove(ModuleExecutor* executor) {
    polled_.erase(std::remove_if(polled_.begin(), polled_.end(), [&](const auto& e) { return e.get() == executor; }),
                  polled_.end());
    if (polled_.empty()) uv_idle_stop(idle_);
  }

 private:
  explicit JsPoller(napi_env env) : env_(env), context_(env, "dove.moduleRun") {
    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
    idle_ = new uv_idle_t;
    uv_idle_init(loop, idle_);
    idle_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(idle_));
    napi_add_env_cleanup_hook(env, &JsPoller::onEnvCleanup, this);
  }

  static void onIdle(uv_idle_t* handle) {
    JsPoller* self = static_cast<JsPoller*>(handle->data);
    const auto now = std::chrono::steady_clock::now();
    bool due = false;
    for (const auto& executor : self->polled_) due = due || executor->pollDue(now);
    if (!due) {
      // Nothing finished yet. The loop turns again at once (the idle handle keeps it from
      // blocking); give the core away meanwhile: on a loaded machine the module's thread may be
      // waiting for this very core, and a JS thread that spins without yielding starved it until
      // the poll window ran out (every call then took the window plus a wake-up).
      std::this_thread::yield();
      return;
    }
    napi_env env = self->env_;
    // No JS frame called us: an exception must not leave this function (it would unwind through
    // libuv and terminate the process). One thrown while settling is reported as uncaught; napi
    // calls also fail while a worker is being terminated, and then there is nobody to tell.
    try {
      Napi::HandleScope scope(env);
      napi_value uncaught = nullptr;
      {
        Napi::CallbackScope callback(env, self->context_);
        // A copy: settling may finish an executor, which removes it from polled_.
        const std::vector<std::shared_ptr<ModuleExecutor>> polled = self->polled_;
        for (const auto& executor : polled) {
          if (!executor->poll(env, now, uncaught)) self->remove(executor.get());
        }
      }  // microtasks run here: awaiting code resumes, new submits may add executors again
      if (uncaught != nullptr) napi_fatal_exception(env, uncaught);
    } catch (...) {
      napi_value error = nullptr;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) napi_fatal_exception(env, error);
    }
  }

  // Before the env goes: a worker thread's loop is closed after its env, and must have no open
  // handles then. Executors still polled fall back to their thread-safe function (aborted by their
  // own cleanup hooks).
  static void onEnvCleanup(void* arg) {
    JsPoller* self = static_cast<JsPoller*>(arg);
    const std::vector<std::shared_ptr<ModuleExecutor>> polled = std::move(self->polled_);
    self->polled_.clear();
    for (const auto& executor : polled) executor->stopPolling();
    uv_idle_stop(self->idle_);
    uv_close(reinterpret_cast<uv_handle_t*>(self->idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    if (instance == self) instance = nullptr;
    delete self;
  }

  static inline thread_local JsPoller* instance = nullptr;
  napi_env env_;
  Napi::AsyncContext context_;
  uv_idle_t* idle_ = nullptr;
  std::vector<std::shared_ptr<ModuleExecutor>> polled_;
};

}  // namespace

struct ModuleExecutor::Job {
  Napi::Promise::Deferred deferred;
  Work work;
  ToJs toJs;
  JsInputs inputs;
  std::string what;
  JobOutcome<c10::IValue> outcome;
  std::chrono::steady_clock::time_point finishedAt{};
};

std::shared_ptr<ModuleExecutor> ModuleExecutor::create(std::string name, Hold hold) {
  return std::shared_ptr<ModuleExecutor>(new ModuleExecutor(std::move(name), std::move(hold)));
}

ModuleExecutor::ModuleExecutor(std::string name, Hold hold) : name_(std::move(name)), hold_(std::move(hold)) {}

ModuleExecutor::~ModuleExecutor() {
  // Normally shutdown() already joined or detached it; never let a joinable std::thread terminate
  // the process, and never join the thread from itself (an abandoned thread may hold the last
  // reference).
  stop_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) thread_.detach();
    else thread_.join();
  }
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
  thread_ = std::thread([this] {
    loop();
    // An abandoned thread owns the executor from here; letting go may destroy it.
    std::shared_ptr<ModuleExecutor> keep;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      keep = std::move(abandonedSelf_);
    }
  });
  started_ = true;
  liveExecutors.push_back(this);
}

void ModuleExecutor::shutdownAll(std::chrono::steady_clock::time_point deadline) {
  const std::vector<ModuleExecutor*> live = liveExecutors;
  for (ModuleExecutor* executor : live) {
    executor->rejectDropped_ = true;
    executor->shutdown(deadline);
  }
}

Napi::Promise ModuleExecutor::submit(Napi::Env env, Work work, ToJs toJs, JsInputs inputs, std::string what) {
  DOVE_CHECK(!finished_ && !closing_, "DISPOSED", "Module '" + name_ + "' was disposed");
  if (!started_) start(env);
  auto job = std::make_unique<Job>(Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(toJs),
                                       std::move(inputs), std::move(what), {}, {}});
  Napi::Promise promise = job->deferred.Promise();
  if (pending_++ == 0) {
    // Busy: keep the loop alive for the completion and the module object alive for the job.
    tsfn_.Ref(env);
    if (hold_) hold_(true);
  }
  // Poll for the result unless the last call ran longer than the window (then this one likely
  // does too, and the poll would only spend the JS thread's CPU).
  const auto window = pollBudget();
  const auto now = std::chrono::steady_clock::now();
  const bool poll = window.count() > 0 && lastRunNs_.load(std::memory_order_relaxed) <= window.count() && now >= noPollUntil_;
  bool parked;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
    queued_.fetch_add(1, std::memory_order_release);
    parked = parked_;
    if (poll) jsPolling_ = true;
  }
  // A polling thread sees queued_ by itself; only a parked one needs the (syscall) wake-up.
  if (parked) wake_.notify_one();
  lastSubmitAt_ = now;
  if (poll) {
    pollUntil_ = now + window;
    if (!inPoller_) {
      inPoller_ = true;
      JsPoller::get(env).add(shared_from_this());
    }
  }
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
      {
        // Waiting for the next call with this thread's team kept, until the budget runs out or a
        // job starts on another thread (openmp_team.h: that job waits for this team to end).
        IdleTeam idle;
        if (budget.count() > 0) {
          lock.unlock();
          const auto until = std::chrono::steady_clock::now() + budget;
          const unsigned long seen = jobsStarted();
          unsigned spins = 0;
          while (queued_.load(std::memory_order_acquire) == 0 && !stop_.load(std::memory_order_relaxed) && jobsStarted() == seen) {
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
          // Parking: this thread's OpenMP workers would otherwise count against every other
          // thread's spinning until its next job (openmp_team.h).
          lock.unlock();
          idle.release();
          lock.lock();
        }
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
    running_ = true;
    lock.unlock();
    startJob();
    {
      RunningCall running;
      // Guards (InferenceMode, grad mode) are thread-local: the work sets them itself, per job.
      const auto began = std::chrono::steady_clock::now();
      job->outcome.run(job->work);
      job->finishedAt = std::chrono::steady_clock::now();
      lastRunNs_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(job->finishedAt - began).count(),
                       std::memory_order_relaxed);
      job->work = nullptr;  // drop the arguments here rather than on the JS thread
    }
    lock.lock();
    running_ = false;
    idle_.notify_all();
    if (abandoned_) {
      // Nobody waits for it any more and the env may be gone: no settling, no thread-safe function.
      lock.unlock();
      job.reset();
      return;
    }
    done_.push_back(std::move(job));
    hasDone_.store(true, std::memory_order_release);
    // A polling JS thread takes it by itself. Otherwise one wake-up of the JS thread settles
    // everything done by the time it runs. jsPolling_ is read under the lock that also guards
    // done_, and the JS thread clears it in the same critical section as its last look at done_:
    // either it sees this job there, or this sees the flag cleared and calls the function.
    if (!deliveryScheduled_ && !jsPolling_) {
      deliveryScheduled_ = true;
      lock.unlock();
      tsfn_.NonBlockingCall();
      lock.lock();
    }
  }
}

void deliverModuleJobs(Napi::Env env, Napi::Function, ModuleExecutor* executor, void*) {
  if (env == nullptr || executor == nullptr) return;  // aborted at env teardown
  // Nothing may escape: node-addon-api would rethrow it into JS, and while a worker is being
  // terminated that rethrow fails too and terminates the whole process.
  try {
    executor->deliver(env);
  } catch (...) {
    napi_value error = nullptr;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) napi_fatal_exception(env, error);
  }
}

void ModuleExecutor::deliver(Napi::Env env) {
  // Settling runs JS (promise hooks, conversions): the module may be disposed or finalized meanwhile.
  std::shared_ptr<ModuleExecutor> keep = shared_from_this();
  Jobs done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    deliveryScheduled_ = false;
    done.swap(done_);
    hasDone_.store(false, std::memory_order_relaxed);
  }
  napi_value uncaught = nullptr;
  settle(env, done, uncaught);
  if (uncaught != nullptr) napi_fatal_exception(env, uncaught);
}

bool ModuleExecutor::poll(Napi::Env env, std::chrono::steady_clock::time_point now, napi_value& uncaught) {
  if (!inPoller_ || finished_) return false;
  const bool expired = now >= pollUntil_;
  Jobs done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done.swap(done_);
    hasDone_.store(false, std::memory_order_relaxed);
    // Out of time with nothing finished: from here on the thread calls the function itself.
    if (done.empty() && expired) jsPolling_ = false;
  }
  if (done.empty()) {
    if (expired) inPoller_ = false;
    return inPoller_;
  }
  const auto window = pollBudget();
  pollUntil_ = now + window;  // progress: keep polling for the calls still queued
  // Picked up more than a window after it finished: the JS thread was not running while it
  // polled (more runnable threads than cores; a polling thread that yields can wait behind them
  // for whole time slices, measured at 1-3 ms per call with the load average at 6 on 2 cores),
  // where sleeping in epoll and being woken gets it back sooner. Stop polling for a while, twice
  // as long each time it happens again; one prompt pickup resets that.
  // (Counted from the last submit when that came later: a JS thread busy queueing a batch is not
  // one that polls late.)
  if (now - std::max(done.front()->finishedAt, lastSubmitAt_) > window) {
    pollBackoff_ = std::clamp<std::chrono::steady_clock::duration>(pollBackoff_ * 2, std::chrono::milliseconds(10),
                                                                    std::chrono::seconds(1));
    noPollUntil_ = now + pollBackoff_;
    settle(env, done, uncaught);
    stopPolling();
    return false;
  }
  pollBackoff_ = {};
  settle(env, done, uncaught);
  return inPoller_;
}

void ModuleExecutor::stopPolling() {
  if (!inPoller_) return;
  inPoller_ = false;
  bool post;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jsPolling_ = false;
    // Finished jobs left in done_ need the wake-up the thread skipped for them.
    post = !done_.empty() && !deliveryScheduled_ && !finished_;
    if (post) deliveryScheduled_ = true;
  }
  if (post) tsfn_.NonBlockingCall();
  if (JsPoller* poller = JsPoller::current()) poller->remove(this);
}

void ModuleExecutor::settle(Napi::Env env, Jobs& done, napi_value& uncaught) {
  // A JS exception while settling one job (a throwing DoveError constructor) must not strand the
  // others: settle them all, then let the first such exception reach JS.
  for (auto& job : done) {
    --pending_;
    try {
      job->outcome.settle(env, job->deferred, job->toJs, job->inputs, job->what);
    } catch (const Napi::Error& e) {
      // Keep the value, not a copy of the Error: copying reads its message, which throws again
      // while a worker is being terminated.
      if (uncaught == nullptr) {
        try {
          uncaught = e.Value();
        } catch (...) {
        }
      }
    }
    job.reset();
  }
  if (pending_ == 0 && !finished_) {
    // Nothing left to poll for.
    if (inPoller_) stopPolling();
    Hold hold = hold_;  // finish() clears hold_, but the module must still be let go
    if (closing_) {
      finish(false, std::chrono::steady_clock::now() + stopWait());
    } else {
      tsfn_.Unref(env);
    }
    if (hold) hold(false);
  }
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
  if (pending_ == 0) finish(false, std::chrono::steady_clock::now() + stopWait());
}

void ModuleExecutor::shutdown(std::chrono::steady_clock::time_point deadline) {
  if (finished_) return;
  if (!started_) {
    finished_ = true;
    return;
  }
  finish(true, deadline);
}

void ModuleExecutor::finish(bool abort, std::chrono::steady_clock::time_point deadline) {
  if (inPoller_) {
    inPoller_ = false;
    if (JsPoller* poller = JsPoller::current()) poller->remove(this);
  }
  finished_ = true;
  liveExecutors.erase(std::remove(liveExecutors.begin(), liveExecutors.end(), this), liveExecutors.end());
  stop_ = true;
  bool abandon = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.notify_all();
    // Waited on the system clock: a steady-clock wait compiles to pthread_cond_clockwait (glibc 2.30+),
    // above the prebuilt addon's glibc 2.28 baseline; the deadline itself stays steady.
    const auto remaining = deadline - std::chrono::steady_clock::now();
    idle_.wait_until(lock, std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(remaining),
                     [this] { return !running_; });
    if (running_) {
      abandoned_ = true;
      abandonedSelf_ = shared_from_this();
      abandon = true;
    }
  }
  wake_.notify_all();
  if (abandon) {
    thread_.detach();
  } else if (thread_.joinable()) {
    thread_.join();
  }
  // The thread is gone or abandoned: nothing calls the thread-safe function any more.
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dropped.swap(queue_);
    queued_ = 0;
    if (abort) {
      for (auto& job : done_) dropped.push_back(std::move(job));
      done_.clear();
    }
  }
  if (abort && rejectDropped_) {
    // Process 'exit' (shutdownAll): JS still runs, so settle what is dropped. Nobody will see it
    // (no microtask runs after 'exit'), but Node frees a promise's napi_deferred only when it is
    // settled: each one left was a LeakSanitizer record. At env teardown this is not possible.
    for (auto& job : dropped) {
      try {
        Napi::Env env = job->deferred.Env();
        job->deferred.Reject(makeError(env, "DISPOSED", "Module '" + name_ + "': the process exited before this call settled").Value());
      } catch (...) {
      }
    }
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

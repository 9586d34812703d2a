// Shared declarations of the native addon: error translation, tensor/module wrapping, IValue
// conversion, the promise worker and the self-registration of each source file's exports.
// Implementations live in error_*.cpp, tensor_*.cpp, module_*.cpp, ivalue_*.cpp.
#pragma once

#include <napi.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "exit_guard.h"
#include "glibc_baseline.h"

namespace dove {

// ---------------------------------------------------------------------------------------------
// Errors. Native code throws DoveException (or lets c10::Error / std::exception escape); the
// binding boundary turns it into an instance of the JS DoveError class registered through
// setErrorClass, carrying a stable `code` (see NativeErrorCode in binding.d.ts).
struct DoveException : std::runtime_error {
  DoveException(std::string code, const std::string& message)
      : std::runtime_error(message), code(std::move(code)) {}
  std::string code;
};

[[noreturn]] inline void fail(const std::string& code, const std::string& message) {
  throw DoveException(code, message);
}

#define DOVE_CHECK(cond, code, msg)                                 \
  do {                                                              \
    if (!(cond)) ::dove::fail((code), (msg));                       \
  } while (0)

// Builds a JS DoveError (falls back to Error before setErrorClass was called).
Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message);
// Classifies an in-flight exception (DoveException, c10::Error, std::exception, unknown) into
// (code, message). Safe on any thread: it does not touch JS.
std::pair<std::string, std::string> classifyException(std::exception_ptr error);
// Called from a catch block: rethrows the exception in flight as a DoveError (a Napi::Error, which
// is already a JS exception, as itself).
[[noreturn]] void rethrowAsDoveError(Napi::Env env);
// Wraps a JS-thread callback so any C++ exception becomes a thrown DoveError, never an abort. A
// template, not a std::function: the bodies capture more than std::function stores inline, and a
// heap allocation per binding call shows in runSync's per-call cost.
template <typename Body>
Napi::Value guard(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (...) {
    rethrowAsDoveError(env);
  }
}

// ---------------------------------------------------------------------------------------------
// Tensors. A tensor handle (a napi External, see tensor_wrap.cpp) owns a heap at::Tensor; memory
// libtorch allocated is reported to V8.
Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor);
bool isTensor(Napi::Value value);
// How a JS value reads in an error message: "null", "string 'abc'", "a typed array (...)", "an object".
std::string describeValue(Napi::Value value);
// Throws DoveException INVALID_ARGUMENT (not a tensor) / DISPOSED.
at::Tensor unwrapTensor(Napi::Value value, const char* what = "tensor");
std::string deviceString(const c10::Device& device);
// Parses 'cpu' / 'cuda' / 'cuda:N'; throws DEVICE_UNAVAILABLE when no such device exists.
c10::Device parseDevice(const std::string& spec);
std::string dtypeName(at::ScalarType type);
// Validates a JS array of non-negative safe integers (INVALID_ARGUMENT naming `what`).
std::vector<int64_t> shapeFromJs(Napi::Value value, const char* what);
at::ScalarType parseDtype(const std::string& name);

// ---------------------------------------------------------------------------------------------
// Modules. One ModuleHandle per loaded TorchScript file; `mutex` serialises every native use
// (runs, training steps, saves) so calls on one module never race.
struct ModuleHandle {
  torch::jit::Module module;
  std::string path;
  c10::Device device{c10::kCPU};
  std::mutex mutex;
  // Atomic: dispose() on the JS thread may race a queued job that checks it under `mutex`.
  std::atomic<bool> disposed{false};
};
std::shared_ptr<ModuleHandle> unwrapModule(Napi::Value value);

// ---------------------------------------------------------------------------------------------
// IValue conversion. toIValue runs on the JS thread and is guided by the expected TorchScript type
// (from the method schema) so JS arrays become List or Tuple and numbers int or float as declared.
c10::IValue toIValue(Napi::Env env, Napi::Value value, const c10::TypePtr& expected, const std::string& where);
// Converts a result back to JS on the JS thread (tensors are wrapped without copies).
Napi::Value fromIValue(Napi::Env env, const c10::IValue& value);
// Converts JS args against a method schema (skipping `self`), filling defaults for missing args.
std::vector<c10::IValue> argsForSchema(Napi::Env env, const c10::FunctionSchema& schema, Napi::Array args);

// ---------------------------------------------------------------------------------------------
// Per-env state (napi instance data). addon.cpp owns the env's single instance-data slot: other
// files must not call Env::SetInstanceData; store ObjectWrap constructors in `classes` instead.
struct ReleaseQueue;  // tensor_wrap.cpp: JS references released on the JS thread
struct AddonState {
  Napi::FunctionReference errorClass;
  std::map<std::string, Napi::FunctionReference> classes;
  std::shared_ptr<ReleaseQueue> releaseQueue;
  std::thread::id jsThread;
  // For tensorFromArray (tensor_wrap.cpp): Node's markAsUntransferable, handed over by lib/native.ts
  // (setBufferPin), and the ArrayBuffer.prototype.resizable getter, taken at addon init.
  Napi::FunctionReference bufferPin;
  Napi::FunctionReference resizableGetter;
};
AddonState& addonState(Napi::Env env);

// Intra-op thread count is per OS thread under OpenMP: a libuv worker applies the latest
// setNumThreads value before each job (cheap: one atomic load when nothing changed).
void applyThreadSettings();

// The JS-backed tensors (tensors over JS ArrayBuffers) an async job reads, kept until the job
// settles, when the JS thread checks them again (tensor_wrap.cpp, "JS-backed memory"): a buffer
// detached or shrunk while the job was queued or running fails the job with INVALID_ARGUMENT rather
// than hand back results computed from memory that changed owner. Copyable (it rides in the job's
// result converter); destroyed on any thread.
class JsInputs {
 public:
  // JS thread: remembers the JS-backed tensors in `value` (tensors inside lists, tuples and dicts too).
  void add(const c10::IValue& value);
  void add(const at::Tensor& tensor);
  static JsInputs of(std::initializer_list<at::Tensor> tensors) {
    JsInputs inputs;
    for (const at::Tensor& t : tensors) inputs.add(t);
    return inputs;
  }
  // JS thread: throws DoveException INVALID_ARGUMENT naming `what` when one of them lost its memory.
  void verify(napi_env env, const std::string& what) const;

 private:
  std::vector<at::Tensor> tensors_;
};

// ---------------------------------------------------------------------------------------------
// What a job produced on a worker thread: its result, or the (code, message) of what it threw.
// PromiseWorker and the per-module executor (module_executor.h) both settle through it, so a job
// rejects with the same DoveError whichever thread ran it.
template <typename Result>
class JobOutcome {
 public:
  using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;

  // Worker thread. Applies setNumThreads first (OpenMP counts are per OS thread).
  template <typename Work>
  void run(Work& work) {
    try {
      applyThreadSettings();
      value_ = std::make_unique<Result>(work());
    } catch (...) {
      std::tie(code_, message_) = classifyException(std::current_exception());
      if (code_.empty()) code_ = "INTERNAL";
    }
  }

  // JS thread: resolves with toJs(result) or rejects with a DoveError (also when toJs throws, or
  // when one of the job's JS-backed `inputs` lost its memory while the job ran: its result would
  // have been computed from memory that changed owner).
  void settle(Napi::Env env, const Napi::Promise::Deferred& deferred, const ToJs& toJs, const JsInputs& inputs,
              const std::string& what) {
    Napi::HandleScope scope(env);
    if (!value_) {
      deferred.Reject(makeError(env, code_.empty() ? "INTERNAL" : code_, message_).Value());
      return;
    }
    try {
      inputs.verify(env, what);
      deferred.Resolve(toJs(env, *value_));
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (...) {
      auto [code, message] = classifyException(std::current_exception());
      deferred.Reject(makeError(env, code, message).Value());
    }
  }

 private:
  std::unique_ptr<Result> value_;
  std::string code_;
  std::string message_;
};

// Promise worker: `work` runs on a libuv worker thread and returns a value; `toJs` converts it on
// the JS thread. Exceptions from `work` reject the promise with a DoveError. Keep-alive: any JS
// objects the job needs are held by `keepAlive` references until it settles.
template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using ToJs = typename JobOutcome<Result>::ToJs;

  // `inputs`: the JS-backed tensors `work` reads, checked again before the promise settles.
  static Napi::Promise Start(Napi::Env env, const char* name, Work work, ToJs toJs,
                             std::vector<Napi::Value> keepAlive = {}, JsInputs inputs = {}) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(toJs));
    worker->inputs_ = std::move(inputs);
    worker->name_ = name;
    for (auto& v : keepAlive) {
      if (v.IsObject()) worker->refs_.emplace_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    auto promise = worker->deferred_.Promise();
    worker->Queue();  // libuv owns the worker from here; it deletes itself after OnOK.
    return promise;
  }

 protected:
  // Failures travel in outcome_ rather than SetError, so OnOK settles both ways.
  void Execute() override {
    RunningCall running;
    outcome_.run(work_);
  }
  void OnOK() override { outcome_.settle(Env(), deferred_, toJs_, inputs_, name_); }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, ToJs toJs)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), toJs_(std::move(toJs)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  ToJs toJs_;
  JobOutcome<Result> outcome_;
  std::vector<Napi::ObjectReference> refs_;
  JsInputs inputs_;
  std::string name_;
};

// ---------------------------------------------------------------------------------------------
// Self-registration: each source file adds its exports with a static Registrar, so files can be
// added without touching a central list.
using ExportInit = void (*)(Napi::Env env, Napi::Object exports);
std::vector<ExportInit>& exportInits();
struct Registrar {
  explicit Registrar(ExportInit init) { exportInits().push_back(init); }
};

}  // namespace dove

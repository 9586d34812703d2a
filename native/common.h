// Shared declarations of the native addon: error translation, tensor/module wrapping, IValue
// conversion, the promise worker, argument checks, the native object base and each file's init.
// Implementations live in error_*.cpp, tensor_*.cpp, module_*.cpp, ivalue_*.cpp.
#pragma once

#include <napi.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "exit_guard.h"
#include "glibc_baseline.h"
#include "openmp_team.h"

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
  // For tensorFromArray (tensor_wrap.cpp): Node's markAsUntransferable, handed over by lib/core/native.ts
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
    startJob();
    outcome_.run(work_);
    // libuv's pool threads live on, and so would the OpenMP team this job started (openmp_team.h).
    releaseOpenMpTeam();
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
// Arguments. Each check on a value from JS throws DoveException INVALID_ARGUMENT with the message
// lib/ uses too: "Expected integer between 1 and 256 for maxTokens but received 0".
inline std::string numberText(double d) {
  std::ostringstream out;
  if (std::trunc(d) == d && std::fabs(d) < 1e16) out << static_cast<int64_t>(d);
  else out << d;
  return out.str();
}
inline double numberIn(Napi::Value v, const char* name, double lo, double hi, bool integer = false) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
  DOVE_CHECK(d >= lo && d <= hi && (!integer || std::trunc(d) == d), "INVALID_ARGUMENT",
             std::string("Expected ") + (integer ? "integer" : "number") + " between " + numberText(lo) + " and " +
                 numberText(hi) + " for " + name + " but received " + v.ToString().Utf8Value());
  return d;
}
inline int64_t integerIn(Napi::Value v, const char* name, double lo, double hi) {
  return static_cast<int64_t>(numberIn(v, name, lo, hi, true));
}
inline bool booleanArg(Napi::Value v, const char* name) {
  DOVE_CHECK(v.IsBoolean(), "INVALID_ARGUMENT", std::string("Expected boolean for ") + name + " but received " + v.ToString().Utf8Value());
  return v.As<Napi::Boolean>().Value();
}
// An optional argument: absent, undefined and null all leave the default.
inline bool given(Napi::Value v) { return !v.IsUndefined() && !v.IsNull(); }
inline std::string stringArg(Napi::Value v, const std::string& expected, bool allowEmpty = false) {
  DOVE_CHECK(v.IsString() && (allowEmpty || !v.As<Napi::String>().Utf8Value().empty()), "INVALID_ARGUMENT",
             "Expected " + expected + " but received " + v.ToString().Utf8Value());
  return v.As<Napi::String>().Utf8Value();
}

// ---------------------------------------------------------------------------------------------
// Native objects. Every object JS holds beyond a tensor (a module, a compiled model, a train engine,
// a process group) is a NativeWrap: an ObjectWrap class registered in AddonState::classes under
// Wrap::kName, which only native code constructs. Its C++ payload reaches the constructor through a
// slot set around the `new`: a napi External argument would do the same, but Node frees an
// External's wrapper only when the GC collects it, and each one left at exit is a LeakSanitizer
// record (asan.md).
template <typename Wrap, typename Payload>
class NativeWrap : public Napi::ObjectWrap<Wrap> {
 public:
  using Props = std::vector<typename Napi::ObjectWrap<Wrap>::PropertyDescriptor>;
  static void define(Napi::Env env, const Props& props) {
    addonState(env).classes[Wrap::kName] = Napi::Persistent(Napi::ObjectWrap<Wrap>::DefineClass(env, Wrap::kName, props));
  }
  // An instance method run under guard(), so its body throws C++ exceptions freely.
  template <Napi::Value (Wrap::*Method)(const Napi::CallbackInfo&)>
  static typename Napi::ObjectWrap<Wrap>::PropertyDescriptor method(const char* name) {
    return Napi::ObjectWrap<Wrap>::InstanceMethod(name, &NativeWrap::guarded<Method>);
  }
  // JS thread: a new instance built from `payload`.
  static Napi::Value create(Napi::Env env, Payload& payload) {
    slot_ = &payload;
    struct Clear {
      ~Clear() { slot_ = nullptr; }
    } clear;  // also when the constructor throws
    return addonState(env).classes.at(Wrap::kName).New({});
  }
  // The instance behind `value`; INVALID_ARGUMENT saying `expected` for anything else.
  static Wrap& unwrap(Napi::Value value, const char* expected) {
    DOVE_CHECK(value.IsObject() && value.As<Napi::Object>().InstanceOf(addonState(value.Env()).classes.at(Wrap::kName).Value()),
               "INVALID_ARGUMENT", std::string("Expected ") + expected);
    return *Napi::ObjectWrap<Wrap>::Unwrap(value.As<Napi::Object>());
  }

 protected:
  explicit NativeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Wrap>(info), payload_(std::exchange(slot_, nullptr)) {
    if (payload_ == nullptr) {
      throw makeError(info.Env(), "INVALID_ARGUMENT", std::string(Wrap::kName) + " cannot be constructed from JS");
    }
  }
  // Valid during the derived constructor only.
  Payload& payload() const { return *payload_; }

 private:
  template <Napi::Value (Wrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value guarded(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (static_cast<Wrap*>(this)->*Method)(info); });
  }

  static inline thread_local Payload* slot_ = nullptr;
  Payload* payload_;
};

// ---------------------------------------------------------------------------------------------
// Registration: addon.cpp calls each file's init, in one explicit list. exportFunctions runs every
// function it exports under guard(), so their bodies throw C++ exceptions freely.
using Exported = std::pair<const char*, Napi::Function::Callback>;
inline void exportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Exported> functions) {
  for (const auto& [name, callback] : functions) {
    auto guarded = [](const Napi::CallbackInfo& info) -> Napi::Value {
      return guard(info.Env(), [&] { return reinterpret_cast<Napi::Function::Callback>(info.Data())(info); });
    };
    exports.Set(name, Napi::Function::New(env, guarded, name, reinterpret_cast<void*>(callback)));
  }
}
void initErrors(Napi::Env env, Napi::Object exports);        // error_translate.cpp
void initTensors(Napi::Env env, Napi::Object exports);       // tensor_wrap.cpp
void initRuntime(Napi::Env env, Napi::Object exports);       // runtime.cpp
void initModules(Napi::Env env, Napi::Object exports);       // module_wrap.cpp
void initCompiled(Napi::Env env, Napi::Object exports);      // compiled_model.cpp
void initTrainEngine(Napi::Env env, Napi::Object exports);   // train_engine.cpp
void initProcessGroups(Napi::Env env, Napi::Object exports); // dist_gloo.cpp
void initModelInspect(Napi::Env env, Napi::Object exports);  // model_inspect.cpp
void initEvalFid(Napi::Env env, Napi::Object exports);       // eval_fid.cpp
void initEvalProbe(Napi::Env env, Napi::Object exports);     // eval_probe.cpp

}  // namespace dove

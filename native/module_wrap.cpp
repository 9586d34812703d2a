// TorchScript modules: async load, method runs on the module's own worker thread (module_executor.h)
// or, opt-in, synchronously on the JS thread; atomic save. Every native use of a module takes
// ModuleHandle::mutex, so runs on one module are serialised while different modules run in parallel.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <torch/csrc/jit/serialization/export.h>

#include "atomic_file.h"
#include "common.h"
#include "cpu_block_cache.h"
#include "model_inspect.h"
#include "module_executor.h"
#include "module_optimize.h"
#include "weights_hash.h"

namespace dove {
namespace {

namespace fs = std::filesystem;

// Runs `method` (a method's function) of a module whose mutex the caller holds, in the mode the
// call was made in. The guards are thread-local, so they are set here on whichever thread runs the
// call. It calls the function with `self` put in front, as Method::operator() does, but without
// the torch::jit::Module that operator builds for `self` on every call (a mutex and a dict
// allocated, more instructions than the rest of a no-op call; docs/NATIVE.md).
c10::IValue invokeLocked(ModuleHandle& h, torch::jit::Function& method, std::vector<c10::IValue> args, bool training) {
  if (h.module.is_training() != training) h.module.train(training);
  args.insert(args.begin(), h.module._ivalue());
  if (training) {
    // Training: the trainer needs the autograd graph of what this returns.
    c10::AutoGradMode grad(true);
    return method(std::move(args));
  }
  c10::InferenceMode inference;
  return method(std::move(args));
}

// The JS view of a loaded module. The handle is shared with in-flight jobs, and this object holds a
// strong reference to itself (ObjectWrap::Ref) while its executor has jobs, so neither goes away
// mid-run.
struct Loaded {
  std::shared_ptr<ModuleHandle> handle;
  std::map<std::string, std::string> extraFiles;
  int64_t nbytes = 0;
  std::optional<std::string> weightsHash;  // when asked for at load
};

class ModuleWrap : public NativeWrap<ModuleWrap, Loaded> {
 public:
  static constexpr const char* kName = "NativeModule";
  static void define(Napi::Env env) {
    NativeWrap::define(env, {
        InstanceAccessor<&ModuleWrap::Path>("path"),
        InstanceAccessor<&ModuleWrap::Device>("device"),
        InstanceAccessor<&ModuleWrap::Disposed>("disposed"),
        InstanceAccessor<&ModuleWrap::ExtraFiles>("extraFiles"),
        InstanceAccessor<&ModuleWrap::Training>("training"),
        InstanceAccessor<&ModuleWrap::Nbytes>("nbytes"),
        InstanceAccessor<&ModuleWrap::WeightsHash>("weightsHash"),
        method<&ModuleWrap::MethodNames>("methodNames"),
        method<&ModuleWrap::MethodSchema>("methodSchema"),
        method<&ModuleWrap::Run>("run"),
        method<&ModuleWrap::RunSync>("runSync"),
        method<&ModuleWrap::Train>("train"),
        method<&ModuleWrap::Parameters>("parameters"),
        method<&ModuleWrap::NamedParameters>("namedParameters"),
        method<&ModuleWrap::Save>("save"),
        method<&ModuleWrap::Dispose>("dispose"),
    });
  }

  explicit ModuleWrap(const Napi::CallbackInfo& info)
      : NativeWrap(info), handle_(payload().handle), nbytes_(payload().nbytes), weightsHash_(payload().weightsHash) {
    Napi::Env env = info.Env();
    Napi::Object extra = Napi::Object::New(env);
    for (const auto& [name, content] : payload().extraFiles) extra.Set(name, Napi::String::New(env, content));
    extra.Freeze();
    extraFiles_ = Napi::Persistent(extra);
    if (nbytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, nbytes_);
    executor_ = ModuleExecutor::create(handle_->path, [this](bool busy) { busy ? Ref() : Unref(); });
  }

  ~ModuleWrap() override {
    executor_->shutdown();
    releaseMemory(Env());
  }

  const std::shared_ptr<ModuleHandle>& handle() const {
    DOVE_CHECK(!handle_->disposed, "DISPOSED", "Module '" + handle_->path + "' was used after dispose()");
    return handle_;
  }

 private:
  void releaseMemory(Napi::Env env) {
    if (nbytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -nbytes_);
    nbytes_ = 0;
  }

  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), handle_->path); }
  Napi::Value Device(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), deviceString(handle_->device));
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), handle_->disposed); }
  Napi::Value ExtraFiles(const Napi::CallbackInfo& info) { return extraFiles_.Value(); }
  Napi::Value Nbytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(nbytes_)); }
  Napi::Value WeightsHash(const Napi::CallbackInfo& info) {
    if (!weightsHash_) return info.Env().Null();
    return Napi::String::New(info.Env(), *weightsHash_);
  }

  Napi::Value Training(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), training_); }

  Napi::Value MethodNames(const Napi::CallbackInfo& info) {
    // Method lookup only reads the (immutable) class type: no lock, so it never waits on a run.
    const auto methods = handle()->module.get_methods();
    Napi::Array out = Napi::Array::New(info.Env(), methods.size());
    for (std::size_t i = 0; i < methods.size(); ++i) out.Set(i, Napi::String::New(info.Env(), methods[i].name()));
    return Napi::Value(out);
  }

  // The method called `name`. The last one found is kept: a caller looping over runSync asks for
  // the same method each time, and find_method is a scan with string compares plus a Method copy.
  // The cache holds the module object, so dispose() clears it.
  const torch::jit::Method& methodNamed(const std::string& name) {
    const auto& h = handle();
    if (lastMethod_ && lastMethodName_ == name) return *lastMethod_;
    std::optional<torch::jit::Method> found = h->module.find_method(name);
    if (!found) {
      std::string names;
      for (const auto& m : h->module.get_methods()) names += (names.empty() ? "" : ", ") + m.name();
      fail("METHOD_NOT_FOUND", "Module '" + h->path + "' has no method '" + name + "' (methods: " + names + ")");
    }
    lastMethod_ = std::move(found);
    lastMethodName_ = name;
    return *lastMethod_;
  }

  static std::string methodName(const Napi::CallbackInfo& info, const char* call) {
    DOVE_CHECK(info.Length() >= 1 && info[0].IsString(), "INVALID_ARGUMENT",
               std::string("Expected method name string for ") + call);
    return info[0].As<Napi::String>().Utf8Value();
  }

  Napi::Value MethodSchema(const Napi::CallbackInfo& info) {
    std::ostringstream out;
    out << methodNamed(methodName(info, "methodSchema(name)")).function().getSchema();
    return Napi::Value(Napi::String::New(info.Env(), out.str()));
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = methodName(info, "run(method, args)");
    DOVE_CHECK(info.Length() >= 2 && info[1].IsArray(), "INVALID_ARGUMENT",
               "Expected an array of arguments for run('" + name + "', args)");
    const torch::jit::Method& m = methodNamed(name);
    // Conversion happens here on the JS thread: JS values cannot be read from the worker.
    auto args = std::make_shared<std::vector<c10::IValue>>(
        argsForSchema(env, m.function().getSchema(), info[1].As<Napi::Array>()));
    std::shared_ptr<ModuleHandle> h = handle();
    const bool training = training_;  // the mode as of this call, whatever train() does later
    // The function found above, not a second lookup by name on the worker. It belongs to the
    // module's compilation unit, which lives until dispose() replaces the module under the
    // mutex; the job uses it only after seeing, under that mutex, that dispose() has not run.
    torch::jit::Function* fn = &m.function();
    JsInputs inputs;
    for (const c10::IValue& arg : *args) inputs.add(arg);
    return executor_->submit(
        env,
        [h, name, fn, args, training]() -> c10::IValue {
          std::lock_guard<std::mutex> lock(h->mutex);
          DOVE_CHECK(!h->disposed, "DISPOSED", "Module '" + h->path + "' was disposed before '" + name + "' ran");
          c10::IValue result = invokeLocked(*h, *fn, std::move(*args), training);
          // dispose() during the run could not free the weights; do it now.
          if (h->disposed) h->module = torch::jit::Module();
          return result;
        },
        [](Napi::Env env, c10::IValue& result) { return fromIValue(env, result); }, std::move(inputs),
        "run('" + name + "')");
  }

  // The same call on the JS thread, for methods so small that the hop to the module's thread and
  // back costs more than they do. It never waits: queued async calls must run first to keep call
  // order, and a training step holding the mutex may take seconds, so both are BUSY instead.
  Napi::Value RunSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = methodName(info, "runSync(method, args)");
    DOVE_CHECK(info.Length() >= 2 && info[1].IsArray(), "INVALID_ARGUMENT",
               "Expected an array of arguments for runSync('" + name + "', args)");
    const torch::jit::Method& m = methodNamed(name);
    std::vector<c10::IValue> args = argsForSchema(env, m.function().getSchema(), info[1].As<Napi::Array>());
    const std::shared_ptr<ModuleHandle>& h = handle();
    DOVE_CHECK(executor_->pending() == 0, "BUSY",
               "runSync('" + name + "') on module '" + h->path + "' while " + std::to_string(executor_->pending()) +
                   " async call(s) on it are queued or running; await them before calling runSync");
    std::unique_lock<std::mutex> lock(h->mutex, std::try_to_lock);
    DOVE_CHECK(lock.owns_lock(), "BUSY",
               "runSync('" + name + "') on module '" + h->path + "' while another native call (e.g. a training step) uses it");
    applyThreadSettings();
    c10::IValue result = invokeLocked(*h, m.function(), std::move(args), training_);
    lock.unlock();
    return fromIValue(env, result);
  }

  Napi::Value Train(const Napi::CallbackInfo& info) {
    DOVE_CHECK(info.Length() >= 1 && info[0].IsBoolean(), "INVALID_ARGUMENT", "Expected boolean for train(on)");
    const auto& h = handle();
    training_ = info[0].As<Napi::Boolean>().Value();
    // Each run applies the mode it was called with, so this never waits for a running call
    // (switching under a running method would change dropout halfway through it). When the
    // module is idle, apply it now so other users of the handle (the train engine) see it.
    std::unique_lock<std::mutex> lock(h->mutex, std::try_to_lock);
    if (lock.owns_lock()) h->module.train(training_);
    return info.Env().Undefined();
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    const auto& h = handle();
    // No lock: listing parameters only reads the module's slots, as a running method does, so
    // it never waits for a long call.
    Napi::Array out = Napi::Array::New(info.Env());
    uint32_t i = 0;
    for (const at::Tensor& p : h->module.parameters(true)) out.Set(i++, wrapTensor(info.Env(), p));
    return out;
  }

  Napi::Value NamedParameters(const Napi::CallbackInfo& info) {
    const auto& h = handle();
    Napi::Object out = Napi::Object::New(info.Env());
    for (const auto& p : h->module.named_parameters(true)) out.Set(p.name, wrapTensor(info.Env(), p.value));
    return out;
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DOVE_CHECK(info.Length() >= 1 && info[0].IsString(), "INVALID_ARGUMENT", "Expected path string for save(path, extraFiles)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    DOVE_CHECK(!path.empty(), "INVALID_ARGUMENT", "Expected a non-empty path for save(path, extraFiles)");
    torch::jit::ExtraFilesMap extra;
    if (info.Length() >= 2 && !info[1].IsUndefined() && !info[1].IsNull()) {
      DOVE_CHECK(info[1].IsObject() && !info[1].IsArray(), "INVALID_ARGUMENT",
                 "Expected an object of name -> string for extraFiles of save(path, extraFiles)");
      Napi::Object files = info[1].As<Napi::Object>();
      Napi::Array names = files.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string name = names.Get(i).ToString().Utf8Value();
        Napi::Value content = files.Get(name);
        DOVE_CHECK(content.IsString(), "INVALID_ARGUMENT", "Expected string content for extraFiles['" + name + "']");
        extra[name] = content.As<Napi::String>().Utf8Value();
      }
    }
    std::shared_ptr<ModuleHandle> h = handle();
    return executor_->submit(
        env,
        [h, path, extra]() -> c10::IValue {
          std::lock_guard<std::mutex> lock(h->mutex);
          DOVE_CHECK(!h->disposed, "DISPOSED", "Module '" + h->path + "' was disposed before save");
          saveAtomically(h->module, path, extra);
          return c10::IValue();
        },
        [](Napi::Env env, c10::IValue&) { return env.Undefined(); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!handle_->disposed.exchange(true)) {
      lastMethod_.reset();
      // A job that holds the lock finishes first; the module's memory goes when the last holder
      // of the handle (this object or that job) lets go, replacing it frees the weights now.
      std::unique_lock<std::mutex> lock(handle_->mutex, std::try_to_lock);
      if (lock.owns_lock()) handle_->module = torch::jit::Module();
      releaseMemory(info.Env());
      // Queued calls still run, each rejecting DISPOSED; the thread ends after the last of them.
      executor_->close(info.Env());
    }
    return info.Env().Undefined();
  }

  // Atomic (atomic_file.h): a crash or a full disk leaves the old file or the new one. libtorch
  // writes through a sink that never reports a short write, so its zip writer cannot throw from its
  // destructor (which would abort the process on a full disk).
  static void saveAtomically(const torch::jit::Module& module, const std::string& path,
                             const torch::jit::ExtraFilesMap& extra) {
    writeFileAtomically(path, "the module", [&](const ByteSink& sink) { torch::jit::ExportModule(module, sink, extra); });
  }

  std::shared_ptr<ModuleHandle> handle_;
  std::shared_ptr<ModuleExecutor> executor_;
  bool training_ = false;  // JS-thread view of the mode; loadOnWorker leaves modules in eval
  std::optional<torch::jit::Method> lastMethod_;  // see methodNamed()
  std::string lastMethodName_;
  Napi::ObjectReference extraFiles_;
  int64_t nbytes_ = 0;
  std::optional<std::string> weightsHash_;
};

bool isZipFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

Loaded loadOnWorker(const std::string& path, c10::Device device, const std::vector<std::string>& names,
                                bool optimize, bool trusted, bool hashWeights) {
  std::error_code ec;
  DOVE_CHECK(fs::exists(path, ec), "FILE_NOT_FOUND", "Model file '" + path + "' does not exist");
  DOVE_CHECK(fs::is_regular_file(path, ec), "NOT_TORCHSCRIPT", "'" + path + "' is not a file");
  {
    std::ifstream probe(path, std::ios::binary);
    DOVE_CHECK(probe.good(), "IO_ERROR", "Model file '" + path + "' cannot be read (permissions?)");
  }
  DOVE_CHECK(isZipFile(path), "NOT_TORCHSCRIPT",
             "'" + path + "' is not a TorchScript archive (no zip header); export it with torch.jit.script(...).save()");
  // Checked before libtorch reads or runs anything in it (model_inspect.h); the load reads the
  // very bytes that were checked.
  const auto archive = inspectModelFile(path, trusted);
  torch::jit::ExtraFilesMap extra;
  for (const auto& name : names) extra[name] = "";
  Loaded loaded;
  auto handle = std::make_shared<ModuleHandle>();
  try {
    handle->module = torch::jit::load(archive, device, extra);
  } catch (const c10::Error&) {
    auto [code, message] = classifyException(std::current_exception());
    fail("NOT_TORCHSCRIPT", "'" + path + "' could not be loaded as TorchScript: " + message);
  }
  checkModuleTensors(handle->module, path);
  // Inference is the default; the trainer switches to train(true) explicitly.
  handle->module.eval();
  handle->path = path;
  handle->device = device;
  // torch::jit::load leaves requested-but-absent names empty: report only the files present.
  for (const auto& [name, content] : extra) {
    if (!content.empty()) loaded.extraFiles[name] = content;
  }
  for (const auto& p : handle->module.parameters(true)) loaded.nbytes += static_cast<int64_t>(p.nbytes());
  for (const auto& b : handle->module.buffers(true)) loaded.nbytes += static_cast<int64_t>(b.nbytes());
  // Before optimising: freezing turns the weights into graph constants.
  if (hashWeights) loaded.weightsHash = weightsHash(handle->module);
  // Inference-only (module_optimize.h): frozen, conv weights channels_last; nbytes counted above.
  if (optimize) {
    installCpuBlockCache();
    handle->module = optimizeForInference(std::move(handle->module), device);
  }
  loaded.handle = std::move(handle);
  return loaded;
}

Napi::Value LoadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() >= 1 && info[0].IsString(), "INVALID_ARGUMENT",
             "Expected path string for loadModule(path, device, extraFileNames)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const c10::Device device =
      parseDevice(given(info[1]) ? stringArg(info[1], "a device string for loadModule(path, device, extraFileNames)", true) : "cpu");
  std::vector<std::string> names;
  if (given(info[2])) {
    DOVE_CHECK(info[2].IsArray(), "INVALID_ARGUMENT", "Expected an array of file names for extraFileNames");
    Napi::Array array = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value v = array.Get(i);
      DOVE_CHECK(v.IsString(), "INVALID_ARGUMENT", "Expected string for extraFileNames[" + std::to_string(i) + "]");
      names.push_back(v.As<Napi::String>().Utf8Value());
    }
  }
  const bool optimize = given(info[3]) && booleanArg(info[3], "optimize");
  const bool trusted = given(info[4]) && booleanArg(info[4], "trustModel");
  const bool hashWeights = given(info[5]) && booleanArg(info[5], "hashWeights");
  return PromiseWorker<Loaded>::Start(
      env, "dove.loadModule",
      [path, device, names, optimize, trusted, hashWeights]() {
        return loadOnWorker(path, device, names, optimize, trusted, hashWeights);
      },
      [](Napi::Env env, Loaded& loaded) { return ModuleWrap::create(env, loaded); });
}

}  // namespace

void initModules(Napi::Env env, Napi::Object exports) {
  ModuleWrap::define(env);
  exportFunctions(env, exports, {{"loadModule", LoadModule}});
  // process.exit() emits 'exit' and then runs static destructors (libtorch's among them): stop the
  // module threads first, whichever loader loaded the addon (see ModuleExecutor::shutdownAll), and
  // if a call still runs after the wait (one that never returns), end the process without running
  // destructors under it (exit_guard.h).
  Napi::Value process = env.Global().Get("process");
  if (process.IsObject()) {
    Napi::Value once = process.As<Napi::Object>().Get("once");
    if (once.IsFunction()) {
      once.As<Napi::Function>().Call(process, {Napi::String::New(env, "exit"), Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
        const auto deadline = std::chrono::steady_clock::now() + stopWait();
        ModuleExecutor::shutdownAll(deadline);
        guardProcessExit(deadline);
        return info.Env().Undefined();
      }, "doveStopModuleThreads")});
    }
  }
}

std::shared_ptr<ModuleHandle> unwrapModule(Napi::Value value) {
  return ModuleWrap::unwrap(value, "a module returned by loadModule").handle();
}

}  // namespace dove

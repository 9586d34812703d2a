// AOTInductor packages (python/dove/aoti_export.py): models of a .pt2 archive (DOVE's encode and
// decode), compiled ahead of time by PyTorch's inductor and loaded with libtorch's
// AOTIModelPackageLoader (libtorch_cpu). One loaded package is one native object with one executor
// thread (module_executor.h): its models' runs go there in call order, like a TorchScript module's
// methods. One thread also means one OpenMP team for an encode followed by a decode; with a thread
// per model, each call in turn started or woke the other thread's team, which an oversubscribed
// machine made up to 7x slower than the same calls back to back (docs/NATIVE.md, "OpenMP teams").
// The compiled code reads each input as a contiguous buffer of the sizes it was compiled for and
// checks none of them, so every call is checked here against the model's `dove.inputs` metadata first.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "common.h"
#include "module_executor.h"

namespace dove {
namespace {

namespace fs = std::filesystem;

// One input of a compiled model: dtype and, per dimension, the allowed sizes. The batch dimension
// ("b" in dove.inputs) must be the same in every input.
struct InputSpec {
  at::ScalarType dtype = at::kFloat;
  std::vector<std::pair<int64_t, int64_t>> sizes;  // inclusive [lo, hi]
  std::vector<bool> batch;
};

std::string describeSpec(const InputSpec& spec) {
  std::ostringstream out;
  out << dtypeName(spec.dtype) << "[";
  for (std::size_t i = 0; i < spec.sizes.size(); ++i) {
    if (i > 0) out << ",";
    if (spec.batch[i]) out << "B";
    else if (spec.sizes[i].first == spec.sizes[i].second) out << spec.sizes[i].first;
    else out << spec.sizes[i].first << ".." << spec.sizes[i].second;
  }
  return out.str() + "]";
}

int64_t parseSize(const std::string& text, const std::string& where) {
  std::size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DOVE_CHECK(used == text.size() && v >= 0, "NOT_DOVE_EXPORT", where + ": '" + text + "' is not a size");
  return v;
}

// "uint8[b,64,64,3] int64[b]" -> specs; throws NOT_DOVE_EXPORT naming the package on anything else.
std::vector<InputSpec> parseInputs(const std::string& text, int64_t maxBatch, const std::string& where) {
  std::vector<InputSpec> specs;
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    const auto open = word.find('[');
    DOVE_CHECK(open != std::string::npos && word.back() == ']', "NOT_DOVE_EXPORT", where + ": malformed dove.inputs '" + text + "'");
    InputSpec spec;
    try {
      spec.dtype = parseDtype(word.substr(0, open));
    } catch (const std::exception&) {
      fail("NOT_DOVE_EXPORT", where + ": unknown dtype in dove.inputs '" + text + "'");
    }
    std::istringstream dims(word.substr(open + 1, word.size() - open - 2));
    std::string dim;
    while (std::getline(dims, dim, ',')) {
      const auto range = dim.find("..");
      spec.batch.push_back(dim == "b");
      if (dim == "b") {
        spec.sizes.emplace_back(1, maxBatch);
      } else if (range != std::string::npos) {
        spec.sizes.emplace_back(parseSize(dim.substr(0, range), where), parseSize(dim.substr(range + 2), where));
      } else {
        const int64_t n = parseSize(dim, where);
        spec.sizes.emplace_back(n, n);
      }
    }
    specs.push_back(std::move(spec));
  }
  DOVE_CHECK(!specs.empty(), "NOT_DOVE_EXPORT", where + ": dove.inputs names no input");
  return specs;
}

// Inputs as the compiled code reads them: the declared dtypes and sizes, contiguous, on `device`.
std::vector<at::Tensor> checkedInputs(const std::vector<InputSpec>& specs, std::vector<at::Tensor> inputs,
                                      const c10::Device& device, const std::string& where) {
  DOVE_CHECK(inputs.size() == specs.size(), "INVALID_ARGUMENT",
             where + " takes " + std::to_string(specs.size()) + " input tensor(s) but received " + std::to_string(inputs.size()));
  int64_t batch = -1;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputSpec& spec = specs[i];
    at::Tensor& t = inputs[i];
    const std::string expected = "Expected " + describeSpec(spec) + " for input " + std::to_string(i) + " of " + where;
    DOVE_CHECK(t.scalar_type() == spec.dtype, "DTYPE_MISMATCH", expected + " but received dtype " + dtypeName(t.scalar_type()));
    bool fits = t.dim() == static_cast<int64_t>(spec.sizes.size());
    for (int64_t d = 0; fits && d < t.dim(); ++d) {
      const int64_t n = t.size(d);
      fits = n >= spec.sizes[d].first && n <= spec.sizes[d].second && (!spec.batch[d] || batch < 0 || n == batch);
      if (fits && spec.batch[d]) batch = n;
    }
    DOVE_CHECK(fits, "SHAPE_MISMATCH", expected + " (B the same in every input) but received shape " + c10::str(t.sizes()));
    DOVE_CHECK(t.device() == device, "INVALID_ARGUMENT", expected + " on " + deviceString(device) + " but received a tensor on " + deviceString(t.device()));
    if (!t.is_contiguous()) t = t.contiguous();
  }
  return inputs;
}

// How messages name one model of a package.
std::string modelWhere(const std::string& path, const std::string& model) {
  return "compiled model '" + model + "' of '" + path + "'";
}

// One model of the package: its loader and what its calls are checked against.
struct CompiledEntry {
  std::string model;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::vector<InputSpec> inputs;
  std::unordered_map<std::string, std::string> metadata;
};

struct CompiledHandle {
  std::string path;
  c10::Device device{c10::kCPU};
  std::vector<CompiledEntry> models;
  std::mutex mutex;  // held by a run, so dispose() never frees a loader under it
  std::atomic<bool> disposed{false};

  std::string where() const { return "compiled package '" + path + "'"; }
  std::string where(const std::string& model) const { return modelWhere(path, model); }
  // Nothing but the vector's own storage changes after loading, so the JS thread may look up here.
  CompiledEntry& entry(const std::string& model) {
    for (CompiledEntry& e : models)
      if (e.model == model) return e;
    std::string loaded;
    for (const CompiledEntry& e : models) loaded += (loaded.empty() ? "" : ", ") + e.model;
    fail("INVALID_ARGUMENT", "Expected one of the loaded models (" + loaded + ") of " + where() + " but received '" + model + "'");
  }
  void unload() {
    for (CompiledEntry& e : models) e.loader.reset();  // unloads the library, removes its temp files
  }
};
using CompiledPtr = std::shared_ptr<CompiledHandle>;

std::string metadataValue(const std::unordered_map<std::string, std::string>& metadata, const std::string& key,
                          const std::string& where) {
  const auto found = metadata.find(key);
  DOVE_CHECK(found != metadata.end() && !found->second.empty(), "NOT_DOVE_EXPORT",
             where + " has no " + key + " entry (not written by python -m dove.export --compiled)");
  return found->second;
}

// libtorch's package extraction (load_metadata_from_package, the loader's constructor) is not
// thread-safe: concurrent calls corrupted the heap or read another package's files. Runs and
// unloads do not need this lock.
std::mutex& extractionMutex() {
  static std::mutex mutex;
  return mutex;
}

std::unordered_map<std::string, std::string> readMetadata(const std::string& path, const std::string& model) {
  std::error_code ec;
  DOVE_CHECK(fs::exists(path, ec), "FILE_NOT_FOUND", "Compiled package '" + path + "' does not exist");
  DOVE_CHECK(fs::is_regular_file(path, ec), "NOT_DOVE_EXPORT", "'" + path + "' is not a file");
  try {
    std::lock_guard<std::mutex> lock(extractionMutex());
    return torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, model);
  } catch (const std::exception&) {
    auto [code, message] = classifyException(std::current_exception());
    fail("NOT_DOVE_EXPORT", "'" + path + "' has no compiled model '" + model + "' (not an AOTInductor package?): " + message);
  }
}

// The instruction sets inductor compiled for (torch._inductor.cpu_vec_isa names), as CPU features.
// A package compiled on a newer CPU would die of SIGILL here; this refuses it instead.
bool cpuSupports(const std::string& isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  std::istringstream words(isa);
  std::string word;
  while (words >> word) {
    bool ok = false;
    if (word == "avx2") ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    else if (word == "avx512")
      ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma");
    else if (word == "avx512_vnni") ok = __builtin_cpu_supports("avx512vnni");
    else if (word == "avx512_bf16") ok = __builtin_cpu_supports("avx512bf16");
    if (!ok) return false;
  }
  return true;
#else
  return isa.empty();
#endif
}

// A package's shared library names no libtorch library (python/dove/aoti_export.py, link_libtorch
// False: otherwise it names libtorch.so, which pulls in libtorch_cuda.so and which the platform
// package does not ship); it finds libtorch's C shim (aoti_torch_*) and c10 in the global scope. A
// local build loads libtorch_cpu.so / libc10.so as the addon's own dependencies, which stay local to
// it (a prebuilt addon's are global already, lib/core/libtorch-preload.ts): make them global, once.
// RTLD_NOLOAD opens nothing new; the handles are kept, as the libraries stay loaded anyway.
void exposeLibtorchGlobally() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : {"libc10.so", "libtorch_cpu.so"}) (void)dlopen(name, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  });
}

// A model's metadata, checked against this process (device, CPU instructions, dove.inputs).
CompiledEntry describeModel(const std::string& path, const std::string& model, const c10::Device& device) {
  CompiledEntry e;
  e.model = model;
  e.metadata = readMetadata(path, model);
  const std::string where = modelWhere(path, model);
  const std::string packageDevice = metadataValue(e.metadata, "dove.device", where);
  DOVE_CHECK(packageDevice == c10::DeviceTypeName(device.type(), /*lower_case=*/true), "DEVICE_UNAVAILABLE",
             where + " was compiled for " + packageDevice + ", not " + deviceString(device));
  if (device.is_cpu()) {
    const std::string isa = metadataValue(e.metadata, "dove.cpu_isa", where);
    DOVE_CHECK(cpuSupports(isa), "DEVICE_UNAVAILABLE", where + " was compiled for CPU instructions (" + isa + ") this CPU lacks");
  }
  const int64_t maxBatch = parseSize(metadataValue(e.metadata, "dove.max_batch", where), where);
  e.inputs = parseInputs(metadataValue(e.metadata, "dove.inputs", where), maxBatch, where);
  return e;
}

// Every model's metadata is checked before any model's library is extracted and loaded.
CompiledPtr loadOnWorker(const std::string& path, const std::vector<std::string>& models, const c10::Device& device) {
  auto h = std::make_shared<CompiledHandle>();
  h->path = path;
  h->device = device;
  for (const std::string& model : models) h->models.push_back(describeModel(path, model, device));
  exposeLibtorchGlobally();
  for (CompiledEntry& e : h->models) {
    try {
      std::lock_guard<std::mutex> lock(extractionMutex());
      e.loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path, e.model, /*run_single_threaded=*/false, /*num_runners=*/1, device.is_cuda() ? device.index() : -1);
    } catch (const std::exception&) {
      auto [code, message] = classifyException(std::current_exception());
      fail("TORCH_ERROR", "Loading " + h->where(e.model) + " failed: " + message);
    }
  }
  return h;
}

class CompiledWrap : public NativeWrap<CompiledWrap, CompiledPtr> {
 public:
  static constexpr const char* kName = "NativeCompiledPackage";
  static void define(Napi::Env env) {
    NativeWrap::define(env, {
        InstanceAccessor<&CompiledWrap::Path>("path"),
        InstanceAccessor<&CompiledWrap::Models>("models"),
        InstanceAccessor<&CompiledWrap::Device>("device"),
        InstanceAccessor<&CompiledWrap::Disposed>("disposed"),
        InstanceAccessor<&CompiledWrap::Metadata>("metadata"),
        method<&CompiledWrap::Run>("run"),
        method<&CompiledWrap::Dispose>("dispose"),
    });
  }

  explicit CompiledWrap(const Napi::CallbackInfo& info) : NativeWrap(info) {
    handle_ = payload();
    Napi::Env env = info.Env();
    Napi::Object byModel = Napi::Object::New(env);
    Napi::Array names = Napi::Array::New(env, handle_->models.size());
    for (std::size_t i = 0; i < handle_->models.size(); ++i) {
      const CompiledEntry& e = handle_->models[i];
      Napi::Object meta = Napi::Object::New(env);
      for (const auto& [key, value] : e.metadata) meta.Set(key, Napi::String::New(env, value));
      meta.Freeze();
      byModel.Set(e.model, meta);
      names.Set(static_cast<uint32_t>(i), Napi::String::New(env, e.model));
    }
    byModel.Freeze();
    names.Freeze();
    metadata_ = Napi::Persistent(byModel);
    models_ = Napi::Persistent(names);
    // The weights are most of the package: count its size as the external memory it holds.
    std::error_code ec;
    const auto size = fs::file_size(handle_->path, ec);
    nbytes_ = ec ? 0 : static_cast<int64_t>(size);
    if (nbytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, nbytes_);
    executor_ = ModuleExecutor::create(handle_->where(), [this](bool busy) { busy ? Ref() : Unref(); });
  }

  ~CompiledWrap() override {
    executor_->shutdown();
    releaseMemory(Env());
  }

 private:
  void releaseMemory(Napi::Env env) {
    if (nbytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -nbytes_);
    nbytes_ = 0;
  }

  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), handle_->path); }
  Napi::Value Models(const Napi::CallbackInfo& info) { return models_.Value(); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), deviceString(handle_->device)); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), handle_->disposed); }
  Napi::Value Metadata(const Napi::CallbackInfo& info) { return metadata_.Value(); }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DOVE_CHECK(!handle_->disposed, "DISPOSED", handle_->where() + " was used after dispose()");
    const std::string model = dove::stringArg(info[0], "a model name string for run(model, inputs)");
    DOVE_CHECK(info.Length() >= 2 && info[1].IsArray(), "INVALID_ARGUMENT", "Expected an array of tensors for run(model, inputs)");
    CompiledEntry& entry = handle_->entry(model);
    Napi::Array array = info[1].As<Napi::Array>();
    std::vector<at::Tensor> inputs;
    for (uint32_t i = 0; i < array.Length(); ++i) inputs.push_back(unwrapTensor(array.Get(i), "input"));
    CompiledPtr h = handle_;
    CompiledEntry* e = &entry;  // the handle (held by the job) owns it
    // Checked on the JS thread, so a bad call rejects before it queues behind others.
    auto checked = std::make_shared<std::vector<at::Tensor>>(checkedInputs(e->inputs, std::move(inputs), h->device, h->where(model)));
    return executor_->submit(
        env,
        [h, e, checked]() -> c10::IValue {
          std::lock_guard<std::mutex> lock(h->mutex);
          DOVE_CHECK(!h->disposed, "DISPOSED", h->where(e->model) + " was disposed before it ran");
          c10::InferenceMode inference;
          std::vector<at::Tensor> outputs = e->loader->run(*checked);
          checked->clear();
          if (h->disposed) h->unload();  // dispose() during the run could not free them
          return c10::IValue(c10::List<at::Tensor>(outputs));
        },
        [](Napi::Env env, c10::IValue& result) { return fromIValue(env, result); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!handle_->disposed.exchange(true)) {
      std::unique_lock<std::mutex> lock(handle_->mutex, std::try_to_lock);
      if (lock.owns_lock()) handle_->unload();
      releaseMemory(info.Env());
      executor_->close(info.Env());
    }
    return info.Env().Undefined();
  }

  CompiledPtr handle_;
  std::shared_ptr<ModuleExecutor> executor_;
  Napi::ObjectReference metadata_;
  Napi::Reference<Napi::Array> models_;
  int64_t nbytes_ = 0;
};

std::string stringArg(const Napi::CallbackInfo& info, std::size_t i, const char* what, const char* call) {
  return dove::stringArg(info[i], std::string("a non-empty ") + what + " string for " + call);
}

Napi::Value CompiledMetadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "compiledMetadata(path, model)";
  const std::string path = stringArg(info, 0, "path", call);
  const std::string model = stringArg(info, 1, "model", call);
  using Map = std::unordered_map<std::string, std::string>;
  return PromiseWorker<Map>::Start(
      env, "dove.compiledMetadata", [path, model]() { return readMetadata(path, model); },
      [](Napi::Env env, Map& metadata) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        for (const auto& [key, value] : metadata) out.Set(key, Napi::String::New(env, value));
        return out;
      });
}

// The package's models to load: a non-empty array of distinct non-empty names.
std::vector<std::string> modelNames(Napi::Value value, const char* call) {
  const std::string expected = std::string("Expected a non-empty array of distinct model names for ") + call;
  DOVE_CHECK(value.IsArray(), "INVALID_ARGUMENT", expected);
  Napi::Array array = value.As<Napi::Array>();
  constexpr uint32_t kMostModels = 64;
  DOVE_CHECK(array.Length() >= 1 && array.Length() <= kMostModels, "INVALID_ARGUMENT",
             expected + " (1 to " + std::to_string(kMostModels) + ") but received " + std::to_string(array.Length()));
  std::vector<std::string> names;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    std::string name = dove::stringArg(array.Get(i), expected);
    DOVE_CHECK(std::find(names.begin(), names.end(), name) == names.end(), "INVALID_ARGUMENT", expected + " but '" + name + "' is named twice");
    names.push_back(std::move(name));
  }
  return names;
}

Napi::Value LoadCompiled(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "loadCompiled(path, models, device, trustModel)";
  const std::string path = stringArg(info, 0, "path", call);
  const std::vector<std::string> models = modelNames(info[1], call);
  const c10::Device device = parseDevice(stringArg(info, 2, "device", call));
  DOVE_CHECK(info.Length() > 3 && info[3].IsBoolean(), "INVALID_ARGUMENT", std::string("Expected boolean trustModel for ") + call);
  // Loading extracts the package's shared library and dlopen()s it: its code runs with the
  // process's rights, beyond anything model_inspect.h checks in a TorchScript file.
  DOVE_CHECK(info[3].As<Napi::Boolean>().Value(), "UNSAFE_MODEL",
             "'" + path + "' is a compiled package: a shared library that runs when it is loaded; load it only with "
             "trustModel: true (API) or --trust-model (CLI), and only if you trust it");
  return PromiseWorker<CompiledPtr>::Start(
      env, "dove.loadCompiled", [path, models, device]() { return loadOnWorker(path, models, device); },
      [](Napi::Env env, CompiledPtr& handle) { return CompiledWrap::create(env, handle); });
}

}  // namespace

void initCompiled(Napi::Env env, Napi::Object exports) {
  CompiledWrap::define(env);
  exportFunctions(env, exports, {{"compiledMetadata", CompiledMetadata}, {"loadCompiled", LoadCompiled}});
}

}  // namespace dove

// Process-wide runtime: devices, intra-op threads, seeds, versions, build info, and the tensor
// factories that do not start from JS memory (zeros, stack).
#include <dlfcn.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <mutex>
#include <optional>

#include "common.h"
#include "cpu_block_cache.h"
#include "cuda_state.h"
#include "dist_group.h"
#include "shape_math.h"

#ifndef DOVE_ADDON_VERSION
#define DOVE_ADDON_VERSION "0.0.0-dev"
#endif

namespace dove {
namespace {

std::atomic<int> gThreads{0};          // 0: libtorch's default
std::atomic<uint64_t> gThreadsGeneration{0};
std::atomic<bool> gCudaLoaded{false};
// The last manualSeed, applied to the CUDA generators when CUDA is loaded after it.
std::mutex gSeedMutex;
std::optional<uint64_t> gSeed;

std::string libtorchPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) != 0 && info.dli_fname != nullptr) {
    return info.dli_fname;
  }
  return DOVE_TORCH_LIBDIR;
}

std::optional<std::string> cudaRuntimeVersion() {
  if (!gCudaLoaded) return std::nullopt;
  try {
    // Registered only when libtorch_cuda is loaded; the CPU stub throws.
    const long v = at::detail::getCUDAHooks().versionCUDART();
    if (v <= 0) return std::nullopt;
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  out.Set(0u, Napi::String::New(info.Env(), "cpu"));
  const auto count = gCudaLoaded ? torch::cuda::device_count() : 0;
  for (int i = 0; i < static_cast<int>(count); ++i) out.Set(static_cast<uint32_t>(i) + 1, Napi::String::New(info.Env(), "cuda:" + std::to_string(i)));
  return Napi::Value(out);
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int n = static_cast<int>(integerIn(info[0], "setNumThreads(n)", 1, 1024));
  gThreads = n;
  ++gThreadsGeneration;
  at::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  const int n = gThreads.load();
  return Napi::Value(Napi::Number::New(info.Env(), n > 0 ? n : at::get_num_threads()));
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  uint64_t seed = 0;
  if (info.Length() >= 1 && info[0].IsBigInt()) {
    bool lossless = false;
    seed = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    DOVE_CHECK(lossless, "INVALID_ARGUMENT", "Expected seed between 0 and 2^64-1 for manualSeed(seed)");
  } else {
    seed = static_cast<uint64_t>(integerIn(info[0], "manualSeed(seed)", 0, 9007199254740991.0));
  }
  std::lock_guard<std::mutex> lock(gSeedMutex);
  gSeed = seed;
  if (gCudaLoaded) {
    torch::manual_seed(seed);  // also seeds every CUDA device
  } else {
    // torch::manual_seed asks libtorch for its accelerator, which settles "no CUDA" for good.
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> generatorLock(generator.mutex());
    generator.set_current_seed(seed);
  }
  return info.Env().Undefined();
}

Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("addon", DOVE_ADDON_VERSION);
  out.Set("libtorch", TORCH_VERSION);
  uint32_t napi = 0;
  napi_get_version(env, &napi);
  out.Set("napi", Napi::Number::New(env, napi));
  const auto cuda = cudaRuntimeVersion();
  out.Set("cuda", Napi::Boolean::New(env, cuda.has_value()));
  out.Set("cudaVersion", cuda ? Napi::Value(Napi::String::New(env, *cuda)) : env.Null());
  out.Set("libtorchPath", libtorchPath());
  out.Set("nccl", Napi::Boolean::New(env, ncclCompiledIn()));
  return Napi::Value(out);
}

// Called by lib/core/cuda-libtorch.ts after it loaded libtorch_cuda.so. True when libtorch's CUDA hooks
// are the real ones; false when something had looked them up before libtorch_cuda.so was loaded.
Napi::Value CudaLoaded(const Napi::CallbackInfo& info) {
  const bool registered = at::detail::getCUDAHooks().isBuilt();
  if (registered && !gCudaLoaded.exchange(true)) {
    std::lock_guard<std::mutex> lock(gSeedMutex);
    if (gSeed.has_value()) torch::manual_seed(*gSeed);
  }
  return Napi::Value(Napi::Boolean::New(info.Env(), registered));
}

Napi::Value CpuBlockCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuBlockCacheStats stats = cpuBlockCacheStats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("installed", Napi::Boolean::New(env, stats.installed));
  out.Set("capBytes", Napi::Number::New(env, static_cast<double>(stats.capBytes)));
  out.Set("cachedBytes", Napi::Number::New(env, static_cast<double>(stats.cachedBytes)));
  out.Set("reused", Napi::Number::New(env, static_cast<double>(stats.reused)));
  return Napi::Value(out);
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  return Napi::Value(Napi::String::New(info.Env(), at::show_config() + "\n" + at::get_parallel_info()));
}

Napi::Value Zeros(const Napi::CallbackInfo& info) {
  const std::vector<int64_t> shape = shapeFromJs(info.Length() > 0 ? info[0] : info.Env().Undefined(), "shape");
  DOVE_CHECK(info.Length() >= 2 && info[1].IsString(), "INVALID_ARGUMENT", "Expected dtype string for zeros(shape, dtype, device)");
  const at::ScalarType dtype = parseDtype(info[1].As<Napi::String>().Utf8Value());
  const std::optional<int64_t> count = shape::elementCount(shape);
  DOVE_CHECK(count && shape::byteSize(*count, static_cast<int64_t>(c10::elementSize(dtype))), "INVALID_ARGUMENT",
             "Shape " + shape::toString(shape) + " for zeros(shape, dtype, device) has more bytes than a 64-bit size holds");
  c10::Device device(c10::kCPU);
  if (info.Length() >= 3 && !info[2].IsUndefined() && !info[2].IsNull()) {
    DOVE_CHECK(info[2].IsString(), "INVALID_ARGUMENT", "Expected device string for zeros(shape, dtype, device)");
    device = parseDevice(info[2].As<Napi::String>().Utf8Value());
  }
  return Napi::Value(wrapTensor(info.Env(), torch::zeros(shape, at::TensorOptions().dtype(dtype).device(device))));
}

Napi::Value Stack(const Napi::CallbackInfo& info) {
  DOVE_CHECK(info.Length() >= 1 && info[0].IsArray() && info[0].As<Napi::Array>().Length() > 0, "INVALID_ARGUMENT",
             "Expected a non-empty array of tensors for stack(tensors)");
  Napi::Array array = info[0].As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  tensors.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string what = "tensors[" + std::to_string(i) + "]";
    tensors.push_back(unwrapTensor(array.Get(i), what.c_str()));
    const at::Tensor& first = tensors.front();
    const at::Tensor& t = tensors.back();
    DOVE_CHECK(t.sizes() == first.sizes(), "SHAPE_MISMATCH",
               "stack needs tensors of one shape but " + what + " is " + c10::str(t.sizes()) + " and tensors[0] is " +
                   c10::str(first.sizes()));
    DOVE_CHECK(t.scalar_type() == first.scalar_type(), "DTYPE_MISMATCH",
               "stack needs tensors of one dtype but " + what + " is " + dtypeName(t.scalar_type()) +
                   " and tensors[0] is " + dtypeName(first.scalar_type()));
    DOVE_CHECK(t.device() == first.device(), "INVALID_ARGUMENT",
               "stack needs tensors on one device but " + what + " is on " + deviceString(t.device()));
  }
  return Napi::Value(wrapTensor(info.Env(), torch::stack(tensors)));
}

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) {
  exportFunctions(env, exports, {{"devices", Devices}, {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
                                 {"manualSeed", ManualSeed}, {"versions", Versions}, {"buildInfo", BuildInfo}, {"cpuBlockCache", CpuBlockCache},
                                 {"cudaLoaded", CudaLoaded}, {"zeros", Zeros}, {"stack", Stack}});
}

bool cudaLibtorchLoaded() { return gCudaLoaded.load(); }

void applyThreadSettings() {
  thread_local uint64_t seen = 0;
  const uint64_t generation = gThreadsGeneration.load(std::memory_order_acquire);
  if (generation == seen) return;
  seen = generation;
  const int n = gThreads.load();
  if (n > 0) at::set_num_threads(n);
}

}  // namespace dove

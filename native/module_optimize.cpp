// Load-time inference optimisation of TorchScript modules and the CPU block cache (module_optimize.h).
#include "module_optimize.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dove {
namespace {

bool isConv2d(const torch::jit::Module& m) {
  const auto& name = m.type()->name();
  if (!name) return false;
  const std::string q = name->qualifiedName();
  return q.size() >= 7 && q.compare(q.size() - 7, 7, ".Conv2d") == 0;
}

// Weights of nn.Conv2d only (not every 4-D parameter: a method may view() its own 4-D parameter,
// which a channels_last tensor would refuse). Returns the converted tensors with their old data.
std::vector<std::pair<at::Tensor, at::Tensor>> convWeightsToChannelsLast(torch::jit::Module& module) {
  c10::NoGradGuard noGrad;
  std::vector<std::pair<at::Tensor, at::Tensor>> converted;
  for (const auto& sub : module.modules()) {
    if (!isConv2d(sub) || !sub.hasattr("weight")) continue;
    const c10::IValue w = sub.attr("weight");
    if (!w.isTensor()) continue;
    at::Tensor weight = w.toTensor();
    if (weight.dim() != 4 || !weight.is_floating_point() || weight.is_contiguous(at::MemoryFormat::ChannelsLast)) continue;
    at::Tensor old = weight.detach();
    weight.set_data(weight.contiguous(at::MemoryFormat::ChannelsLast));
    converted.emplace_back(weight, old);
  }
  return converted;
}

}  // namespace

torch::jit::Module optimizeForInference(torch::jit::Module module, const c10::Device& device) {
  std::vector<std::pair<at::Tensor, at::Tensor>> converted;
  if (device.is_cpu()) converted = convWeightsToChannelsLast(module);
  // Public methods (the exported API); private helpers are inlined into them by freezing.
  std::vector<std::string> preserved;
  for (const auto& method : module.get_methods()) {
    if (!method.name().empty() && method.name()[0] != '_') preserved.push_back(method.name());
  }
  try {
    // optimize_numerics = false: no conv/batch-norm/add folds that change rounding.
    torch::jit::Module frozen = torch::jit::freeze(module, preserved, /*optimize_numerics=*/false);
    // torch::jit::freeze runs the frozen-graph clean-up on forward only; torch.jit.freeze in Python
    // runs it on every preserved method, and so do we.
    for (const auto& name : preserved) {
      if (name == "forward" || !frozen.find_method(name)) continue;
      auto graph = frozen.get_method(name).graph();
      torch::jit::OptimizeFrozenGraph(graph, /*optimize_numerics=*/false);
    }
    return frozen;
  } catch (const std::exception&) {
    // Not freezable (e.g. a module without forward, or one whose methods mutate module state):
    // best effort, it runs unoptimised and exactly as loaded. A DOVE export always freezes.
    c10::NoGradGuard noGrad;
    for (auto& [weight, old] : converted) weight.set_data(old);
    return module;
  }
}

namespace {

// Blocks of at least kMinCached bytes are cached by exact (page-rounded) size. Smaller blocks never
// reach mmap in glibc (its initial mmap threshold is 128 KiB), so malloc already reuses them.
constexpr size_t kMinCached = 128 * 1024;
constexpr size_t kPage = 4096;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t capBytes) : cap_(capBytes) {}

  c10::DataPtr allocate(size_t n) override {
    void* p = nullptr;
    if (n >= kMinCached) {
      const size_t size = (n + kPage - 1) / kPage * kPage;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = free_.find(size);
        if (it != free_.end() && !it->second.empty()) {
          p = it->second.back();
          it->second.pop_back();
          cached_ -= size;
        }
      }
      if (p == nullptr) p = c10::alloc_cpu(size);
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    } else {
      p = c10::alloc_cpu(n);
    }
    // data == context, so the raw allocate/deallocate interface works (raw_deleter below).
    return {p, p, &CachingCpuAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override {
    return &CachingCpuAllocator::release;
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static CachingCpuAllocator* instance;

 private:
  static void release(void* p) {
    if (p == nullptr) return;
    instance->put(p);
  }

  void put(void* p) {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto live = live_.find(p);
      if (live == live_.end()) {
        evicted.push_back(p);  // a small block: straight back to malloc
      } else {
        const size_t size = live->second;
        live_.erase(live);
        if (size > cap_) {
          evicted.push_back(p);
        } else {
          // Make room by dropping blocks of other sizes (a new batch size or model replaces the old set).
          for (auto it = free_.begin(); cached_ + size > cap_ && it != free_.end(); ++it) {
            while (cached_ + size > cap_ && !it->second.empty()) {
              evicted.push_back(it->second.back());
              it->second.pop_back();
              cached_ -= it->first;
            }
          }
          free_[size].push_back(p);
          cached_ += size;
        }
      }
    }
    for (void* e : evicted) c10::free_cpu(e);
  }

  const size_t cap_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

bool installCpuCachingAllocator() {
  static std::once_flag once;
  static bool installed = false;
  std::call_once(once, [] {
    size_t capMb = 512;
    if (const char* env = std::getenv("DOVE_CPU_CACHE_MB")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') capMb = static_cast<size_t>(v);
    }
    if (capMb == 0) return;
    // Never destroyed: tensors may be freed during static destruction, after this file's statics.
    CachingCpuAllocator::instance = new CachingCpuAllocator(capMb * 1024 * 1024);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
    installed = c10::GetCPUAllocator() == CachingCpuAllocator::instance;
  });
  return installed;
}

}  // namespace dove

// The CPU block cache (cpu_block_cache.h): a caching allocator in front of libtorch's CPU allocator.
#include "cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "env_number.h"

namespace dove {
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
          ++reused_;
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

  CpuBlockCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {true, cap_, cached_, reused_};
  }

  static std::atomic<CachingCpuAllocator*> instance;

 private:
  static void release(void* p) {
    if (p == nullptr) return;
    instance.load(std::memory_order_acquire)->put(p);
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
  uint64_t reused_ = 0;
};

std::atomic<CachingCpuAllocator*> CachingCpuAllocator::instance{nullptr};
std::atomic<bool> cacheInstalled{false};

}  // namespace

bool installCpuBlockCache() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Up to 1 TiB; a malformed value keeps the default (env_number.h).
    const size_t capMb = static_cast<size_t>(nonNegativeFromEnv("DOVE_CPU_CACHE_MB", 512, 1L << 20));
    if (capMb == 0) return;
    // Never destroyed: tensors may be freed during static destruction, after this file's statics.
    // Published before it is installed: another thread may allocate and free through it at once.
    auto* cache = new CachingCpuAllocator(capMb * 1024 * 1024);
    CachingCpuAllocator::instance.store(cache, std::memory_order_release);
    c10::SetCPUAllocator(cache, /*priority=*/1);
    cacheInstalled.store(c10::GetCPUAllocator() == cache, std::memory_order_release);
  });
  return cacheInstalled.load(std::memory_order_acquire);
}

CpuBlockCacheStats cpuBlockCacheStats() {
  if (!cacheInstalled.load(std::memory_order_acquire)) return {};
  return CachingCpuAllocator::instance.load(std::memory_order_acquire)->stats();
}

}  // namespace dove

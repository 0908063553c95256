// A caching CPU allocator for large blocks.
//
// On these VMs the first touch of fresh memory runs at ~0.4 GB/s, and glibc hands blocks above
// 32 MB straight back to the kernel on free, so a training step that allocates the same large
// activations every iteration re-faults them every iteration. This allocator keeps freed large
// blocks (≥ 1 MiB, rounded up to whole MiB) in per-size free lists and hands them out again,
// the way PyTorch's CUDA caching allocator does for device memory. Small blocks go to malloc.
// The cache is bounded (ARCFACE_CPU_CACHE_MB, default min(4 GiB, RAM/4)); emptyCpuCache() frees it.
#include "common.h"

#include <c10/core/CPUAllocator.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>
#include <vector>

namespace arcface {

namespace {

constexpr size_t kAlignment = 64;  // c10's CPU alignment (AVX-512 loads)
constexpr size_t kLargeBlock = 1 << 20;

struct CacheStats {
  size_t cached_bytes = 0;  // held in free lists
  size_t live_large_bytes = 0;
  size_t hits = 0;
  size_t misses = 0;
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() {
    const char* env = getenv("ARCFACE_CPU_CACHE_MB");
    const size_t ram = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGE_SIZE));
    limit_ = env ? static_cast<size_t>(atoll(env)) << 20 : std::min<size_t>(size_t(4) << 30, ram / 4);
  }

  c10::DataPtr allocate(size_t n) const override {
    if (n < kLargeBlock) {
      void* p = AlignedAlloc(n == 0 ? kAlignment : n);
      return {p, p, &FreeSmall, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t size = (n + kLargeBlock - 1) / kLargeBlock * kLargeBlock;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= size;
        stats_.hits++;
      } else {
        stats_.misses++;
      }
      stats_.live_large_bytes += size;
    }
    if (!p) p = AllocateFresh(size);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    // data == context, as raw_allocate()/raw_deallocate() require.
    return {p, p, &FreeLarge, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &FreeAny; }

  void EmptyCache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) free(p);
    }
    free_.clear();
    stats_.cached_bytes = 0;
  }

  CacheStats Stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  size_t limit() const { return limit_; }

 private:
  static void* AlignedAlloc(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, kAlignment, n) != 0 || !p) {
      throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                       "CPU out of memory: could not allocate " + std::to_string(n) + " bytes");
    }
    return p;
  }

  // A fresh block; when memory is short, give the cache back first and retry once.
  void* AllocateFresh(size_t size) const {
    void* p = nullptr;
    if (posix_memalign(&p, kAlignment, size) == 0 && p) return p;
    const_cast<CachingCpuAllocator*>(this)->EmptyCache();
    return AlignedAlloc(size);
  }

  static void FreeSmall(void* p) { free(p); }
  static void FreeLarge(void* p);
  static void FreeAny(void* p);
  bool Release(void* p);

  mutable std::mutex mutex_;
  mutable std::map<size_t, std::vector<void*>> free_;  // size → cached blocks
  mutable std::unordered_map<void*, size_t> live_;      // large blocks in use → size
  mutable CacheStats stats_;
  size_t limit_;

};

CachingCpuAllocator* g_allocator = nullptr;

// Takes a large block back into the cache (or frees it past the limit); false if p is not ours.
bool CachingCpuAllocator::Release(void* p) {
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    const size_t size = it->second;
    live_.erase(it);
    stats_.live_large_bytes -= size;
    if (stats_.cached_bytes + size <= limit_) {
      free_[size].push_back(p);
      stats_.cached_bytes += size;
      cached = true;
    }
  }
  if (!cached) free(p);
  return true;
}

void CachingCpuAllocator::FreeLarge(void* p) { g_allocator->Release(p); }

void CachingCpuAllocator::FreeAny(void* p) {
  if (!g_allocator->Release(p)) free(p);
}

Napi::Value EmptyCpuCache(const Napi::CallbackInfo& info) {
  if (g_allocator) g_allocator->EmptyCache();
  return info.Env().Undefined();
}

Napi::Value CpuCacheStats(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  if (!g_allocator) return out;
  CacheStats s = g_allocator->Stats();
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  out.Set("liveLargeBytes", static_cast<double>(s.live_large_bytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  out.Set("limitBytes", static_cast<double>(g_allocator->limit()));
  return out;
}

}  // namespace

void InitCpuAllocator(Napi::Env env, Napi::Object exports) {
  // Installed once per process (the allocator outlives every tensor, so it is never deleted).
  const char* setting = getenv("ARCFACE_CPU_CACHE");
  if (!g_allocator && !(setting && std::string(setting) == "0")) {
    g_allocator = new CachingCpuAllocator();
    c10::SetCPUAllocator(g_allocator, /*priority=*/10);
  }
  exports.Set("emptyCpuCache", Napi::Function::New(env, EmptyCpuCache));
  exports.Set("cpuCacheStats", Napi::Function::New(env, CpuCacheStats));
}

}  // namespace arcface

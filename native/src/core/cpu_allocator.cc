// A caching CPU allocator for tensor-sized blocks.
//
// Two things make glibc malloc a poor fit for per-step activations on these VMs: the first touch
// of fresh memory runs at ~0.4 GB/s (blocks above malloc's mmap threshold are unmapped on free and
// re-faulted on the next step), and with several threads allocating, freed blocks were seen not to
// be reused at all (resident memory grew by one activation per step). So blocks of 64 KiB and up
// come from mmap, are kept on free in per-size free lists, and are handed out again — the scheme of
// PyTorch's CUDA caching allocator. Sizes are rounded up to 1/8 of their power of two (≤ 12.5% slack)
// so that shapes that vary a little still share blocks. Small blocks go to malloc.
// The cache is bounded (ARCFACE_CPU_CACHE_MB, default min(4 GiB, RAM/4)); emptyCpuCache() frees it;
// ARCFACE_CPU_CACHE=0 leaves libtorch's own allocator in place.
#include "core/common.h"
#include "core/torch_version.h"

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace arcface {

namespace {

constexpr size_t kAlignment = 64;           // c10's CPU alignment (AVX-512 loads)
constexpr size_t kCachedMin = 64 << 10;     // smallest block kept in the cache
constexpr size_t kGranularity = 16 << 10;   // page multiple; size classes are multiples of it

size_t SizeClass(size_t n) {
  size_t pow2 = kCachedMin;
  while (pow2 < n) pow2 <<= 1;
  const size_t step = std::max(kGranularity, pow2 / 8);
  return (n + step - 1) / step * step;
}

struct CacheStats {
  size_t cached_bytes = 0;  // held in free lists
  size_t live_bytes = 0;    // handed out, not yet freed
  size_t hits = 0;
  size_t misses = 0;
};

// c10::Allocator across versions: 2.3 made allocate() non-const; 2.2 added a pure virtual
// copy_data() (used by Allocator::clone; a plain memcpy here, as c10's own CPU allocator does).
#if ARCFACE_TORCH_AT_LEAST(2, 3)
#define ARCFACE_ALLOCATE_CONST
#else
#define ARCFACE_ALLOCATE_CONST const
#endif

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() {
    const char* env = getenv("ARCFACE_CPU_CACHE_MB");
    const size_t ram = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGE_SIZE));
    limit_ = env ? static_cast<size_t>(atoll(env)) << 20 : std::min<size_t>(size_t(4) << 30, ram / 4);
  }

  c10::DataPtr allocate(size_t n) ARCFACE_ALLOCATE_CONST override {
    if (n < kCachedMin) {
      void* p = nullptr;
      if (posix_memalign(&p, kAlignment, n == 0 ? kAlignment : n) != 0 || !p) OutOfMemory(n);
      return {p, p, &FreeSmall, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t size = SizeClass(n);
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
    }
    if (!p) p = MapFresh(size);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
      stats_.live_bytes += size;
    }
    // data == context, as raw_allocate()/raw_deallocate() require.
    return {p, p, &FreeCached, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &FreeAny; }

#if ARCFACE_TORCH_AT_LEAST(2, 2)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

  void EmptyCache() const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) munmap(p, size);
    }
    free_.clear();
    stats_.cached_bytes = 0;
  }

  CacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  size_t limit() const { return limit_; }

  // Takes a block back into the cache (or unmaps it past the limit); false if p is not ours.
  bool Release(void* p) const {
    size_t size;
    bool cached = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(p);
      if (it == live_.end()) return false;
      size = it->second;
      live_.erase(it);
      stats_.live_bytes -= size;
      if (stats_.cached_bytes + size <= limit_) {
        free_[size].push_back(p);
        stats_.cached_bytes += size;
        cached = true;
      }
    }
    if (!cached) munmap(p, size);
    return true;
  }

 private:
  [[noreturn]] static void OutOfMemory(size_t n) {
    throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                     "CPU out of memory: could not allocate " + std::to_string(n) + " bytes");
  }

  // A fresh mapping; when memory is short, give the cache back first and retry once.
  void* MapFresh(size_t size) const {
    for (int attempt = 0; attempt < 2; ++attempt) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) return p;
      EmptyCache();
    }
    OutOfMemory(size);
  }

  static void FreeSmall(void* p) { free(p); }
  static void FreeCached(void* p);
  static void FreeAny(void* p);

  mutable std::mutex mutex_;
  mutable std::map<size_t, std::vector<void*>> free_;  // size class → cached blocks
  mutable std::unordered_map<void*, size_t> live_;      // blocks in use → size class
  mutable CacheStats stats_;
  size_t limit_;
};

// Installed once per process and never deleted: tensors may outlive every JS object.
CachingCpuAllocator* g_allocator = nullptr;

void CachingCpuAllocator::FreeCached(void* p) { g_allocator->Release(p); }

void CachingCpuAllocator::FreeAny(void* p) {
  if (!g_allocator->Release(p)) free(p);
}

Napi::Value EmptyCpuCache(const Napi::CallbackInfo& info) {
  if (g_allocator) g_allocator->EmptyCache();
  return info.Env().Undefined();
}

Napi::Value CpuCacheStats(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("enabled", g_allocator != nullptr);
  if (!g_allocator) return out;
  CacheStats s = g_allocator->Stats();
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  out.Set("liveBytes", static_cast<double>(s.live_bytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  out.Set("limitBytes", static_cast<double>(g_allocator->limit()));
  return out;
}

}  // namespace

void InitCpuAllocator(Napi::Env env, Napi::Object exports) {
  const char* setting = getenv("ARCFACE_CPU_CACHE");
  if (!g_allocator && !(setting && std::string(setting) == "0")) {
    g_allocator = new CachingCpuAllocator();
    c10::SetCPUAllocator(g_allocator, /*priority=*/10);
  }
  exports.Set("emptyCpuCache", Napi::Function::New(env, EmptyCpuCache));
  exports.Set("cpuCacheStats", Napi::Function::New(env, CpuCacheStats));
}

}  // namespace arcface

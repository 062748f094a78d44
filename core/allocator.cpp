// CPU aligned allocator and the device-independent caching allocator.
#include "core/allocator.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <unordered_set>

#include "core/error.h"
#include "lrt_config.h"

namespace lrt {

namespace {

std::string bytes_str(size_t n) {
  char buf[64];
  if (n >= (size_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%zu bytes (%.2f GiB)", n, double(n) / double(size_t(1) << 30));
  else if (n >= (size_t(1) << 20))
    std::snprintf(buf, sizeof buf, "%zu bytes (%.2f MiB)", n, double(n) / double(size_t(1) << 20));
  else
    std::snprintf(buf, sizeof buf, "%zu bytes", n);
  return buf;
}

// Host memory with 64-byte alignment. Blocks of 1 MiB and more (activations,
// gradients, GEMM buffers) go through a caching allocator: glibc serves them
// with fresh mmap'd pages that fault in on first touch and are unmapped on
// free, which cost a CPU training step a fifth of its time in page faults.
// Smaller blocks come straight from the system. Under AddressSanitizer
// nothing is cached, so a use after free is always caught.
class CpuRawMemory final : public RawMemory {
 public:
  void* alloc(size_t nbytes) override { return std::aligned_alloc(64, (std::max<size_t>(nbytes, 1) + 63) / 64 * 64); }
  void free(void* ptr) override { std::free(ptr); }
};

#if defined(LRT_ADDRESS_SANITIZER)
constexpr size_t kCpuCacheFrom = SIZE_MAX;
#else
constexpr size_t kCpuCacheFrom = size_t(1) << 20;
#endif

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes >= kCpuCacheFrom) {
      void* p = large_.allocate(nbytes);
      std::lock_guard<std::mutex> lock(mu_);
      large_blocks_.insert(p);
      total_peak_ = std::max(total_peak_, small_.current_bytes + large_.stats().current_bytes);
      return p;
    }
    size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    void* p = raw_.alloc(rounded);
    LRT_CHECK(p != nullptr, "CPU out of memory: tried to allocate ", bytes_str(nbytes), " with ",
              bytes_str(stats().current_bytes), " in use");
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = rounded;
    small_.current_bytes += rounded;
    small_.reserved_bytes += rounded;
    small_.peak_bytes = std::max(small_.peak_bytes, small_.current_bytes);
    ++small_.raw_allocs;
    total_peak_ = std::max(total_peak_, small_.current_bytes + large_.stats().current_bytes);
    return p;
  }
  void deallocate(void* ptr) override {
    if (!ptr) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (large_blocks_.erase(ptr)) {
        large_.deallocate(ptr);
        return;
      }
      auto it = sizes_.find(ptr);
      if (it != sizes_.end()) {
        small_.current_bytes -= it->second;
        small_.reserved_bytes -= it->second;
        sizes_.erase(it);
      }
      ++small_.raw_frees;
    }
    raw_.free(ptr);
  }
  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    const AllocatorStats l = large_.stats();
    AllocatorStats s;
    s.current_bytes = small_.current_bytes + l.current_bytes;
    s.peak_bytes = std::max(total_peak_, s.current_bytes);
    s.reserved_bytes = small_.reserved_bytes + l.reserved_bytes;
    s.cached_bytes = l.cached_bytes;
    s.raw_allocs = small_.raw_allocs + l.raw_allocs;
    s.raw_frees = small_.raw_frees + l.raw_frees;
    return s;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    large_.reset_peak();
    total_peak_ = small_.current_bytes + large_.stats().current_bytes;
  }
  void empty_cache() override { large_.empty_cache(); }

 private:
  CpuRawMemory raw_;
  CachingAllocator large_{raw_, "cpu"};
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> sizes_;
  std::unordered_set<void*> large_blocks_;
  AllocatorStats small_;
  size_t total_peak_ = 0;
};

}  // namespace

CachingAllocator::CachingAllocator(RawMemory& raw, std::string device_name, bool caching)
    : raw_(raw), device_name_(std::move(device_name)), caching_(caching) {}

CachingAllocator::~CachingAllocator() {
  // Blocks still live belong to tensors that outlive the allocator (static
  // destruction order); only the cache is returned.
  std::lock_guard<std::mutex> lock(mu_);
  empty_cache_locked();
}

size_t CachingAllocator::bucket_size(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(1) << 20;
  if (nbytes <= kLarge) return std::max<size_t>((nbytes + kSmall - 1) / kSmall, 1) * kSmall;
  size_t pow2 = size_t(1) << (63 - __builtin_clzll(static_cast<unsigned long long>(nbytes)));
  size_t step = pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = bucket_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  const uint64_t pool = active_pool_ != 0 && std::this_thread::get_id() == active_thread_ ? active_pool_ : 0;
  if (pool != 0) {
    // The pool's own free blocks first; a block of the common cache may join
    // it (nothing uses a free block), but never the other way round.
    auto& mine = pool_free_[pool];
    auto own = mine.find(size);
    if (own != mine.end() && !own->second.empty()) {
      p = own->second.back();
      own->second.pop_back();
      stats_.cached_bytes -= size;
    }
  }
  auto it = free_.find(size);
  if (p == nullptr && it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
  } else if (p == nullptr) {
    p = raw_.alloc(size);
    if (!p && pool == 0) {
      // Not inside a capture, where returning blocks to the system (which
      // waits for the stream) is forbidden: the capture fails instead.
      empty_cache_locked();
      p = raw_.alloc(size);
    }
    LRT_CHECK(p != nullptr, device_name_, " out of memory: tried to allocate ", bytes_str(nbytes),
              "; the allocator has ", bytes_str(stats_.current_bytes), " in use (peak ",
              bytes_str(stats_.peak_bytes), ") and had freed its cache before retrying");
    ++stats_.raw_allocs;
    stats_.reserved_bytes += size;
  }
  live_[p] = size;
  if (pool != 0) pool_of_[p] = pool;
  stats_.current_bytes += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  LRT_CHECK(it != live_.end(), device_name_, " allocator: freeing a pointer it did not allocate");
  const size_t size = it->second;
  live_.erase(it);
  stats_.current_bytes -= size;
  if (auto owner = pool_of_.find(ptr); owner != pool_of_.end()) {
    // Even without caching: a graph may still write to it.
    pool_free_[owner->second][size].push_back(ptr);
    pool_of_.erase(owner);
    stats_.cached_bytes += size;
    return;
  }
  if (active_pool_ != 0 && std::this_thread::get_id() == active_thread_) {
    // Freed by the capturing thread during a capture: captured work may have
    // used it, and returning it to the system would wait for the stream,
    // which a capture forbids. It joins the pool.
    pool_free_[active_pool_][size].push_back(ptr);
    stats_.cached_bytes += size;
    return;
  }
  if (!caching_) {
    raw_.free(ptr);
    ++stats_.raw_frees;
    stats_.reserved_bytes -= size;
    return;
  }
  free_[size].push_back(ptr);
  stats_.cached_bytes += size;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  empty_cache_locked();
}

void Allocator::begin_private_pool(uint64_t) { LRT_THROW("this allocator has no private pools"); }
void Allocator::end_private_pool() { LRT_THROW("this allocator has no private pools"); }
void Allocator::release_private_pool(uint64_t) { LRT_THROW("this allocator has no private pools"); }

uint64_t Allocator::new_private_pool_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

void CachingAllocator::begin_private_pool(uint64_t id) {
  LRT_CHECK(id != 0, device_name_, " allocator: private pool id 0 is reserved");
  std::lock_guard<std::mutex> lock(mu_);
  LRT_CHECK(active_pool_ == 0, device_name_, " allocator: private pool ", active_pool_,
            " is still open (one capture at a time)");
  active_pool_ = id;
  active_thread_ = std::this_thread::get_id();
  pool_free_[id];  // exists from now on, even if nothing is freed into it
}

void CachingAllocator::end_private_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  active_pool_ = 0;
  active_thread_ = std::thread::id();
}

void CachingAllocator::release_private_pool(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  LRT_CHECK(active_pool_ != id, device_name_, " allocator: private pool ", id, " is released while open");
  auto pool = pool_free_.find(id);
  if (pool != pool_free_.end()) {
    for (auto& [size, blocks] : pool->second) {
      for (void* p : blocks) {
        if (caching_) {
          free_[size].push_back(p);
        } else {
          raw_.free(p);
          ++stats_.raw_frees;
          stats_.reserved_bytes -= size;
          stats_.cached_bytes -= size;
        }
      }
    }
    pool_free_.erase(pool);
  }
  // Live blocks of the pool are ordinary blocks from now on.
  for (auto it = pool_of_.begin(); it != pool_of_.end();) it = it->second == id ? pool_of_.erase(it) : std::next(it);
}

size_t CachingAllocator::private_pool_free_bytes(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto pool = pool_free_.find(id);
  if (pool == pool_free_.end()) return 0;
  size_t n = 0;
  for (const auto& [size, blocks] : pool->second) n += size * blocks.size();
  return n;
}

void CachingAllocator::empty_cache_locked() {
  // Taken out first, so a throwing free never leaves freed blocks listed.
  std::map<size_t, std::vector<void*>> blocks_by_size;
  blocks_by_size.swap(free_);
  for (auto& [size, blocks] : blocks_by_size) {
    for (void* p : blocks) {
      raw_.free(p);
      ++stats_.raw_frees;
      stats_.reserved_bytes -= size;
      stats_.cached_bytes -= size;
    }
  }
}

Allocator& cpu_allocator() {
  // Never destroyed, so tensors with static storage can free into it at exit.
  static auto* alloc = new CpuAllocator();
  return *alloc;
}

#if !LRT_HAVE_CUDA
Allocator& cuda_allocator(int device) {
  LRT_THROW("device cuda:", device,
            " requested, but this build of lrt has no CUDA backend (configured with LRT_CUDA=OFF "
            "or without the CUDA toolkit, cuBLAS and cuDNN)");
}
#endif

Allocator& allocator_for(Device d) { return d.is_cpu() ? cpu_allocator() : cuda_allocator(d.index); }

}  // namespace lrt

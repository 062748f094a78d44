// Allocators. The CPU allocator hands out 64-byte-aligned blocks (caching
// those of 1 MiB and more, see allocator.cpp). The CUDA
// allocator is a caching allocator: freed blocks go to size-bucketed free lists
// and are reused, so a training step makes no cudaMalloc/cudaFree calls once
// warm; on out-of-memory it returns its cache to the driver and retries once.
// The caching logic is written against RawMemory so it is tested on CPU too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/device.h"

// Defined in an AddressSanitizer build (GCC says so with __SANITIZE_ADDRESS__,
// clang through __has_feature): the CPU allocator then caches nothing, so a
// use after free is always caught.
#if defined(__SANITIZE_ADDRESS__)
#define LRT_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LRT_ADDRESS_SANITIZER 1
#endif
#endif

namespace lrt {

struct AllocatorStats {
  size_t current_bytes = 0;   // handed out and not yet returned
  size_t peak_bytes = 0;      // highest current_bytes since the last reset
  size_t reserved_bytes = 0;  // held from the system: in use + cached
  size_t cached_bytes = 0;    // reserved but free for reuse
  uint64_t raw_allocs = 0;    // calls into the system allocator
  uint64_t raw_frees = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Never returns null: throws lrt::Error when memory cannot be had.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Returns cached blocks to the system (a no-op where nothing is cached).
  virtual void empty_cache() {}

  // Private pools, for CUDA graphs. A captured graph writes, at every replay,
  // to the blocks its capture was given, including those the capture freed
  // again; so from begin_private_pool(id) until end_private_pool(), the
  // calling thread's allocations belong to pool id: freed, they go back to
  // that pool and are handed out only to later allocations in it (a
  // re-capture), never to other tensors, until release_private_pool(id)
  // (once the graph is destroyed) returns them to the common cache. Blocks
  // the calling thread frees while the pool is open join it too, wherever
  // they came from, and an allocation that finds no memory fails at once
  // instead of first returning the cache to the system. Other threads
  // allocate and free as usual meanwhile. Allocators that cannot hold pools
  // throw.
  virtual void begin_private_pool(uint64_t id);
  virtual void end_private_pool();
  virtual void release_private_pool(uint64_t id);
  // A fresh pool id (never 0), unique in the process.
  static uint64_t new_private_pool_id();
};

// The system allocator behind a caching allocator; alloc returns null when out
// of memory.
class RawMemory {
 public:
  virtual ~RawMemory() = default;
  virtual void* alloc(size_t nbytes) = 0;
  virtual void free(void* ptr) = 0;
};

class CachingAllocator final : public Allocator {
 public:
  // With caching false every freed block goes straight back to the system
  // (the size classes and statistics stay), so memory checkers such as
  // compute-sanitizer see each use after free and each overrun.
  CachingAllocator(RawMemory& raw, std::string device_name, bool caching = true);
  ~CachingAllocator() override;
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;
  void begin_private_pool(uint64_t id) override;
  void end_private_pool() override;
  void release_private_pool(uint64_t id) override;
  // Blocks of pool id free for its allocations (0 for an unknown pool).
  size_t private_pool_free_bytes(uint64_t id) const;

  // Size class of a request: multiples of 512 bytes up to 1 MiB, then steps of
  // a quarter of the enclosing power of two (at most 25% over the request).
  static size_t bucket_size(size_t nbytes);

 private:
  void empty_cache_locked();

  RawMemory& raw_;
  std::string device_name_;
  bool caching_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;    // bucket size -> free blocks
  std::unordered_map<void*, size_t> live_;       // block -> bucket size
  AllocatorStats stats_;
  // Private pools: the free blocks of each, the pool of each live block that
  // belongs to one, and the pool the capturing thread allocates in.
  std::map<uint64_t, std::map<size_t, std::vector<void*>>> pool_free_;
  std::unordered_map<void*, uint64_t> pool_of_;
  uint64_t active_pool_ = 0;
  std::thread::id active_thread_;
};

Allocator& cpu_allocator();
// The caching allocator of a CUDA device; throws when the build or the machine
// has no such device. With the environment variable LRT_CUDA_NO_CACHE set to
// anything but empty or 0 it caches nothing (for compute-sanitizer runs).
Allocator& cuda_allocator(int device);
Allocator& allocator_for(Device d);

}  // namespace lrt

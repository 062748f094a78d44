// Tests of core/allocator.*: the caching allocator over a fake RawMemory that
// counts calls and can be capped at a byte limit (reuse, size buckets, stats,
// empty_cache, out-of-memory retry and error, foreign pointers, threads), and
// the CPU allocator (64-byte alignment, stats).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"
#include "testing.h"

namespace lrt {

namespace {

constexpr size_t kKiB = 1024, kMiB = 1024 * 1024;

// A system allocator that keeps count, and fails (returns null) when a
// request would take the bytes it holds above `limit` (0: no limit).
class FakeRawMemory final : public RawMemory {
 public:
  explicit FakeRawMemory(size_t limit = 0) : limit_(limit) {}
  ~FakeRawMemory() override {
    for (auto& [p, n] : held_) std::free(p);
  }
  void* alloc(size_t nbytes) override {
    if (limit_ != 0 && held_bytes_ + nbytes > limit_) {
      ++failures;
      return nullptr;
    }
    void* p = std::malloc(nbytes);
    held_[p] = nbytes;
    held_bytes_ += nbytes;
    ++allocs;
    return p;
  }
  void free(void* p) override {
    auto it = held_.find(p);
    REQUIRE(it != held_.end());
    held_bytes_ -= it->second;
    held_.erase(it);
    std::free(p);
    ++frees;
  }
  size_t held_bytes() const { return held_bytes_; }
  void set_limit(size_t limit) { limit_ = limit; }

  uint64_t allocs = 0, frees = 0, failures = 0;

 private:
  size_t limit_;
  size_t held_bytes_ = 0;
  std::unordered_map<void*, size_t> held_;
};

// A small deterministic generator for request sizes.
struct Lcg {
  uint64_t state;
  uint64_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  }
};

// One pass of `cycles` cycles: each allocates four blocks (two small, two
// large) of pseudo-random sizes, writes to them and frees them in a shuffled
// order.
void churn(CachingAllocator& alloc, int cycles, uint64_t seed) {
  Lcg rng{seed};
  for (int c = 0; c < cycles; ++c) {
    void* blocks[4];
    for (int i = 0; i < 4; ++i) {
      const size_t n = i < 2 ? 1 + rng.next() % (64 * kKiB) : kMiB + rng.next() % (3 * kMiB);
      blocks[i] = alloc.allocate(n);
      static_cast<char*>(blocks[i])[n - 1] = static_cast<char>(c);
    }
    const int order = static_cast<int>(rng.next() % 4);
    for (int i = 0; i < 4; ++i) alloc.deallocate(blocks[(i + order) % 4]);
  }
}

}  // namespace

TEST_CASE("the caching allocator reuses freed blocks: 10,000 cycles make no raw allocations after warm-up") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");

  SUBCASE("one size") {
    void* first = alloc.allocate(3000);
    alloc.deallocate(first);
    int missed = 0;
    for (int i = 0; i < 10000; ++i) {
      void* p = alloc.allocate(2600 + static_cast<size_t>(i % 400));  // all in the 3072-byte bucket
      if (p != first) ++missed;
      alloc.deallocate(p);
    }
    CHECK(missed == 0);
    CHECK(raw.allocs == 1);
    CHECK(alloc.stats().raw_allocs == 1);
  }
  SUBCASE("varying sizes") {
    churn(alloc, 10000, 7);  // warm-up: every bucket the sequence needs is created
    const AllocatorStats warm = alloc.stats();
    const uint64_t raw_allocs = raw.allocs;
    CHECK(warm.current_bytes == 0);
    CHECK(warm.cached_bytes == warm.reserved_bytes);
    churn(alloc, 10000, 7);
    const AllocatorStats after = alloc.stats();
    CHECK(raw.allocs == raw_allocs);
    CHECK(after.raw_allocs == warm.raw_allocs);
    CHECK(after.reserved_bytes == warm.reserved_bytes);
    CHECK(raw.held_bytes() == warm.reserved_bytes);
    CHECK(after.current_bytes == 0);
    CHECK(raw.frees == 0);
  }
}

TEST_CASE("with caching off every freed block goes back to the system at once") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake", /*caching=*/false);
  churn(alloc, 200, 7);
  const AllocatorStats s = alloc.stats();
  CHECK(raw.allocs == 800);
  CHECK(raw.frees == 800);
  CHECK(raw.held_bytes() == 0);
  CHECK(s.raw_allocs == 800);
  CHECK(s.raw_frees == 800);
  CHECK(s.current_bytes == 0);
  CHECK(s.reserved_bytes == 0);
  CHECK(s.cached_bytes == 0);
  CHECK(s.peak_bytes > 0);
  void* p = alloc.allocate(5000);
  CHECK(raw.held_bytes() == CachingAllocator::bucket_size(5000));
  alloc.deallocate(p);
  CHECK(raw.held_bytes() == 0);
}

TEST_CASE("bucket_size rounds up to multiples of 512, at most 25% over above 1 MiB") {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 5000; ++n) sizes.push_back(n);
  for (int b = 9; b <= 40; ++b)
    for (long long d : {-513LL, -512LL, -1LL, 0LL, 1LL, 511LL, 512LL, 513LL}) {
      const long long n = (1LL << b) + d;
      if (n > 0) sizes.push_back(static_cast<size_t>(n));
    }
  Lcg rng{99};
  for (int i = 0; i < 20000; ++i) {
    const uint64_t wide = rng.next() << 31 | rng.next();
    sizes.push_back(static_cast<size_t>(wide % (uint64_t(1) << (i % 40 + 1))));
  }
  std::sort(sizes.begin(), sizes.end());

  size_t bad = 0, prev_bucket = 0;
  for (size_t n : sizes) {
    const size_t b = CachingAllocator::bucket_size(n);
    bool ok = b >= n && b % 512 == 0 && b > 0 && b >= prev_bucket;
    if (n > kMiB) ok = ok && static_cast<double>(b) <= 1.25 * static_cast<double>(n);
    else ok = ok && b < n + 512 + (n == 0 ? 512 : 0);
    ok = ok && CachingAllocator::bucket_size(b) == b;  // a bucket is its own size class
    if (!ok && bad++ == 0) {
      std::ostringstream os;
      os << "first bad request: " << n << " bytes -> bucket " << b;
      INFO(os.str());
      CHECK(ok);
    }
    prev_bucket = b;
  }
  CHECK(bad == 0);
  CHECK(CachingAllocator::bucket_size(0) == 512);
  CHECK(CachingAllocator::bucket_size(1) == 512);
  CHECK(CachingAllocator::bucket_size(513) == 1024);
  CHECK(CachingAllocator::bucket_size(kMiB) == kMiB);
  CHECK(CachingAllocator::bucket_size(kMiB + 1) == kMiB + kMiB / 4);
  CHECK(CachingAllocator::bucket_size(3 * kMiB) == 3 * kMiB);
  CHECK(CachingAllocator::bucket_size(5 * kMiB - 1) == 5 * kMiB);
}

TEST_CASE("caching allocator stats track current, peak, cached and reserved bytes") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  AllocatorStats s = alloc.stats();
  CHECK(s.current_bytes == 0);
  CHECK(s.reserved_bytes == 0);

  void* a = alloc.allocate(1000);  // bucket 1024
  void* b = alloc.allocate(3000);  // bucket 3072
  s = alloc.stats();
  CHECK(s.current_bytes == 4096);
  CHECK(s.peak_bytes == 4096);
  CHECK(s.reserved_bytes == 4096);
  CHECK(s.cached_bytes == 0);
  CHECK(s.raw_allocs == 2);
  CHECK(raw.held_bytes() == 4096);

  alloc.deallocate(a);
  s = alloc.stats();
  CHECK(s.current_bytes == 3072);
  CHECK(s.peak_bytes == 4096);
  CHECK(s.cached_bytes == 1024);
  CHECK(s.reserved_bytes == 4096);
  CHECK(s.raw_frees == 0);

  alloc.reset_peak();
  CHECK(alloc.stats().peak_bytes == 3072);

  void* c = alloc.allocate(600);  // bucket 1024 again: from the cache
  CHECK(c == a);
  s = alloc.stats();
  CHECK(s.raw_allocs == 2);
  CHECK(s.cached_bytes == 0);
  CHECK(s.current_bytes == 4096);
  CHECK(s.peak_bytes == 4096);

  void* d = alloc.allocate(1000);  // the bucket's list is empty: a new block
  CHECK(d != c);
  CHECK(alloc.stats().raw_allocs == 3);
  for (void* p : {b, c, d}) alloc.deallocate(p);
  s = alloc.stats();
  CHECK(s.current_bytes == 0);
  CHECK(s.cached_bytes == s.reserved_bytes);
  CHECK(s.reserved_bytes == 5120);
}

TEST_CASE("empty_cache returns cached blocks to the system and keeps live ones") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  void* live = alloc.allocate(2 * kMiB);
  std::vector<void*> blocks;
  for (size_t n : {3 * size_t(512), 10 * kKiB, 10 * kKiB, 5 * kMiB}) blocks.push_back(alloc.allocate(n));
  for (void* p : blocks) alloc.deallocate(p);
  CHECK(alloc.stats().cached_bytes == 512 * 3 + 20 * kKiB + 5 * kMiB);

  alloc.empty_cache();
  const AllocatorStats s = alloc.stats();
  CHECK(s.cached_bytes == 0);
  CHECK(s.reserved_bytes == 2 * kMiB);
  CHECK(s.current_bytes == 2 * kMiB);
  CHECK(s.raw_frees == 4);
  CHECK(raw.frees == 4);
  CHECK(raw.held_bytes() == 2 * kMiB);

  // The live block is untouched and can still be freed and reused.
  static_cast<char*>(live)[2 * kMiB - 1] = 1;
  alloc.deallocate(live);
  CHECK(alloc.allocate(2 * kMiB - 100) == live);
  alloc.deallocate(live);
}

TEST_CASE("out of memory: the cache is freed and the allocation retried once") {
  FakeRawMemory raw(4 * kMiB);
  CachingAllocator alloc(raw, "fake");
  void* cached = alloc.allocate(2 * kMiB);
  alloc.deallocate(cached);  // 2 MiB cached; 3 MiB more would pass the 4 MiB limit

  void* p = alloc.allocate(3 * kMiB);
  CHECK(p != nullptr);
  CHECK(raw.failures == 1);  // the first try failed, the retry after emptying the cache succeeded
  CHECK(raw.frees == 1);
  const AllocatorStats s = alloc.stats();
  CHECK(s.cached_bytes == 0);
  CHECK(s.current_bytes == 3 * kMiB);
  CHECK(s.reserved_bytes == 3 * kMiB);
  CHECK(s.raw_allocs == 2);
  alloc.deallocate(p);
}

TEST_CASE("out of memory after the retry throws an Error naming the request and the usage") {
  FakeRawMemory raw(4 * kMiB);
  CachingAllocator alloc(raw, "fake:7");
  void* live = alloc.allocate(2 * kMiB);
  void* small = alloc.allocate(100);
  alloc.deallocate(small);

  try {
    alloc.allocate(3 * kMiB);
    FAIL("an allocation over the limit did not throw");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("fake:7") != std::string::npos);
    CHECK(msg.find("3145728") != std::string::npos);  // the request
    CHECK(msg.find("2097152") != std::string::npos);  // in use
    CHECK(msg.find("out of memory") != std::string::npos);
  }
  CHECK(raw.failures == 2);  // first try and the retry
  CHECK(raw.frees == 1);     // the cached 512-byte block went back before the retry
  const AllocatorStats s = alloc.stats();
  CHECK(s.current_bytes == 2 * kMiB);
  CHECK(s.reserved_bytes == 2 * kMiB);

  // The allocator still works after the failure.
  void* q = alloc.allocate(kMiB);
  CHECK(q != nullptr);
  alloc.deallocate(q);
  alloc.deallocate(live);
}

TEST_CASE("freeing a pointer the caching allocator did not hand out throws") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  int local = 0;
  CHECK_THROWS_WITH_AS(alloc.deallocate(&local), doctest::Contains("did not allocate"), Error);
  void* p = alloc.allocate(64);
  alloc.deallocate(p);
  CHECK_THROWS_AS(alloc.deallocate(p), Error);  // a second free of the same block
  CHECK_NOTHROW(alloc.deallocate(nullptr));
  CHECK(alloc.stats().current_bytes == 0);
}

TEST_CASE("the caching allocator keeps consistent stats under concurrent use") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&alloc, t] { churn(alloc, 500, 100 + static_cast<uint64_t>(t)); });
  for (auto& th : threads) th.join();
  const AllocatorStats s = alloc.stats();
  CHECK(s.current_bytes == 0);
  CHECK(s.cached_bytes == s.reserved_bytes);
  CHECK(raw.held_bytes() == s.reserved_bytes);
  CHECK(s.raw_allocs == raw.allocs);
}

TEST_CASE("CPU tensor data is 64-byte aligned for every size") {
  std::vector<int64_t> sizes;
  for (int64_t n = 0; n <= 300; ++n) sizes.push_back(n);
  for (int64_t n : {1021, 4097, 65537, (1 << 20) + 3}) sizes.push_back(n);
  size_t misaligned = 0;
  for (int64_t n : sizes)
    for (DType dt : {DType::UInt8, DType::Float32, DType::Float64}) {
      Tensor t = empty({n}, dt);
      if (reinterpret_cast<uintptr_t>(t.storage()->data()) % 64 != 0) ++misaligned;
    }
  CHECK(misaligned == 0);
  for (size_t n : {size_t(1), size_t(63), size_t(64), size_t(65), size_t(1000)}) {
    void* p = cpu_allocator().allocate(n);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    cpu_allocator().deallocate(p);
  }
}

TEST_CASE("CPU allocator stats rise and fall with tensors") {
  Allocator& cpu = cpu_allocator();
  CHECK(&allocator_for(kCPU) == &cpu);
  const AllocatorStats before = cpu.stats();
  {
    Tensor t = empty({1000}, DType::Float64);  // 8000 bytes, rounded to 8000 (a multiple of 64)
    const AllocatorStats during = cpu.stats();
    CHECK(during.current_bytes == before.current_bytes + 8000);
    CHECK(during.raw_allocs == before.raw_allocs + 1);
    CHECK(during.peak_bytes >= during.current_bytes);
    Tensor u = empty({3}, DType::UInt8);  // rounded up to 64 bytes
    CHECK(cpu.stats().current_bytes == before.current_bytes + 8064);
  }
  const AllocatorStats after = cpu.stats();
  CHECK(after.current_bytes == before.current_bytes);
  CHECK(after.raw_frees == before.raw_frees + 2);
  CHECK(after.peak_bytes >= before.current_bytes + 8064);
  cpu.reset_peak();
  CHECK(cpu.stats().peak_bytes == cpu.stats().current_bytes);
  CHECK(cpu.stats().cached_bytes == before.cached_bytes);  // small blocks are never cached
}

TEST_CASE("CPU allocator reuses freed blocks of 1 MiB and more instead of asking the system again") {
  Allocator& cpu = cpu_allocator();
  const int64_t n = (int64_t(3) << 20) / 4;  // 3 MiB of float32
  void* first = nullptr;
  {
    Tensor t = empty({n});
    first = t.data_ptr();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  const AllocatorStats after_free = cpu.stats();
#if defined(LRT_ADDRESS_SANITIZER)
  MESSAGE("AddressSanitizer build: large CPU blocks are not cached, reuse not checked");
  CHECK(after_free.cached_bytes == 0);
#else
  CHECK(after_free.cached_bytes >= size_t(n) * 4);
  Tensor again = empty({n});
  CHECK(again.data_ptr() == first);
  CHECK(cpu.stats().raw_allocs == after_free.raw_allocs);
  CHECK(cpu.stats().current_bytes >= after_free.current_bytes + size_t(n) * 4);
#endif
  cpu.empty_cache();
  CHECK(cpu.stats().cached_bytes == 0);
}

TEST_CASE("a private pool keeps its blocks, freed or not, away from other allocations until released") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  // A free block of the common cache, which the pool may take.
  void* common = alloc.allocate(4096);
  alloc.deallocate(common);

  const uint64_t id = Allocator::new_private_pool_id();
  CHECK(id != 0);
  CHECK(Allocator::new_private_pool_id() != id);
  alloc.begin_private_pool(id);
  void* taken = alloc.allocate(4096);  // the common free block joins the pool
  CHECK(taken == common);
  void* temp = alloc.allocate(8192);   // a fresh block, freed inside the "capture"
  void* kept = alloc.allocate(2048);   // still live when the capture ends
  alloc.deallocate(temp);
  void* again = alloc.allocate(8192);  // the pool reuses its own freed block
  CHECK(again == temp);
  alloc.deallocate(again);
  alloc.deallocate(taken);
  alloc.end_private_pool();
  CHECK(alloc.private_pool_free_bytes(id) == 4096 + 8192);

  // Outside the pool, none of its blocks is handed out: freed ones stay in
  // it, and a live one freed later goes back to it, not to the common cache.
  void* a = alloc.allocate(4096);
  void* b = alloc.allocate(8192);
  CHECK(a != taken);
  CHECK(b != temp);
  alloc.deallocate(kept);
  CHECK(alloc.private_pool_free_bytes(id) == 4096 + 8192 + 2048);
  void* c = alloc.allocate(2048);
  CHECK(c != kept);
  // The statistics count the pool's free blocks as cached.
  const AllocatorStats s = alloc.stats();
  CHECK(s.current_bytes == 4096 + 8192 + 2048);
  CHECK(s.cached_bytes == 4096 + 8192 + 2048);
  CHECK(s.reserved_bytes == raw.held_bytes());
  // empty_cache leaves the pool alone: a graph may still write to it.
  alloc.empty_cache();
  CHECK(alloc.private_pool_free_bytes(id) == 4096 + 8192 + 2048);

  // A second capture into the same pool reuses its blocks.
  alloc.begin_private_pool(id);
  void* re = alloc.allocate(8192);
  CHECK(re == temp);
  alloc.end_private_pool();

  // Released: its free blocks serve everyone again, and its live block is an
  // ordinary one.
  alloc.release_private_pool(id);
  CHECK(alloc.private_pool_free_bytes(id) == 0);
  void* d = alloc.allocate(4096);
  CHECK(d == taken);
  alloc.deallocate(re);
  void* e = alloc.allocate(8192);
  CHECK(e == temp);
  for (void* p : {a, b, c, d, e}) alloc.deallocate(p);
  CHECK(alloc.stats().current_bytes == 0);
}

TEST_CASE("inside a private pool, running out of memory fails at once and keeps the cache") {
  FakeRawMemory raw(64 * kKiB);
  CachingAllocator alloc(raw, "fake");
  void* cached = alloc.allocate(32 * kKiB);
  alloc.deallocate(cached);  // in the common cache
  const uint64_t id = Allocator::new_private_pool_id();
  alloc.begin_private_pool(id);
  // Outside a pool this would free the cached block and retry; inside, it
  // fails without returning anything to the system.
  testing::check_mentions(testing::error_of([&] { alloc.allocate(48 * kKiB); }), {"out of memory"});
  CHECK(raw.frees == 0);
  alloc.end_private_pool();
  const AllocatorStats s = alloc.stats();
  CHECK(s.cached_bytes == 32 * kKiB);
  CHECK(s.reserved_bytes == raw.held_bytes());
  CHECK(alloc.allocate(32 * kKiB) == cached);  // still cached
  alloc.deallocate(cached);
  // Outside the pool the same request succeeds after emptying the cache.
  void* big = alloc.allocate(48 * kKiB);
  CHECK(raw.frees == 1);
  alloc.deallocate(big);
  alloc.release_private_pool(id);
}

TEST_CASE("a private pool only takes the opening thread's allocations") {
  FakeRawMemory raw;
  CachingAllocator alloc(raw, "fake");
  const uint64_t id = Allocator::new_private_pool_id();
  alloc.begin_private_pool(id);
  void* other = nullptr;
  std::thread t([&] { other = alloc.allocate(4096); });
  t.join();
  void* mine = alloc.allocate(4096);
  alloc.end_private_pool();
  alloc.deallocate(other);  // an ordinary block: back to the common cache
  alloc.deallocate(mine);   // the pool's
  CHECK(alloc.private_pool_free_bytes(id) == 4096);
  void* next = alloc.allocate(4096);
  CHECK(next == other);
  alloc.deallocate(next);
  alloc.release_private_pool(id);
}

TEST_CASE("private pools: misuse is an error, and caching off still keeps pool blocks") {
  FakeRawMemory raw;
  SUBCASE("errors") {
    CachingAllocator alloc(raw, "fake");
    CHECK_THROWS(alloc.begin_private_pool(0));
    const uint64_t id = Allocator::new_private_pool_id();
    alloc.begin_private_pool(id);
    testing::check_mentions(testing::error_of([&] { alloc.begin_private_pool(Allocator::new_private_pool_id()); }),
                            {"still open"});
    testing::check_mentions(testing::error_of([&] { alloc.release_private_pool(id); }), {"released while open"});
    alloc.end_private_pool();
    alloc.release_private_pool(id);
    testing::check_mentions(testing::error_of([&] { cpu_allocator().begin_private_pool(id); }), {"private pools"});
  }
  SUBCASE("caching off") {
    CachingAllocator alloc(raw, "fake", /*caching=*/false);
    const uint64_t id = Allocator::new_private_pool_id();
    void* before = alloc.allocate(8192);
    alloc.begin_private_pool(id);
    // Freed during the capture by the capturing thread: kept in the pool (a
    // replay may use it, and freeing would wait for the captured stream).
    alloc.deallocate(before);
    CHECK(raw.frees == 0);
    CHECK(alloc.private_pool_free_bytes(id) == 8192);
    void* p = alloc.allocate(4096);
    alloc.deallocate(p);
    alloc.end_private_pool();
    CHECK(raw.frees == 0);  // a replay may still write it
    CHECK(alloc.private_pool_free_bytes(id) == 4096 + 8192);
    alloc.release_private_pool(id);
    CHECK(raw.frees == 2);
    CHECK(raw.held_bytes() == 0);
    CHECK(alloc.stats().reserved_bytes == 0);
  }
}

}  // namespace lrt

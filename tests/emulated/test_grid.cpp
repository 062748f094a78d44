// The emulated grid itself (emulated/grid.h): built-in indices, barriers,
// shuffles, the errors it reports, and the orders it runs blocks and threads
// in, which make a kernel's races show as results that change with the order.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "emulated/grid.h"
#include "testing.h"

namespace lrt {

namespace {

using emulated_grid::Order;
constexpr Order kOrders[] = {Order::InOrder, Order::Reversed, Order::Shuffled};

// Each block of a (4, 3, 2) grid of (8, 4) threads, once, in the sequence the
// emulator ran them, as linear indices (x fastest).
std::vector<int> block_sequence() {
  std::vector<int> seen;
  emulated_grid::run_grid(dim3(4, 3, 2), dim3(8, 4), [&] {
    if (threadIdx.x == 0 && threadIdx.y == 0)
      seen.push_back(static_cast<int>((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x));
  });
  return seen;
}

// The sequence in which a block of n threads reaches its first barrier, and
// then its second: what the emulator resumes when.
std::vector<std::vector<int>> thread_sequences(int n) {
  std::vector<std::vector<int>> seq(2);
  emulated_grid::run_grid(dim3(1), dim3(n), [&] {
    seq[0].push_back(static_cast<int>(threadIdx.x));
    __syncthreads();
    seq[1].push_back(static_cast<int>(threadIdx.x));
  });
  return seq;
}

std::vector<int> iota_of(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("emulated grid: a warp shuffle over a lane that has returned is reported, not answered") {
  // The emulator's own check: lane 5 returns before its warp's shuffle.
  auto kernel = [] {
    if (threadIdx.x == 5) return;
    static_cast<void>(__shfl_down_sync(0xffffffffu, 1.0, 1));
  };
  const std::string msg =
      testing::error_of([&] { emulated_grid::run_grid(dim3(1), dim3(32), kernel); });
  CHECK(msg.find("lane 5") != std::string::npos);
  // With the returned lane left out of the mask the same shuffle is fine.
  auto masked = [] {
    if (threadIdx.x == 5) return;
    static_cast<void>(__shfl_down_sync(~(1u << 5), 1.0, 1));
  };
  CHECK_NOTHROW(emulated_grid::run_grid(dim3(1), dim3(32), masked));
}

TEST_CASE("emulated grid: threads of one warp at different barriers are a deadlock, reported") {
  // Lanes 0-15 wait at __syncthreads, lanes 16-31 at a shuffle: neither
  // barrier can ever be passed.
  auto kernel = [] {
    if (threadIdx.x < 16)
      __syncthreads();
    else
      static_cast<void>(__shfl_xor_sync(0xffff0000u, 1, 1));
  };
  for (Order o : kOrders) {
    const emulated_grid::ScopedOrder order(o);
    CAPTURE(emulated_grid::to_string(o));
    const std::string msg = testing::error_of([&] { emulated_grid::run_grid(dim3(2), dim3(32), kernel); });
    CHECK(msg.find("deadlock") != std::string::npos);
  }
  // The emulator is usable again after the deadlock.
  int ran = 0;
  emulated_grid::run_grid(dim3(1), dim3(32), [&] { ++ran; });
  CHECK(ran == 32);
}

TEST_CASE("emulated grid: threads see their indices, barriers order shared memory, shuffles move values") {
  // A block of (8, 4) threads in a (3, 2) grid: each writes its linear index
  // into a shared array, waits, then reads its mirror's (31 - its own); the
  // warp sums the mirrors by shuffles. The same in every order.
  for (Order o : kOrders) {
    const emulated_grid::ScopedOrder order(o);
    CAPTURE(emulated_grid::to_string(o));
    std::vector<int> mirrors(6 * 32, -1);
    std::vector<double> sums(6 * 32, -1.0);
    auto kernel = [&] {
      LRT_SHARED(int, sh, [32]);
      const int t = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
      const int block = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
      sh[t] = t + 100 * block;
      __syncthreads();
      const int mirror = sh[31 - t];
      __syncthreads();
      double v = mirror - 100 * block;
      for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
      mirrors[block * 32 + t] = mirror;
      sums[block * 32 + t] = v;
    };
    emulated_grid::run_grid(dim3(3, 2), dim3(8, 4), kernel);
    for (int block = 0; block < 6; ++block)
      for (int t = 0; t < 32; ++t) {
        CHECK(mirrors[block * 32 + t] == 31 - t + 100 * block);
        CHECK(sums[block * 32 + t] == 496.0);  // 0 + 1 + ... + 31
      }
  }
}

TEST_CASE("emulated grid: a block's shared memory holds no value of the block before it") {
  // Block 0 writes every cell; blocks 1 and 2 read them without writing:
  // they get a poison, 0xff bytes (-1, NaN) in one and 0x7f bytes in the
  // other, as on a GPU they would get whatever was there, never block 0's
  // values. In every order.
  auto bits_of = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
  };
  for (Order o : kOrders) {
    const emulated_grid::ScopedOrder order(o);
    CAPTURE(emulated_grid::to_string(o));
    std::vector<int> ints(3 * 32, 0);
    std::vector<float> floats(3 * 32, 0.0f);
    emulated_grid::run_grid(dim3(3), dim3(32), [&] {
      LRT_SHARED(int, si, [32]);
      LRT_SHARED(float, sf, [32]);
      const int t = static_cast<int>(threadIdx.x), b = static_cast<int>(blockIdx.x);
      if (b == 0) {
        si[t] = t;
        sf[t] = 1.5f;
      }
      __syncthreads();
      ints[b * 32 + t] = si[31 - t];
      floats[b * 32 + t] = sf[31 - t];
    });
    for (int t = 0; t < 32; ++t) {
      CHECK(ints[t] == 31 - t);
      CHECK(floats[t] == 1.5f);
    }
    // Blocks 1 and 2: one poison each, both poisons between them.
    const bool ff_first = ints[32] == -1;
    for (int b = 1; b < 3; ++b) {
      const bool ff = (b == 1) == ff_first;
      for (int t = 0; t < 32; ++t) {
        CHECK(ints[b * 32 + t] == (ff ? -1 : 0x7f7f7f7f));
        if (ff)
          CHECK(std::isnan(floats[b * 32 + t]));
        else
          CHECK(bits_of(floats[b * 32 + t]) == 0x7f7f7f7fu);
      }
    }
  }
}

TEST_CASE("emulated grid: a warp reading another warp's write after only a __syncwarp changes with the order") {
  // Warp 0 writes, both warps __syncwarp, warp 1 reads: a race (the warps
  // need __syncthreads). Warps run independently between block barriers, so
  // in index order warp 1 reads the write and in reverse it reads before it.
  auto run = [](Order o, bool block_barrier) {
    const emulated_grid::ScopedOrder order(o);
    std::vector<int> got(32, -2);
    emulated_grid::run_grid(dim3(1), dim3(64), [&] {
      LRT_SHARED(int, sh, [32]);
      const int t = static_cast<int>(threadIdx.x);
      if (t < 32) sh[t] = 0;
      __syncthreads();
      if (t < 32) sh[t] = 100 + t;
      if (block_barrier)
        __syncthreads();
      else
        __syncwarp();
      if (t >= 32) got[t - 32] = sh[t - 32];
    });
    return got;
  };
  const std::vector<int> in_order = run(Order::InOrder, false), reversed = run(Order::Reversed, false);
  CHECK(in_order[5] == 105);
  CHECK(reversed[5] == 0);
  // With __syncthreads every order reads the write.
  for (Order o : kOrders) {
    const std::vector<int> got = run(o, true);
    for (int t = 0; t < 32; ++t) CHECK(got[t] == 100 + t);
  }
}

TEST_CASE("emulated grid: blocks and threads run in index order, reversed, or shuffled, each exactly once") {
  const int blocks = 24, threads = 96;
  const std::vector<int> forward = iota_of(blocks), forward_threads = iota_of(threads);
  std::vector<int> backward = forward, backward_threads = forward_threads;
  std::reverse(backward.begin(), backward.end());
  std::reverse(backward_threads.begin(), backward_threads.end());
  {
    const emulated_grid::ScopedOrder order(Order::InOrder);
    CHECK(block_sequence() == forward);
    const auto seq = thread_sequences(threads);
    CHECK(seq[0] == forward_threads);
    CHECK(seq[1] == forward_threads);
  }
  {
    const emulated_grid::ScopedOrder order(Order::Reversed);
    CHECK(block_sequence() == backward);
    const auto seq = thread_sequences(threads);
    CHECK(seq[0] == backward_threads);
    CHECK(seq[1] == backward_threads);
  }
  {
    // A permutation, neither of the two above, and a new one for each launch
    // and each stretch between barriers.
    const emulated_grid::ScopedOrder order(Order::Shuffled);
    const std::vector<int> first = block_sequence(), second = block_sequence();
    for (const auto* seq : {&first, &second}) {
      std::vector<int> sorted = *seq;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == forward);
      CHECK(*seq != forward);
      CHECK(*seq != backward);
    }
    CHECK(first != second);
    const auto seq = thread_sequences(threads);
    for (const auto& s : seq) {
      std::vector<int> sorted = s;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == forward_threads);
      CHECK(s != forward_threads);
      CHECK(s != backward_threads);
    }
    CHECK(seq[0] != seq[1]);
  }
}

TEST_CASE("emulated grid: a race, a read with no barrier after another thread's write, changes with the order") {
  // Each thread writes its slot, then reads its neighbour's with no barrier
  // between: in index order a thread reads its neighbour's old value, in
  // reverse the new one. The same checks run under every order
  // (LRT_EMULATED_ORDER) therefore catch such a kernel in one of them.
  auto racy = [](Order o) {
    const emulated_grid::ScopedOrder order(o);
    std::vector<int> got(64, -1);
    emulated_grid::run_grid(dim3(1), dim3(64), [&] {
      LRT_SHARED(int, sh, [64]);
      const int t = static_cast<int>(threadIdx.x);
      sh[t] = 0;
      __syncthreads();
      sh[t] = t + 1;
      got[t] = sh[(t + 1) % 64];  // a race: the neighbour may not have written yet
    });
    return got;
  };
  const std::vector<int> in_order = racy(Order::InOrder), reversed = racy(Order::Reversed);
  CHECK(in_order[0] == 0);  // thread 1 had not yet written
  CHECK(reversed[0] == 2);  // it had
  CHECK(in_order != reversed);
  // With a barrier between the write and the read, every order agrees.
  auto fixed = [](Order o) {
    const emulated_grid::ScopedOrder order(o);
    std::vector<int> got(64, -1);
    emulated_grid::run_grid(dim3(1), dim3(64), [&] {
      LRT_SHARED(int, sh, [64]);
      const int t = static_cast<int>(threadIdx.x);
      sh[t] = t + 1;
      __syncthreads();
      got[t] = sh[(t + 1) % 64];
    });
    return got;
  };
  CHECK(fixed(Order::InOrder) == fixed(Order::Reversed));
  CHECK(fixed(Order::Shuffled) == fixed(Order::InOrder));
  CHECK(fixed(Order::InOrder)[63] == 1);
}

}  // namespace lrt

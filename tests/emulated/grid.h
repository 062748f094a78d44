// An emulated CUDA grid: lrt's CUDA kernels and their launchers compiled as
// plain C++ and run on the CPU, so the kernels' indexing, tails, alignment
// paths, shared-memory trees and warp shuffles are tested on machines
// without a GPU (and under the sanitizers), against the CPU kernels.
//
// How a kernel file is built this way (tests/CMakeLists.txt,
// lrt_emulated_tests): the translation unit includes kernels/cuda/<op>.cu
// with LRT_EMULATED_GRID naming this header, which kernels/cuda/launch.cuh
// then includes instead of the CUDA runtime, and with the macro
// cuda=emulated, so the file's lrt::kernels::cuda launchers become
// lrt::kernels::emulated ones (no clash with the real ones where the CUDA
// backend is built) and its calls to lrt::cuda (stream, sm_count, grid_for)
// reach the stand-ins below in lrt::emulated. With LRT_EMULATED_CUDA the
// whole library is built over this header instead (it is what
// tests/emulated/include/cuda_runtime.h gives), its kernels launched through
// cudaLaunchKernelEx below onto the streams of the emulated runtime
// (runtime.h), and the stand-ins are left out.
//
// A launch runs the grid's blocks one after another; a block's threads are
// fibers on the calling thread (grid.cpp), with threadIdx and the other
// built-in variables set for each as it runs. __syncthreads() is a barrier
// over the block's threads that have not returned (as on sm_70 and later),
// and the warp shuffles exchange values through a barrier over the warp; a
// shuffle whose mask names a lane that has returned, and threads waiting at
// barriers that can never all be reached, are errors the launch reports.
// Blocks run one at a time, so a kernel's shared arrays (LRT_SHARED below)
// are function statics, filled with a poison value for each block. Within a
// block, warps run one at a time, each to its next __syncthreads (through its
// warp barriers), so warps progress independently between block barriers.
//
// The order is a choice (Order below; LRT_EMULATED_ORDER for a whole run):
// blocks, a block's warps, and a warp's lanes between barriers run in index
// order, in reverse, or shuffled. A kernel whose result depends on that
// order has a race: a thread reading what another writes with no barrier
// between them, warp-synchronous code without __syncwarp, a warp reading
// another's writes after only a __syncwarp, a block reading another's
// output; running the same checks under each order shows it. What this
// cannot show: races within the stretch between two barriers (a thread runs
// it alone, so an unguarded read-modify-write of shared memory is never torn
// here), timing, and the memory model beyond barriers.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "emulated/runtime.h"

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
// A kernel declares its shared arrays with LRT_SHARED(type, name, dims)
// (kernels/cuda/launch.cuh; a type with a comma goes through a using
// alias), which here gives each block its own: the array's memory is filled
// at its first use in each block, with 0xff bytes in one block and 0x7f
// bytes in the next (NaN or a huge positive value in floating point, -1 or a
// huge positive integer). A GPU gives a block shared memory holding whatever
// was there, so a kernel that reads a cell its block has not written gets
// one of those, never the block before's value; two, because a reduction
// may take a negative index (-1) for "empty" and would skip the first. A
// kernel file declaring __shared__ directly does not compile here.
#define LRT_SHARED(type, name, dims)                                                                   \
  static ::lrt::emulated_grid::SharedArray name##_emulated_(sizeof(type dims));                        \
  auto& name = *static_cast<type(*) dims>(name##_emulated_.memory())
#define __shared__ \
  static_assert(false, "declare shared arrays with LRT_SHARED (kernels/cuda/launch.cuh) on the emulated grid");
#if defined(LRT_EMULATED_GRID)
#define CUDA_CHECK(expr) LRT_CHECK((expr) == cudaSuccess, "emulated CUDA call failed: ", #expr)
#endif

namespace lrt::emulated_grid {

// The order in which a launch runs its blocks, a block's warps, and a warp's
// lanes from one barrier to the next: InOrder (blocks x fastest, then y,
// then z, as CUDA numbers them), Reversed, or Shuffled (a new permutation
// each time, from a fixed seed, so a run repeats).
enum class Order { InOrder, Reversed, Shuffled };
const char* to_string(Order o);

// The device the launchers are told about; tests set it to make the
// reductions split their work in several ways. The order starts as
// LRT_EMULATED_ORDER says (in_order, the default, reversed or shuffled; any
// other value is an error naming the variable, from the first call on).
struct Device {
  int sm_count = 132;
  int blocks_per_sm = 2;  // what the occupancy query answers for every kernel
  Order order = Order::InOrder;
};
Device& device();

// Sets the emulated device's SM count for a scope.
class ScopedSmCount {
 public:
  explicit ScopedSmCount(int n) : saved_(device().sm_count) { device().sm_count = n; }
  ~ScopedSmCount() { device().sm_count = saved_; }
  ScopedSmCount(const ScopedSmCount&) = delete;
  ScopedSmCount& operator=(const ScopedSmCount&) = delete;

 private:
  int saved_;
};

// Sets the emulated device's order for a scope.
class ScopedOrder {
 public:
  explicit ScopedOrder(Order o) : saved_(device().order) { device().order = o; }
  ~ScopedOrder() { device().order = saved_; }
  ScopedOrder(const ScopedOrder&) = delete;
  ScopedOrder& operator=(const ScopedOrder&) = delete;

 private:
  Order saved_;
};

// The memory of one LRT_SHARED array (above): `bytes` bytes, 64-byte
// aligned, poisoned at the first use in each block.
class SharedArray {
 public:
  explicit SharedArray(size_t bytes);
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  void* memory();

 private:
  struct alignas(64) Line {
    unsigned char bytes[64];
  };
  size_t bytes_;
  std::unique_ptr<Line[]> lines_;
  uint64_t block_ = 0;  // the block it was last poisoned for
};

// Runs body once per thread of grid x block (see above); throws lrt::Error
// for a shuffle over a returned lane, a deadlock, or a grid or block out of
// CUDA's limits.
void run_grid(dim3 grid, dim3 block, const std::function<void()>& body);

void sync_block();
// __syncthreads_or: a barrier that also answers whether any thread's pred was
// nonzero.
int sync_block_or(int pred);
void sync_warp();
// Exchanges `bytes` bytes of value with the warp: returns through out the
// bytes lane `src_lane` passed (src_lane < 0: the caller's own).
void shuffle(const void* value, void* out, size_t bytes, int src_lane, unsigned mask);
int lane_id();

template <class T>
T shuffled(unsigned mask, T v, int src_lane) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
  T out;
  shuffle(&v, &out, sizeof(T), src_lane, mask);
  return out;
}

}  // namespace lrt::emulated_grid

inline void __syncthreads() { lrt::emulated_grid::sync_block(); }
inline int __syncthreads_or(int pred) { return lrt::emulated_grid::sync_block_or(pred); }
inline void __syncwarp(unsigned = 0xffffffffu) { lrt::emulated_grid::sync_warp(); }

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {
  const int lane = lrt::emulated_grid::lane_id();
  return lrt::emulated_grid::shuffled(mask, v, lane - lane % width + src % width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  const int lane = lrt::emulated_grid::lane_id();
  const int src = lane % width + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : -1;
  return lrt::emulated_grid::shuffled(mask, v, src);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  const int lane = lrt::emulated_grid::lane_id();
  const int src = lane % width >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : -1;
  return lrt::emulated_grid::shuffled(mask, v, src);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {
  const int lane = lrt::emulated_grid::lane_id();
  const int src = lane ^ lane_mask;
  return lrt::emulated_grid::shuffled(mask, v, src / width == lane / width ? src : -1);
}

// The device-side min and max of CUDA's math headers, for one type.
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}

// Atomics: a fiber runs alone until it waits at a barrier, so a plain
// read-modify-write is atomic here.
template <class T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  const T old = *p;
  if (v < old) *p = v;
  return old;
}
template <class T>
T atomicMax(T* p, T v) {
  const T old = *p;
  if (old < v) *p = v;
  return old;
}
inline double __longlong_as_double(long long v) {
  double d;
  std::memcpy(&d, &v, sizeof d);
  return d;
}

// A kernel's sleep and memory fence; the fibers of a block share one thread,
// so the fence orders nothing more than program order does.
void __nanosleep(unsigned ns);
inline void __threadfence() {}
// Nanoseconds of a steady clock: the %globaltimer register a kernel reads
// with inline PTX (kernels/cuda/dependent_launch_probe.cu).
unsigned long long emulated_grid_ns();

template <class Kernel>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel, int, size_t) {
  *blocks = lrt::emulated_grid::device().blocks_per_sm;
  return cudaSuccess;
}

// A launch (cudaLaunchKernelEx; kernels/cuda/launch.cuh's launch() under
// LRT_EMULATED_CUDA): the arguments are converted to the kernel's parameter
// types once, as a launch does (a captured launch keeps that copy for every
// replay), each thread gets its own copy, and the grid runs on the CPU when
// the stream reaches it (runtime.h). Launch attributes change nothing here.
template <class... Params, class... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(Params...), Args&&... args) {
  if (!config || !kernel) return cudaErrorInvalidValue;
  auto params = std::make_shared<const std::tuple<std::decay_t<Params>...>>(std::forward<Args>(args)...);
  const dim3 grid = config->gridDim, block = config->blockDim;
  return lrt::emulated_runtime::submit(config->stream, [kernel, params, grid, block] {
    lrt::emulated_runtime::count_launch();
    lrt::emulated_grid::run_grid(grid, block, [&] { std::apply(kernel, *params); });
  });
}

#if defined(LRT_EMULATED_GRID)
// lrt::cuda's runtime state, as lrt::emulated (see above).
namespace lrt::emulated {

class DeviceGuard {
 public:
  explicit DeviceGuard(int) {}
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
};

inline cudaStream_t stream(int) { return nullptr; }
inline int sm_count(int) { return emulated_grid::device().sm_count; }
// core/cuda_context.cpp's grid_for, over the emulated SM count.
inline unsigned grid_for(int64_t n, int threads, int device) {
  const int64_t needed = (n + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * 16;
  return static_cast<unsigned>(needed < 1 ? 1 : needed < cap ? needed : cap);
}

}  // namespace lrt::emulated

namespace lrt::kernels::emulated {

// kernels/cuda/launch.cuh's launch(), on the stream given (lrt::emulated::
// stream: the legacy one).
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, int, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = stream;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace lrt::kernels::emulated
#endif  // LRT_EMULATED_GRID

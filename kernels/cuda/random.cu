// CUDA fill from the Philox stream with the per-element transforms of
// core/philox.h, so the same (seed, offset) gives the CPU's numbers.
#include "core/philox.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cuda {

namespace {

template <class T>
__global__ void uniform_kernel(T* y, int64_t n, uint64_t seed, uint64_t offset) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = static_cast<T>(philox::uniform_at(seed, offset, static_cast<uint64_t>(i)));
}

// lrt: stack frame allowed: the double-precision cos and sin of Box-Muller
// reduce large arguments through a local array; fills at initialisation only.
template <class T>
__global__ void normal_kernel(T* y, int64_t n, uint64_t seed, uint64_t offset) {
  dependent_launch_enter();
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = static_cast<T>(static_cast<float>(philox::normal_at(seed, offset, static_cast<uint64_t>(i))));
}

}  // namespace

void fill_random(RandomKind kind, const Tensor& out, uint64_t seed, uint64_t offset) {
  const int dev = device_of(out);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t n = out.numel();
  const unsigned grid = lrt::cuda::grid_for(n, kThreads, dev);
  dispatch_floating(out.dtype(), "fill_random", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (kind == RandomKind::Uniform)
      launch(uniform_kernel<T>, grid, kThreads, s, dev, out.data<T>(), n, seed, offset);
    else
      launch(normal_kernel<T>, grid, kThreads, s, dev, out.data<T>(), n, seed, offset);
  });
}

}  // namespace lrt::kernels::cuda

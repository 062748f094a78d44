// CUDA kernels over the pooling window math of kernels/pool.h: one thread per
// output element forward, one per input element backward (the gather of
// kernels/pool.h, so no atomics and the CPU's results bit for bit). Grid-stride
// loops over NCHW-contiguous tensors; consecutive threads take consecutive
// columns, so loads and stores coalesce along W.
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"
#include "kernels/pool.h"

namespace lrt::kernels::cuda {

namespace {

template <class T>
__global__ void max_pool2d_forward_kernel(const T* x, PoolGeometry g, T* y, int64_t* indices) {
  dependent_launch_enter();
  const int64_t n = g.planes * g.p * g.q;
  for (int64_t o = global_thread(); o < n; o += grid_threads()) {
    const int64_t plane = o / (g.p * g.q), oh = o / g.q % g.p, ow = o % g.q;
    T v;
    int64_t i;
    max_pool2d_window(x + plane * g.h * g.w, g, oh, ow, v, i);
    y[o] = v;
    if (indices) indices[o] = i;
  }
}

template <class T>
__global__ void max_pool2d_backward_kernel(const T* gy, const int64_t* indices, PoolGeometry g, T* gx) {
  dependent_launch_enter();
  const int64_t n = g.planes * g.h * g.w;
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t plane = e / (g.h * g.w), h = e / g.w % g.h, w = e % g.w;
    const int64_t out_off = plane * g.p * g.q;
    gx[e] = max_pool2d_input_grad(gy + out_off, indices + out_off, g, h, w);
  }
}

template <class T>
__global__ void avg_pool2d_forward_kernel(const T* x, PoolGeometry g, T* y) {
  dependent_launch_enter();
  const int64_t n = g.planes * g.p * g.q;
  for (int64_t o = global_thread(); o < n; o += grid_threads()) {
    const int64_t plane = o / (g.p * g.q), oh = o / g.q % g.p, ow = o % g.q;
    y[o] = avg_pool2d_window(x + plane * g.h * g.w, g, oh, ow);
  }
}

template <class T>
__global__ void avg_pool2d_backward_kernel(const T* gy, PoolGeometry g, T* gx) {
  dependent_launch_enter();
  const int64_t n = g.planes * g.h * g.w;
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t plane = e / (g.h * g.w), h = e / g.w % g.h, w = e % g.w;
    gx[e] = avg_pool2d_input_grad(gy + plane * g.p * g.q, g, h, w);
  }
}

}  // namespace

void max_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y, const Tensor& indices) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const unsigned grid = lrt::cuda::grid_for(g.planes * g.p * g.q, kThreads, dev);
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    int64_t* ip = indices.defined() ? indices.data<int64_t>() : nullptr;
    launch(max_pool2d_forward_kernel<T>, grid, kThreads, s, dev, x.data<T>(), g, y.data<T>(), ip);
  });
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, const PoolGeometry& g, const Tensor& gx) {
  const int dev = device_of(gy);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const unsigned grid = lrt::cuda::grid_for(g.planes * g.h * g.w, kThreads, dev);
  dispatch_floating(gy.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(max_pool2d_backward_kernel<T>, grid, kThreads, s, dev, gy.data<T>(), indices.data<int64_t>(), g,
           gx.data<T>());
  });
}

void avg_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const unsigned grid = lrt::cuda::grid_for(g.planes * g.p * g.q, kThreads, dev);
  dispatch_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(avg_pool2d_forward_kernel<T>, grid, kThreads, s, dev, x.data<T>(), g, y.data<T>());
  });
}

void avg_pool2d_backward(const Tensor& gy, const PoolGeometry& g, const Tensor& gx) {
  const int dev = device_of(gy);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const unsigned grid = lrt::cuda::grid_for(g.planes * g.h * g.w, kThreads, dev);
  dispatch_floating(gy.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(avg_pool2d_backward_kernel<T>, grid, kThreads, s, dev, gy.data<T>(), g, gx.data<T>());
  });
}

}  // namespace lrt::kernels::cuda

// CUDA kernels over the log-softmax and cross-entropy math of
// kernels/softmax.h. Row reductions run one warp per row (classes are few,
// 10 to 1000): each lane takes every 32nd element, then a butterfly of
// shuffles merges the lanes in a fixed order, so results are deterministic.
// The cross-entropy gradient is elementwise, one thread per element.
//
// An out-of-range label cannot be thrown from a kernel: the forward kernel
// records the lowest bad row in a device word, which the launcher reads back
// (one stream synchronisation per call) and turns into the CPU's error.
// Without the check (check_labels false: no read-back, no wait) such a row
// gets a NaN loss and log-sum-exp, so its loss and gradient are NaN; the
// kernels never index the logits by a bad label.
#include "kernels/cuda/launch.cuh"
#include "kernels/indexing.h"
#include "kernels/kernels.h"
#include "kernels/softmax.h"

namespace lrt::kernels::cuda {

namespace {

constexpr int kWarp = 32;

template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const T u = __shfl_xor_sync(0xffffffffu, v, o);
    if (u > v) v = u;
  }
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The row's log-sum-exp, in every lane of the warp.
template <class T>
__device__ RowLse warp_row_lse(const T* row, int64_t cols, int lane) {
  const T m = warp_max(row_max_part(row, lane, cols, kWarp));
  return row_lse(m, warp_sum(row_exp_sum_part(row, m, lane, cols, kWarp)));
}

// Rows are handed out per warp (the loop condition is uniform across a
// warp), as the shuffles need every lane.
__device__ __forceinline__ int64_t warp_id() { return global_thread() / kWarp; }
__device__ __forceinline__ int64_t warps_in_grid() { return grid_threads() / kWarp; }

template <class T>
__global__ void log_softmax_forward_kernel(const T* x, T* y, int64_t rows, int64_t cols) {
  dependent_launch_enter();
  const int lane = threadIdx.x % kWarp;
  for (int64_t r = warp_id(); r < rows; r += warps_in_grid()) {
    const T* row = x + r * cols;
    const RowLse lse = warp_row_lse(row, cols, lane);
    for (int64_t j = lane; j < cols; j += kWarp) y[r * cols + j] = log_softmax_value(row[j], lse);
  }
}

template <class T>
__global__ void log_softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols) {
  dependent_launch_enter();
  const int lane = threadIdx.x % kWarp;
  for (int64_t r = warp_id(); r < rows; r += warps_in_grid()) {
    const int64_t base = r * cols;
    const double s = warp_sum(row_sum_part(gy + base, lane, cols, kWarp));
    for (int64_t j = lane; j < cols; j += kWarp) gx[base + j] = log_softmax_grad(gy[base + j], y[base + j], s);
  }
}

template <class T>
__global__ void cross_entropy_forward_kernel(const T* x, const int64_t* labels, T* loss, RowLse* lse, int64_t rows,
                                             int64_t cols, unsigned long long* bad_row) {
  dependent_launch_enter();
  const int lane = threadIdx.x % kWarp;
  for (int64_t r = warp_id(); r < rows; r += warps_in_grid()) {
    const int64_t label = labels[r];
    if (!label_in_range(label, cols)) {
      if (lane == 0) {
        if (bad_row) atomicMin(bad_row, static_cast<unsigned long long>(r));
        const double nan = __longlong_as_double(0x7ff8000000000000LL);
        lse[r] = RowLse{nan, nan};  // the backward's gradient of the row is NaN too
        loss[r] = static_cast<T>(nan);
      }
      continue;
    }
    const T* row = x + r * cols;
    const RowLse s = warp_row_lse(row, cols, lane);
    if (lane == 0) {
      lse[r] = s;
      loss[r] = cross_entropy_loss(row[label], s);
    }
  }
}

template <class T>
__global__ void cross_entropy_backward_kernel(const T* x, const int64_t* labels, const RowLse* lse, const T* gloss,
                                              T* gx, int64_t rows, int64_t cols) {
  dependent_launch_enter();
  const int64_t n = rows * cols;
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t r = e / cols, j = e % cols;
    gx[e] = cross_entropy_grad(x[e], lse[r], j == labels[r], gloss[r]);
  }
}

// Launch shape for one warp per row.
unsigned row_grid(int64_t rows, int dev) { return lrt::cuda::grid_for(rows * kWarp, kThreads, dev); }

}  // namespace

void log_softmax_forward(const Tensor& x, const Tensor& y) {
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t rows = x.size(0), cols = x.size(1);
  dispatch_floating(x.dtype(), "log_softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(log_softmax_forward_kernel<T>, row_grid(rows, dev), kThreads, s, dev, x.data<T>(), y.data<T>(), rows, cols);
  });
}

void log_softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx) {
  const int dev = device_of(y);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t rows = y.size(0), cols = y.size(1);
  dispatch_floating(y.dtype(), "log_softmax_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(log_softmax_backward_kernel<T>, row_grid(rows, dev), kThreads, s, dev, y.data<T>(), gy.data<T>(),
           gx.data<T>(), rows, cols);
  });
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& loss, const Tensor& lse,
                           bool check_labels) {
  const int dev = device_of(logits);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t rows = logits.size(0), cols = logits.size(1);
  // rows means "no bad label"; the kernel lowers it to the first bad row.
  Tensor bad;
  unsigned long long* bad_row = nullptr;
  if (check_labels) {
    bad = empty({1}, TensorOptions(DType::Int64).with_device(logits.device()));
    fill(bad, static_cast<double>(rows));
    bad_row = static_cast<unsigned long long*>(bad.data_ptr());
  }
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(cross_entropy_forward_kernel<T>, row_grid(rows, dev), kThreads, s, dev, logits.data<T>(),
           labels.data<int64_t>(), loss.data<T>(), reinterpret_cast<RowLse*>(lse.data<double>()), rows, cols, bad_row);
  });
  if (!check_labels) return;  // no read-back: a bad row's loss is NaN
  int64_t first_bad = rows;
  CUDA_CHECK(cudaMemcpyAsync(&first_bad, bad_row, sizeof(first_bad), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  if (first_bad < rows) {
    int64_t label = 0;
    CUDA_CHECK(cudaMemcpyAsync(&label, labels.data<int64_t>() + first_bad, sizeof(label), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    throw_bad_label(label, cols, first_bad);
  }
}

void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, const Tensor& gloss,
                            const Tensor& gx) {
  const int dev = device_of(logits);
  DeviceGuard guard(dev);
  cudaStream_t s = lrt::cuda::stream(dev);
  const int64_t rows = logits.size(0), cols = logits.size(1);
  const unsigned grid = lrt::cuda::grid_for(rows * cols, kThreads, dev);
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(cross_entropy_backward_kernel<T>, grid, kThreads, s, dev, logits.data<T>(), labels.data<int64_t>(),
           reinterpret_cast<const RowLse*>(lse.data<double>()), gloss.data<T>(), gx.data<T>(), rows, cols);
  });
}

}  // namespace lrt::kernels::cuda

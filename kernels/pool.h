// 2-D pooling over square windows of NCHW planes: the window math shared by
// the CPU loops (kernels/cpu/pool.cpp) and the CUDA kernels
// (kernels/cuda/pool.cu), and their entry points. Conventions are PyTorch's:
// floor output sizes; max pads with -inf and records, per output, the flat
// index h * W + w of its maximum inside the input plane (int64); avg counts
// the padded zeros in its divisor (count_include_pad = true).
//
// Backward passes gather: each input element sums the gradients of the
// windows that cover it, in window order, so results are deterministic and
// the same on both devices (no atomics, no scatter races).
//
// The checked entry points route to kernels::cpu or kernels::cuda; their
// routing lives in kernels/cpu/pool.cpp, the file every build compiles.
#pragma once

#include <cstdint>
#include <limits>

#include "core/hd.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace lrt::kernels {

// One pooling: planes = N * C input planes of (h, w), outputs (p, q).
struct PoolGeometry {
  int64_t planes = 0, h = 0, w = 0, p = 0, q = 0;
  int64_t kernel = 1, stride = 1, pad = 0;
};

// floor((in + 2 pad - kernel) / stride) + 1, or 0 when no window fits (the
// division would otherwise round a negative span up to a window).
LRT_HD int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t span = in + 2 * pad - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

struct PoolRange {
  int64_t begin, end;
};

// The input rows (or columns) [begin, end) that window o reads, clipped to
// the input.
LRT_HD PoolRange pool_window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t start = o * stride - pad, stop = start + kernel;
  return {start < 0 ? 0 : start, stop < in ? stop : in};
}

// The outputs [begin, end) whose windows read input row (or column) i:
// o stride - pad <= i < o stride - pad + kernel.
LRT_HD PoolRange pool_windows_covering(int64_t i, int64_t out, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t ip = i + pad;
  const int64_t begin = ip < kernel ? 0 : (ip - kernel) / stride + 1;
  const int64_t end = ip / stride + 1;
  return {begin, end < out ? end : out};
}

// Window cells counted by avg pooling: the window clipped to the padded
// input, so padding counts and cells past it do not.
LRT_HD int64_t avg_pool_divisor(int64_t oh, int64_t ow, const PoolGeometry& g) {
  const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
  const int64_t h1 = h0 + g.kernel < g.h + g.pad ? h0 + g.kernel : g.h + g.pad;
  const int64_t w1 = w0 + g.kernel < g.w + g.pad ? w0 + g.kernel : g.w + g.pad;
  return (h1 - h0) * (w1 - w0);
}

// Max of window (oh, ow) of one plane and its flat index. Ties keep the first
// maximum in row-major order; a NaN wins over any number (the last NaN's
// index), as PyTorch's kernels do. A window of -inf reports its first cell.
template <class T>
LRT_HD void max_pool2d_window(const T* plane, const PoolGeometry& g, int64_t oh, int64_t ow, T& value,
                              int64_t& index) {
  const PoolRange rh = pool_window(oh, g.h, g.kernel, g.stride, g.pad);
  const PoolRange rw = pool_window(ow, g.w, g.kernel, g.stride, g.pad);
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_i = rh.begin * g.w + rw.begin;
  for (int64_t h = rh.begin; h < rh.end; ++h)
    for (int64_t w = rw.begin; w < rw.end; ++w) {
      const T v = plane[h * g.w + w];
      if (v > best || math::isnan(v)) {
        best = v;
        best_i = h * g.w + w;
      }
    }
  value = best;
  index = best_i;
}

// Gradient of input (h, w) of one plane: the sum of the output gradients of
// the windows whose maximum it was.
template <class T>
LRT_HD T max_pool2d_input_grad(const T* gy_plane, const int64_t* idx_plane, const PoolGeometry& g, int64_t h,
                               int64_t w) {
  const PoolRange ph = pool_windows_covering(h, g.p, g.kernel, g.stride, g.pad);
  const PoolRange pw = pool_windows_covering(w, g.q, g.kernel, g.stride, g.pad);
  const int64_t self = h * g.w + w;
  T acc = T(0);
  for (int64_t oh = ph.begin; oh < ph.end; ++oh)
    for (int64_t ow = pw.begin; ow < pw.end; ++ow)
      if (idx_plane[oh * g.q + ow] == self) acc += gy_plane[oh * g.q + ow];
  return acc;
}

// Mean of window (oh, ow) of one plane, padding counted as zeros; the sum
// accumulates in double.
template <class T>
LRT_HD T avg_pool2d_window(const T* plane, const PoolGeometry& g, int64_t oh, int64_t ow) {
  const PoolRange rh = pool_window(oh, g.h, g.kernel, g.stride, g.pad);
  const PoolRange rw = pool_window(ow, g.w, g.kernel, g.stride, g.pad);
  double acc = 0.0;
  for (int64_t h = rh.begin; h < rh.end; ++h)
    for (int64_t w = rw.begin; w < rw.end; ++w) acc += static_cast<double>(plane[h * g.w + w]);
  return static_cast<T>(acc / static_cast<double>(avg_pool_divisor(oh, ow, g)));
}

// Gradient of input (h, w) of one plane: each covering window's gradient
// divided by that window's divisor.
template <class T>
LRT_HD T avg_pool2d_input_grad(const T* gy_plane, const PoolGeometry& g, int64_t h, int64_t w) {
  const PoolRange ph = pool_windows_covering(h, g.p, g.kernel, g.stride, g.pad);
  const PoolRange pw = pool_windows_covering(w, g.q, g.kernel, g.stride, g.pad);
  T acc = T(0);
  for (int64_t oh = ph.begin; oh < ph.end; ++oh)
    for (int64_t ow = pw.begin; ow < pw.end; ++ow)
      acc += gy_plane[oh * g.q + ow] / static_cast<T>(avg_pool_divisor(oh, ow, g));
  return acc;
}

// The geometry of pooling an (N, C, H, W) input; checks nothing (p or q
// below 1 means no window fits).
inline PoolGeometry make_pool_geometry(const Shape& x, int64_t kernel, int64_t stride, int64_t pad) {
  PoolGeometry g;
  g.planes = x[0] * x[1];
  g.h = x[2];
  g.w = x[3];
  g.kernel = kernel;
  g.stride = stride;
  g.pad = pad;
  g.p = pool_out_size(g.h, kernel, stride, pad);
  g.q = pool_out_size(g.w, kernel, stride, pad);
  return g;
}

// ---- entry points ----
// Each checks its tensors against the geometry (contiguous, one device, one
// floating dtype, x (N, C, H, W) and y (N, C, P, Q) with N C = planes), then
// runs the CPU loop or the CUDA kernel of the tensors' device. Outputs are
// written, never accumulated into.
// y = max over each window; indices int64 (N, C, P, Q) receive the argmax,
// or are undefined when no backward will need them.
void max_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y, const Tensor& indices);
// gx (N, C, H, W) from gy and the forward's indices (N, C, P, Q).
void max_pool2d_backward(const Tensor& gy, const Tensor& indices, const PoolGeometry& g, const Tensor& gx);
void avg_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y);
void avg_pool2d_backward(const Tensor& gy, const PoolGeometry& g, const Tensor& gx);

// ---- the two implementations (unchecked, identical signatures) ----
#define LRT_POOL_KERNEL_DECLS                                                                                 \
  void max_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y, const Tensor& indices);    \
  void max_pool2d_backward(const Tensor& gy, const Tensor& indices, const PoolGeometry& g, const Tensor& gx); \
  void avg_pool2d_forward(const Tensor& x, const PoolGeometry& g, const Tensor& y);                          \
  void avg_pool2d_backward(const Tensor& gy, const PoolGeometry& g, const Tensor& gx);

namespace cpu {
LRT_POOL_KERNEL_DECLS
}  // namespace cpu

namespace cuda {
LRT_POOL_KERNEL_DECLS
}  // namespace cuda

#undef LRT_POOL_KERNEL_DECLS

}  // namespace lrt::kernels

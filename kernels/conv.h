// Convolution kernels, no autograd: 2-D cross-correlation of NCHW images as
// PyTorch's conv2d, with one stride, zero padding and dilation for both
// spatial dims. x (N, C, H, W), w (K, C, R, S), bias (K), y (N, K, P, Q), all
// of one device and one floating dtype. x, w and y (or their gradients) are
// contiguous in one memory format (see conv_memory_format): NCHW, or on
// CUDA in float32 or bfloat16 channels_last (NHWC activations and a KRSC
// weight, cuDNN's native layout for tensor cores); bias contiguous. Outputs are
// written (=), never accumulated: summing gradients is autograd's business.
// CPU: im2col + GEMM (kernels/cpu/conv.cpp); CUDA: cuDNN (kernels/cuda/conv.cu).
// The index math below is shared by both devices.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace lrt::kernels {

struct ConvParams {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  // CUDA only: pick algorithms by a timed search (cudnnFind...) run once per
  // shape and cached, instead of cuDNN's heuristics.
  bool benchmark = false;
  // CUDA only: float32 convolutions may use TF32 tensor cores (inputs
  // rounded to a 10-bit mantissa, fp32 accumulation), as PyTorch's default
  // torch.backends.cudnn.allow_tf32 = True. Off: plain FP32 (FMA) math.
  bool allow_tf32 = false;
  // CUDA only: only algorithms cuDNN reports as deterministic (no atomic
  // accumulation), so that a run repeats to the bit, as PyTorch's
  // torch.backends.cudnn.deterministic. CPU convolutions always are.
  bool deterministic = false;
};

// a / b rounded toward minus infinity (b > 0): padding makes numerators
// negative, where C++'s truncation would round the wrong way.
LRT_HD constexpr int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output extent of one spatial dim for an input extent `in` and a window of
// `k` taps; below 1 when the dilated window does not fit the padded input.
LRT_HD constexpr int64_t conv_out_size(int64_t in, int64_t k, const ConvParams& p) {
  return floor_div(in + 2 * p.padding - p.dilation * (k - 1) - 1, p.stride) + 1;
}

// Output positions o in [lo, hi) whose tap `tap` reads inside the input,
// i.e. 0 <= o * stride - padding + tap * dilation < in, clipped to [0, out).
struct ConvRange {
  int64_t lo, hi;
};
LRT_HD constexpr ConvRange conv_valid_range(int64_t in, int64_t out, int64_t tap, const ConvParams& p) {
  const int64_t off = tap * p.dilation - p.padding;  // input index of output 0
  int64_t lo = -floor_div(off, p.stride);            // ceil(-off / stride)
  int64_t hi = floor_div(in - 1 - off, p.stride) + 1;
  lo = lo < 0 ? 0 : lo;
  hi = hi > out ? out : hi;
  return {lo, hi < lo ? lo : hi};
}

// The memory format of a convolution whose activations are x and y (or
// their gradients): channels_last when either is laid out so and not also
// NCHW (a one-channel input or 1x1 images fit both), else contiguous.
inline MemoryFormat conv_memory_format(const Tensor& x, const Tensor& y) {
  return memory_format_of(x) == MemoryFormat::ChannelsLast || memory_format_of(y) == MemoryFormat::ChannelsLast
             ? MemoryFormat::ChannelsLast
             : MemoryFormat::Contiguous;
}

// (N, K, P, Q) for x (N, C, H, W) and w (K, C, R, S); checks nothing.
inline Shape conv2d_output_shape(const Shape& x, const Shape& w, const ConvParams& p) {
  return {x[0], w[0], conv_out_size(x[2], w[2], p), conv_out_size(x[3], w[3], p)};
}

// y = conv(x, w) + bias; bias may be undefined (no bias).
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& p);
// gx = the gradient of conv(x, w) with respect to x, given gy (a transposed
// convolution of gy with w). accumulate: gx += that gradient instead (cuDNN
// blends it in with beta 1, rounding once; the CPU adds a separate result).
void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& p,
                          bool accumulate = false);
// gw = the gradient with respect to w: sum over the batch of x correlated
// with gy.
void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& p);
// gb (K) = the sum of gy over N, P and Q (on either device, through reduce).
void conv2d_backward_bias(const Tensor& gy, const Tensor& gb);

// ---- the two implementations (arguments already checked, N >= 1) ----
#define LRT_CONV_KERNEL_DECLS                                                                                   \
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvParams& p); \
  void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const ConvParams& p,            \
                            bool accumulate);                                                                   \
  void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvParams& p);

namespace cpu {
LRT_CONV_KERNEL_DECLS
}  // namespace cpu

namespace cuda {
LRT_CONV_KERNEL_DECLS
}  // namespace cuda

#undef LRT_CONV_KERNEL_DECLS

}  // namespace lrt::kernels

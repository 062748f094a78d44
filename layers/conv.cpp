// The differentiable conv2d of layers/functional.h over the kernels of
// kernels/conv.h, and the process-wide switch between cuDNN's heuristics and
// its timed algorithm search. Checks name conv2d and the shapes involved.
// The backward closure saves x only when the weight needs a gradient and the
// weight only when x needs one, and runs each of the three passes (data,
// filter, bias) only for an input that requires grad.
#include <atomic>

#include "core/autograd.h"
#include "kernels/conv.h"
#include "layers/functional.h"

namespace lrt {

namespace {

std::atomic<bool> g_conv_benchmark{false};
std::atomic<bool> g_conv_tf32{false};
std::atomic<bool> g_conv_deterministic{false};
std::atomic<bool> g_conv_grad_blend{true};

using Grads = std::vector<Tensor>;

void check_conv2d_args(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opts) {
  LRT_CHECK(x.defined() && weight.defined(), "conv2d: undefined ", x.defined() ? "weight" : "input");
  const std::string shapes = "input " + to_string(x.shape()) + ", weight " + to_string(weight.shape());
  LRT_CHECK(x.dim() == 4, "conv2d: expects a 4-D input (N, C, H, W), got ", shapes);
  LRT_CHECK(weight.dim() == 4, "conv2d: expects a 4-D weight (K, C, R, S), got ", shapes);
  LRT_CHECK(x.device() == weight.device(), "conv2d: ", shapes, " are on different devices (", x.device(), " and ",
            weight.device(), "); move one with .to(device)");
  LRT_CHECK(x.dtype() == weight.dtype(), "conv2d: ", shapes, " have different dtypes (", x.dtype(), " and ",
            weight.dtype(), "); convert one with .to(dtype)");
  detail::check_floating_or_bf16(x, "conv2d");
  LRT_CHECK(!(bias.defined() && x.dtype() == DType::BFloat16), "conv2d: ", shapes,
            ": a bias is not supported with bfloat16 inputs (convolutions followed by batch norm need none)");
  LRT_CHECK(x.size(1) == weight.size(1), "conv2d: ", shapes, ": the input has ", x.size(1),
            " channels but the weight expects ", weight.size(1));
  LRT_CHECK(weight.numel() > 0, "conv2d: ", shapes, ": the weight is empty");
  if (bias.defined()) {
    LRT_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "conv2d: bias shape ", to_string(bias.shape()),
              " does not match ", shapes, " (expected ", to_string(Shape{weight.size(0)}), ")");
    LRT_CHECK(bias.device() == x.device() && bias.dtype() == x.dtype(), "conv2d: bias ", to_string(bias.shape()),
              " is ", bias.dtype(), " on ", bias.device(), " but the ", shapes, " are ", x.dtype(), " on ",
              x.device());
  }
  LRT_CHECK(opts.stride >= 1 && opts.dilation >= 1 && opts.padding >= 0, "conv2d: ", shapes, ": stride ", opts.stride,
            " and dilation ", opts.dilation, " must be >= 1 and padding ", opts.padding, " >= 0");
}

}  // namespace

void set_conv_benchmark(bool on) { g_conv_benchmark.store(on, std::memory_order_relaxed); }
bool conv_benchmark() { return g_conv_benchmark.load(std::memory_order_relaxed); }
void set_conv_allow_tf32(bool on) { g_conv_tf32.store(on, std::memory_order_relaxed); }
bool conv_allow_tf32() { return g_conv_tf32.load(std::memory_order_relaxed); }
void set_conv_deterministic(bool on) { g_conv_deterministic.store(on, std::memory_order_relaxed); }
bool conv_deterministic() { return g_conv_deterministic.load(std::memory_order_relaxed); }
void set_conv_grad_blend(bool on) { g_conv_grad_blend.store(on, std::memory_order_relaxed); }
bool conv_grad_blend() { return g_conv_grad_blend.load(std::memory_order_relaxed); }

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opts) {
  check_conv2d_args(x, weight, bias, opts);
  const kernels::ConvParams p{opts.stride,      opts.padding,      opts.dilation,
                              conv_benchmark(), conv_allow_tf32(), conv_deterministic()};
  const Shape out_shape = kernels::conv2d_output_shape(x.shape(), weight.shape(), p);
  LRT_CHECK(out_shape[2] >= 1 && out_shape[3] >= 1, "conv2d: input ", to_string(x.shape()), ", weight ",
            to_string(weight.shape()), " with stride ", p.stride, ", padding ", p.padding, " and dilation ",
            p.dilation, " give an output of size ", out_shape[2], "x", out_shape[3], " (must be at least 1x1)");

  // The output takes x's memory format. cuDNN computes channels_last
  // directly (the weight copied to KRSC for the call unless it is laid out
  // so already; for 1x1 filters the layouts coincide); the CPU kernels, and
  // float64 on CUDA (which PyTorch keeps NCHW for cuDNN too), compute in
  // NCHW between copies. The weight's gradient takes the weight's layout.
  const MemoryFormat fmt = memory_format_of(x), wfmt = memory_format_of(weight);
  const MemoryFormat kfmt =
      x.device().is_cuda() && x.dtype() != DType::Float64 ? fmt : MemoryFormat::Contiguous;
  Tensor xc, wc, bc, y;
  {
    // Contiguous copies of views are plain buffers here: the graph points at
    // the inputs themselves.
    NoGradGuard no_grad;
    xc = x.contiguous(kfmt).detach();
    wc = weight.contiguous(kfmt).detach();
    if (bias.defined()) bc = bias.contiguous().detach();
    y = empty(out_shape, x.options(), kfmt);
    detail::repeat_kernel(KernelGroup::Convolution, [&] { kernels::conv2d_forward(xc, wc, bc, y, p); });
    y = y.contiguous(fmt).detach();
  }

  const bool need_gx = x.requires_grad(), need_gw = weight.requires_grad();
  const bool need_gb = bias.defined() && bias.requires_grad();
  return record("conv2d", y, {x, weight, bias},
                [x_saved = need_gw ? xc : Tensor(), w_saved = need_gx ? wc : Tensor(), x_shape = x.shape(),
                 w_shape = weight.shape(), need_gx, need_gw, need_gb, p, fmt, wfmt, kfmt](const Tensor& g) {
                  const Tensor gy = g.contiguous(kfmt);
                  Tensor gx, gw, gb;
                  if (need_gx) {
                    // Where x has other consumers (a bottleneck's input also
                    // feeds the residual or the shortcut) and their gradient
                    // already waits, this one is added into it as it is
                    // computed: no separate pass to sum the two.
                    const Tensor into =
                        kfmt == fmt && conv_grad_blend() ? take_waiting_grad(0, gy.dtype(), kfmt) : Tensor();
                    if (into.defined()) {
                      detail::repeat_kernel(KernelGroup::Convolution,
                                            [&] { kernels::conv2d_backward_data(gy, w_saved, into, p, true); });
                      gx = into;
                    } else {
                      gx = empty(x_shape, gy.options(), kfmt);
                      detail::repeat_kernel(KernelGroup::Convolution,
                                            [&] { kernels::conv2d_backward_data(gy, w_saved, gx, p); });
                      gx = gx.contiguous(fmt);
                    }
                  }
                  if (need_gw) {
                    gw = empty(w_shape, gy.options(), kfmt);
                    detail::repeat_kernel(KernelGroup::Convolution,
                                          [&] { kernels::conv2d_backward_filter(x_saved, gy, gw, p); });
                    gw = gw.contiguous(wfmt);  // the weight's own layout, as PyTorch gives
                  }
                  if (need_gb) {
                    gb = empty({w_shape[0]}, gy.options());
                    kernels::conv2d_backward_bias(gy.contiguous(), gb);
                  }
                  return Grads{gx, gw, gb};
                });
}

}  // namespace lrt

// lrt::batch_norm and lrt::batch_norm_act (declared in layers/functional.h):
// argument checks, the kernels of kernels/batch_norm.h on the input's
// device, and the backward closure. The running statistics are updated in
// place by the statistics kernel, outside autograd. Backward keeps x, the
// mean and invstd forward normalised with, and the weight. After a fused
// ReLU it needs the ReLU's mask: with a residual, or in eval mode, it keeps
// the output (the next layer keeps it anyway); otherwise it keeps the bias
// and recomputes the mask from x (unless set_bn_relu_from_x(false): then it
// keeps the output). It computes only the gradients asked for. With
// set_bn_cudnn(true), training on CUDA runs cuDNN's batch norm instead,
// whose backward keeps the output (after a ReLU) and the forward's reserve
// space.
#include "kernels/batch_norm.h"

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/functional.h"
#include "lrt_config.h"

namespace lrt {

namespace {

std::atomic<bool> g_bn_relu_from_x{true};
std::atomic<bool> g_bn_cudnn{false};

// Runs kernels::cuda::call or kernels::cpu::call by device, as many times
// as kernel_repeat(KernelGroup::BatchNorm) says (1 but when timing).
#if LRT_HAVE_CUDA
#define LRT_BN_ROUTE(dev, call)                                    \
  detail::repeat_kernel(KernelGroup::BatchNorm, [&] {              \
    if ((dev).is_cuda())                                           \
      kernels::cuda::call;                                         \
    else                                                           \
      kernels::cpu::call;                                          \
  })
#else
#define LRT_BN_ROUTE(dev, call)                                    \
  detail::repeat_kernel(KernelGroup::BatchNorm, [&] {              \
    (void)(dev);                                                   \
    kernels::cpu::call;                                            \
  })
#endif

// The dtype of the per-channel tensors (weight, bias, running statistics)
// and of the per-channel results: x's, or float32 for a bfloat16 x (mixed
// precision: bfloat16 activations, float32 parameters and statistics).
DType channel_dtype(const Tensor& x) { return x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype(); }

// A per-channel tensor: undefined (when allowed) or 1-D of C elements,
// contiguous, on x's device with channel_dtype(x).
void check_channel_tensor(const Tensor& t, const char* name, const Tensor& x, int64_t channels) {
  if (!t.defined()) return;
  LRT_CHECK(t.dim() == 1 && t.size(0) == channels, "batch_norm: ", name, " of shape ", to_string(t.shape()),
            " does not match the ", channels, " channels of input ", to_string(x.shape()), " (expected ",
            to_string(Shape{channels}), ")");
  LRT_CHECK(t.device() == x.device(), "batch_norm: ", name, " is on ", t.device(), " but input on ", x.device());
  if (x.dtype() == DType::BFloat16)
    LRT_CHECK(t.dtype() == DType::Float32, "batch_norm: ", name, " has dtype ", t.dtype(),
              "; a bfloat16 input takes float32 weight, bias and running statistics");
  else
    LRT_CHECK(t.dtype() == x.dtype(), "batch_norm: ", name, " has dtype ", t.dtype(), " but input ", x.dtype());
  LRT_CHECK(t.is_contiguous(), "batch_norm: ", name, " must be contiguous");
}

// The tensor's data, outside autograd (undefined stays undefined).
Tensor plain(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

}  // namespace

void set_bn_relu_from_x(bool on) { g_bn_relu_from_x.store(on, std::memory_order_relaxed); }
bool bn_relu_from_x() { return g_bn_relu_from_x.load(std::memory_order_relaxed); }
void set_bn_cudnn(bool on) { g_bn_cudnn.store(on, std::memory_order_relaxed); }
bool bn_cudnn() { return g_bn_cudnn.load(std::memory_order_relaxed); }

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  return batch_norm_act(x, weight, bias, running_mean, running_var, training, Tensor(), false, momentum, eps);
}

Tensor batch_norm_act(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                      const Tensor& running_var, bool training, const Tensor& residual, bool relu, double momentum,
                      double eps) {
  LRT_CHECK(x.defined(), "batch_norm: undefined input");
  LRT_CHECK(x.dim() == 2 || x.dim() == 4, "batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape ",
            to_string(x.shape()));
  detail::check_floating_or_bf16(x, "batch_norm");
  const int64_t channels = x.size(1);
  check_channel_tensor(weight, "weight", x, channels);
  check_channel_tensor(bias, "bias", x, channels);
  check_channel_tensor(running_mean, "running_mean", x, channels);
  check_channel_tensor(running_var, "running_var", x, channels);
  LRT_CHECK(running_mean.defined() == running_var.defined(),
            "batch_norm: running_mean and running_var must be both defined or both undefined");
  LRT_CHECK(eps >= 0.0, "batch_norm: eps must not be negative, got ", eps);
  if (residual.defined()) {
    LRT_CHECK(residual.shape() == x.shape(), "batch_norm: residual of shape ", to_string(residual.shape()),
              " does not match input ", to_string(x.shape()));
    LRT_CHECK(residual.device() == x.device(), "batch_norm: residual is on ", residual.device(), " but input on ",
              x.device());
    LRT_CHECK(residual.dtype() == x.dtype(), "batch_norm: residual has dtype ", residual.dtype(), " but input ",
              x.dtype());
  }
  const int64_t per_channel = channels == 0 ? 0 : x.numel() / channels;
  if (training)
    LRT_CHECK(per_channel > 1, "batch_norm: expected more than 1 value per channel when training, got input of shape ",
              to_string(x.shape()));
  else
    LRT_CHECK(running_mean.defined(), "batch_norm: eval mode (training = false) needs running_mean and running_var");

  // A strided input is copied once; the copy is recorded, so its gradient
  // reaches x. The output keeps x's memory format: the CUDA kernels
  // normalise channels_last (NHWC) tensors as they lie, the CPU kernels work
  // in NCHW between copies.
  const MemoryFormat fmt = memory_format_of(x);
  const MemoryFormat kfmt = x.device().is_cuda() ? fmt : MemoryFormat::Contiguous;
  const Tensor xc = x.contiguous(kfmt);
  const Tensor xd = xc.detach();
  const Tensor rc = residual.defined() ? residual.contiguous(kfmt) : Tensor();
  const TensorOptions opts = x.options();
  const TensorOptions channel_opts = opts.with_dtype(channel_dtype(x));
  Tensor y = empty(x.shape(), opts, kfmt);
  Tensor mean = training ? empty({channels}, channel_opts) : plain(running_mean);
  Tensor invstd = empty({channels}, channel_opts);
  const Tensor w = plain(weight);
  // cuDNN's batch norm (set_bn_cudnn) where cuDNN takes the case: its
  // reserve space, the ReLU's mask, for the backward.
  // (cuDNN's kernels index in 32 bits.)
  bool cudnn = training && x.device().is_cuda() && bn_cudnn() && x.dim() == 4 && weight.defined() &&
               bias.defined() && x.numel() > 0 && x.numel() < INT32_MAX && (relu || !residual.defined());
  Tensor reserve;
  if (cudnn) {
#if LRT_HAVE_CUDA
    detail::repeat_kernel(KernelGroup::BatchNorm, [&] {
      cudnn = kernels::cuda::batch_norm_cudnn_forward(xd, w, plain(bias), plain(rc), relu, eps, plain(running_mean),
                                                      plain(running_var), momentum, y, mean, invstd, &reserve);
    });
#endif
  }
  if (!cudnn && x.numel() > 0) {
    if (training)
      LRT_BN_ROUTE(x.device(),
                   batch_norm_stats(xd, mean, invstd, eps, plain(running_mean), plain(running_var), momentum));
    else
      LRT_BN_ROUTE(x.device(), batch_norm_invstd(plain(running_var), invstd, eps));
    LRT_BN_ROUTE(x.device(), batch_norm_apply(xd, mean, invstd, w, plain(bias), plain(rc), relu, y));
  }

  if (!needs_grad({&xc, &weight, &bias, &rc})) return y.contiguous(fmt);
  // Eval mode normalised with running_mean, which a later training call
  // would change in place before this backward runs: keep a copy.
  if (!training) mean = mean.clone();
  const bool want_gx = xc.requires_grad();
  const bool want_gw = weight.defined() && weight.requires_grad();
  const bool want_gb = bias.defined() && bias.requires_grad();
  const bool want_gr = rc.defined() && rc.requires_grad();
  // A training-mode ReLU without a residual recomputes its mask from x,
  // which the backward reads anyway, instead of reading y.
  const bool relu_from_x = relu && training && !rc.defined() && bn_relu_from_x() && !cudnn;
  const Tensor relu_out = relu && !relu_from_x ? y.detach() : Tensor();
  const Tensor b = relu_from_x || cudnn ? plain(bias) : Tensor();
  const bool with_residual = rc.defined();
  const Tensor out = record(
      relu ? (rc.defined() ? "batch_norm_add_relu" : "batch_norm_relu") : "batch_norm", y, {xc, weight, bias, rc},
      [xd, mean, invstd, w, b, relu_out, relu_from_x, training, want_gx, want_gw, want_gb, want_gr, kfmt, cudnn,
       reserve, relu, with_residual, eps](const Tensor& g) {
                  const Tensor gy = g.contiguous(kfmt);
                  const TensorOptions o = xd.options(), co = mean.options();
                  // cuDNN writes every gradient: those not asked for go to
                  // scratch tensors.
                  const auto grad = [&](bool want, const Shape& s, const TensorOptions& opt, MemoryFormat f) {
                    return want || cudnn ? empty(s, opt, f) : Tensor();
                  };
                  Tensor gx = grad(want_gx, xd.shape(), o, kfmt);
                  Tensor gw = grad(want_gw, mean.shape(), co, MemoryFormat::Contiguous);
                  Tensor gb = grad(want_gb, mean.shape(), co, MemoryFormat::Contiguous);
                  Tensor gr = want_gr || (cudnn && with_residual) ? empty(xd.shape(), o, kfmt) : Tensor();
                  if (cudnn) {
#if LRT_HAVE_CUDA
                    detail::repeat_kernel(KernelGroup::BatchNorm, [&] {
                      kernels::cuda::batch_norm_cudnn_backward(gy, xd, relu_out, w, b, relu, with_residual, mean,
                                                               invstd, eps, reserve, gx, gw, gb, gr);
                    });
#endif
                    return std::vector<Tensor>{want_gx ? gx : Tensor(), want_gw ? gw : Tensor(),
                                               want_gb ? gb : Tensor(), want_gr ? gr : Tensor()};
                  }
                  if (xd.numel() > 0) {
                    LRT_BN_ROUTE(xd.device(),
                                 batch_norm_backward(gy, relu_out, xd, mean, invstd, w, training, gx, gw, gb, gr,
                                                     relu_from_x, b));
                  } else {  // an empty batch (eval mode): the sums are empty
                    if (gw.defined()) gw.zero_();
                    if (gb.defined()) gb.zero_();
                  }
                  return std::vector<Tensor>{gx, gw, gb, gr};
                });
  return out.contiguous(fmt);
}

}  // namespace lrt

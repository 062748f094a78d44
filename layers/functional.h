// The neural-network ops with backward: convolution, batch normalisation,
// pooling, linear, dropout, log-softmax and cross-entropy. Each checks its
// inputs and names the op and the offending tensor on a mismatch, runs the
// kernels of the inputs' device (cuDNN / cuBLAS on CUDA, im2col + GEMM and
// plain loops on CPU), and records a backward closure when autograd needs
// one. A gradient no input asks for is not computed: a frozen conv weight
// (requires_grad false) costs no backward-filter pass.
//
// Layouts are PyTorch's: images (N, C, H, W), conv weights (K, C, R, S),
// linear weights (out, in), logits (N, classes), labels int64 (N).
// float32 and float64 on both devices; conv2d and batch norm also take
// bfloat16 activations (mixed precision, see each below).
#pragma once

#include <cstdint>

#include "core/random.h"
#include "core/tensor.h"

namespace lrt {

// ---- convolution ----
struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
};
// x (N, C, H, W), weight (K, C, R, S), bias (K) or undefined -> (N, K, P, Q)
// with P = (H + 2 pad - dil (R - 1) - 1) / stride + 1 (and Q likewise).
// bfloat16 x and weight (no bias): products summed in float, each output
// rounded once (cuDNN's tensor cores on CUDA); the gradients are bfloat16.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opts = {});

// How CUDA convolutions pick their algorithms: cuDNN's heuristics
// (cudnnGet..._v7, the default) or, in benchmark mode, a timed search
// (cudnnFind...) run once per shape and cached, as torch.backends.cudnn.benchmark.
void set_conv_benchmark(bool on);
bool conv_benchmark();
// Whether CUDA float32 convolutions may use TF32 tensor cores (off by
// default: plain FP32, the CPU's results to ~1e-6; on: PyTorch's default,
// ~1e-3 relative error, several times faster). CPU convolutions and float64
// are unaffected.
void set_conv_allow_tf32(bool on);
bool conv_allow_tf32();
// Whether CUDA convolutions use only the algorithms cuDNN reports as
// deterministic (off by default). Some of cuDNN's fastest backward
// algorithms sum with atomics, so two runs of the same step can differ in
// the last bits, and training (batch norm above all) amplifies such
// differences over steps; on, a run repeats to the bit, possibly slower.
// As torch.backends.cudnn.deterministic. CPU convolutions always repeat.
void set_conv_deterministic(bool on);
bool conv_deterministic();
// Whether conv2d's backward adds its input's gradient into a gradient
// already waiting for that input from another consumer (a bottleneck's
// input feeds its first convolution and its residual or shortcut), cuDNN
// blending with beta 1, instead of making a new tensor that backward then
// adds in a separate pass. On by default. The same values on the CPU; in
// bfloat16 on CUDA the blend rounds the sum once where the separate add
// rounds the part and then the sum. Off only to measure what it brings
// (bench_resnet50 --no-grad-blend).
void set_conv_grad_blend(bool on);
bool conv_grad_blend();

// ---- timing probes (benchmarks only) ----
// How many times conv2d and batch_norm_act run each of their kernel calls:
// 1, the default; 2 runs each twice and 0 leaves it out, so that the change
// in a step's time gives that group's share of the step where it runs (in a
// CUDA graph replay, warm caches and all), which a profiler timing kernels
// one by one cannot. The results are then wrong (an input gradient
// blended into a waiting one is added N times; with 0 outputs are left
// unwritten): no values may be used (bench_resnet50 --kernel-repeat).
// Read at each kernel call (a backward's when backward runs), so a
// captured CUDA graph keeps the count it was captured with. Refused
// outside 0..8.
enum class KernelGroup { Convolution, BatchNorm };
void set_kernel_repeat(KernelGroup group, int times);
int kernel_repeat(KernelGroup group);
// How many kernel calls the group's ops have made in this process, each
// repeat counted (what the probe's tests count).
int64_t kernel_calls(KernelGroup group);
namespace detail {
void count_kernel_call(KernelGroup group);
// Runs call() kernel_repeat(group) times, counting each: the way conv2d and
// batch_norm_act make their kernel calls.
template <class F>
void repeat_kernel(KernelGroup group, F&& call) {
  for (int r = kernel_repeat(group); r > 0; --r) {
    count_kernel_call(group);
    call();
  }
}
}  // namespace detail

// ---- batch normalisation ----
// Whether a training-mode batch_norm_act with a ReLU and no residual
// recomputes the ReLU's mask from x in backward (which reads x anyway)
// instead of keeping y alive and reading it. On by default; the same bits
// either way. Off only to measure what it brings (bench_resnet50
// --no-relu-from-x).
void set_bn_relu_from_x(bool on);
bool bn_relu_from_x();
// Whether training-mode batch norm on CUDA (4-D input, weight and bias
// given) runs cuDNN's batch norm (its legacy training functions, with the
// fused ReLU and residual add; kernels/batch_norm.h) instead of lrt's
// kernels. Off by default: lrt's kernels give the CPU's results to the
// last bits and the same bits from run to run; cuDNN's sum in their own
// order. For measuring which is faster (bench_resnet50 --cudnn-bn); eval
// mode, the CPU and 2-D inputs always run lrt's kernels.
void set_bn_cudnn(bool on);
bool bn_cudnn();

// x (N, C, H, W) or (N, C); weight, bias, running_mean, running_var (C).
// training: normalises with the batch statistics (biased variance) and, when
// the running tensors are defined, updates them in place (not recorded):
// running = (1 - momentum) running + momentum batch, with the unbiased
// variance. Eval: normalises with the running statistics. PyTorch's
// conventions (momentum 0.1, eps 1e-5). weight and bias may be undefined
// (scale 1, shift 0). A bfloat16 x takes float32 weight, bias and running
// statistics: the statistics and the arithmetic are float, y and x's
// gradient bfloat16, the weight's and bias's gradients float32.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// batch_norm with the block ending fused into its pass:
// relu(batch_norm(x) + residual) when relu, batch_norm(x) + residual when
// not; residual (x's shape, device and dtype) may be undefined. The same
// values and gradients as the separate ops (the same bits on CPU) with one
// pass over memory instead of three and no intermediate tensors.
Tensor batch_norm_act(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                      const Tensor& running_var, bool training, const Tensor& residual, bool relu,
                      double momentum = 0.1, double eps = 1e-5);

// ---- pooling ----
// Square windows; padding pads with -inf for max, with zeros counted in the
// divisor for avg (PyTorch's count_include_pad = true); floor output sizes.
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
// (N, C, H, W) -> (N, C): the mean over H and W.
Tensor global_avg_pool(const Tensor& x);

// ---- dense ----
// x (N, in), weight (out, in), bias (out) or undefined -> (N, out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
// Flattens dims start_dim.. into one: (N, C, H, W) -> (N, C*H*W).
Tensor flatten(const Tensor& x, int64_t start_dim = 1);

// ---- regularisation ----
// training: zeroes each element with probability p (Philox draws from gen,
// or the default generator) and scales the rest by 1 / (1 - p); identity
// when not training or p == 0. p in [0, 1).
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// ---- classification ----
// Over the last dim of a 2-D tensor, computed stably (x - max - log sum exp).
Tensor log_softmax(const Tensor& x);
// Mean over the batch of -log_softmax(logits)[i, labels[i]]; logits (N,
// classes), labels int64 (N) in [0, classes). A 0-d tensor. A label out of
// range is an error naming it and its row; on CUDA that check reads a flag
// back, so the host waits for the device. check_labels false, for labels
// already validated (a dataset checked when loaded): no wait on CUDA, and a
// label out of range there makes the loss NaN instead (the CPU checks
// anyway).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, bool check_labels = true);

}  // namespace lrt

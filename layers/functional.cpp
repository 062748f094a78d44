// The pooling, dense, dropout and classification ops of layers/functional.h
// (convolution and batch normalisation live in layers/conv.cpp and
// layers/batch_norm.cpp). Each op checks its inputs, naming the op and the
// shapes on a mismatch, runs the kernels of kernels/pool.h and
// kernels/softmax.h on the inputs' device (or composes the differentiable ops
// of core/ops.h), and records a backward closure that saves only what the
// gradient needs: max pooling its argmax indices, log_softmax its output,
// cross_entropy the logits, labels and per-row log-sum-exp.
#include "layers/functional.h"

#include <atomic>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"

namespace lrt {

namespace {

using Grads = std::vector<Tensor>;

// The kernels read contiguous memory; copying a strided input is not a step
// of the graph (the op's own node links to the original input).
Tensor contiguous_raw(const Tensor& x) {
  NoGradGuard no_grad;
  return x.contiguous();
}

void check_floating_input(const Tensor& x, const char* op, int rank, const char* layout) {
  LRT_CHECK(x.defined(), op, ": undefined input");
  LRT_CHECK(x.dim() == rank, op, ": expects a ", rank, "-D input ", layout, ", got shape ", to_string(x.shape()));
  detail::check_floating(x, op);
}

kernels::PoolGeometry pool_geometry(const char* op, const Tensor& x, int64_t kernel, int64_t stride,
                                    int64_t padding) {
  check_floating_input(x, op, 4, "(N, C, H, W)");
  LRT_CHECK(kernel >= 1 && stride >= 1 && padding >= 0, op, ": kernel ", kernel, ", stride ", stride,
            " and padding ", padding, " must be >= 1, >= 1 and >= 0");
  // A wider padding would make windows that hold only padding (PyTorch's rule).
  LRT_CHECK(2 * padding <= kernel, op, ": padding ", padding, " is more than half the kernel ", kernel);
  const kernels::PoolGeometry g = kernels::make_pool_geometry(x.shape(), kernel, stride, padding);
  LRT_CHECK(g.p >= 1 && g.q >= 1, op, ": output size (", g.p, ", ", g.q, ") is less than 1 for input ",
            to_string(x.shape()), " with kernel ", kernel, ", stride ", stride, ", padding ", padding);
  return g;
}

std::atomic<int> g_kernel_repeat[2] = {1, 1};
std::atomic<int64_t> g_kernel_calls[2] = {0, 0};

int group_slot(KernelGroup group) { return group == KernelGroup::BatchNorm ? 1 : 0; }
std::atomic<int>& repeat_slot(KernelGroup group) { return g_kernel_repeat[group_slot(group)]; }

}  // namespace

void set_kernel_repeat(KernelGroup group, int times) {
  LRT_CHECK(times >= 0 && times <= 8, "set_kernel_repeat: ", times, " times is outside 0..8");
  repeat_slot(group).store(times, std::memory_order_relaxed);
}
int kernel_repeat(KernelGroup group) { return repeat_slot(group).load(std::memory_order_relaxed); }
int64_t kernel_calls(KernelGroup group) { return g_kernel_calls[group_slot(group)].load(std::memory_order_relaxed); }
void detail::count_kernel_call(KernelGroup group) {
  g_kernel_calls[group_slot(group)].fetch_add(1, std::memory_order_relaxed);
}

// ----------------------------------------------------------------- pooling --

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const kernels::PoolGeometry g = pool_geometry("max_pool2d", x, kernel, stride, padding);
  const Tensor xc = contiguous_raw(x);
  Tensor y = empty({x.size(0), x.size(1), g.p, g.q}, x.options());  // (N, C, P, Q)
  Tensor indices;  // (N, C, P, Q) int64, only when a backward will read it
  if (needs_grad({&x})) indices = empty(y.shape(), x.options().with_dtype(DType::Int64));
  kernels::max_pool2d_forward(xc, g, y, indices);
  return record("max_pool2d", y, {x}, [indices, g, in_shape = x.shape()](const Tensor& gy) {
    const Tensor gyc = contiguous_raw(gy);
    Tensor gx = empty(in_shape, gy.options());
    kernels::max_pool2d_backward(gyc, indices, g, gx);
    return Grads{gx};
  });
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const kernels::PoolGeometry g = pool_geometry("avg_pool2d", x, kernel, stride, padding);
  const Tensor xc = contiguous_raw(x);
  Tensor y = empty({x.size(0), x.size(1), g.p, g.q}, x.options());  // (N, C, P, Q)
  kernels::avg_pool2d_forward(xc, g, y);
  return record("avg_pool2d", y, {x}, [g, in_shape = x.shape()](const Tensor& gy) {
    const Tensor gyc = contiguous_raw(gy);
    Tensor gx = empty(in_shape, gy.options());
    kernels::avg_pool2d_backward(gyc, g, gx);
    return Grads{gx};
  });
}

Tensor global_avg_pool(const Tensor& x) {
  check_floating_input(x, "global_avg_pool", 4, "(N, C, H, W)");
  LRT_CHECK(x.size(2) > 0 && x.size(3) > 0, "global_avg_pool: input ", to_string(x.shape()),
            " has empty planes");
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  // channels_last: memory holds (N, H, W, C), so the column reduction over the
  // (N, H*W, C) view reads it in place (neighbouring threads, neighbouring
  // channels) and the gradient comes back channels_last, with no layout copy
  // either way. Up to 64 values a plane (ResNet50's 4x4 on CIFAR), each mean
  // sums its H*W values in the same order as NCHW's row reduction over
  // (N, C, H*W); larger planes are summed in another order (last bits).
  if (memory_format_of(x) == MemoryFormat::ChannelsLast)
    return mean(x.transpose(1, 2).transpose(2, 3).reshape({n, hw, c}), 1);
  return mean(x.reshape({n, c, hw}), 2);
}

// ------------------------------------------------------------------- dense --

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_floating_input(x, "linear", 2, "(N, in)");
  LRT_CHECK(weight.defined(), "linear: undefined weight");
  LRT_CHECK(weight.dim() == 2, "linear: expects a 2-D weight (out, in), got shape ", to_string(weight.shape()));
  detail::check_same_device(x, weight, "linear");
  detail::check_same_dtype(x, weight, "linear");
  LRT_CHECK(x.size(1) == weight.size(1), "linear: input ", to_string(x.shape()), " has ", x.size(1),
            " features but weight ", to_string(weight.shape()), " takes ", weight.size(1));
  Tensor y = matmul(x, weight, false, true);  // (N, out)
  if (!bias.defined()) return y;
  LRT_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias of shape ", to_string(bias.shape()),
            " does not match weight ", to_string(weight.shape()), " (expected ", to_string(Shape{weight.size(0)}),
            ")");
  detail::check_same_device(x, bias, "linear");
  detail::check_same_dtype(x, bias, "linear");
  return y + bias;
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  LRT_CHECK(x.defined(), "flatten: undefined input");
  // A 0-d tensor flattens to one element, as in PyTorch.
  const int rank = x.dim() == 0 ? 1 : x.dim();
  int d = 0;
  try {
    d = wrap_dim(start_dim, rank);
  } catch (const Error& e) {
    LRT_THROW("flatten: ", e.message());
  }
  if (x.dim() == 0) return x.reshape({1});
  Shape shape(x.shape().begin(), x.shape().begin() + d);
  int64_t rest = 1;
  for (int i = d; i < x.dim(); ++i) rest *= x.size(i);
  shape.push_back(rest);
  return x.reshape(shape);
}

// --------------------------------------------------------- regularisation --

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  LRT_CHECK(x.defined(), "dropout: undefined input");
  LRT_CHECK(p >= 0.0 && p < 1.0, "dropout: probability ", p, " is outside [0, 1)");
  detail::check_floating(x, "dropout");
  if (!training || p == 0.0) return x;
  // mask = (u > p) / (1 - p) with u uniform in [0, 1) from the Philox stream,
  // built in place; x * mask then carries the gradient mask * g.
  Tensor mask = rand(x.shape(), x.options(), gen);
  kernels::unary(kernels::UnaryOp::GtScalar, mask, mask, p);
  kernels::unary(kernels::UnaryOp::MulScalar, mask, mask, 1.0 / (1.0 - p));
  return mul(x, mask);
}

// ---------------------------------------------------------- classification --

Tensor log_softmax(const Tensor& x) {
  check_floating_input(x, "log_softmax", 2, "(N, classes)");
  const Tensor xc = contiguous_raw(x);
  Tensor y = empty(x.shape(), x.options());
  kernels::log_softmax_forward(xc, y);
  return record("log_softmax", y, {x}, [y = y.detach()](const Tensor& gy) {
    const Tensor gyc = contiguous_raw(gy);
    Tensor gx = empty(y.shape(), y.options());
    kernels::log_softmax_backward(y, gyc, gx);
    return Grads{gx};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, bool check_labels) {
  check_floating_input(logits, "cross_entropy", 2, "(N, classes)");
  LRT_CHECK(labels.defined(), "cross_entropy: undefined labels");
  LRT_CHECK(labels.dtype() == DType::Int64, "cross_entropy: labels must be int64, got ", labels.dtype());
  LRT_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), "cross_entropy: labels of shape ",
            to_string(labels.shape()), " do not match logits ", to_string(logits.shape()), " (expected ",
            to_string(Shape{logits.size(0)}), ")");
  detail::check_same_device(logits, labels, "cross_entropy");
  LRT_CHECK(logits.size(0) > 0, "cross_entropy: empty batch, logits of shape ", to_string(logits.shape()));
  const int64_t n = logits.size(0);
  const Tensor xc = contiguous_raw(logits).detach();
  const Tensor lc = contiguous_raw(labels);
  Tensor losses = empty({n}, logits.options());                             // (N), -log p(label)
  Tensor lse = empty({n, 2}, logits.options().with_dtype(DType::Float64));  // (N, 2), kept for backward
  kernels::cross_entropy_forward(xc, lc, losses, lse, check_labels);
  Tensor per_row = record("cross_entropy", losses, {logits}, [xc, lc, lse](const Tensor& g) {
    const Tensor gc = contiguous_raw(g);
    Tensor gx = empty(xc.shape(), xc.options());
    kernels::cross_entropy_backward(xc, lc, lse, gc, gx);
    return Grads{gx};
  });
  // The 1 / N of the gradient comes from mean's backward.
  return mean(per_row);
}

}  // namespace lrt

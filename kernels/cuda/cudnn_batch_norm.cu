// Training-mode batch norm through cuDNN's legacy functions
// (cudnnBatchNormalizationForwardTrainingEx and BackwardEx) with their fused
// ReLU and residual add: the kernels PyTorch's cuDNN batch norm runs, as an
// alternative to lrt's own (kernels/cuda/batch_norm.cu) chosen with
// lrt::set_bn_cudnn (off by default; see kernels/batch_norm.h).
//
// Mode: for channels_last data CUDNN_BATCHNORM_SPATIAL_PERSISTENT (PyTorch's
// choice for channels_last training), or CUDNN_BATCHNORM_SPATIAL where cuDNN
// refuses it for a shape; for NCHW data the plain spatial mode alone (cuDNN
// documents the persistent mode's reductions on NCHW as able to overflow,
// and PyTorch and Paddle keep it off there). The fused ReLU and add are
// documented for the persistent mode on NHWC data only, with C a multiple of
// 4 for the add (and for float16 data: for bfloat16 and float32 it is
// undocumented, so the CUDA tests and probe_cudnn_fusion check the results
// against lrt's); elsewhere the case is refused without asking cuDNN, since
// an Ex call without its workspace silently runs as the plain batch norm.
// The choice is made by the first forward of each (device, dtype, shape,
// memory format, ops) and kept for the process, the backward running in the
// forward's mode (its reserve space, the ReLU's mask, is laid out by it);
// where cuDNN refuses, that is kept too and the caller runs lrt's kernels.
// Workspaces and the reserve space come from the caching allocator (the
// fused ops' workspace never empty, for the reason above).
#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <string>

#include "kernels/batch_norm.h"
#include "kernels/cuda/cudnn_common.h"

namespace lrt::kernels::cuda {

namespace {

constexpr const char* kOp = "batch_norm (cuDNN)";

using ActivationDescriptor =
    cudnn::Descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor>;

cudnnDataType_t data_type(DType dt) {
  switch (dt) {
    case DType::Float32: return CUDNN_DATA_FLOAT;
    case DType::Float64: return CUDNN_DATA_DOUBLE;
    case DType::BFloat16: return CUDNN_DATA_BFLOAT16;
    default: LRT_THROW(kOp, ": dtype ", dt, " is not supported (float32, float64 or bfloat16 expected)");
  }
}

cudnnBatchNormOps_t ops_of(bool relu, bool residual) {
  LRT_CHECK(relu || !residual, kOp, ": a residual add is fused only before a ReLU");
  return residual ? CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION
         : relu   ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION
                  : CUDNN_BATCHNORM_OPS_BN;
}

// The descriptors of one batch norm: the activations (x's shape and memory
// format; every activation shares it), the per-channel values (1, C, 1, 1)
// in their own type, and the ReLU where the ops have one.
struct Setup {
  cudnn::TensorDescriptor act, param;
  ActivationDescriptor relu;
  cudnnDataType_t type;
  cudnnBatchNormOps_t ops;
  Setup(const Tensor& x, const Tensor& per_channel, bool with_relu, bool residual)
      : type(data_type(x.dtype())), ops(ops_of(with_relu, residual)) {
    LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
    cudnn::set_tensor(act, type, x.shape(), memory_format_of(x), kOp);
    cudnn::set_tensor(param, data_type(per_channel.dtype()), {1, x.size(1), 1, 1}, MemoryFormat::Contiguous, kOp);
    if (with_relu)
      CUDNN_CHECK(cudnnSetActivationDescriptor(relu.get(), CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  cudnnActivationDescriptor_t activation() const { return ops == CUDNN_BATCHNORM_OPS_BN ? nullptr : relu.get(); }
  cudnnTensorDescriptor_t z() const { return ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION ? act.get() : nullptr; }
};

// device, dtype, N, C, H, W, memory format, ops
using ModeKey = std::array<int64_t, 8>;
ModeKey key_of(const Tensor& x, cudnnBatchNormOps_t ops) {
  return {x.device().index, static_cast<int64_t>(x.dtype()), x.size(0), x.size(1), x.size(2), x.size(3),
          static_cast<int64_t>(memory_format_of(x)), static_cast<int64_t>(ops)};
}
// What the first forward found: a mode, or that cuDNN refuses the key.
struct Choice {
  bool refused;
  cudnnBatchNormMode_t mode;
};
std::mutex g_mutex;
std::map<ModeKey, Choice> g_choices;

bool known_choice(const ModeKey& k, Choice* c) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  const auto it = g_choices.find(k);
  if (it == g_choices.end()) return false;
  *c = it->second;
  return true;
}

// A refusal of the arguments (nothing queued), as against a failure to run:
// cuDNN 9's statuses carry a category (NOT_SUPPORTED_SHAPE is a
// NOT_SUPPORTED).
bool is_refusal(cudnnStatus_t s) {
#ifdef CUDNN_STATUS_CATEGORY
  const int category = CUDNN_STATUS_CATEGORY(static_cast<int>(s));
#else
  const int category = static_cast<int>(s);
#endif
  return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM;
}

// Whether cuDNN documents its fused ops for x (NHWC; C a multiple of 4 for
// the add): the persistent mode is then the one to ask.
bool fusable(const Tensor& x, cudnnBatchNormOps_t ops) {
  if (ops == CUDNN_BATCHNORM_OPS_BN) return true;
  return memory_format_of(x) == MemoryFormat::ChannelsLast &&
         (ops != CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION || x.size(1) % 4 == 0);
}

}  // namespace

bool batch_norm_cudnn_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual,
                              bool relu, double eps, const Tensor& running_mean, const Tensor& running_var,
                              double momentum, const Tensor& y, const Tensor& mean, const Tensor& invstd,
                              Tensor* reserve_out) {
  check_bn_layout(x, {&residual, &y}, true);
  LRT_CHECK(weight.defined() && bias.defined(), kOp, ": takes a weight and a bias");
  LRT_CHECK(running_mean.defined() == running_var.defined(), kOp,
            ": running_mean and running_var must be both defined or both undefined");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const cudnnHandle_t h = cudnn::handle(dev);
  const Setup s(x, mean, relu, residual.defined());
  const ModeKey key = key_of(x, s.ops);
  Tensor& reserve = *reserve_out;
  // The forward in mode m, its status (nothing is queued where cuDNN refuses).
  const auto run = [&](cudnnBatchNormMode_t m) {
    size_t ws_bytes = 0, reserve_bytes = 0;
    cudnnStatus_t st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
        h, m, s.ops, s.act.get(), s.z(), s.act.get(), s.param.get(), s.activation(), &ws_bytes);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(h, m, s.ops, s.activation(), s.act.get(),
                                                                &reserve_bytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    const bool fused = s.ops != CUDNN_BATCHNORM_OPS_BN;
    const Tensor ws = cudnn::workspace(fused ? std::max<size_t>(ws_bytes, 256) : ws_bytes, x.device());
    reserve = cudnn::workspace(reserve_bytes, x.device());
    if (fused) ws_bytes = static_cast<size_t>(ws.numel());
    cudnn::with_scaling(s.type, [&](const void* one, const void* zero) {
      st = cudnnBatchNormalizationForwardTrainingEx(
          h, m, s.ops, one, zero, s.act.get(), x.data_ptr(), s.z(), cudnn::ptr(residual), s.act.get(), y.data_ptr(),
          s.param.get(), weight.data_ptr(), bias.data_ptr(), momentum, cudnn::ptr(running_mean),
          cudnn::ptr(running_var), eps, mean.data_ptr(), invstd.data_ptr(), s.activation(), cudnn::ptr(ws), ws_bytes,
          cudnn::ptr(reserve), reserve_bytes);
    });
    return st;
  };
  Choice c;
  if (known_choice(key, &c)) {
    if (c.refused) return false;
    CUDNN_CHECK(run(c.mode));
    return true;
  }
  // Persistent first for channels_last data, where cuDNN documents it
  // without caveats; the fused ops in that mode alone.
  const bool nhwc = memory_format_of(x) == MemoryFormat::ChannelsLast, fused = s.ops != CUDNN_BATCHNORM_OPS_BN;
  c = Choice{!fusable(x, s.ops), nhwc ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL};
  if (!c.refused) {
    cudnnStatus_t st = run(c.mode);
    if (is_refusal(st) && c.mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT && !fused) {
      c.mode = CUDNN_BATCHNORM_SPATIAL;
      st = run(c.mode);
    }
    c.refused = is_refusal(st);
    if (!c.refused) CUDNN_CHECK(st);
  }
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_choices.emplace(key, c);
  return !c.refused;
}

void batch_norm_cudnn_backward(const Tensor& gy, const Tensor& x, const Tensor& y, const Tensor& weight,
                               const Tensor& bias, bool relu, bool residual, const Tensor& mean, const Tensor& invstd,
                               double eps, const Tensor& reserve, const Tensor& gx, const Tensor& gweight,
                               const Tensor& gbias, const Tensor& gresidual) {
  check_bn_layout(x, {&gy, &y, &gx, &gresidual}, true);
  LRT_CHECK(gx.defined() && gweight.defined() && gbias.defined() && (!relu || y.defined()) &&
                gresidual.defined() == residual,
            kOp, ": the backward writes gx, gweight, gbias and, after a residual add, gresidual; it reads y after a "
                 "ReLU");
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const cudnnHandle_t h = cudnn::handle(dev);
  const Setup s(x, mean, relu, residual);
  Choice c;
  LRT_CHECK(known_choice(key_of(x, s.ops), &c) && !c.refused, kOp, ": a backward without its forward");
  const cudnnBatchNormMode_t mode = c.mode;
  size_t ws_bytes = 0;
  const cudnnTensorDescriptor_t yd = relu ? s.act.get() : nullptr;
  CUDNN_CHECK(cudnnGetBatchNormalizationBackwardExWorkspaceSize(h, mode, s.ops, s.act.get(), yd, s.act.get(), s.z(),
                                                                s.act.get(), s.param.get(), s.activation(), &ws_bytes));
  const Tensor ws = cudnn::workspace(ws_bytes, x.device());
  const size_t reserve_bytes = reserve.defined() ? static_cast<size_t>(reserve.numel()) : 0;
  cudnn::with_scaling(s.type, [&](const void* one, const void* zero) {
    CUDNN_CHECK(cudnnBatchNormalizationBackwardEx(
        h, mode, s.ops, one, zero, one, zero, s.act.get(), x.data_ptr(), yd, relu ? y.data_ptr() : nullptr,
        s.act.get(), gy.data_ptr(), s.z(), cudnn::ptr(gresidual), s.act.get(), gx.data_ptr(), s.param.get(),
        weight.data_ptr(), bias.data_ptr(), gweight.data_ptr(), gbias.data_ptr(), eps, mean.data_ptr(),
        invstd.data_ptr(), s.activation(), cudnn::ptr(ws), ws_bytes, cudnn::ptr(reserve), reserve_bytes));
  });
}

namespace {
const char* name_of(const Choice& c) {
  return c.refused ? "refused" : c.mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT ? "persistent" : "spatial";
}
}  // namespace

std::string batch_norm_cudnn_mode(const Tensor& x, bool relu, bool residual) {
  LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
  Choice c;
  return known_choice(key_of(x, ops_of(relu, residual)), &c) ? name_of(c) : "";
}

std::map<std::string, int> batch_norm_cudnn_modes() {
  std::map<std::string, int> counts;
  const std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto& [key, c] : g_choices) ++counts[name_of(c)];
  return counts;
}

}  // namespace lrt::kernels::cuda

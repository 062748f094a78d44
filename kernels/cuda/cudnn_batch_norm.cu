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
// memory format, ops) and kept for the process with the case's descriptors
// and workspace sizes (a plan, as conv.cu keeps its algorithms), so later
// calls only run; the backward runs in the forward's mode (its reserve
// space, the ReLU's mask, is laid out by it). Where cuDNN refuses, that is
// kept too and the caller runs lrt's kernels. Workspaces and the reserve
// space come from the caching allocator (the fused ops' workspace never
// empty, for the reason above).
#include <algorithm>
#include <array>
#include <initializer_list>
#include <map>
#include <memory>
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
// in the type cuDNN takes for x's (double for double, else float), and the
// ReLU where the ops have one.
struct Setup {
  cudnn::TensorDescriptor act, param;
  ActivationDescriptor relu;
  cudnnDataType_t type;
  DType param_dtype;
  cudnnBatchNormOps_t ops;
  Setup(const Tensor& x, bool with_relu, bool residual)
      : type(data_type(x.dtype())),
        param_dtype(x.dtype() == DType::Float64 ? DType::Float64 : DType::Float32),
        ops(ops_of(with_relu, residual)) {
    LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
    cudnn::set_tensor(act, type, x.shape(), memory_format_of(x), kOp);
    cudnn::set_tensor(param, data_type(param_dtype), {1, x.size(1), 1, 1}, MemoryFormat::Contiguous, kOp);
    if (with_relu)
      CUDNN_CHECK(cudnnSetActivationDescriptor(relu.get(), CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  bool fused() const { return ops != CUDNN_BATCHNORM_OPS_BN; }
  cudnnActivationDescriptor_t activation() const { return fused() ? relu.get() : nullptr; }
  cudnnTensorDescriptor_t z() const { return ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION ? act.get() : nullptr; }
  cudnnTensorDescriptor_t y_for_backward() const { return fused() ? act.get() : nullptr; }
  // The per-channel tensors (those defined) are C values of param_dtype.
  void check_params(std::initializer_list<const Tensor*> ts, int64_t c) const {
    for (const Tensor* t : ts)
      LRT_CHECK(!t->defined() || (t->dtype() == param_dtype && t->numel() == c), kOp,
                ": the per-channel values must be ", c, " values of ", param_dtype, ", got ", t->dtype(), " shape ",
                to_string(t->shape()));
  }
};

// device, dtype, N, C, H, W, memory format, ops
using ModeKey = std::array<int64_t, 8>;
ModeKey key_of(const Tensor& x, cudnnBatchNormOps_t ops) {
  return {x.device().index, static_cast<int64_t>(x.dtype()), x.size(0), x.size(1), x.size(2), x.size(3),
          static_cast<int64_t>(memory_format_of(x)), static_cast<int64_t>(ops)};
}

// What the first forward of a key settles, kept for the process: cuDNN's
// answer (a mode, or a refusal), the descriptors, and the workspace and
// reserve sizes of both passes in that mode; later calls only run.
struct Plan {
  Setup s;
  bool refused = true;
  cudnnBatchNormMode_t mode = CUDNN_BATCHNORM_SPATIAL;
  size_t forward_ws = 0, reserve = 0, backward_ws = 0;
  Plan(const Tensor& x, bool with_relu, bool residual) : s(x, with_relu, residual) {}
  // Asks cuDNN for the three sizes in mode m (nothing is queued): the first
  // status that is not a success, if any.
  cudnnStatus_t size_for(cudnnHandle_t h, cudnnBatchNormMode_t m) {
    mode = m;
    cudnnStatus_t st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
        h, m, s.ops, s.act.get(), s.z(), s.act.get(), s.param.get(), s.activation(), &forward_ws);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(h, m, s.ops, s.activation(), s.act.get(), &reserve);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationBackwardExWorkspaceSize(h, m, s.ops, s.act.get(), s.y_for_backward(), s.act.get(),
                                                             s.z(), s.act.get(), s.param.get(), s.activation(),
                                                             &backward_ws);
    // An *Ex call given no workspace runs as the plain batch norm, its ops
    // ignored: the fused ops always get one, whatever size cuDNN asks.
    if (s.fused()) {
      forward_ws = std::max<size_t>(forward_ws, 256);
      backward_ws = std::max<size_t>(backward_ws, 256);
    }
    return st;
  }
};
std::mutex g_mutex;
// Never erased, so plans stay valid; and never destroyed: the descriptors
// they own are not released at exit, when cuDNN may already be unloaded.
auto& g_plans = *new std::map<ModeKey, std::unique_ptr<const Plan>>;

const Plan* known_plan(const ModeKey& k) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  const auto it = g_plans.find(k);
  return it == g_plans.end() ? nullptr : it->second.get();
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
  LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const cudnnHandle_t h = cudnn::handle(dev);
  const ModeKey key = key_of(x, ops_of(relu, residual.defined()));
  Tensor& reserve = *reserve_out;
  // The forward as planned, its status (nothing is queued where cuDNN
  // refuses).
  const auto run = [&](const Plan& p) {
    const Setup& s = p.s;
    s.check_params({&weight, &bias, &running_mean, &running_var, &mean, &invstd}, x.size(1));
    const Tensor ws = cudnn::workspace(p.forward_ws, x.device());
    reserve = cudnn::workspace(p.reserve, x.device());
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    cudnn::with_scaling(s.type, [&](const void* one, const void* zero) {
      st = cudnnBatchNormalizationForwardTrainingEx(
          h, p.mode, s.ops, one, zero, s.act.get(), x.data_ptr(), s.z(), cudnn::ptr(residual), s.act.get(),
          y.data_ptr(), s.param.get(), weight.data_ptr(), bias.data_ptr(), momentum, cudnn::ptr(running_mean),
          cudnn::ptr(running_var), eps, mean.data_ptr(), invstd.data_ptr(), s.activation(), cudnn::ptr(ws),
          p.forward_ws, cudnn::ptr(reserve), p.reserve);
    });
    return st;
  };
  if (const Plan* p = known_plan(key)) {
    if (p->refused) return false;
    CUDNN_CHECK(run(*p));
    return true;
  }
  // The first forward of the key: persistent first for channels_last data,
  // where cuDNN documents it without caveats; the fused ops in that mode
  // alone.
  auto plan = std::make_unique<Plan>(x, relu, residual.defined());
  if (fusable(x, plan->s.ops)) {
    const auto attempt = [&](cudnnBatchNormMode_t m) {
      const cudnnStatus_t st = plan->size_for(h, m);
      return st == CUDNN_STATUS_SUCCESS ? run(*plan) : st;
    };
    const bool nhwc = memory_format_of(x) == MemoryFormat::ChannelsLast;
    cudnnStatus_t st = attempt(nhwc ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL);
    if (is_refusal(st) && plan->mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT && !plan->s.fused())
      st = attempt(CUDNN_BATCHNORM_SPATIAL);
    plan->refused = is_refusal(st);
    if (!plan->refused) CUDNN_CHECK(st);
  }
  const bool refused = plan->refused;
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_plans.emplace(key, std::move(plan));  // a plan another thread made first is kept: both are cuDNN's answer
  return !refused;
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
  LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const cudnnHandle_t h = cudnn::handle(dev);
  const Plan* p = known_plan(key_of(x, ops_of(relu, residual)));
  LRT_CHECK(p && !p->refused, kOp, ": a backward without its forward");
  const Setup& s = p->s;
  s.check_params({&weight, &bias, &mean, &invstd, &gweight, &gbias}, x.size(1));
  const size_t reserve_bytes = reserve.defined() ? static_cast<size_t>(reserve.numel()) : 0;
  LRT_CHECK(reserve_bytes == p->reserve, kOp, ": a reserve space of ", reserve_bytes, " bytes, its forward's has ",
            p->reserve);
  const Tensor ws = cudnn::workspace(p->backward_ws, x.device());
  cudnn::with_scaling(s.type, [&](const void* one, const void* zero) {
    CUDNN_CHECK(cudnnBatchNormalizationBackwardEx(
        h, p->mode, s.ops, one, zero, one, zero, s.act.get(), x.data_ptr(), s.y_for_backward(),
        relu ? y.data_ptr() : nullptr, s.act.get(), gy.data_ptr(), s.z(), cudnn::ptr(gresidual), s.act.get(),
        gx.data_ptr(), s.param.get(), weight.data_ptr(), bias.data_ptr(), gweight.data_ptr(), gbias.data_ptr(), eps,
        mean.data_ptr(), invstd.data_ptr(), s.activation(), cudnn::ptr(ws), p->backward_ws, cudnn::ptr(reserve),
        reserve_bytes));
  });
}

namespace {
const char* name_of(const Plan& p) {
  return p.refused ? "refused" : p.mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT ? "persistent" : "spatial";
}
}  // namespace

std::string batch_norm_cudnn_mode(const Tensor& x, bool relu, bool residual) {
  LRT_CHECK(x.dim() == 4, kOp, ": expected a 4-D input, got shape ", to_string(x.shape()));
  const Plan* p = known_plan(key_of(x, ops_of(relu, residual)));
  return p ? name_of(*p) : "";
}

std::map<std::string, int> batch_norm_cudnn_modes() {
  std::map<std::string, int> counts;
  const std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto& [key, p] : g_plans) ++counts[name_of(*p)];
  return counts;
}

}  // namespace lrt::kernels::cuda

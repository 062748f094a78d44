// Optimizers over parameter groups: Adam, AdamW and SGD with torch.optim's
// semantics. The learning rate of a parameter at a step is the schedule's
// value x its group's multiplier x its ParamSpec lr_mult, so the ratios
// between groups hold through every restart; weight decay is scaled by
// decay_mult (and 0 for 1-D parameters, i.e. BN weights and biases, with
// no_decay_bn_bias). Groups with multiplier 0 and parameters with lr_mult 0
// are frozen: requires_grad is cleared so no gradient is computed, and no
// state is allocated. On CUDA one multi-tensor launch updates every parameter
// (more launches only when the kernel-argument space is full).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "optim/param_groups.h"

namespace lrt::optim {

enum class OptimizerKind { Adam, AdamW, Sgd };

OptimizerKind parse_optimizer_kind(const std::string& name);  // "adam" / "adamw" / "sgd"
const char* optimizer_kind_name(OptimizerKind kind);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Adam;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam/AdamW
  double weight_decay = 0.0;
  double momentum = 0.0;  // SGD
  bool nesterov = false;
  bool amsgrad = false;
  bool no_decay_bn_bias = false;
};

class Optimizer {
 public:
  // Validates the configuration (errors name the flag: --beta1, --eps, ...).
  Optimizer(std::vector<ParamGroup> groups, const OptimizerConfig& config);

  // One update of every trainable parameter that has a gradient, with base
  // learning rate lr (the schedule's value for this step).
  //
  // skip: undefined, or a one-element float32 tensor on the parameters'
  // device read by the update itself, so the host need not wait for it:
  // where it is nonzero, parameters and moments are left exactly as they
  // were. The step counts still advance, so a set flag is for a run that
  // then stops (the trainer's stop on a non-finite loss or gradient), not
  // for skipping a step and going on.
  void step(double lr, const Tensor& skip = Tensor());

  // step() in two halves, for CUDA graphs (core/cuda_graph.h); step(lr, skip)
  // is prepare(lr) then apply(skip).
  //   prepare(lr): host work. Allocates missing state, advances the step
  //     count of every parameter that has a gradient now, computes their
  //     learning rates and bias corrections and, on CUDA, queues a copy of
  //     them to device memory (no wait).
  //   apply(skip): queues the update of every parameter with a gradient,
  //     which on CUDA reads those values from device memory. It allocates
  //     nothing and never waits, so it can be captured: each replay of a
  //     captured apply() uses the values of the latest prepare().
  // apply() refuses a parameter whose gradient the last prepare() did not see.
  void prepare(double lr);
  void apply(const Tensor& skip = Tensor());
  // Drops every parameter's gradient.
  void zero_grad();

  const OptimizerConfig& config() const { return config_; }
  size_t num_groups() const { return group_mults_.size(); }
  // lr of each group for a base rate (before per-parameter lr_mult).
  std::vector<double> group_lrs(double lr) const;
  // Parameters updated (not frozen) and their total element count.
  size_t num_trainable() const { return slots_.size(); }
  int64_t trainable_elements() const;

  // Optimizer state for checkpoints: "<param>.step" (0-d int64), and per kind
  // "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.max_exp_avg_sq",
  // "<param>.momentum_buffer" (each only once allocated); the moments on the
  // parameters' device, the step on the CPU. The moment tensors are the optimizer's own buffers, not copies:
  // clone them to keep a snapshot.
  std::vector<std::pair<std::string, Tensor>> state() const;
  // Restores state(); every name, shape and dtype is checked and an unknown or
  // missing entry is an error naming it.
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state);

  struct Slot {
    std::string name;
    Tensor param;
    float lr_scale = 1.0f;  // group multiplier x lr_mult
    float weight_decay = 0.0f;
    int64_t step = 0;
    Tensor exp_avg, exp_avg_sq, max_exp_avg_sq, momentum_buffer;
  };

 private:
  OptimizerConfig config_;
  std::vector<double> group_mults_;
  std::vector<Slot> slots_;
  // The last prepare(): detail::kHyper values per slot, which slots it
  // advanced, and the values' copy on each CUDA device that has slots.
  std::vector<float> hyper_;
  std::vector<uint8_t> prepared_;
  std::map<int, Tensor> hyper_dev_;
};

namespace detail {
// The values prepare() computes per tensor and step, in this order.
constexpr int kHyperLr = 0, kHyperDecay = 1, kHyperStepSize = 2, kHyperBc2Sqrt = 3, kHyperFirst = 4, kHyper = 5;

// The per-tensor work of one step, for the CPU loop and the fused CUDA launch.
struct UpdateItem {
  float* param;
  const float* grad;
  float* m;   // exp_avg, or the momentum buffer for SGD
  float* v;   // exp_avg_sq (Adam)
  float* vmax;  // max_exp_avg_sq (AMSGrad)
  int64_t n;
  float lr, weight_decay, decay_factor;
  float step_size;  // Adam: lr / (1 - beta1^t), computed in double
  float bias_correction2_sqrt;
  bool first;  // SGD: the momentum buffer starts as the gradient
  // CUDA: the same kHyper values (lr .. first) in device memory, which the
  // fused kernel reads instead of the fields above.
  const float* hyper = nullptr;
};
// skip (may be null): a device (or host, for the CPU) float; nonzero leaves
// everything unchanged.
void apply_updates_cpu(const OptimizerConfig& cfg, const std::vector<UpdateItem>& items, const float* skip = nullptr);
// Returns the number of kernel launches used.
int apply_updates_cuda(const OptimizerConfig& cfg, const std::vector<UpdateItem>& items, int device,
                       const float* skip = nullptr);
// Queues a copy of n host floats to dev on device's stream without waiting:
// the values travel as kernel arguments, so host may be reused at once.
void upload_floats_cuda(const float* host, int64_t n, float* dev, int device);
}  // namespace detail

}  // namespace lrt::optim

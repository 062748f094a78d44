// The layers: Module wrappers over layers/functional.h that own their
// parameters under torch.nn's names (weight, bias, running_mean, running_var,
// num_batches_tracked) and initialise them as PyTorch does by default.
// Constructors draw from gen, or from the default generator when it is null.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/random.h"
#include "layers/functional.h"
#include "layers/module.h"

namespace lrt {

struct Conv2dConfig {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  bool bias = false;  // ResNet's convs have none (BN follows)
};

// weight (out, in, k, k) [+ bias (out)]; PyTorch's default init:
// uniform(+-1/sqrt(fan_in)) for both. Mixed precision: given a bfloat16
// input, the float32 weight is rounded to bfloat16 for the convolution (a
// recorded cast, so its gradient comes back to the float32 weight), as
// PyTorch's autocast does; the weight itself stays float32.
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dConfig& cfg, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  const Conv2dConfig& config() const { return cfg_; }
  Tensor& weight() { return *weight_; }
  // torchvision's ResNet init: normal(0, sqrt(2 / fan_out)), fan_out = out k k.
  void kaiming_normal_fan_out(Generator* gen = nullptr);
  // The bfloat16 copy of the weight the next forward uses instead of making
  // its own (a model makes all of them in one pass, see to_each): w must be
  // weight().to(DType::BFloat16, f) recorded from the current weight, in the
  // layout forward would make (f channels_last for a channels_last input on
  // CUDA). Used by one forward only; undefined clears it.
  void set_compute_weight(Tensor w) { compute_weight_ = std::move(w); }

 private:
  Conv2dConfig cfg_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
  Tensor compute_weight_;
};

// Batch normalisation over channels of (N, C, H, W) (BatchNorm2d) or (N, C)
// (BatchNorm1d): weight 1, bias 0, running_mean 0, running_var 1; counts its
// training batches in num_batches_tracked (a host int64, as torch saves it).
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t channels, int rank, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x) + residual) (residual may be undefined; relu optional)
  // in one pass: lrt::batch_norm_act.
  Tensor forward_act(const Tensor& x, const Tensor& residual, bool relu);
  int64_t channels() const { return channels_; }
  Tensor& weight() { return *weight_; }
  Tensor& bias() { return *bias_; }
  Tensor& running_mean() { return *mean_; }
  Tensor& running_var() { return *var_; }
  int64_t batches_tracked() const;

 protected:
  void on_replayed_forward() override;

 private:
  int64_t channels_;
  int rank_;
  double eps_, momentum_;
  Tensor *weight_, *bias_, *mean_, *var_, *tracked_;
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1)
      : BatchNorm(channels, 4, eps, momentum) {}
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t channels, double eps = 1e-5, double momentum = 0.1)
      : BatchNorm(channels, 2, eps, momentum) {}
};

// weight (out, in), bias (out); PyTorch's default init: uniform(+-1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *weight_; }
  Tensor& bias() { return *bias_; }

 private:
  int64_t in_, out_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0) : k_(kernel), s_(stride), p_(padding) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t k_, s_, p_;
};

// (N, C, H, W) -> (N, C).
class GlobalAvgPool : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

// Draws its masks from gen (the default generator when null).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;

 private:
  double p_;
  Generator* gen_;
};

// Children named "0", "1", ... run in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  // Appends under the next index, or under name when one is given.
  void push_back(std::shared_ptr<Module> m, const std::string& name = "");
  Tensor forward(const Tensor& x) override;
  size_t size() const { return children().size(); }
};

}  // namespace lrt

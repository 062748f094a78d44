// The layers' construction, initialisation and forward passes.
#include "layers/modules.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace lrt {

namespace {

Generator& pick(Generator* gen) { return gen ? *gen : default_generator(); }

// uniform(-bound, bound) drawn from gen, in place.
void uniform_(Tensor& t, double bound, Generator* gen) {
  NoGradGuard no_grad;
  t.copy_(rand(t.shape(), TensorOptions(t.dtype()), &pick(gen)) * (2.0 * bound) - bound);
}

std::string shape_str(const Tensor& x) { return to_string(x.shape()); }

}  // namespace

// ------------------------------------------------------------------ Conv2d --

Conv2d::Conv2d(const Conv2dConfig& cfg, Generator* gen) : cfg_(cfg) {
  LRT_CHECK(cfg.in_channels > 0 && cfg.out_channels > 0 && cfg.kernel > 0,
            "Conv2d: channels and kernel must be positive, got in ", cfg.in_channels, ", out ", cfg.out_channels,
            ", kernel ", cfg.kernel);
  weight_ = register_parameter("weight", empty({cfg.out_channels, cfg.in_channels, cfg.kernel, cfg.kernel}));
  const double bound = 1.0 / std::sqrt(double(cfg.in_channels * cfg.kernel * cfg.kernel));
  uniform_(*weight_, bound, gen);
  if (cfg.bias) {
    bias_ = register_parameter("bias", empty({cfg.out_channels}));
    uniform_(*bias_, bound, gen);
  }
}

void Conv2d::kaiming_normal_fan_out(Generator* gen) {
  NoGradGuard no_grad;
  const double std = std::sqrt(2.0 / double(cfg_.out_channels * cfg_.kernel * cfg_.kernel));
  weight_->copy_(randn(weight_->shape(), TensorOptions(weight_->dtype()), &pick(gen)) * std);
}

Tensor Conv2d::forward(const Tensor& x) {
  const bool cast = x.defined() && x.dtype() == DType::BFloat16 && weight_->dtype() != DType::BFloat16;
  // cuDNN takes a channels_last input's filter as KRSC: the bfloat16 copy is
  // made in that layout, so one copy converts and lays it out (and one brings
  // the gradient back) where a cast and a layout copy would take two.
  const MemoryFormat wfmt = cast && x.device().is_cuda() && memory_format_of(x) == MemoryFormat::ChannelsLast
                                ? MemoryFormat::ChannelsLast
                                : MemoryFormat::Contiguous;
  Tensor w = cast ? std::move(compute_weight_) : *weight_;
  compute_weight_ = Tensor();
  if (cast && !(w.defined() && w.dtype() == DType::BFloat16 && w.shape() == weight_->shape() &&
                w.device() == weight_->device() && w.is_contiguous(wfmt)))
    w = weight_->to(DType::BFloat16, wfmt);
  return conv2d(x, w, bias_ ? *bias_ : Tensor(), {cfg_.stride, cfg_.padding, cfg_.dilation});
}

// --------------------------------------------------------------- BatchNorm --

BatchNorm::BatchNorm(int64_t channels, int rank, double eps, double momentum)
    : channels_(channels), rank_(rank), eps_(eps), momentum_(momentum) {
  LRT_CHECK(channels > 0, "BatchNorm: channels must be positive, got ", channels);
  weight_ = register_parameter("weight", ones({channels}));
  bias_ = register_parameter("bias", zeros({channels}));
  mean_ = register_buffer("running_mean", zeros({channels}));
  var_ = register_buffer("running_var", ones({channels}));
  tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::Int64), /*host=*/true);
}

int64_t BatchNorm::batches_tracked() const { return tracked_->item<int64_t>(); }

Tensor BatchNorm::forward(const Tensor& x) { return forward_act(x, Tensor(), false); }

void BatchNorm::on_replayed_forward() {
  if (is_training()) tracked_->fill_(double(tracked_->item<int64_t>() + 1));
}

Tensor BatchNorm::forward_act(const Tensor& x, const Tensor& residual, bool relu) {
  LRT_CHECK(x.defined() && x.dim() == rank_, "BatchNorm", rank_ == 4 ? "2d" : "1d", ": expects ",
            rank_ == 4 ? "(N, C, H, W)" : "(N, C)", " input, got shape ", shape_str(x));
  if (is_training()) tracked_->fill_(double(tracked_->item<int64_t>() + 1));
  return batch_norm_act(x, *weight_, *bias_, *mean_, *var_, is_training(), residual, relu, momentum_, eps_);
}

// ------------------------------------------------------------------ Linear --

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator* gen)
    : in_(in_features), out_(out_features) {
  LRT_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got in ", in_features,
            ", out ", out_features);
  const double bound = 1.0 / std::sqrt(double(in_features));
  weight_ = register_parameter("weight", empty({out_features, in_features}));
  uniform_(*weight_, bound, gen);
  if (bias) {
    bias_ = register_parameter("bias", empty({out_features}));
    uniform_(*bias_, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  LRT_CHECK(x.defined() && x.dim() == 2 && x.size(1) == in_, "Linear(", in_, " -> ", out_, "): expects (N, ", in_,
            ") input, got shape ", x.defined() ? shape_str(x) : std::string("undefined"));
  return linear(x, *weight_, bias_ ? *bias_ : Tensor());
}

// ---------------------------------------------------------- the stateless --

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, k_, s_, p_); }
Tensor GlobalAvgPool::forward(const Tensor& x) { return global_avg_pool(x); }
Tensor Flatten::forward(const Tensor& x) { return flatten(x, 1); }

Dropout::Dropout(double p, Generator* gen) : p_(p), gen_(gen) {
  LRT_CHECK(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

// -------------------------------------------------------------- Sequential --

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> m, const std::string& name) {
  register_module(name.empty() ? std::to_string(children().size()) : name, std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& c : children()) h = c.second->forward(h);
  return h;
}

}  // namespace lrt

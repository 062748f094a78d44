// Optimizer bookkeeping (slots, per-tensor rates, bias corrections, state)
// and the CPU loop over the shared update math of optim/update.h.
#include "optim/optimizer.h"

#include <cmath>
#include <map>

#include "core/autograd.h"
#include "core/error.h"
#include "lrt_config.h"
#include "optim/update.h"

namespace lrt::optim {

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "adam") return OptimizerKind::Adam;
  if (name == "adamw") return OptimizerKind::AdamW;
  if (name == "sgd") return OptimizerKind::Sgd;
  LRT_THROW("--optimizer: unknown optimizer '", name, "' (expected adam, adamw or sgd)");
}

const char* optimizer_kind_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::AdamW: return "adamw";
    case OptimizerKind::Sgd: return "sgd";
  }
  return "unknown";
}

namespace {

void check_config(const OptimizerConfig& c) {
  auto finite = [](double v) { return std::isfinite(v); };
  LRT_CHECK(finite(c.beta1) && c.beta1 >= 0.0 && c.beta1 < 1.0, "--beta1 ", c.beta1, " is outside [0, 1)");
  LRT_CHECK(finite(c.beta2) && c.beta2 >= 0.0 && c.beta2 < 1.0, "--beta2 ", c.beta2, " is outside [0, 1)");
  LRT_CHECK(finite(c.eps) && c.eps > 0.0, "--eps ", c.eps, " must be > 0");
  LRT_CHECK(finite(c.weight_decay) && c.weight_decay >= 0.0, "--weight-decay ", c.weight_decay, " must be >= 0");
  LRT_CHECK(finite(c.momentum) && c.momentum >= 0.0 && c.momentum < 1.0, "--momentum ", c.momentum,
            " is outside [0, 1)");
  LRT_CHECK(!c.nesterov || (c.kind == OptimizerKind::Sgd && c.momentum > 0.0),
            "--nesterov needs --optimizer sgd with --momentum > 0");
  LRT_CHECK(!c.amsgrad || c.kind != OptimizerKind::Sgd, "--amsgrad applies to adam and adamw, not sgd");
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, const OptimizerConfig& config) : config_(config) {
  check_config(config_);
  LRT_CHECK(!groups.empty(), "optimizer: no parameter groups");
  for (const ParamGroup& g : groups) {
    LRT_CHECK(std::isfinite(g.multiplier) && g.multiplier >= 0.0, "optimizer: group multiplier ", g.multiplier,
              " must be finite and >= 0");
    group_mults_.push_back(g.multiplier);
    for (const NamedParameter& p : g.params) {
      LRT_CHECK(p.tensor.defined(), "optimizer: parameter '", p.name, "' is undefined");
      LRT_CHECK(p.tensor.dtype() == DType::Float32, "optimizer: parameter '", p.name, "' has dtype ",
                p.tensor.dtype(), "; the optimizers update float32 parameters");
      LRT_CHECK(p.tensor.is_contiguous(), "optimizer: parameter '", p.name, "' is not contiguous");
      LRT_CHECK(p.spec.lr_mult >= 0.0 && p.spec.decay_mult >= 0.0, "optimizer: parameter '", p.name,
                "' has a negative lr_mult or decay_mult");
      for (const Slot& other : slots_)
        LRT_CHECK(other.name != p.name && other.param.data_ptr() != p.tensor.data_ptr(),
                  "optimizer: parameter '", p.name, "' is listed twice (or shares its data with '", other.name,
                  "')");
      const double scale = g.multiplier * p.spec.lr_mult;
      Tensor t = p.tensor;
      if (scale == 0.0) {
        // Frozen: no gradient is computed and no state allocated.
        t.set_requires_grad(false);
        continue;
      }
      t.set_requires_grad(true);
      Slot s;
      s.name = p.name;
      s.param = t;
      s.lr_scale = static_cast<float>(scale);
      const bool exempt = config_.no_decay_bn_bias && t.dim() <= 1;
      s.weight_decay = exempt ? 0.0f : static_cast<float>(config_.weight_decay * p.spec.decay_mult);
      slots_.push_back(std::move(s));
    }
  }
}

std::vector<double> Optimizer::group_lrs(double lr) const {
  std::vector<double> out;
  for (double m : group_mults_) out.push_back(lr * m);
  return out;
}

int64_t Optimizer::trainable_elements() const {
  int64_t n = 0;
  for (const Slot& s : slots_) n += s.param.numel();
  return n;
}

void Optimizer::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

namespace {
void check_grad(const Optimizer::Slot& s, const Tensor& g) {
  LRT_CHECK(g.shape() == s.param.shape() && g.dtype() == DType::Float32 && g.device() == s.param.device(),
            "optimizer: the gradient of '", s.name, "' does not match its parameter");
}

void check_skip(const Tensor& skip) {
  if (skip.defined())
    LRT_CHECK(skip.numel() == 1 && skip.dtype() == DType::Float32 && skip.is_contiguous(),
              "optimizer step: the skip flag must be one float32 value, got ", skip.dtype(), " of shape ",
              to_string(skip.shape()));
}
}  // namespace

void Optimizer::step(double lr, const Tensor& skip) {
  check_skip(skip);  // before prepare() changes anything
  prepare(lr);
  apply(skip);
}

void Optimizer::prepare(double lr) {
  LRT_CHECK(std::isfinite(lr) && lr >= 0.0, "optimizer step: learning rate ", lr, " must be finite and >= 0");
  NoGradGuard no_grad;
  const bool adam = config_.kind != OptimizerKind::Sgd;
  // Every gradient is checked before anything changes.
  for (const Slot& s : slots_)
    if (s.param.grad().defined()) check_grad(s, s.param.grad());
  hyper_.resize(slots_.size() * detail::kHyper, 0.0f);
  prepared_.assign(slots_.size(), 0);
  std::map<int, bool> devices;  // CUDA devices with a prepared slot
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.param.grad().defined()) continue;  // as torch.optim: parameters without a gradient are left alone
    // State is allocated here, never in apply(), so a captured apply() holds
    // no fill that a replay would repeat.
    const TensorOptions opts = s.param.options();
    if (adam && !s.exp_avg.defined()) {
      s.exp_avg = zeros(s.param.shape(), opts);
      s.exp_avg_sq = zeros(s.param.shape(), opts);
    }
    if (adam && config_.amsgrad && !s.max_exp_avg_sq.defined()) s.max_exp_avg_sq = zeros(s.param.shape(), opts);
    if (!adam && config_.momentum != 0.0 && !s.momentum_buffer.defined())
      s.momentum_buffer = zeros(s.param.shape(), opts);
    const bool first = s.step == 0;
    ++s.step;
    const double t = static_cast<double>(s.step);
    float* h = &hyper_[i * detail::kHyper];
    h[detail::kHyperLr] = static_cast<float>(lr * s.lr_scale);
    h[detail::kHyperDecay] = static_cast<float>(1.0 - lr * s.lr_scale * static_cast<double>(s.weight_decay));
    h[detail::kHyperStepSize] = static_cast<float>(lr * s.lr_scale / (1.0 - std::pow(config_.beta1, t)));
    h[detail::kHyperBc2Sqrt] = static_cast<float>(std::sqrt(1.0 - std::pow(config_.beta2, t)));
    h[detail::kHyperFirst] = first ? 1.0f : 0.0f;
    prepared_[i] = 1;
    if (s.param.device().is_cuda()) devices[s.param.device().index] = true;
  }
  for (const auto& [device, unused] : devices) {
    Tensor& dev = hyper_dev_[device];
    const int64_t n = static_cast<int64_t>(hyper_.size());
    if (!dev.defined() || dev.numel() != n)
      dev = empty({n}, TensorOptions(Device(DeviceType::CUDA, device)));
    detail::upload_floats_cuda(hyper_.data(), n, dev.data<float>(), device);
  }
}

void Optimizer::apply(const Tensor& skip) {
  check_skip(skip);
  NoGradGuard no_grad;
  const bool adam = config_.kind != OptimizerKind::Sgd;
  std::map<int, std::vector<detail::UpdateItem>> by_device;  // CUDA device index, or -1 for the CPU
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    LRT_CHECK(i < prepared_.size() && prepared_[i], "optimizer: '", s.name,
              "' has a gradient that the last prepare() did not see (call step(), or prepare() before apply())");
    check_grad(s, g);
    if (!g.is_contiguous()) {
      g = g.contiguous();
      s.param.set_grad(g);
    }
    const float* h = &hyper_[i * detail::kHyper];
    detail::UpdateItem it{};
    it.param = s.param.data<float>();
    it.grad = g.data<float>();
    it.m = adam ? s.exp_avg.data<float>() : (s.momentum_buffer.defined() ? s.momentum_buffer.data<float>() : nullptr);
    it.v = adam ? s.exp_avg_sq.data<float>() : nullptr;
    it.vmax = s.max_exp_avg_sq.defined() ? s.max_exp_avg_sq.data<float>() : nullptr;
    it.n = s.param.numel();
    it.weight_decay = s.weight_decay;
    it.lr = h[detail::kHyperLr];
    it.decay_factor = h[detail::kHyperDecay];
    it.step_size = h[detail::kHyperStepSize];
    it.bias_correction2_sqrt = h[detail::kHyperBc2Sqrt];
    it.first = h[detail::kHyperFirst] != 0.0f;
    if (s.param.device().is_cuda()) it.hyper = hyper_dev_.at(s.param.device().index).data<float>() + i * detail::kHyper;
    by_device[s.param.device().is_cuda() ? s.param.device().index : -1].push_back(it);
  }
  for (const auto& [device, items] : by_device) {
    const int skip_device = skip.defined() ? (skip.device().is_cuda() ? skip.device().index : -1) : device;
    LRT_CHECK(skip_device == device, "optimizer step: the skip flag is on ", skip.device(),
              " but the parameters on ", device < 0 ? std::string("cpu") : "cuda:" + std::to_string(device));
    const float* flag = skip.defined() ? skip.data<float>() : nullptr;
    if (device < 0) detail::apply_updates_cpu(config_, items, flag);
    else detail::apply_updates_cuda(config_, items, device, flag);
  }
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Slot& s : slots_) {
    out.emplace_back(s.name + ".step", full({}, static_cast<double>(s.step), TensorOptions(DType::Int64)));
    if (s.exp_avg.defined()) out.emplace_back(s.name + ".exp_avg", s.exp_avg);
    if (s.exp_avg_sq.defined()) out.emplace_back(s.name + ".exp_avg_sq", s.exp_avg_sq);
    if (s.max_exp_avg_sq.defined()) out.emplace_back(s.name + ".max_exp_avg_sq", s.max_exp_avg_sq);
    if (s.momentum_buffer.defined()) out.emplace_back(s.name + ".momentum_buffer", s.momentum_buffer);
  }
  return out;
}

void Optimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, Tensor> byname;
  for (const auto& [name, t] : state) {
    LRT_CHECK(t.defined(), "optimizer state: entry '", name, "' is undefined");
    LRT_CHECK(byname.emplace(name, t).second, "optimizer state: entry '", name, "' appears twice");
  }
  const bool adam = config_.kind != OptimizerKind::Sgd;
  std::vector<Slot> restored = slots_;
  for (Slot& s : restored) {
    auto step = byname.find(s.name + ".step");
    LRT_CHECK(step != byname.end(), "optimizer state: no entry '", s.name, ".step'");
    LRT_CHECK(step->second.numel() == 1, "optimizer state: '", s.name, ".step' must hold one value");
    const double v = step->second.item();
    LRT_CHECK(v >= 0 && v == std::floor(v), "optimizer state: '", s.name, ".step' is ", v);
    s.step = static_cast<int64_t>(v);
    byname.erase(step);
    auto take = [&](const char* suffix, bool wanted, Tensor& into) {
      const std::string key = s.name + suffix;
      auto it = byname.find(key);
      if (!wanted || s.step == 0) {
        LRT_CHECK(it == byname.end(), "optimizer state: unexpected entry '", key, "' for this optimizer");
        into = Tensor();
        return;
      }
      LRT_CHECK(it != byname.end(), "optimizer state: no entry '", key, "'");
      LRT_CHECK(it->second.shape() == s.param.shape() && it->second.dtype() == DType::Float32,
                "optimizer state: '", key, "' has shape ", to_string(it->second.shape()), " and dtype ",
                it->second.dtype(), ", expected ", to_string(s.param.shape()), " float32");
      into = empty(s.param.shape(), s.param.options());
      into.copy_(it->second);
      byname.erase(it);
    };
    take(".exp_avg", adam, s.exp_avg);
    take(".exp_avg_sq", adam, s.exp_avg_sq);
    take(".max_exp_avg_sq", adam && config_.amsgrad, s.max_exp_avg_sq);
    take(".momentum_buffer", !adam && config_.momentum != 0.0, s.momentum_buffer);
  }
  LRT_CHECK(byname.empty(), "optimizer state: entry '", byname.begin()->first,
            "' matches no trainable parameter of this optimizer");
  slots_ = std::move(restored);
}

namespace detail {

namespace {
AdamArgs adam_args(const OptimizerConfig& cfg, const UpdateItem& it) {
  return AdamArgs{static_cast<float>(cfg.beta1),
                  static_cast<float>(cfg.beta2),
                  static_cast<float>(1.0 - cfg.beta1),
                  static_cast<float>(1.0 - cfg.beta2),
                  static_cast<float>(cfg.eps),
                  it.weight_decay,
                  it.decay_factor,
                  it.step_size,
                  it.bias_correction2_sqrt,
                  cfg.kind == OptimizerKind::AdamW,
                  cfg.amsgrad};
}
}  // namespace

void apply_updates_cpu(const OptimizerConfig& cfg, const std::vector<UpdateItem>& items, const float* skip) {
  if (skip && *skip != 0.0f) return;
  const bool adam = cfg.kind != OptimizerKind::Sgd;
  for (const UpdateItem& it : items) {
    if (adam) {
      const AdamArgs a = adam_args(cfg, it);
      float unused = 0.0f;
#pragma omp parallel for if (it.n > (1 << 15)) firstprivate(unused)
      for (int64_t i = 0; i < it.n; ++i)
        adam_update(it.param[i], it.grad[i], it.m[i], it.v[i], it.vmax ? it.vmax[i] : unused, a);
    } else {
      const SgdArgs a{it.lr, static_cast<float>(cfg.momentum), it.weight_decay, cfg.nesterov, it.first};
      float unused = 0.0f;
#pragma omp parallel for if (it.n > (1 << 15)) firstprivate(unused)
      for (int64_t i = 0; i < it.n; ++i) sgd_update(it.param[i], it.grad[i], it.m ? it.m[i] : unused, a);
    }
  }
}

#if !LRT_HAVE_CUDA
int apply_updates_cuda(const OptimizerConfig&, const std::vector<UpdateItem>&, int, const float*) {
  LRT_THROW("optimizer: CUDA parameters need the CUDA backend, which this build of lrt does not have");
}
void upload_floats_cuda(const float*, int64_t, float*, int) {
  LRT_THROW("optimizer: CUDA parameters need the CUDA backend, which this build of lrt does not have");
}
#endif

}  // namespace detail

}  // namespace lrt::optim

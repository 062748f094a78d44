// The fused CUDA optimizer step against the CPU loop over the same
// per-element math: 200 parameters of ragged sizes (1, 3, 4097, 2^20 + 3, ...)
// in groups with mixed multipliers including 0, some misaligned (views at an
// odd offset) so both the 16-byte and the scalar paths run. Every product and
// sum is rounded on its own on both devices, so results must agree to the bit.
#include <doctest/doctest.h>

#include <vector>

#include "core/autograd.h"
#include "core/random.h"
#include "optim/optimizer.h"

namespace lrt::optim {

namespace {

std::vector<int64_t> ragged_sizes() {
  std::vector<int64_t> sizes;
  const int64_t pattern[] = {1, 3, 4097, (1 << 20) + 3, 64, 65536, 65537, 7, 1000, 131072};
  for (int i = 0; i < 200; ++i) sizes.push_back(pattern[i % 10] + (i % 10 == 3 ? 0 : i));
  return sizes;
}

struct Model {
  std::vector<Tensor> params;
  std::vector<ParamGroup> groups;
};

// The same parameter values on a device; every 7th parameter is a view at an
// element offset of 1 (not 16-byte aligned).
Model make_model(Device dev, const std::vector<Tensor>& host_values) {
  Model m;
  const double mults[] = {0.0, 1e-2, 1.0, 0.5};
  m.groups.resize(4);
  for (size_t i = 0; i < host_values.size(); ++i) {
    const int64_t n = host_values[i].numel();
    Tensor p;
    if (i % 7 == 0) p = empty({n + 1}, TensorOptions(dev)).slice(0, 1, n + 1);
    else p = empty({n}, TensorOptions(dev));
    {
      NoGradGuard no_grad;
      p.copy_(host_values[i]);
    }
    m.params.push_back(p);
    m.groups[i % 4].multiplier = mults[i % 4];
    std::string name = "p";  // (built in two steps: GCC 12 warns falsely on "p" + std::to_string(i))
    name += std::to_string(i);
    m.groups[i % 4].params.push_back(NamedParameter{name, p, ParamSpec{i % 5 == 0 ? 2.0 : 1.0, 1.0}});
  }
  return m;
}

void check_config(const OptimizerConfig& cfg, const std::vector<int64_t>& sizes = ragged_sizes()) {
  Generator gen(99);
  std::vector<Tensor> values;
  for (int64_t n : sizes) values.push_back(randn({n}, {}, &gen));
  Model cpu = make_model(kCPU, values), gpu = make_model(Device("cuda:0"), values);
  Optimizer ocpu(cpu.groups, cfg), ogpu(gpu.groups, cfg);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (!cpu.params[i].requires_grad()) continue;
      Tensor g = randn(values[i].shape(), {}, &gen);
      cpu.params[i].set_grad(g);
      gpu.params[i].set_grad(g.to(Device("cuda:0")));
    }
    ocpu.step(1e-2);
    ogpu.step(1e-2);
  }
  for (size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    CHECK(cpu.params[i].to_vector<float>() == gpu.params[i].to_vector<float>());
  }
  const auto scpu = ocpu.state(), sgpu = ogpu.state();
  REQUIRE(scpu.size() == sgpu.size());
  for (size_t i = 0; i < scpu.size(); ++i) {
    CAPTURE(scpu[i].first);
    CHECK(scpu[i].second.to_vector<double>() == sgpu[i].second.to_vector<double>());
  }
}

}  // namespace

TEST_CASE("CUDA: the fused Adam step equals the CPU's bit for bit over 200 ragged tensors") {
  OptimizerConfig c;
  c.weight_decay = 1e-2;
  check_config(c);
  c.amsgrad = true;
  check_config(c);
}

TEST_CASE("CUDA: the fused AdamW and SGD steps equal the CPU's bit for bit") {
  OptimizerConfig c;
  c.kind = OptimizerKind::AdamW;
  c.weight_decay = 0.1;
  check_config(c);
  c = {};
  c.kind = OptimizerKind::Sgd;
  c.momentum = 0.9;
  c.nesterov = true;
  c.weight_decay = 5e-4;
  check_config(c);
  c.nesterov = false;
  c.momentum = 0.0;
  check_config(c);
}

TEST_CASE("CUDA: steps that need several launches (over 224 tensors, over 1,024 chunks) equal the CPU's") {
  // 300 tensors, one of 1,100 chunks of 65,536 floats: both limits of one launch are crossed.
  std::vector<int64_t> sizes(300, 5);
  sizes[17] = int64_t(1100) * 65536 + 9;
  OptimizerConfig c;
  c.amsgrad = true;
  c.weight_decay = 1e-3;
  check_config(c, sizes);
}

TEST_CASE("CUDA: a set device skip flag leaves every parameter and moment unchanged") {
  const Device dev("cuda:0");
  Generator gen(5);
  std::vector<Tensor> values;
  for (int64_t n : {int64_t(3), int64_t(70000), int64_t(1) << 20}) values.push_back(randn({n}, {}, &gen));
  Model m = make_model(dev, values);
  OptimizerConfig cfg;
  cfg.amsgrad = true;
  Optimizer opt(m.groups, cfg);
  auto grads = [&] {
    for (Tensor& p : m.params)
      if (p.requires_grad()) p.set_grad(randn(p.shape(), {}, &gen).to(dev));
  };
  grads();
  opt.step(1e-2, zeros({1}, dev));  // clear: a normal step
  std::vector<std::vector<float>> params;
  for (const Tensor& p : m.params) params.push_back(p.to_vector<float>());
  std::vector<std::vector<double>> moments;  // host copies: state() hands out the live buffers
  for (const auto& [name, t] : opt.state())
    if (name.find(".step") == std::string::npos) moments.push_back(t.to_vector<double>());
  grads();
  opt.step(1e-2, ones({1}, dev));
  for (size_t i = 0; i < m.params.size(); ++i) CHECK(m.params[i].to_vector<float>() == params[i]);
  size_t k = 0;
  for (const auto& [name, t] : opt.state())
    if (name.find(".step") == std::string::npos) CHECK(t.to_vector<double>() == moments[k++]);
  CHECK(k == moments.size());
  // A flag on the wrong device is refused.
  CHECK_THROWS(opt.step(1e-2, zeros({1})));
}

TEST_CASE("CUDA: ResNet50's parameter set takes one fused launch") {
  // 161 tensors, 23.5 M floats: the shapes of a CIFAR-stem ResNet50's parameters.
  std::vector<detail::UpdateItem> items;
  std::vector<Tensor> keep;
  // lr, decay factor, step size, sqrt(bias correction 2), first: a no-op update.
  const Tensor hyper = from_vector<float>({0.0f, 1.0f, 0.0f, 1.0f, 0.0f}, {detail::kHyper}).to(Device("cuda:0"));
  const int64_t sizes[] = {1728, 64, 64, 4096, 36864, 16384, 65536, 2359296, 1048576, 2048, 2048};
  for (int i = 0; i < 161; ++i) {
    Tensor t = zeros({sizes[i % 11]}, Device("cuda:0"));
    keep.push_back(t);
    detail::UpdateItem it{};
    it.param = it.m = it.v = t.data<float>();
    it.grad = t.data<float>();
    it.n = t.numel();
    it.lr = 0.0f;
    it.decay_factor = 1.0f;
    it.step_size = 0.0f;
    it.bias_correction2_sqrt = 1.0f;
    it.hyper = hyper.data<float>();
    items.push_back(it);
  }
  CHECK(detail::apply_updates_cuda(OptimizerConfig{}, items, 0) == 1);
  // Reading a result back waits for the kernel and surfaces any fault here.
  CHECK(keep.front().to(kCPU).to_vector<float>().front() == 0.0f);
}

}  // namespace lrt::optim

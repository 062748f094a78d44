// The fused optimizer step (optim/cuda/fused.cu: one multi-tensor launch for
// every parameter) on the emulated grid (emulated/grid.h), against the CPU
// loop over the same per-element math (optim/update.h): Adam, AdamW, AMSGrad
// and SGD with and without (Nesterov) momentum, tensors of one value to more
// than a chunk, 16-byte aligned (four floats a load) and not, more tensors
// and chunks than one launch takes, and the skip flag. The per-tensor values
// reach the kernel as the device copy Optimizer::prepare makes
// (upload_floats), so that upload is tested too. Both sides compute each
// element with the same float operations: the results must be the CPU's
// bits.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "core/ops.h"
#include "emulated/grid.h"
#include "optim/optimizer.h"
#include "testing.h"

namespace lrt {

namespace {

using optim::OptimizerConfig;
using optim::OptimizerKind;
using optim::detail::UpdateItem;

// One parameter's buffers (param, grad, moments), each offset values into
// its own allocation: offset 0 is 16-byte aligned, 1 is not.
struct Slot {
  std::vector<float> param, grad, m, v, vmax;
  std::vector<float> hyper;  // the kernel's per-tensor values, as prepare() computes them
  int64_t n, offset;
};

Slot make_slot(int64_t n, int64_t offset, uint64_t seed) {
  Slot s;
  s.n = n;
  s.offset = offset;
  auto fill = [&](std::vector<float>& b, double scale, bool positive) {
    const Tensor t = testing::normal({n + offset}, DType::Float32, seed++) * scale;
    b = t.to_vector<float>();
    if (positive)
      for (float& x : b) x = x * x;
  };
  fill(s.param, 1.0, false);
  fill(s.grad, 0.1, false);
  fill(s.m, 0.01, false);
  fill(s.v, 0.01, true);
  fill(s.vmax, 0.02, true);
  return s;
}

UpdateItem item_of(Slot& s, bool momentum_buffer, int k) {
  UpdateItem it{};
  const int64_t o = s.offset;
  it.param = s.param.data() + o;
  it.grad = s.grad.data() + o;
  it.m = momentum_buffer ? s.m.data() + o : nullptr;
  it.v = s.v.data() + o;
  it.vmax = s.vmax.data() + o;
  it.n = s.n;
  it.lr = 1e-3f * static_cast<float>(1 + k % 3);
  it.weight_decay = k % 2 ? 0.01f : 0.0f;
  it.decay_factor = 1.0f - it.lr * it.weight_decay;
  it.step_size = it.lr / (1.0f - 0.9f * 0.9f * 0.9f);
  it.bias_correction2_sqrt = 0.054717f;
  it.first = k % 4 == 0;
  s.hyper.assign(optim::detail::kHyper, 0.0f);
  s.hyper[optim::detail::kHyperLr] = it.lr;
  s.hyper[optim::detail::kHyperDecay] = it.decay_factor;
  s.hyper[optim::detail::kHyperStepSize] = it.step_size;
  s.hyper[optim::detail::kHyperBc2Sqrt] = it.bias_correction2_sqrt;
  s.hyper[optim::detail::kHyperFirst] = it.first ? 1.0f : 0.0f;
  return it;
}

}  // namespace

TEST_CASE("emulated grid: the fused CUDA optimizer step gives the CPU's bits for Adam, AdamW, AMSGrad and SGD") {
  const emulated_grid::ScopedSmCount device(8);
  struct Config {
    const char* name;
    OptimizerKind kind;
    bool amsgrad;
    double momentum;
    bool nesterov;
  };
  const Config configs[] = {{"adam", OptimizerKind::Adam, false, 0, false},
                            {"adamw", OptimizerKind::AdamW, false, 0, false},
                            {"adam amsgrad", OptimizerKind::Adam, true, 0, false},
                            {"sgd", OptimizerKind::Sgd, false, 0, false},
                            {"sgd momentum", OptimizerKind::Sgd, false, 0.9, false},
                            {"sgd nesterov", OptimizerKind::Sgd, false, 0.9, true}};
  // Sizes: one value, a ragged tail, more than a chunk (65,536) with a tail.
  const int64_t sizes[] = {1, 7, 4099, 65536 + 9};
  uint64_t seed = 100;
  for (const Config& cf : configs)
    for (bool skipped : {false, true}) {
      CAPTURE(cf.name);
      CAPTURE(skipped);
      OptimizerConfig cfg;
      cfg.kind = cf.kind;
      cfg.amsgrad = cf.amsgrad;
      cfg.momentum = cf.momentum;
      cfg.nesterov = cf.nesterov;
      const bool momentum_buffer = cf.kind != OptimizerKind::Sgd || cf.momentum != 0.0;
      // 240 small tensors (more than a launch's 224) after the sized ones,
      // aligned and not.
      std::vector<Slot> want, got;
      for (int64_t n : sizes)
        for (int64_t offset : {0, 1}) want.push_back(make_slot(n, offset, seed += 10));
      for (int i = 0; i < 240; ++i) want.push_back(make_slot(3 + i % 5, i % 2, seed += 10));
      got = want;
      std::vector<UpdateItem> want_items, got_items;
      std::vector<float> hyper_dev;  // every tensor's values, "on the device"
      for (size_t k = 0; k < want.size(); ++k) {
        want_items.push_back(item_of(want[k], momentum_buffer, static_cast<int>(k)));
        got_items.push_back(item_of(got[k], momentum_buffer, static_cast<int>(k)));
        hyper_dev.insert(hyper_dev.end(), got[k].hyper.begin(), got[k].hyper.end());
      }
      // The device copy of the per-tensor values, made by upload_floats.
      std::vector<float> uploaded(hyper_dev.size(), -1.0f);
      optim::detail::upload_floats_emulated(hyper_dev.data(), static_cast<int64_t>(hyper_dev.size()),
                                            uploaded.data(), 0);
      CHECK(uploaded == hyper_dev);
      for (size_t k = 0; k < got_items.size(); ++k) got_items[k].hyper = uploaded.data() + k * optim::detail::kHyper;

      const std::vector<float> before = got[2].param;  // 4,099 values, aligned
      const float skip = skipped ? 1.0f : 0.0f;
      optim::detail::apply_updates_cpu(cfg, want_items, &skip);
      const int launches = optim::detail::apply_updates_emulated(cfg, got_items, 0, &skip);
      CHECK(launches == 2);  // 248 tensors: 224, then the rest
      for (size_t k = 0; k < want.size(); ++k) {
        CAPTURE(k);
        CHECK(got[k].param == want[k].param);
        CHECK(got[k].m == want[k].m);
        CHECK(got[k].v == want[k].v);
        CHECK(got[k].vmax == want[k].vmax);
      }
      // Skipped, nothing moves; otherwise the step does move the parameters.
      CHECK((got[2].param == before) == skipped);
    }
}

}  // namespace lrt

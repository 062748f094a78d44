// The LR range test on a small least-squares problem: the sweep is
// exponential from start to end, the loss falls then diverges and the sweep
// stops there, the suggestions lie below the divergence, and the parameters
// and optimizer state are restored exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "optim/lr_find.h"

namespace lrt::optim {

TEST_CASE("lr_find sweeps exponentially, stops at divergence, suggests a rate and restores the model") {
  Generator gen(3);
  Tensor x = randn({64, 8}, {}, &gen);
  Tensor w_true = randn({8, 1}, {}, &gen);
  Tensor y = matmul(x, w_true);
  Tensor w = zeros({8, 1});
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::Sgd;
  cfg.momentum = 0.9;
  Optimizer opt({ParamGroup{{NamedParameter{"w", w, {}}}, 1.0}}, cfg);
  // One warm step so there is optimizer state to restore.
  auto step = [&](double lr) {
    opt.zero_grad();
    Tensor loss = mean(square(matmul(x, w) - y));
    loss.backward();
    opt.step(lr);
    return loss.item();
  };
  step(1e-3);
  const std::vector<float> w_before = w.to_vector<float>();
  std::vector<std::vector<double>> state_before;  // copied: state() returns the live buffers
  for (const auto& entry : opt.state()) state_before.push_back(entry.second.to_vector<double>());

  LrFindOptions o;
  o.start_lr = 1e-5;
  o.end_lr = 100.0;
  o.num_steps = 200;
  const LrFindResult r = lr_find(step, {w}, opt, o);

  REQUIRE(r.lrs.size() >= 10);
  CHECK(r.lrs.front() == doctest::Approx(1e-5));
  for (size_t i = 1; i < r.lrs.size(); ++i)
    CHECK(r.lrs[i] / r.lrs[i - 1] == doctest::Approx(std::pow(1e7, 1.0 / 199.0)));
  CHECK(r.diverged);
  CHECK(r.lrs.size() < 200);
  const double min_smoothed = *std::min_element(r.smoothed.begin(), r.smoothed.end());
  CHECK(min_smoothed < 0.5 * r.smoothed.front());  // the loss did fall before diverging
  CHECK(r.suggestion_steepest > o.start_lr);
  CHECK(r.suggestion_steepest < r.lrs.back());
  CHECK(r.suggestion_min_div10 < r.lrs.back() / 10);
  CHECK(w.to_vector<float>() == w_before);
  const auto state_after = opt.state();
  REQUIRE(state_after.size() == state_before.size());
  for (size_t i = 0; i < state_after.size(); ++i)
    CHECK(state_after[i].second.to_vector<double>() == state_before[i]);
  // Training at the suggested rate from the restored model lowers the loss.
  const double l0 = step(r.suggestion_steepest);
  double l = l0;
  for (int i = 0; i < 20; ++i) l = step(r.suggestion_steepest);
  CHECK(l < l0);
}

TEST_CASE("lr_find restores the model when a step throws, and rejects bad options naming them") {
  Tensor w = ones({3});
  Optimizer opt({ParamGroup{{NamedParameter{"w", w, {}}}, 1.0}}, OptimizerConfig{});
  int calls = 0;
  auto failing = [&](double lr) -> double {
    {
      NoGradGuard no_grad;
      w.fill_(5.0);
    }
    if (++calls == 3) throw Error(__FILE__, __LINE__, "boom");
    return lr;
  };
  CHECK_THROWS_WITH_AS(lr_find(failing, {w}, opt), doctest::Contains("boom"), Error);
  CHECK(w.to_vector<float>() == std::vector<float>(3, 1.0f));
  LrFindOptions o;
  o.start_lr = 0;
  CHECK_THROWS_WITH_AS(lr_find(failing, {w}, opt, o), doctest::Contains("--start-lr"), Error);
  o = {};
  o.end_lr = 1e-8;
  CHECK_THROWS_WITH_AS(lr_find(failing, {w}, opt, o), doctest::Contains("--end-lr"), Error);
  o = {};
  o.num_steps = 1;
  CHECK_THROWS_WITH_AS(lr_find(failing, {w}, opt, o), doctest::Contains("--steps"), Error);
}

}  // namespace lrt::optim

namespace lrt::optim {

TEST_CASE("lr_find's steepest-descent suggestion lies before the loss minimum, not in the noise after it") {
  Tensor w = zeros({1});
  w.set_requires_grad(true);
  Optimizer opt({ParamGroup{{NamedParameter{"w", w, {}}}, 1.0}}, OptimizerConfig{});
  // A scripted loss over 12 steps: a fall to the minimum at step 6 (steepest
  // from step 3 to 4), then a rise with a sharp dip (noise) that stays above
  // the minimum at step 10.
  const std::vector<double> losses = {2.0, 2.0, 1.9, 1.7, 1.5, 1.4, 1.6, 2.4, 3.2, 1.45, 3.5, 3.6};
  size_t i = 0;
  LrFindOptions o;
  o.start_lr = 1e-4;
  o.end_lr = 1.0;
  o.num_steps = static_cast<int64_t>(losses.size());
  o.smoothing = 0.0;  // no smoothing: the script is the smoothed curve
  o.diverge_factor = 100.0;
  const LrFindResult r = lr_find([&](double) { return losses[i++]; }, {w}, opt, o);
  REQUIRE(r.lrs.size() == losses.size());
  CHECK(r.suggestion_min_div10 == doctest::Approx(r.lrs[5] / 10.0));
  CHECK(r.suggestion_steepest == doctest::Approx(r.lrs[2]));  // not r.lrs[8], the fall into the noise dip
}

}  // namespace lrt::optim

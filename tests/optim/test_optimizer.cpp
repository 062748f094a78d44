// The optimizers against an independent float64 transcription of
// torch.optim's update rules over several steps (Adam with and without L2
// decay and AMSGrad, AdamW, SGD with momentum, Nesterov and decay), the
// effective rate lr x group multiplier x lr_mult, frozen groups, the BN/bias
// decay exemption, parameters without gradients, state save/restore and
// the configuration errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "optim/optimizer.h"
#include "testing.h"

namespace lrt::optim {

namespace {

struct RefState {
  std::vector<double> p, m, v, vmax, buf;
  int64_t t = 0;
};

// torch.optim.Adam/AdamW/SGD for one tensor, in double.
void reference_step(RefState& s, const std::vector<double>& grad, const OptimizerConfig& c, double lr, double wd) {
  ++s.t;
  const size_t n = s.p.size();
  if (s.m.empty()) s.m.assign(n, 0.0), s.v.assign(n, 0.0), s.vmax.assign(n, 0.0), s.buf.assign(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double g = grad[i];
    if (c.kind == OptimizerKind::Sgd) {
      if (wd != 0) g += wd * s.p[i];
      if (c.momentum != 0) {
        s.buf[i] = s.t == 1 ? g : s.buf[i] * c.momentum + g;
        g = c.nesterov ? g + c.momentum * s.buf[i] : s.buf[i];
      }
      s.p[i] -= lr * g;
      continue;
    }
    if (c.kind == OptimizerKind::AdamW) s.p[i] *= 1 - lr * wd;
    else if (wd != 0) g += wd * s.p[i];
    s.m[i] = c.beta1 * s.m[i] + (1 - c.beta1) * g;
    s.v[i] = c.beta2 * s.v[i] + (1 - c.beta2) * g * g;
    s.vmax[i] = std::max(s.vmax[i], s.v[i]);
    const double bc1 = 1 - std::pow(c.beta1, static_cast<double>(s.t));
    const double bc2 = 1 - std::pow(c.beta2, static_cast<double>(s.t));
    const double second = c.amsgrad ? s.vmax[i] : s.v[i];
    s.p[i] -= lr / bc1 * s.m[i] / (std::sqrt(second) / std::sqrt(bc2) + c.eps);
  }
}

std::vector<double> as_double(const Tensor& t) { return t.to_vector<double>(); }

// Relative error for values of order 1, absolute near 0 (where float sums of
// order-1 terms leave errors of 1e-7 whatever the result).
double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / (std::fabs(b[i]) + 1.0));
  return worst;
}

// Runs `steps` optimizer steps with random gradients on one tensor and
// compares with the reference at every step.
void check_against_reference(const OptimizerConfig& cfg, double lr, uint64_t seed) {
  Generator gen(seed);
  Tensor p = randn({257}, {}, &gen);
  RefState ref;
  ref.p = as_double(p);
  Optimizer opt({ParamGroup{{NamedParameter{"w", p, {}}}, 1.0}}, cfg);
  for (int step = 0; step < 6; ++step) {
    Tensor g = randn({257}, {}, &gen) * (step % 2 ? 0.01 : 3.0);
    p.set_grad(g);
    opt.step(lr);
    reference_step(ref, as_double(g), cfg, lr, cfg.weight_decay);
    CAPTURE(step);
    CHECK(max_rel(as_double(p), ref.p) < 2e-5);
  }
}

}  // namespace

TEST_CASE("Adam follows torch.optim.Adam over several steps, with L2 decay and AMSGrad") {
  OptimizerConfig c;
  check_against_reference(c, 1e-2, 1);
  c.weight_decay = 0.1;
  check_against_reference(c, 3e-3, 2);
  c.amsgrad = true;
  check_against_reference(c, 1e-2, 3);
  c.beta1 = 0.5;
  c.beta2 = 0.9;
  c.eps = 1e-3;
  check_against_reference(c, 1e-1, 4);
}

TEST_CASE("AdamW decays the weights before the Adam step") {
  OptimizerConfig c;
  c.kind = OptimizerKind::AdamW;
  c.weight_decay = 0.05;
  check_against_reference(c, 1e-2, 5);
  c.amsgrad = true;
  check_against_reference(c, 1e-2, 6);
}

TEST_CASE("SGD follows torch.optim.SGD: plain, momentum, Nesterov, decay") {
  OptimizerConfig c;
  c.kind = OptimizerKind::Sgd;
  check_against_reference(c, 0.1, 7);
  c.momentum = 0.9;
  check_against_reference(c, 0.1, 8);
  c.weight_decay = 5e-4;
  check_against_reference(c, 0.1, 9);
  c.nesterov = true;
  check_against_reference(c, 0.05, 10);
}

TEST_CASE("the first Adam step moves each weight by about lr against its gradient's sign") {
  Tensor p = from_vector<float>({1.0f, -2.0f, 0.5f}, {3});
  Optimizer opt({ParamGroup{{NamedParameter{"w", p, {}}}, 1.0}}, OptimizerConfig{});
  p.set_grad(from_vector<float>({0.3f, -4.0f, 1e-3f}, {3}));
  opt.step(0.01);
  const auto v = p.to_vector<float>();
  CHECK(v[0] == doctest::Approx(0.99).epsilon(1e-6));
  CHECK(v[1] == doctest::Approx(-1.99).epsilon(1e-6));
  CHECK(v[2] == doctest::Approx(0.5 - 0.01 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-6));
}

TEST_CASE("each parameter's rate is lr x group multiplier x lr_mult; decay is scaled by decay_mult") {
  OptimizerConfig c;
  c.kind = OptimizerKind::Sgd;
  c.weight_decay = 0.5;
  Tensor a = ones({4}), b = ones({4}), d = ones({4});
  std::vector<ParamGroup> groups{
      ParamGroup{{NamedParameter{"a", a, {}}}, 1e-2},
      ParamGroup{{NamedParameter{"b", b, ParamSpec{0.5, 2.0}}, NamedParameter{"d", d, {}}}, 1.0}};
  Optimizer opt(groups, c);
  CHECK(opt.group_lrs(0.1) == std::vector<double>{0.1 * 1e-2, 0.1});
  for (Tensor* t : {&a, &b, &d}) t->set_grad(full({4}, 2.0));
  opt.step(0.1);
  // p - lr_eff * (g + wd_eff * p) with p = 1, g = 2.
  CHECK(a.to_vector<float>()[0] == doctest::Approx(1 - 0.1 * 1e-2 * (2 + 0.5)));
  CHECK(b.to_vector<float>()[0] == doctest::Approx(1 - 0.1 * 0.5 * (2 + 1.0)));
  CHECK(d.to_vector<float>()[0] == doctest::Approx(1 - 0.1 * (2 + 0.5)));
}

TEST_CASE("a group with multiplier 0 is frozen: no gradient, no state, no change") {
  Tensor a = ones({3}), b = ones({3}), c0 = ones({3});
  a.set_requires_grad(true);
  Optimizer opt({ParamGroup{{NamedParameter{"a", a, {}}}, 0.0},
                 ParamGroup{{NamedParameter{"b", b, {}}, NamedParameter{"c", c0, ParamSpec{0.0, 1.0}}}, 1.0}},
                OptimizerConfig{});
  CHECK_FALSE(a.requires_grad());
  CHECK_FALSE(c0.requires_grad());
  CHECK(b.requires_grad());
  CHECK(opt.num_trainable() == 1);
  CHECK(opt.trainable_elements() == 3);
  Tensor loss = sum(a * b * c0);
  loss.backward();
  CHECK_FALSE(a.grad().defined());
  CHECK(b.grad().defined());
  opt.step(0.1);
  CHECK(a.to_vector<float>() == std::vector<float>(3, 1.0f));
  CHECK(c0.to_vector<float>() == std::vector<float>(3, 1.0f));
  CHECK(b.to_vector<float>()[0] < 1.0f);
  for (const auto& [name, t] : opt.state()) CHECK(name.rfind("b.", 0) == 0);
}

TEST_CASE("no_decay_bn_bias exempts 1-D parameters from weight decay") {
  OptimizerConfig c;
  c.kind = OptimizerKind::Sgd;
  c.weight_decay = 1.0;
  c.no_decay_bn_bias = true;
  Tensor w = ones({2, 2}), bias = ones({2});
  Optimizer opt({ParamGroup{{NamedParameter{"w", w, {}}, NamedParameter{"bias", bias, {}}}, 1.0}}, c);
  w.set_grad(zeros({2, 2}));
  bias.set_grad(zeros({2}));
  opt.step(0.1);
  CHECK(w.to_vector<float>()[0] == doctest::Approx(0.9));
  CHECK(bias.to_vector<float>()[0] == 1.0f);
}

TEST_CASE("parameters without a gradient are skipped and keep their own step count") {
  Tensor a = ones({2}), b = ones({2});
  Optimizer opt({ParamGroup{{NamedParameter{"a", a, {}}, NamedParameter{"b", b, {}}}, 1.0}}, OptimizerConfig{});
  a.set_grad(ones({2}));
  opt.step(0.1);
  opt.step(0.1);
  CHECK(b.to_vector<float>() == std::vector<float>{1.0f, 1.0f});
  for (const auto& [name, t] : opt.state())
    if (name == "a.step") CHECK(t.item() == 2.0);
    else if (name == "b.step") CHECK(t.item() == 0.0);
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("a set skip flag leaves parameters and moments unchanged; a clear one changes nothing about the step") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::Sgd}) {
    CAPTURE(optimizer_kind_name(kind));
    OptimizerConfig cfg;
    cfg.kind = kind;
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.01;
    auto make = [&](Tensor& p) {
      p = testing::normal({5, 3}, DType::Float32, 12);
      return Optimizer({ParamGroup{{NamedParameter{"p", p, {}}}, 1.0}}, cfg);
    };
    Tensor pa, pb, pc;
    Optimizer a = make(pa), b = make(pb), c = make(pc);
    const Tensor g1 = testing::normal({5, 3}, DType::Float32, 13), g2 = testing::normal({5, 3}, DType::Float32, 14);
    for (Tensor* p : {&pa, &pb, &pc}) p->set_grad(g1.clone());
    a.step(0.1);
    b.step(0.1, full({1}, 0.0));  // clear: the same step as no flag
    c.step(0.1);
    CHECK(pa.to_vector<float>() == pb.to_vector<float>());
    const std::vector<float> before = pc.to_vector<float>();
    std::vector<std::vector<double>> moments;
    for (const auto& [name, t] : c.state())
      if (name != "p.step") moments.push_back(t.to_vector<double>());
    for (double flag : {1.0, std::numeric_limits<double>::quiet_NaN()}) {
      pc.set_grad(g2.clone());
      c.step(0.1, full({}, flag));
      CHECK(pc.to_vector<float>() == before);
      size_t k = 0;
      for (const auto& [name, t] : c.state())
        if (name != "p.step") CHECK(t.to_vector<double>() == moments[k++]);
    }
  }
  Tensor p = ones({2});
  Optimizer opt({ParamGroup{{NamedParameter{"p", p, {}}}, 1.0}}, OptimizerConfig{});
  p.set_grad(ones({2}));
  testing::check_mentions(testing::error_of([&] { opt.step(0.1, full({2}, 0.0)); }), {"skip flag", "(2,)"});
  testing::check_mentions(testing::error_of([&] { opt.step(0.1, full({1}, 0.0, DType::Float64)); }),
                          {"skip flag", "float64"});
}

TEST_CASE("prepare(lr) then apply() follows torch.optim at a rate that changes every step; misuse is refused") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::Sgd}) {
    CAPTURE(optimizer_kind_name(kind));
    OptimizerConfig cfg;
    cfg.kind = kind;
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.01;
    Tensor p = testing::normal({4, 3}, DType::Float32, 21);
    RefState ref;
    ref.p = as_double(p);
    Optimizer opt({ParamGroup{{NamedParameter{"p", p, {}}}, 0.5}}, cfg);
    for (int step = 0; step < 4; ++step) {
      const Tensor g = testing::normal({4, 3}, DType::Float32, 30 + static_cast<uint64_t>(step));
      p.set_grad(g);
      const double lr = 0.1 / (1 + step);  // as a schedule's
      opt.prepare(lr);
      opt.apply();
      reference_step(ref, as_double(g), cfg, lr * 0.5, cfg.weight_decay);
      CHECK(max_rel(as_double(p), ref.p) < 1e-5);
    }
  }
  Tensor p = ones({2}), q = ones({2});
  Optimizer opt({ParamGroup{{NamedParameter{"p", p, {}}, NamedParameter{"q", q, {}}}, 1.0}}, OptimizerConfig{});
  p.set_grad(ones({2}));
  testing::check_mentions(testing::error_of([&] { opt.apply(); }), {"'p'", "prepare()"});
  opt.prepare(0.1);
  q.set_grad(ones({2}));
  testing::check_mentions(testing::error_of([&] { opt.apply(); }), {"'q'", "prepare()"});
  auto steps = [&] {
    std::map<std::string, double> out;
    for (const auto& [name, t] : opt.state())
      if (name.size() > 5 && name.substr(name.size() - 5) == ".step") out[name] = t.item();
    return out;
  };
  const auto before = steps();
  // A bad flag, or a gradient that does not match, is refused before any
  // step count moves.
  CHECK_THROWS(opt.step(0.1, full({2}, 0.0)));
  q.set_grad(ones({2}, DType::Float64));
  testing::check_mentions(testing::error_of([&] { opt.step(0.1); }), {"'q'", "does not match"});
  CHECK(steps() == before);
}

TEST_CASE("restored optimizer state continues exactly where it was saved") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::Sgd}) {
    OptimizerConfig c;
    c.kind = kind;
    c.amsgrad = kind == OptimizerKind::Adam;
    c.momentum = kind == OptimizerKind::Sgd ? 0.9 : 0.0;
    Generator gen(21);
    Tensor p1 = randn({33}, {}, &gen);
    Tensor p2 = p1.clone();
    Optimizer o1({ParamGroup{{NamedParameter{"w", p1, {}}}, 1.0}}, c);
    Optimizer o2({ParamGroup{{NamedParameter{"w", p2, {}}}, 1.0}}, c);
    for (int i = 0; i < 3; ++i) {
      p1.set_grad(randn({33}, {}, &gen));
      o1.step(0.01);
    }
    {
      NoGradGuard no_grad;
      p2.copy_(p1);
    }
    o2.load_state(o1.state());
    for (int i = 0; i < 2; ++i) {
      Tensor g = randn({33}, {}, &gen);
      p1.set_grad(g);
      p2.set_grad(g.clone());
      o1.step(0.01);
      o2.step(0.01);
    }
    CHECK(p1.to_vector<float>() == p2.to_vector<float>());
  }
}

TEST_CASE("bad optimizer state and configuration are errors naming the culprit") {
  Tensor p = ones({3});
  std::vector<ParamGroup> groups{ParamGroup{{NamedParameter{"w", p, {}}}, 1.0}};
  Optimizer opt(groups, OptimizerConfig{});
  p.set_grad(ones({3}));
  opt.step(0.1);
  auto state = opt.state();
  auto missing = state;
  missing.pop_back();
  CHECK_THROWS_WITH_AS(opt.load_state(missing), doctest::Contains("w.exp_avg_sq"), Error);
  auto wrong = state;
  wrong[1].second = zeros({4});
  CHECK_THROWS_WITH_AS(opt.load_state(wrong), doctest::Contains("(4,)"), Error);
  auto extra = state;
  extra.emplace_back("v.exp_avg", zeros({3}));
  CHECK_THROWS_WITH_AS(opt.load_state(extra), doctest::Contains("'v.exp_avg'"), Error);

  OptimizerConfig c;
  c.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--beta1 1"), Error);
  c = {};
  c.beta2 = -0.1;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--beta2"), Error);
  c = {};
  c.eps = 0;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--eps"), Error);
  c = {};
  c.weight_decay = -1;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--weight-decay"), Error);
  c = {};
  c.nesterov = true;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--nesterov"), Error);
  c = {};
  c.kind = OptimizerKind::Sgd;
  c.amsgrad = true;
  CHECK_THROWS_WITH_AS(Optimizer(groups, c), doctest::Contains("--amsgrad"), Error);
  CHECK_THROWS_WITH_AS(parse_optimizer_kind("rmsprop"), doctest::Contains("'rmsprop'"), Error);
  CHECK_THROWS_AS(opt.step(-1.0), Error);
  CHECK_THROWS_AS(Optimizer({ParamGroup{{NamedParameter{"i", zeros({2}, DType::Float64), {}}}, 1.0}}, {}), Error);
  // The same tensor twice would be updated twice (and race on CUDA).
  Tensor q = ones({2});
  CHECK_THROWS_WITH_AS(Optimizer({ParamGroup{{NamedParameter{"q", q, {}}}, 1.0},
                                  ParamGroup{{NamedParameter{"q2", q, {}}}, 1.0}},
                                 {}),
                       doctest::Contains("'q2' is listed twice"), Error);
}

}  // namespace lrt::optim

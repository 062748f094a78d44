// Tests of optim/schedule.*: SGDR against hand values (restarts, midpoints,
// cycle ends, T_mult 1, 2 and 1.5, fractional and step-counted T_0, eta_min,
// decay, warm-up), against a step-by-step copy of the Keras original's
// LR_Cycle callback and against PyTorch's closed form for
// CosineAnnealingWarmRestarts; cycle-end listeners; one-cycle's shape; and
// every validation error naming its flag and the bad value.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "optim/schedule.h"

namespace lrt::optim {

namespace {

constexpr double kPi = std::numbers::pi;

ScheduleConfig sgdr_config(double lr, int64_t steps_per_epoch, double t0, double tmult) {
  ScheduleConfig c;
  c.kind = ScheduleKind::Sgdr;
  c.lr = lr;
  c.steps_per_epoch = steps_per_epoch;
  c.sgdr_t0 = t0;
  c.sgdr_tmult = tmult;
  return c;
}

ScheduleConfig onecycle_config(double lr, int64_t total_steps) {
  ScheduleConfig c;
  c.kind = ScheduleKind::OneCycle;
  c.lr = lr;
  c.total_steps = total_steps;
  return c;
}

// The cosine of the SGDR paper at t_cur of a cycle of length t_i.
double cosine(double peak, double eta_min, double t_cur, double t_i) {
  return eta_min + (peak - eta_min) * (1.0 + std::cos(kPi * t_cur / t_i)) / 2.0;
}

// PyTorch's CosineAnnealingWarmRestarts.step(epoch) in float64, as written in
// torch/optim/lr_scheduler.py: for T_mult != 1 the cycle comes from a
// logarithm of the geometric sum, not from a walk over the cycles.
double torch_sgdr(double epoch, double lr, double t0, double tmult, double eta_min) {
  double t_cur = epoch;
  double t_i = t0;
  if (epoch >= t0) {
    if (tmult == 1.0) {
      t_cur = std::fmod(epoch, t0);
    } else {
      const double n = std::floor(std::log(epoch / t0 * (tmult - 1.0) + 1.0) / std::log(tmult));
      t_cur = epoch - t0 * (std::pow(tmult, n) - 1.0) / (tmult - 1.0);
      t_i = t0 * std::pow(tmult, n);
    }
  }
  return eta_min + (lr - eta_min) * (1.0 + std::cos(kPi * t_cur / t_i)) / 2.0;
}

// The Keras original's LR_Cycle(iterations, cycle_mult), one batch at a time:
// a batch uses max_lr / 2 * (cos(pi * i / I) + 1); after it, i advances and at
// I wraps to 0 while I is multiplied by cycle_mult. Element k is step k + 1.
std::vector<double> keras_lr_cycle(double max_lr, int64_t iterations, int64_t cycle_mult, int64_t steps) {
  std::vector<double> out;
  int64_t i = 0;
  int64_t cycle_len = iterations;
  for (int64_t k = 0; k < steps; ++k) {
    out.push_back(max_lr / 2.0 * (std::cos(kPi * static_cast<double>(i) / static_cast<double>(cycle_len)) + 1.0));
    if (++i == cycle_len) {
      i = 0;
      cycle_len *= cycle_mult;
    }
  }
  return out;
}

// The message of the lrt::Error that f throws ("" if it throws nothing).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string construction_error(const ScheduleConfig& c) {
  return error_of([&] { Schedule s(c); });
}

}  // namespace

TEST_CASE("schedule names parse to their kinds and back, and an unknown name is rejected by name") {
  for (ScheduleKind kind : {ScheduleKind::Constant, ScheduleKind::Sgdr, ScheduleKind::OneCycle})
    CHECK(parse_schedule_kind(schedule_kind_name(kind)) == kind);
  CHECK(std::string(schedule_kind_name(ScheduleKind::Sgdr)) == "sgdr");
  const std::string msg = error_of([] { parse_schedule_kind("cosine"); });
  CHECK(contains(msg, "'cosine'"));
  CHECK(contains(msg, "constant"));
  CHECK(contains(msg, "sgdr"));
  CHECK(contains(msg, "onecycle"));
}

TEST_CASE("the constant schedule holds lr after a linear warm-up that reaches lr at the last warm-up step") {
  ScheduleConfig c;
  c.lr = 0.2;
  c.steps_per_epoch = 3;
  c.warmup_steps = 4;
  const Schedule s(c);
  CHECK(s.lr_at_step(1) == doctest::Approx(0.05).epsilon(1e-15));
  CHECK(s.lr_at_step(2) == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at_step(3) == doctest::Approx(0.15).epsilon(1e-15));
  CHECK(s.lr_at_step(4) == 0.2);
  for (int64_t n = 5; n < 40; ++n) CHECK(s.lr_at_step(n) == 0.2);
  CHECK(s.epoch_at_step(1) == doctest::Approx(-4.0 / 3.0));
  CHECK(s.epoch_at_step(5) == 0.0);
  CHECK(s.epoch_at_step(11) == 2.0);
  CHECK(s.cycle_at_step(30) == 0);
  CHECK_FALSE(s.is_cycle_end(7));
}

TEST_CASE("sgdr with T_mult 1 restarts every T_0 epochs at the full rate and passes (lr + eta_min) / 2 mid-cycle") {
  ScheduleConfig c = sgdr_config(0.1, 4, 1.0, 1.0);
  c.sgdr_eta_min = 0.02;
  const Schedule s(c);
  const double quarter = 0.02 + 0.08 * (2.0 + std::sqrt(2.0)) / 4.0;  // (1 + cos(pi/4)) / 2
  const double three_quarters = 0.02 + 0.08 * (2.0 - std::sqrt(2.0)) / 4.0;
  for (int64_t cycle = 0; cycle < 5; ++cycle) {
    const int64_t first = 1 + 4 * cycle;
    CAPTURE(cycle);
    CHECK(s.lr_at_step(first) == doctest::Approx(0.1).epsilon(1e-15));
    CHECK(s.lr_at_step(first + 1) == doctest::Approx(quarter).epsilon(1e-14));
    CHECK(s.lr_at_step(first + 2) == doctest::Approx((0.1 + 0.02) / 2.0).epsilon(1e-14));
    CHECK(s.lr_at_step(first + 3) == doctest::Approx(three_quarters).epsilon(1e-14));
    for (int64_t k = 0; k < 4; ++k) CHECK(s.cycle_at_step(first + k) == cycle);
    CHECK_FALSE(s.is_cycle_end(first + 2));
    CHECK(s.is_cycle_end(first + 3));
  }
}

TEST_CASE("sgdr with T_mult 2 doubles each cycle: restarts after 1, 3 and 7 epochs") {
  const Schedule s(sgdr_config(0.5, 10, 1.0, 2.0));
  // Cycles of 10, 20 and 40 steps begin at the steps 1, 11, 31, 71.
  const int64_t starts[] = {1, 11, 31, 71};
  const double lengths[] = {10.0, 20.0, 40.0, 80.0};
  for (int cycle = 0; cycle < 4; ++cycle) {
    CAPTURE(cycle);
    CHECK(s.lr_at_step(starts[cycle]) == 0.5);
    CHECK(s.cycle_at_step(starts[cycle]) == cycle);
    const int64_t mid = starts[cycle] + static_cast<int64_t>(lengths[cycle]) / 2;
    CHECK(s.lr_at_step(mid) == doctest::Approx(0.25).epsilon(1e-14));
    if (cycle > 0) {
      const int64_t last = starts[cycle] - 1;
      CHECK(s.is_cycle_end(last));
      CHECK(s.cycle_at_step(last) == cycle - 1);
      CHECK(s.lr_at_step(last) == doctest::Approx(cosine(0.5, 0.0, lengths[cycle - 1] - 1.0, lengths[cycle - 1])));
      CHECK_FALSE(s.is_cycle_end(last - 1));
    }
  }
  CHECK(s.lr_at_step(16) == doctest::Approx(cosine(0.5, 0.0, 5.0, 20.0)));
  CHECK(s.lr_at_step(16) == doctest::Approx(0.25 * (1.0 + std::sqrt(0.5))).epsilon(1e-14));
}

TEST_CASE("sgdr with T_mult 3 restarts after 242 steps, where a logarithm of the cycle sum falls short") {
  // Cycles of 2, 6, 18, 54 and 162 steps end after 242 steps; log(243) /
  // log(3) evaluates to 4.999... in double, so finding the cycle with
  // PyTorch's closed form would put step 243 at the end of cycle 4.
  const Schedule s(sgdr_config(0.2, 2, 1.0, 3.0));
  CHECK(s.is_cycle_end(242));
  CHECK(s.cycle_at_step(242) == 4);
  CHECK(s.lr_at_step(242) == doctest::Approx(cosine(0.2, 0.0, 161.0, 162.0)).epsilon(1e-14));
  CHECK(s.cycle_at_step(243) == 5);
  CHECK(s.lr_at_step(243) == 0.2);
  CHECK(s.lr_at_step(243 + 243) == doctest::Approx(0.1).epsilon(1e-14));  // middle of the 486-step cycle
}

TEST_CASE("sgdr with a non-integer T_mult 1.5 grows cycles of 8, 12, 18 and 27 steps") {
  // T_0 = 2 epochs of 4 steps; the cycles begin after 0, 8, 20, 38 and 65 steps.
  ScheduleConfig c = sgdr_config(1.0, 4, 2.0, 1.5);
  c.sgdr_eta_min = 0.1;
  const Schedule s(c);
  const int64_t begins[] = {0, 8, 20, 38, 65};
  for (int cycle = 0; cycle < 5; ++cycle) {
    CAPTURE(cycle);
    CHECK(s.lr_at_step(begins[cycle] + 1) == doctest::Approx(1.0).epsilon(1e-15));
    CHECK(s.cycle_at_step(begins[cycle] + 1) == cycle);
    if (cycle > 0) CHECK(s.is_cycle_end(begins[cycle]));
  }
  CHECK(s.lr_at_step(1 + 20 + 9) == doctest::Approx(0.55).epsilon(1e-14));  // middle of the 18-step cycle
  CHECK(s.lr_at_step(1 + 8 + 3) == doctest::Approx(cosine(1.0, 0.1, 3.0, 12.0)).epsilon(1e-14));
  CHECK(s.lr_at_step(1 + 38 + 26) == doctest::Approx(cosine(1.0, 0.1, 26.0, 27.0)).epsilon(1e-14));
  CHECK(s.epoch_at_step(1 + 38 + 26) == doctest::Approx(16.0));
}

TEST_CASE("sgdr with a fractional T_0 of half an epoch restarts mid-epoch") {
  SUBCASE("T_mult 1: a restart every 3 of 6 steps per epoch") {
    const Schedule s(sgdr_config(0.3, 6, 0.5, 1.0));
    for (int64_t n = 1; n <= 30; n += 3) {
      CAPTURE(n);
      CHECK(s.lr_at_step(n) == doctest::Approx(0.3).epsilon(1e-15));
      CHECK(s.lr_at_step(n + 1) == doctest::Approx(cosine(0.3, 0.0, 1.0, 3.0)).epsilon(1e-14));
      CHECK(s.lr_at_step(n + 1) == doctest::Approx(0.3 * 0.75).epsilon(1e-14));  // (1 + cos(pi/3)) / 2
      CHECK(s.cycle_at_step(n) == (n - 1) / 3);
      CHECK(s.is_cycle_end(n + 2));
    }
  }
  SUBCASE("T_mult 2: cycles of 3, 6 and 12 steps") {
    const Schedule s(sgdr_config(0.3, 6, 0.5, 2.0));
    for (int64_t restart : {4, 10, 22}) {
      CAPTURE(restart);
      CHECK(s.lr_at_step(restart) == doctest::Approx(0.3).epsilon(1e-15));
      CHECK(s.is_cycle_end(restart - 1));
    }
    CHECK(s.cycle_at_step(21) == 2);
    CHECK(s.cycle_at_step(22) == 3);
    CHECK(s.lr_at_step(16) == doctest::Approx(0.15).epsilon(1e-14));  // middle of the 12-step cycle
  }
}

TEST_CASE("sgdr restarts at the intended step when T_0 in epochs is inexact in binary") {
  // 1.1 epochs of 3 steps is 3.3000000000000003 steps in double: without a
  // tolerance, the step after 10 cycles of 3.3 would sit one rounding error
  // before the restart and take eta_min instead of lr.
  SUBCASE("T_mult 1: 10 cycles end after 33 steps") {
    const Schedule s(sgdr_config(0.4, 3, 1.1, 1.0));
    CHECK(s.is_cycle_end(33));
    CHECK(s.cycle_at_step(34) == 10);
    CHECK(s.lr_at_step(34) == doctest::Approx(0.4).epsilon(1e-15));
  }
  SUBCASE("T_mult 3: cycles of 3.3, 9.9, 29.7 and 89.1 steps end after 132") {
    const Schedule s(sgdr_config(0.4, 3, 1.1, 3.0));
    CHECK(s.is_cycle_end(132));
    CHECK(s.cycle_at_step(132) == 3);
    CHECK(s.cycle_at_step(133) == 4);
    CHECK(s.lr_at_step(133) == doctest::Approx(0.4).epsilon(1e-15));
    CHECK(s.lr_at_step(132) == doctest::Approx(cosine(0.4, 0.0, 88.1, 89.1)).epsilon(1e-12));
  }
}

TEST_CASE("sgdr with T_0 in steps ignores --sgdr-t0 and steps_per_epoch for the cycle length") {
  ScheduleConfig c = sgdr_config(0.2, 7, 0.0, 2.0);
  c.sgdr_t0_steps = 5;
  const Schedule s(c);
  // Cycles of 5, 10, 20 steps begin at the steps 1, 6, 16, 36.
  for (int64_t restart : {1, 6, 16, 36}) CHECK(s.lr_at_step(restart) == 0.2);
  CHECK(s.lr_at_step(11) == doctest::Approx(0.1).epsilon(1e-14));
  CHECK(s.lr_at_step(4) == doctest::Approx(cosine(0.2, 0.0, 3.0, 5.0)).epsilon(1e-14));
  CHECK(s.cycle_at_step(35) == 2);
  CHECK(s.is_cycle_end(35));
  CHECK(s.epoch_at_step(15) == 2.0);

  ScheduleConfig in_epochs = sgdr_config(0.2, 7, 3.0, 2.0);
  in_epochs.sgdr_t0_steps = 5;
  const Schedule same(in_epochs);
  for (int64_t n = 1; n < 80; ++n) CHECK(same.lr_at_step(n) == s.lr_at_step(n));
}

TEST_CASE("sgdr's eta_min is the floor a cycle ends near and decay lowers each cycle's peak") {
  ScheduleConfig c = sgdr_config(0.8, 100, 1.0, 1.0);
  c.sgdr_eta_min = 0.05;
  c.sgdr_decay = 0.5;
  const Schedule s(c);
  for (int cycle = 0; cycle < 4; ++cycle) {
    CAPTURE(cycle);
    const double peak = 0.8 * std::pow(0.5, cycle);
    const int64_t first = 1 + 100 * cycle;
    CHECK(s.lr_at_step(first) == doctest::Approx(peak).epsilon(1e-15));
    CHECK(s.lr_at_step(first + 50) == doctest::Approx((peak + 0.05) / 2.0).epsilon(1e-14));
    const double last = s.lr_at_step(first + 99);
    CHECK(last > 0.05);
    CHECK(last == doctest::Approx(0.05 + (peak - 0.05) * std::pow(std::sin(kPi / 200.0), 2)).epsilon(1e-14));
  }
}

TEST_CASE("warm-up ramps linearly, then sgdr starts its first cycle at the full rate") {
  ScheduleConfig c = sgdr_config(0.6, 4, 1.0, 2.0);
  c.warmup_steps = 3;
  const Schedule s(c);
  CHECK(s.lr_at_step(1) == doctest::Approx(0.2).epsilon(1e-15));
  CHECK(s.lr_at_step(2) == doctest::Approx(0.4).epsilon(1e-15));
  CHECK(s.lr_at_step(3) == 0.6);
  CHECK(s.lr_at_step(4) == 0.6);
  CHECK(s.lr_at_step(6) == doctest::Approx(0.3).epsilon(1e-14));
  CHECK(s.epoch_at_step(1) == -0.75);
  CHECK(s.epoch_at_step(4) == 0.0);
  for (int64_t n = 1; n <= 3; ++n) {
    CHECK(s.cycle_at_step(n) == 0);
    CHECK_FALSE(s.is_cycle_end(n));
  }
  // The first cycle is steps 4-7, the second 8-15.
  CHECK(s.is_cycle_end(7));
  CHECK(s.lr_at_step(8) == 0.6);
  CHECK(s.cycle_at_step(8) == 1);
  CHECK(s.is_cycle_end(15));
  CHECK(s.lr_at_step(16) == 0.6);
}

TEST_CASE("the Keras original's setting restarts at the steps 6251, 18751 and 43751 at the full rate") {
  ScheduleConfig in_epochs = sgdr_config(0.01, 6250, 1.0, 2.0);
  ScheduleConfig in_steps = in_epochs;
  in_steps.sgdr_t0 = 0.0;
  in_steps.sgdr_t0_steps = 6250;
  for (const ScheduleConfig& c : {in_epochs, in_steps}) {
    const Schedule s(c);
    CHECK(s.lr_at_step(1) == 0.01);
    CHECK(s.lr_at_step(6250) == doctest::Approx(0.005 * (1.0 + std::cos(kPi * 6249.0 / 6250.0))).epsilon(1e-14));
    CHECK(s.lr_at_step(6250) < 1e-8);
    CHECK(s.lr_at_step(6251) == 0.01);
    CHECK(s.lr_at_step(18750) == doctest::Approx(0.005 * (1.0 + std::cos(kPi * 12499.0 / 12500.0))).epsilon(1e-14));
    CHECK(s.lr_at_step(18751) == 0.01);
    CHECK(s.lr_at_step(43751) == 0.01);
    CHECK(s.cycle_at_step(6251) == 1);
    CHECK(s.cycle_at_step(18751) == 2);
    CHECK(s.cycle_at_step(43751) == 3);
    CHECK(s.epoch_at_step(43751) == 7.0);

    const std::vector<double> keras = keras_lr_cycle(0.01, 6250, 2, 43751);
    double worst = 0.0;
    for (int64_t n = 1; n <= 43751; ++n)
      worst = std::max(worst, std::fabs(s.lr_at_step(n) - keras[static_cast<size_t>(n - 1)]));
    CHECK(worst <= 1e-17);
  }
}

TEST_CASE("cycle-end listeners fire at the steps 6250 and 18750 of a 5-epoch run in the Keras setting") {
  Schedule s(sgdr_config(0.01, 6250, 1.0, 2.0));
  std::vector<std::pair<int64_t, int64_t>> first;
  std::vector<int64_t> second;
  s.on_cycle_end([&](int64_t step, int64_t cycle) { first.emplace_back(step, cycle); });
  s.on_cycle_end([&](int64_t step, int64_t) { second.push_back(step); });
  int64_t differing = 0;
  for (int64_t n = 1; n <= 31250; ++n) differing += s.step(n) != s.lr_at_step(n);
  CHECK(differing == 0);
  CHECK(first == std::vector<std::pair<int64_t, int64_t>>{{6250, 0}, {18750, 1}});
  CHECK(second == std::vector<int64_t>{6250, 18750});
  CHECK(s.is_cycle_end(43750));
  CHECK_FALSE(s.is_cycle_end(31250));

  s.step(43750);
  CHECK(first.back() == std::pair<int64_t, int64_t>{43750, 2});
}

TEST_CASE("constant and onecycle schedules have no cycles, and warm-up steps end none") {
  ScheduleConfig constant;
  constant.steps_per_epoch = 2;
  for (const ScheduleConfig& c : {constant, onecycle_config(0.1, 20)}) {
    Schedule s(c);
    int64_t fired = 0;
    s.on_cycle_end([&](int64_t, int64_t) { ++fired; });
    for (int64_t n = 1; n <= 30; ++n) {
      s.step(n);
      CHECK(s.cycle_at_step(n) == 0);
      CHECK_FALSE(s.is_cycle_end(n));
    }
    CHECK(fired == 0);
  }
  // Cycles of one step: every step after the warm-up ends one.
  ScheduleConfig warm = sgdr_config(0.1, 1, 1.0, 1.0);
  warm.warmup_steps = 6;
  Schedule s(warm);
  std::vector<std::pair<int64_t, int64_t>> fired;
  s.on_cycle_end([&](int64_t step, int64_t cycle) { fired.emplace_back(step, cycle); });
  for (int64_t n = 1; n <= 9; ++n) s.step(n);
  CHECK(fired == std::vector<std::pair<int64_t, int64_t>>{{7, 0}, {8, 1}, {9, 2}});
}

TEST_CASE("a listener registered from inside a listener first hears the next cycle end") {
  Schedule s(sgdr_config(0.1, 2, 1.0, 1.0));
  std::vector<int64_t> late;
  s.on_cycle_end([&](int64_t step, int64_t) {
    if (step == 2) s.on_cycle_end([&](int64_t later, int64_t) { late.push_back(later); });
  });
  for (int64_t n = 1; n <= 6; ++n) s.step(n);
  CHECK(late == std::vector<int64_t>{4, 6});
}

TEST_CASE("sgdr matches PyTorch's closed form for CosineAnnealingWarmRestarts at random fractional epochs") {
  // Configurations whose cycle boundaries fall between steps (T_0 x 100003
  // steps is never a whole number): PyTorch's logarithm can put an exact
  // boundary into the previous cycle, and exact boundaries are checked by hand
  // above.
  struct Case {
    double t0, tmult, eta_min;
  };
  const Case cases[] = {{0.37, 1.0, 0.0}, {1.3, 1.0, 0.02}, {0.37, 1.5, 0.0}, {2.9, 1.5, 0.05},  {0.37, 2.0, 0.01},
                        {1.3, 2.0, 0.0},  {0.73, 3.0, 0.0}, {2.9, 3.0, 0.1},  {1.3, 1.25, 0.03}, {0.37, 2.5, 0.0}};
  const int64_t steps_per_epoch = 100003;
  const double lr = 0.3;
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int64_t> pick(0, 60 * steps_per_epoch);
  for (const Case& k : cases) {
    CAPTURE(k.t0);
    CAPTURE(k.tmult);
    ScheduleConfig c = sgdr_config(lr, steps_per_epoch, k.t0, k.tmult);
    c.sgdr_eta_min = k.eta_min;
    const Schedule s(c);
    double worst = 0.0;
    int64_t worst_step = 0;
    for (int i = 0; i < 10000; ++i) {
      const int64_t steps = pick(rng);
      const double epoch = static_cast<double>(steps) / static_cast<double>(steps_per_epoch);
      const double err = std::fabs(s.lr_at_step(steps + 1) - torch_sgdr(epoch, lr, k.t0, k.tmult, k.eta_min));
      if (err > worst) {
        worst = err;
        worst_step = steps + 1;
      }
    }
    CAPTURE(worst_step);
    CHECK(worst <= 1e-12);
  }
}

TEST_CASE("onecycle rises by a cosine from lr / div to lr at pct_start, then falls to lr / final_div") {
  ScheduleConfig c = onecycle_config(0.4, 200);
  c.onecycle_pct_start = 0.25;
  c.onecycle_div = 25.0;
  c.onecycle_final_div = 1e4;
  const Schedule s(c);
  const double start = 0.4 / 25.0;
  const double end = 0.4 / 1e4;
  CHECK(s.lr_at_step(1) == doctest::Approx(start).epsilon(1e-15));
  CHECK(s.lr_at_step(26) == doctest::Approx((start + 0.4) / 2.0).epsilon(1e-14));  // p = 0.125
  CHECK(s.lr_at_step(51) == doctest::Approx(0.4).epsilon(1e-15));                  // p = pct_start
  CHECK(s.lr_at_step(126) == doctest::Approx((0.4 + end) / 2.0).epsilon(1e-14));   // p = 0.625
  const double last = s.lr_at_step(200);
  CHECK(last == doctest::Approx(end + (0.4 - end) * std::pow(std::sin(kPi / 300.0), 2)).epsilon(1e-14));
  CHECK(last < 2e-4);
  for (int64_t n = 201; n < 260; ++n) CHECK(s.lr_at_step(n) == end);
  for (int64_t n = 1; n < 51; ++n) CHECK(s.lr_at_step(n + 1) > s.lr_at_step(n));
  for (int64_t n = 51; n < 200; ++n) CHECK(s.lr_at_step(n + 1) < s.lr_at_step(n));
  CHECK(s.cycle_at_step(100) == 0);
  CHECK_FALSE(s.is_cycle_end(200));
}

TEST_CASE("onecycle after warm-up starts at lr / div on the first step past the warm-up") {
  ScheduleConfig c = onecycle_config(1.0, 10);
  c.warmup_steps = 2;
  c.onecycle_pct_start = 0.5;
  c.onecycle_div = 10.0;
  c.onecycle_final_div = 100.0;
  const Schedule s(c);
  CHECK(s.lr_at_step(1) == 0.5);
  CHECK(s.lr_at_step(2) == 1.0);
  CHECK(s.lr_at_step(3) == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at_step(8) == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(s.lr_at_step(13) == doctest::Approx(0.01).epsilon(1e-15));
}

TEST_CASE("every invalid schedule setting is an Error naming its flag and the bad value") {
  const ScheduleConfig sgdr = sgdr_config(0.1, 10, 1.0, 2.0);
  const ScheduleConfig onecycle = onecycle_config(0.1, 100);
  const double inf = std::numeric_limits<double>::infinity();
  auto with = [](ScheduleConfig c, auto change) {
    change(c);
    return c;
  };
  struct Bad {
    std::string flag, value;
    ScheduleConfig config;
  };
  const Bad cases[] = {
      {"--lr", "0", with(sgdr, [](ScheduleConfig& c) { c.lr = 0.0; })},
      {"--lr", "-0.5", with(sgdr, [](ScheduleConfig& c) { c.lr = -0.5; })},
      {"--lr", "nan", with(sgdr, [](ScheduleConfig& c) { c.lr = std::nan(""); })},
      {"--lr", "inf", with(sgdr, [&](ScheduleConfig& c) { c.lr = inf; })},
      {"--steps-per-epoch", "0", with(ScheduleConfig{}, [](ScheduleConfig& c) { c.steps_per_epoch = 0; })},
      {"--steps-per-epoch", "-4", with(sgdr, [](ScheduleConfig& c) { c.steps_per_epoch = -4; })},
      {"--warmup-steps", "-1", with(sgdr, [](ScheduleConfig& c) { c.warmup_steps = -1; })},
      {"--sgdr-t0", "0", with(sgdr, [](ScheduleConfig& c) { c.sgdr_t0 = 0.0; })},
      {"--sgdr-t0", "-2.5", with(sgdr, [](ScheduleConfig& c) { c.sgdr_t0 = -2.5; })},
      {"--sgdr-t0", "inf", with(sgdr, [&](ScheduleConfig& c) { c.sgdr_t0 = inf; })},
      // Shorter than one step (0.5 steps; 1e-300 epochs hung the cycle walk).
      {"--sgdr-t0", "0.05", with(sgdr, [](ScheduleConfig& c) { c.sgdr_t0 = 0.05; })},
      {"--sgdr-t0", "1e-300", with(sgdr, [](ScheduleConfig& c) {
         c.sgdr_t0 = 1e-300;
         c.sgdr_tmult = 1.0000001;
       })},
      {"--sgdr-t0-steps", "-3", with(sgdr, [](ScheduleConfig& c) { c.sgdr_t0_steps = -3; })},
      {"--sgdr-tmult", "0.5", with(sgdr, [](ScheduleConfig& c) { c.sgdr_tmult = 0.5; })},
      {"--sgdr-tmult", "inf", with(sgdr, [&](ScheduleConfig& c) { c.sgdr_tmult = inf; })},
      {"--sgdr-eta-min", "-0.01", with(sgdr, [](ScheduleConfig& c) { c.sgdr_eta_min = -0.01; })},
      {"--sgdr-eta-min", "0.1", with(sgdr, [](ScheduleConfig& c) { c.sgdr_eta_min = 0.1; })},
      {"--sgdr-decay", "0", with(sgdr, [](ScheduleConfig& c) { c.sgdr_decay = 0.0; })},
      {"--sgdr-decay", "1.5", with(sgdr, [](ScheduleConfig& c) { c.sgdr_decay = 1.5; })},
      {"--total-steps", "0", with(onecycle, [](ScheduleConfig& c) { c.total_steps = 0; })},
      {"--onecycle-pct-start", "0", with(onecycle, [](ScheduleConfig& c) { c.onecycle_pct_start = 0.0; })},
      {"--onecycle-pct-start", "1", with(onecycle, [](ScheduleConfig& c) { c.onecycle_pct_start = 1.0; })},
      {"--onecycle-div", "0", with(onecycle, [](ScheduleConfig& c) { c.onecycle_div = 0.0; })},
      {"--onecycle-final-div", "-2", with(onecycle, [](ScheduleConfig& c) { c.onecycle_final_div = -2.0; })},
  };
  for (const Bad& b : cases) {
    CAPTURE(b.flag);
    CAPTURE(b.value);
    const std::string msg = construction_error(b.config);
    CAPTURE(msg);
    CHECK(msg.starts_with(b.flag + " must"));
    CHECK(msg.ends_with("got " + b.value));
  }
}

TEST_CASE("settings of a schedule that is not selected are not validated") {
  ScheduleConfig constant;
  constant.sgdr_tmult = 0.5;
  constant.total_steps = 0;
  CHECK(construction_error(constant).empty());
  ScheduleConfig sgdr_in_steps = sgdr_config(0.1, 10, -1.0, 2.0);
  sgdr_in_steps.sgdr_t0_steps = 40;
  CHECK(construction_error(sgdr_in_steps).empty());
}

TEST_CASE("steps are numbered from 1: step 0 and negative steps are errors") {
  Schedule s(sgdr_config(0.1, 10, 1.0, 2.0));
  for (int64_t n : {int64_t{0}, int64_t{-1}, int64_t{-100}}) {
    CAPTURE(n);
    CHECK(contains(error_of([&] { s.lr_at_step(n); }), "got " + std::to_string(n)));
    CHECK_THROWS_AS(s.step(n), Error);
    CHECK_THROWS_AS(s.epoch_at_step(n), Error);
    CHECK_THROWS_AS(s.cycle_at_step(n), Error);
    CHECK_THROWS_AS(s.is_cycle_end(n), Error);
  }
  CHECK_THROWS_AS(s.on_cycle_end(nullptr), Error);
}

}  // namespace lrt::optim

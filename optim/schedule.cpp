// Learning-rate schedules (constant, SGDR, one-cycle) evaluated per batch
// step. SGDR positions are kept in steps after warm-up rather than epochs:
// the step count is an exact integer, so cycle boundaries that fall on a step
// (the Keras original's 6250-step first cycle, T_mult 2) are hit exactly.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "core/error.h"

namespace lrt::optim {

namespace {

// A position within this fraction of T_i of a cycle's end counts as the
// restart: T_0 given in epochs times steps_per_epoch may be inexact in binary
// (1.1 epochs x 3 steps = 3.3000000000000003 steps) and the walk over cycles
// adds rounding, which must not leave an intended restart step one ulp short
// of it (where cos(pi * T_cur / T_i) would give eta_min instead of the peak).
// The price: a step less than a billionth of a cycle before the end of its
// cycle is taken as the restart.
constexpr double kRestartTolerance = 1e-9;

bool reaches_end(double t_cur, double t_i) { return t_cur >= t_i * (1.0 - kRestartTolerance); }

struct SgdrPosition {
  int64_t cycle = 0;
  double t_cur = 0.0;  // steps into the cycle
  double t_i = 0.0;    // the cycle's length in steps
};

double sgdr_t0_in_steps(const ScheduleConfig& c) {
  return c.sgdr_t0_steps > 0 ? static_cast<double>(c.sgdr_t0_steps)
                             : c.sgdr_t0 * static_cast<double>(c.steps_per_epoch);
}

// The cycle holding the position `steps` (steps after warm-up, >= 0).
SgdrPosition sgdr_position(const ScheduleConfig& c, int64_t steps) {
  const double t0 = sgdr_t0_in_steps(c);
  double pos = static_cast<double>(steps);
  if (c.sgdr_tmult == 1.0) {
    // Equal cycles: fmod is exact, and a walk would take one iteration per
    // elapsed cycle.
    SgdrPosition p{0, std::fmod(pos, t0), t0};
    p.cycle = std::llround((pos - p.t_cur) / t0);
    if (reaches_end(p.t_cur, t0)) {
      p.t_cur = 0.0;
      ++p.cycle;
    }
    return p;
  }
  // Walk the cycles instead of inverting the geometric sum with logarithms,
  // whose rounding can put an exact boundary into the previous cycle.
  SgdrPosition p{0, pos, t0};
  while (reaches_end(p.t_cur, p.t_i)) {
    p.t_cur = std::max(0.0, p.t_cur - p.t_i);
    p.t_i *= c.sgdr_tmult;
    ++p.cycle;
  }
  return p;
}

double sgdr_lr(const ScheduleConfig& c, int64_t steps) {
  const SgdrPosition p = sgdr_position(c, steps);
  const double peak = c.lr * std::pow(c.sgdr_decay, static_cast<double>(p.cycle));
  return c.sgdr_eta_min + (peak - c.sgdr_eta_min) * (1.0 + std::cos(std::numbers::pi * p.t_cur / p.t_i)) / 2.0;
}

double onecycle_lr(const ScheduleConfig& c, int64_t steps) {
  const double lr_start = c.lr / c.onecycle_div;
  const double lr_end = c.lr / c.onecycle_final_div;
  if (steps >= c.total_steps) return lr_end;
  const double p = static_cast<double>(steps) / static_cast<double>(c.total_steps);
  const double pct = c.onecycle_pct_start;
  if (p < pct) return lr_start + (c.lr - lr_start) * (1.0 - std::cos(std::numbers::pi * p / pct)) / 2.0;
  return lr_end + (c.lr - lr_end) * (1.0 + std::cos(std::numbers::pi * (p - pct) / (1.0 - pct))) / 2.0;
}

void check_step(int64_t step, const char* what) {
  LRT_CHECK(step >= 1, what, ": steps are numbered from 1, got ", step);
}

}  // namespace

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (ScheduleKind kind : {ScheduleKind::Constant, ScheduleKind::Sgdr, ScheduleKind::OneCycle})
    if (name == schedule_kind_name(kind)) return kind;
  LRT_THROW("unknown schedule '", name, "' (accepted: constant, sgdr, onecycle)");
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Sgdr:
      return "sgdr";
    case ScheduleKind::OneCycle:
      return "onecycle";
  }
  LRT_THROW("schedule kind ", static_cast<int>(kind), " is not a ScheduleKind");
}

// Fields of a schedule that is not selected are not checked: the app fills
// every field from its flags, and a flag that does not apply must not fail.
Schedule::Schedule(const ScheduleConfig& config) : config_(config) {
  const ScheduleConfig& c = config_;
  LRT_CHECK(c.lr > 0.0 && std::isfinite(c.lr), "--lr must be > 0 and finite, got ", c.lr);
  LRT_CHECK(c.steps_per_epoch > 0, "--steps-per-epoch must be > 0, got ", c.steps_per_epoch);
  LRT_CHECK(c.warmup_steps >= 0, "--warmup-steps must be >= 0, got ", c.warmup_steps);
  if (c.kind == ScheduleKind::Sgdr) {
    LRT_CHECK(c.sgdr_t0_steps >= 0, "--sgdr-t0-steps must be >= 0 (0: the first cycle is --sgdr-t0 epochs), got ",
              c.sgdr_t0_steps);
    if (c.sgdr_t0_steps == 0) {
      const double t0_steps = sgdr_t0_in_steps(c);
      LRT_CHECK(c.sgdr_t0 > 0.0 && t0_steps > 0.0 && std::isfinite(t0_steps),
                "--sgdr-t0 must be > 0 and finite (epochs), got ", c.sgdr_t0);
      // The cycle walk takes one iteration per cycle: cycles of a sliver of
      // a step (1e-300 epochs) growing by a T_mult just above 1 made it
      // practically endless.
      LRT_CHECK(t0_steps >= 1.0, "--sgdr-t0 must be at least one step (", 1.0 / static_cast<double>(c.steps_per_epoch),
                " epochs at ", c.steps_per_epoch, " steps per epoch), got ", c.sgdr_t0);
    }
    LRT_CHECK(c.sgdr_tmult >= 1.0 && std::isfinite(c.sgdr_tmult), "--sgdr-tmult must be >= 1 and finite, got ",
              c.sgdr_tmult);
    LRT_CHECK(c.sgdr_eta_min >= 0.0 && c.sgdr_eta_min < c.lr, "--sgdr-eta-min must be >= 0 and below --lr (", c.lr,
              "), got ", c.sgdr_eta_min);
    LRT_CHECK(c.sgdr_decay > 0.0 && c.sgdr_decay <= 1.0, "--sgdr-decay must be in (0, 1], got ", c.sgdr_decay);
  }
  if (c.kind == ScheduleKind::OneCycle) {
    LRT_CHECK(c.total_steps > 0, "--total-steps must be > 0 for the onecycle schedule, got ", c.total_steps);
    LRT_CHECK(c.onecycle_pct_start > 0.0 && c.onecycle_pct_start < 1.0, "--onecycle-pct-start must be in (0, 1), got ",
              c.onecycle_pct_start);
    LRT_CHECK(c.onecycle_div > 0.0 && std::isfinite(c.onecycle_div), "--onecycle-div must be > 0 and finite, got ",
              c.onecycle_div);
    LRT_CHECK(c.onecycle_final_div > 0.0 && std::isfinite(c.onecycle_final_div),
              "--onecycle-final-div must be > 0 and finite, got ", c.onecycle_final_div);
  }
}

double Schedule::epoch_at_step(int64_t step) const {
  check_step(step, "epoch_at_step");
  return static_cast<double>(step - 1 - config_.warmup_steps) / static_cast<double>(config_.steps_per_epoch);
}

double Schedule::lr_at_step(int64_t step) const {
  check_step(step, "lr_at_step");
  const ScheduleConfig& c = config_;
  if (step <= c.warmup_steps) return c.lr * static_cast<double>(step) / static_cast<double>(c.warmup_steps);
  const int64_t steps = step - 1 - c.warmup_steps;
  switch (c.kind) {
    case ScheduleKind::Constant:
      return c.lr;
    case ScheduleKind::Sgdr:
      return sgdr_lr(c, steps);
    case ScheduleKind::OneCycle:
      return onecycle_lr(c, steps);
  }
  LRT_THROW("schedule kind ", static_cast<int>(c.kind), " is not a ScheduleKind");
}

int64_t Schedule::cycle_at_step(int64_t step) const {
  check_step(step, "cycle_at_step");
  if (config_.kind != ScheduleKind::Sgdr || step <= config_.warmup_steps) return 0;
  return sgdr_position(config_, step - 1 - config_.warmup_steps).cycle;
}

bool Schedule::is_cycle_end(int64_t step) const {
  check_step(step, "is_cycle_end");
  if (config_.kind != ScheduleKind::Sgdr || step <= config_.warmup_steps) return false;
  return cycle_at_step(step + 1) > cycle_at_step(step);
}

void Schedule::on_cycle_end(std::function<void(int64_t step, int64_t cycle)> listener) {
  LRT_CHECK(static_cast<bool>(listener), "on_cycle_end: the listener is empty");
  listeners_.push_back(std::move(listener));
}

double Schedule::step(int64_t n) {
  const double lr = lr_at_step(n);
  if (is_cycle_end(n)) {
    const int64_t cycle = cycle_at_step(n);
    // Over a copy (cycle ends are rare): a listener may register another,
    // which would move the running listener if it grew listeners_.
    const std::vector<std::function<void(int64_t, int64_t)>> listeners = listeners_;
    for (const auto& listener : listeners) listener(n, cycle);
  }
  return lr;
}

}  // namespace lrt::optim

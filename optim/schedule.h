// Learning-rate schedules, stepped every batch. The rate used for optimizer
// step n (1-based) is the schedule at the fractional epoch position
// (n - 1 - W) / steps_per_epoch, W being the warm-up steps (during warm-up the
// rate rises linearly to the base rate: lr * n / W for n <= W), so the first
// step after warm-up uses the schedule's start value. The value returned is
// the base rate times the schedule; group multipliers and per-parameter
// lr_mult are applied by the optimizer.
//
//   constant  lr
//   sgdr      cosine annealing with warm restarts (Loshchilov & Hutter,
//             arXiv 1608.03983; torch.optim.lr_scheduler.
//             CosineAnnealingWarmRestarts): cycle i lasts T_i = T_0 * T_mult^i
//             epochs (T_0 real > 0, or given in steps; T_mult real >= 1);
//             eta = eta_min + (lr * decay^i - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2
//   onecycle  fastai's fit_one_cycle: cosine from lr / div up to lr over the
//             first pct_start of the run, then cosine down to lr / final_div
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lrt::optim {

enum class ScheduleKind { Constant, Sgdr, OneCycle };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  double lr = 1e-3;               // base (maximum) learning rate
  int64_t steps_per_epoch = 1;    // > 0
  int64_t warmup_steps = 0;       // W >= 0
  // sgdr
  double sgdr_t0 = 1.0;           // first cycle in epochs (> 0); ignored when sgdr_t0_steps > 0
  int64_t sgdr_t0_steps = 0;      // first cycle in steps, when > 0
  double sgdr_tmult = 1.0;        // >= 1
  double sgdr_eta_min = 0.0;      // >= 0, absolute floor (scaled by group multipliers like lr)
  double sgdr_decay = 1.0;        // in (0, 1]: peak of cycle i is lr * decay^i
  // onecycle (over total_steps after warm-up)
  int64_t total_steps = 0;        // > 0 for onecycle
  double onecycle_pct_start = 0.25;
  double onecycle_div = 25.0;
  double onecycle_final_div = 1e4;
};

// Parses "constant" / "sgdr" / "onecycle"; throws naming the text otherwise.
ScheduleKind parse_schedule_kind(const std::string& name);
const char* schedule_kind_name(ScheduleKind kind);

class Schedule {
 public:
  // Validates the configuration; every bad value is an lrt::Error naming the
  // field (as the command-line flag: --sgdr-t0, --sgdr-tmult, ...) and value.
  explicit Schedule(const ScheduleConfig& config);

  const ScheduleConfig& config() const { return config_; }
  // Fractional epoch position of step n (1-based), negative during warm-up.
  double epoch_at_step(int64_t step) const;
  // The learning rate for step n (1-based).
  double lr_at_step(int64_t step) const;
  // sgdr: the cycle (0-based) that step n falls in; 0 for other schedules and
  // during warm-up.
  int64_t cycle_at_step(int64_t step) const;
  // sgdr: true when step n is the last step of a cycle (the next step restarts).
  bool is_cycle_end(int64_t step) const;
  // Called from step() with the cycle number whenever a step ends a cycle
  // (the app saves snapshots there).
  void on_cycle_end(std::function<void(int64_t step, int64_t cycle)> listener);
  // Reports cycle ends for step n to the listeners and returns lr_at_step(n).
  double step(int64_t n);

 private:
  ScheduleConfig config_;
  std::vector<std::function<void(int64_t, int64_t)>> listeners_;
};

}  // namespace lrt::optim

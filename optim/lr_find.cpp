// The LR range test: exponential sweep, smoothed loss, divergence stop,
// suggestions, and restoring the model and optimizer.
#include "optim/lr_find.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/error.h"

namespace lrt::optim {

LrFindResult lr_find(const std::function<double(double lr)>& train_step, const std::vector<Tensor>& params,
                     Optimizer& opt, const LrFindOptions& o) {
  LRT_CHECK(std::isfinite(o.start_lr) && o.start_lr > 0, "--start-lr must be > 0, got ", o.start_lr);
  LRT_CHECK(std::isfinite(o.end_lr) && o.end_lr > o.start_lr, "--end-lr must be above the start rate ",
            o.start_lr, ", got ", o.end_lr);
  LRT_CHECK(o.num_steps >= 2, "--steps must be >= 2, got ", o.num_steps);
  LRT_CHECK(o.smoothing >= 0 && o.smoothing < 1, "lr_find smoothing must be in [0, 1), got ", o.smoothing);
  LRT_CHECK(o.diverge_factor > 1, "lr_find divergence factor must be > 1, got ", o.diverge_factor);

  std::vector<Tensor> saved;
  {
    NoGradGuard no_grad;
    for (const Tensor& p : params) saved.push_back(p.detach().clone());
  }
  const auto saved_state = [&] {
    std::vector<std::pair<std::string, Tensor>> s;
    for (const auto& [name, t] : opt.state()) s.emplace_back(name, t.detach().clone());
    return s;
  }();
  auto restore = [&] {
    NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor p = params[i];
      p.copy_(saved[i]);
      p.zero_grad();
    }
    opt.load_state(saved_state);
  };

  LrFindResult r;
  try {
    const double ratio = o.end_lr / o.start_lr;
    double avg = 0, best = std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < o.num_steps; ++i) {
      const double lr = o.start_lr * std::pow(ratio, static_cast<double>(i) / static_cast<double>(o.num_steps - 1));
      const double loss = train_step(lr);
      avg = o.smoothing * avg + (1 - o.smoothing) * loss;
      const double smooth = avg / (1 - std::pow(o.smoothing, static_cast<double>(i + 1)));
      r.lrs.push_back(lr);
      r.losses.push_back(loss);
      r.smoothed.push_back(smooth);
      if (!std::isfinite(smooth) || (i > 0 && smooth > o.diverge_factor * best)) {
        r.diverged = true;
        break;
      }
      best = std::min(best, smooth);
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();

  // Steepest descent: the most negative slope of the smoothed loss against
  // log(lr), over the steps before its minimum (past the minimum the loss is
  // on its way up, and noise there can fake a steep descent at a rate far too
  // high to train with).
  const size_t n = r.diverged ? r.lrs.size() - 1 : r.lrs.size();
  size_t lowest = 0;
  for (size_t i = 0; i < n; ++i)
    if (r.smoothed[i] < r.smoothed[lowest]) lowest = i;
  size_t steepest = 0;
  double best_slope = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i + 1 <= lowest; ++i) {
    const double slope = (r.smoothed[i + 1] - r.smoothed[i]) / std::log(r.lrs[i + 1] / r.lrs[i]);
    if (slope < best_slope) {
      best_slope = slope;
      steepest = i;
    }
  }
  r.suggestion_steepest = r.lrs[steepest];
  r.suggestion_min_div10 = r.lrs[lowest] / 10.0;
  return r;
}

}  // namespace lrt::optim

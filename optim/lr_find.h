// The learning-rate range test (fastai's lr_find): train with a rate growing
// exponentially from start_lr to end_lr over num_steps steps, record the loss
// smoothed by an exponential moving average (bias-corrected), stop once the
// smoothed loss exceeds diverge_factor x the best so far, and suggest a rate:
// where the smoothed loss falls fastest against log(lr) (steepest descent),
// and the rate of the minimum divided by 10. The parameters and the optimizer
// state are restored afterwards, so the test leaves the model as it was.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"

namespace lrt::optim {

struct LrFindOptions {
  double start_lr = 1e-7;
  double end_lr = 10.0;
  int64_t num_steps = 100;
  double smoothing = 0.98;       // weight of the running average
  double diverge_factor = 4.0;   // stop when smoothed loss > factor x best
};

struct LrFindResult {
  std::vector<double> lrs;          // the rate of each step taken
  std::vector<double> losses;       // the raw loss of each step
  std::vector<double> smoothed;     // the smoothed loss of each step
  double suggestion_steepest = 0;   // rate at the steepest descent of the smoothed loss
  double suggestion_min_div10 = 0;  // rate at the minimum smoothed loss, / 10
  bool diverged = false;            // stopped early on divergence
};

// train_step(lr) performs one optimizer step at base rate lr and returns the
// loss of that step. params are the tensors restored afterwards (with opt's
// state). Errors name the option (--start-lr etc.) and the value.
LrFindResult lr_find(const std::function<double(double lr)>& train_step, const std::vector<Tensor>& params,
                     Optimizer& opt, const LrFindOptions& options = {});

}  // namespace lrt::optim

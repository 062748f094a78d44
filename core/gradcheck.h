// gradcheck: compares the gradients autograd computes with central
// differences, in float64 on CPU. The function's output is reduced to a
// scalar with fixed random weights w (L = sum(w * f(x))), so one backward pass
// checks J^T w for every input element against (L(x + eps) - L(x - eps)) / 2eps.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lrt {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 1234;  // for the projection weights
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string message;  // the worst element, when !ok
};

// inputs: float64 CPU tensors; the ones with requires_grad set are checked.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts = {});

}  // namespace lrt

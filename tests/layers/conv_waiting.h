// A graph in which conv2d's input has another consumer whose backward runs
// first (as a bottleneck's input feeds its first convolution and its
// residual): shared by the CPU and CUDA tests of conv2d adding its input's
// gradient into the one already waiting.
#pragma once

#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "layers/functional.h"

namespace lrt::testing {

struct WaitingGradResult {
  Tensor x_grad;     // x's gradient: other + conv2d's input gradient for proj
  bool added_into;   // whether it was summed in the tensor `other` was given in
};

// h = x (recorded); y = conv2d(h, w); out = an op of (h, y) whose backward
// gives h a copy of `other` and passes y's gradient through; backward of
// sum(out * proj). h and the copy of `other` keep the layouts of x and
// `other` (so a channels_last x makes a channels_last convolution).
inline WaitingGradResult conv_grad_into_waiting(const Tensor& x0, const Tensor& w, const Tensor& proj,
                                                const Tensor& other, const Conv2dOptions& opts) {
  Tensor x = x0.detach().set_requires_grad(true);
  const void* summed_at = nullptr;
  const void* given_at = nullptr;
  Tensor h = record("spy", x.detach().clone().contiguous(memory_format_of(x)), {x}, [&summed_at](const Tensor& g) {
    summed_at = g.data_ptr();
    return std::vector<Tensor>{g};
  });
  Tensor y = conv2d(h, w, Tensor(), opts);
  Tensor out = record("giver", y.detach().clone(), {h, y}, [&](const Tensor& g) {
    Tensor h_grad = other.clone().contiguous(memory_format_of(other));
    given_at = h_grad.data_ptr();
    return std::vector<Tensor>{h_grad, g};
  });
  sum(out * proj).backward();
  return {x.grad(), summed_at != nullptr && summed_at == given_at};
}

}  // namespace lrt::testing

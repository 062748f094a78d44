// A model parameter as the optimizer sees it: its state_dict name, the tensor,
// and its ParamSpec. Learning-rate multipliers belong to parameters (Caffe's
// ParamSpec): the optimizer uses schedule(t) x group multiplier x lr_mult, and
// lr_mult == 0 freezes the parameter (no gradient, no optimizer state).
#pragma once

#include <string>

#include "core/tensor.h"

namespace lrt {

struct ParamSpec {
  double lr_mult = 1.0;
  double decay_mult = 1.0;
};

struct NamedParameter {
  std::string name;
  Tensor tensor;
  ParamSpec spec;
};

}  // namespace lrt

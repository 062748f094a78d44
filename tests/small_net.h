// The small model that the module, checkpoint and checkpoint-fuzzing code
// test with: conv (2 -> mid, 3x3, padding 1, no bias) + BatchNorm2d + ReLU +
// global average pool + linear (mid -> 4, named "head"), seeded. No doctest
// here, so the fuzz targets can use it too.
#pragma once

#include <cstdint>
#include <memory>

#include "core/random.h"
#include "layers/modules.h"

namespace lrt::testing {

inline std::shared_ptr<Sequential> small_net(uint64_t seed = 1, int64_t mid = 3) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(Conv2dConfig{2, mid, 3, 1, 1, 1, false}, &gen));
  net->push_back(std::make_shared<BatchNorm2d>(mid));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<GlobalAvgPool>());
  net->push_back(std::make_shared<Linear>(mid, 4, true, &gen), "head");
  return net;
}

}  // namespace lrt::testing

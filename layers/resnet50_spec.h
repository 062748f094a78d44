// The parameter names and shapes of lrt's ResNet50 variants, in registration
// order and with torchvision's state_dict names. Stems: "cifar" (3x3 conv,
// stride 1, no max-pool) and "imagenet" (torchvision's 7x7 conv + max-pool).
// Heads: "linear" (fc: 2048 -> classes) and "seed" (the Keras original's:
// fc_start 2048 -> 256, fc_mid 256 -> 128, fc_bn BatchNorm1d(128), fc
// 128 -> classes). Tools that only need the names (the learning-rate schedule
// preview, benchmarks over the parameter set) use this; the model itself must
// register exactly these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"

namespace lrt {

enum class ResNetStem { Cifar, ImageNet };
enum class ResNetHead { Linear, Seed };

ResNetStem parse_resnet_stem(const std::string& name);  // "cifar" / "imagenet"
ResNetHead parse_resnet_head(const std::string& name);  // "linear" / "seed"

struct ParamShape {
  std::string name;
  Shape shape;
};

std::vector<ParamShape> resnet50_parameter_shapes(ResNetStem stem, ResNetHead head, int64_t classes = 10);

}  // namespace lrt

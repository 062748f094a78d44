// ResNet50's parameter list: torchvision's names in registration order and
// the parameter counts of each stem and head (23,520,842 for the CIFAR stem
// with a 10-class linear head; 23,528,522 with the ImageNet stem).
#include <doctest/doctest.h>

#include "core/error.h"
#include "layers/resnet50_spec.h"

namespace lrt {

namespace {
int64_t count(const std::vector<ParamShape>& ps) {
  int64_t n = 0;
  for (const ParamShape& p : ps) n += numel_of(p.shape);
  return n;
}
}  // namespace

TEST_CASE("ResNet50 parameter counts match torchvision's for each stem and head") {
  const auto cifar = resnet50_parameter_shapes(ResNetStem::Cifar, ResNetHead::Linear, 10);
  CHECK(cifar.size() == 161);
  CHECK(count(cifar) == 23520842);
  CHECK(count(resnet50_parameter_shapes(ResNetStem::ImageNet, ResNetHead::Linear, 10)) == 23528522);
  // The seed head: 2048*256+256 + 256*128+128 + 2*128 + 128*10+10 in place of 2048*10+10.
  CHECK(count(resnet50_parameter_shapes(ResNetStem::Cifar, ResNetHead::Seed, 10)) ==
        23520842 - (2048 * 10 + 10) + (2048 * 256 + 256) + (256 * 128 + 128) + 256 + (128 * 10 + 10));
  CHECK(count(resnet50_parameter_shapes(ResNetStem::Cifar, ResNetHead::Linear, 100)) == 23520842 + 2048 * 90 + 90);
}

TEST_CASE("ResNet50 parameters carry torchvision's state_dict names in registration order") {
  const auto ps = resnet50_parameter_shapes(ResNetStem::ImageNet, ResNetHead::Linear, 10);
  CHECK(ps[0].name == "conv1.weight");
  CHECK(ps[0].shape == Shape{64, 3, 7, 7});
  CHECK(ps[1].name == "bn1.weight");
  CHECK(ps[3].name == "layer1.0.conv1.weight");
  CHECK(ps[3].shape == Shape{64, 64, 1, 1});
  CHECK(ps[12].name == "layer1.0.downsample.0.weight");
  CHECK(ps[12].shape == Shape{256, 64, 1, 1});
  CHECK(ps[14].name == "layer1.0.downsample.1.bias");
  CHECK(ps[15].name == "layer1.1.conv1.weight");
  CHECK(ps[15].shape == Shape{64, 256, 1, 1});
  CHECK(ps.back().name == "fc.bias");
  bool found = false;
  for (const ParamShape& p : ps)
    if (p.name == "layer3.0.conv2.weight") {
      found = true;
      CHECK(p.shape == Shape{256, 256, 3, 3});
    }
  CHECK(found);
  const auto seed = resnet50_parameter_shapes(ResNetStem::Cifar, ResNetHead::Seed, 10);
  const std::vector<std::string> tail{"fc_start.weight", "fc_start.bias", "fc_mid.weight", "fc_mid.bias",
                                      "fc_bn.weight",    "fc_bn.bias",    "fc.weight",     "fc.bias"};
  for (size_t i = 0; i < tail.size(); ++i) CHECK(seed[seed.size() - tail.size() + i].name == tail[i]);
  CHECK_THROWS_WITH_AS(parse_resnet_stem("tiny"), doctest::Contains("'tiny'"), Error);
  CHECK_THROWS_WITH_AS(parse_resnet_head("mlp"), doctest::Contains("'mlp'"), Error);
}

}  // namespace lrt

// ResNet50's parameter list: stem, four stages of bottlenecks [3, 4, 6, 3]
// (1x1 -> 3x3 -> 1x1, expansion 4, a 1x1 conv + BN downsample on each stage's
// first block), then the head.
#include "layers/resnet50_spec.h"

#include "core/error.h"

namespace lrt {

ResNetStem parse_resnet_stem(const std::string& name) {
  if (name == "cifar") return ResNetStem::Cifar;
  if (name == "imagenet") return ResNetStem::ImageNet;
  LRT_THROW("--stem: unknown stem '", name, "' (expected cifar or imagenet)");
}

ResNetHead parse_resnet_head(const std::string& name) {
  if (name == "linear") return ResNetHead::Linear;
  if (name == "seed") return ResNetHead::Seed;
  LRT_THROW("--head: unknown head '", name, "' (expected linear or seed)");
}

std::vector<ParamShape> resnet50_parameter_shapes(ResNetStem stem, ResNetHead head, int64_t classes) {
  LRT_CHECK(classes > 0, "the number of classes must be positive, got ", classes);
  std::vector<ParamShape> out;
  auto conv = [&](const std::string& name, int64_t in, int64_t outc, int64_t k) {
    out.push_back({name + ".weight", {outc, in, k, k}});
  };
  auto bn = [&](const std::string& name, int64_t c) {
    out.push_back({name + ".weight", {c}});
    out.push_back({name + ".bias", {c}});
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t outc) {
    out.push_back({name + ".weight", {outc, in}});
    out.push_back({name + ".bias", {outc}});
  };
  conv("conv1", 3, 64, stem == ResNetStem::Cifar ? 3 : 7);
  bn("bn1", 64);
  int64_t in = 64;
  const int blocks[] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = int64_t(64) << stage;
    for (int b = 0; b < blocks[stage]; ++b) {
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      conv(p + ".conv1", in, width, 1);
      bn(p + ".bn1", width);
      conv(p + ".conv2", width, width, 3);
      bn(p + ".bn2", width);
      conv(p + ".conv3", width, 4 * width, 1);
      bn(p + ".bn3", 4 * width);
      if (b == 0) {
        conv(p + ".downsample.0", in, 4 * width, 1);
        bn(p + ".downsample.1", 4 * width);
      }
      in = 4 * width;
    }
  }
  if (head == ResNetHead::Linear) {
    linear("fc", 2048, classes);
  } else {
    linear("fc_start", 2048, 256);
    linear("fc_mid", 256, 128);
    bn("fc_bn", 128);
    linear("fc", 128, classes);
  }
  return out;
}

}  // namespace lrt

// ResNet50: every stem and head registers exactly the names and shapes of
// layers/resnet50_spec.h (torchvision's), the state_dict holds torchvision's
// 320 entries for the linear head, torchvision's initialisation, and a
// forward/backward pass on a small CPU batch gives finite logits and a
// gradient for every parameter (frozen ones excepted).
#include <doctest/doctest.h>

#include <cmath>

#include "core/ops.h"
#include "layers/functional.h"
#include "layers/module.h"
#include "layers/resnet50.h"
#include "testing.h"

namespace lrt {

TEST_CASE("ResNet50 registers the spec's names and shapes for every stem and head") {
  for (ResNetStem stem : {ResNetStem::Cifar, ResNetStem::ImageNet}) {
    for (ResNetHead head : {ResNetHead::Linear, ResNetHead::Seed}) {
      ResNet50 model({stem, head, 10});
      const auto params = model.named_parameters();
      const auto spec = resnet50_parameter_shapes(stem, head, 10);
      REQUIRE(params.size() == spec.size());
      for (size_t i = 0; i < spec.size(); ++i) {
        INFO(spec[i].name);
        CHECK(params[i].name == spec[i].name);
        CHECK(params[i].tensor.shape() == spec[i].shape);
      }
    }
  }
  CHECK(ResNet50({ResNetStem::Cifar, ResNetHead::Linear, 10}).num_parameters() == 23520842);
  CHECK(ResNet50({ResNetStem::ImageNet, ResNetHead::Linear, 10}).num_parameters() == 23528522);
  CHECK(ResNet50({ResNetStem::Cifar, ResNetHead::Linear, 100}).num_parameters() == 23520842 + 2048 * 90 + 90);
}

TEST_CASE("ResNet50's state_dict has torchvision's 320 entries in torchvision's order") {
  ResNet50 model({ResNetStem::ImageNet, ResNetHead::Linear, 10});
  const TensorList sd = model.state_dict();
  CHECK(sd.size() == 320);
  const std::vector<std::string> first = {"conv1.weight",          "bn1.weight",          "bn1.bias",
                                          "bn1.running_mean",      "bn1.running_var",     "bn1.num_batches_tracked",
                                          "layer1.0.conv1.weight", "layer1.0.bn1.weight"};
  for (size_t i = 0; i < first.size(); ++i) CHECK(sd[i].first == first[i]);
  CHECK(sd[318].first == "fc.weight");
  CHECK(sd[319].first == "fc.bias");
  bool has_downsample_var = false;
  for (const auto& [n, t] : sd) has_downsample_var |= n == "layer3.0.downsample.1.running_var";
  CHECK(has_downsample_var);
  ResNet50 seed_head({ResNetStem::Cifar, ResNetHead::Seed, 10});
  const TensorList sd2 = seed_head.state_dict();
  CHECK(sd2.back().first == "fc.bias");
  CHECK(sd2[sd2.size() - 3].first == "fc_bn.num_batches_tracked");
}

TEST_CASE("ResNet50 initialises convs Kaiming-normal (fan_out), BN to 1 and 0, and is reproducible by seed") {
  ResNet50 a({ResNetStem::Cifar, ResNetHead::Linear, 10, 0.5, 42});
  ResNet50 b({ResNetStem::Cifar, ResNetHead::Linear, 10, 0.5, 42});
  ResNet50 c({ResNetStem::Cifar, ResNetHead::Linear, 10, 0.5, 43});
  const auto pa = a.named_parameters(), pb = b.named_parameters(), pc = c.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(max_abs_diff(pa[i].tensor, pb[i].tensor) == 0.0);
  CHECK(max_abs_diff(pa[0].tensor, pc[0].tensor) > 0.0);
  for (const auto& p : pa) {
    if (p.name == "layer3.0.conv2.weight") {  // (256, 256, 3, 3): std sqrt(2 / (256 * 9))
      double sq = 0;
      for (double v : testing::host(p.tensor)) sq += v * v;
      CHECK(std::sqrt(sq / double(p.tensor.numel())) == doctest::Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.02));
    }
    if (p.name == "layer2.1.bn3.weight") CHECK(testing::host(p.tensor) == std::vector<double>(512, 1.0));
    if (p.name == "layer2.1.bn3.bias") CHECK(testing::host(p.tensor) == std::vector<double>(512, 0.0));
  }
}

TEST_CASE("ResNet50 trains a step on CPU: finite logits, a gradient for every unfrozen parameter") {
  for (ResNetStem stem : {ResNetStem::Cifar, ResNetStem::ImageNet}) {
    ResNet50 model({stem, ResNetHead::Seed, 10, 0.5, 1});
    model.set_param_spec("conv1", {0.0, 1.0});  // frozen: no gradient computed
    const Tensor x = testing::normal({2, 3, 32, 32}, DType::Float32, 5);
    const Tensor labels = from_vector<int64_t>({3, 7}, {2});
    const Tensor logits = model.forward(x);
    CHECK(logits.shape() == Shape{2, 10});
    for (double v : testing::host(logits)) CHECK(std::isfinite(v));
    const Tensor loss = cross_entropy(logits, labels);
    CHECK(std::isfinite(loss.item()));
    loss.backward();
    for (const auto& p : model.named_parameters()) {
      INFO(p.name);
      CHECK(p.tensor.grad().defined() == (p.name != "conv1.weight"));
    }
    model.eval();
    const Tensor a = model.forward(x), b = model.forward(x);
    CHECK(max_abs_diff(a, b) == 0.0);  // eval: no dropout, running statistics
  }
}

TEST_CASE("ResNet50 with fused BN + ReLU and BN + add + ReLU gives the unfused model's bits") {
  for (ResNetStem stem : {ResNetStem::Cifar, ResNetStem::ImageNet}) {
    CAPTURE(static_cast<int>(stem));
    const Tensor x = testing::normal({2, 3, 32, 32}, DType::Float32, 6);
    const Tensor labels = from_vector<int64_t>({1, 8}, {2});
    auto run = [&](bool fuse) {
      ResNet50Options o{stem, ResNetHead::Linear, 10, 0.5, 3};
      o.fuse_bn_act = fuse;
      ResNet50 model(o);
      const Tensor logits = model.forward(x);
      cross_entropy(logits, labels).backward();
      std::vector<std::vector<double>> out{testing::host(logits)};
      for (const auto& p : model.named_parameters()) out.push_back(testing::host(p.tensor.grad()));
      for (const auto& b : model.named_buffers()) out.push_back(testing::host(b.second));
      return out;
    };
    const auto fused = run(true), separate = run(false);
    REQUIRE(fused.size() == separate.size());
    for (size_t i = 0; i < fused.size(); ++i) {
      CAPTURE(i);
      CHECK(fused[i] == separate[i]);
    }
  }
}

TEST_CASE("an ImageNet ResNet50 state_dict loads non-strictly into the ImageNet stem with a fresh 10-class fc") {
  testing::TempDir dir("resnet50-transfer");
  ResNet50 imagenet({ResNetStem::ImageNet, ResNetHead::Linear, 1000, 0.5, 3});
  save_weights(imagenet, dir.str() + "/imagenet.safetensors");
  ResNet50 model({ResNetStem::ImageNet, ResNetHead::Linear, 10, 0.5, 4});
  const Tensor fc_before = model.named_parameters().back().tensor.clone();
  testing::check_mentions(testing::error_of([&] { load_weights(model, dir.str() + "/imagenet.safetensors"); }),
                          {"fc.weight", "(1000, 2048)", "(10, 2048)"});
  const LoadReport r = load_weights(model, dir.str() + "/imagenet.safetensors", /*strict=*/false);
  CHECK(r.loaded.size() == 318);
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  REQUIRE(r.mismatched.size() == 2);
  testing::check_mentions(r.mismatched[0], {"fc.weight", "(1000, 2048)", "(10, 2048)"});
  testing::check_mentions(r.mismatched[1], {"fc.bias", "(1000,)", "(10,)"});
  CHECK(max_abs_diff(model.named_parameters()[0].tensor, imagenet.named_parameters()[0].tensor) == 0.0);
  CHECK(max_abs_diff(model.named_parameters().back().tensor, fc_before) == 0.0);  // fc kept fresh

  // The Keras original's setup: the seed head on ImageNet weights.
  ResNet50 seed({ResNetStem::ImageNet, ResNetHead::Seed, 10, 0.5, 5});
  const LoadReport rs = load_weights(seed, dir.str() + "/imagenet.safetensors", /*strict=*/false);
  CHECK(rs.loaded.size() == 318);
  CHECK(rs.unexpected.empty());
  CHECK(rs.missing.size() == 8);  // fc_start, fc_mid (weight, bias), fc_bn (weight, bias, running statistics)
}

TEST_CASE("ResNet50 rejects inputs that are not 3-channel images") {
  ResNet50 model;
  testing::check_mentions(testing::error_of([&] { model.forward(zeros({2, 1, 32, 32})); }),
                          {"ResNet50", "(2, 1, 32, 32)"});
  testing::check_mentions(testing::error_of([&] { model.forward(zeros({2, 3, 32})); }), {"ResNet50", "(2, 3, 32)"});
}

}  // namespace lrt

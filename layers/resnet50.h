// The hand-built ResNet50 (He et al. 2016, torchvision's v1.5 layout: stride
// on the 3x3 conv of a bottleneck) with torchvision's child names, so its
// state_dict names and order are exactly torchvision's and match
// layers/resnet50_spec.h. Stems and heads as described there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/modules.h"
#include "layers/resnet50_spec.h"

namespace lrt {

// 1x1 (in -> width) -> 3x3 (width, stride) -> 1x1 (width -> 4 width), each
// followed by BN, ReLU after the first two and after the residual add; the
// shortcut is a 1x1 conv + BN ("downsample") when the shape changes. fused:
// each BN runs with what follows it (ReLU; residual add + ReLU) in one pass
// (lrt::batch_norm_act); the same results as separate ops, less memory
// traffic.
class Bottleneck : public Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_channels, int64_t width, int64_t stride, Generator* gen = nullptr, bool fused = true);
  Tensor forward(const Tensor& x) override;

 private:
  bool fused_;
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<Sequential> downsample_;
};

struct ResNet50Options {
  ResNetStem stem = ResNetStem::Cifar;
  ResNetHead head = ResNetHead::Linear;
  int64_t classes = 10;
  double dropout = 0.5;  // the seed head's two dropouts
  uint64_t seed = 0;     // initialisation (and the dropout masks' generator)
  // BN + ReLU and BN + residual add + ReLU in one pass each (Bottleneck's
  // fused; also the stem's BN + ReLU). Off only to measure what it saves.
  bool fuse_bn_act = true;
  // The activations' dtype: float32, or bfloat16 for mixed precision
  // (convolutions and batch norms on bfloat16 activations with float32
  // accumulation; parameters, BN statistics, the head and the loss stay
  // float32, and the optimizer updates the float32 parameters).
  DType compute_dtype = DType::Float32;
  // Keep the features channels_last (NHWC) from the input to the global
  // average pool: cuDNN's tensor-core convolutions read and write that
  // layout directly, where NCHW features cost a transpose on each side of
  // every convolution. The values are the same either way (on the CPU,
  // bit for bit); parameters and checkpoints are unaffected.
  bool channels_last = false;
  // bfloat16 on CUDA: round every convolution's weight to bfloat16 in one
  // pass at the start of forward (one launch, to_each) instead of a copy a
  // convolution, and widen their gradients back in one pass at the end of
  // backward. The same values either way. Off only to measure it.
  bool cast_weights_together = true;
};

// Input (N, 3, H, W) float; output logits (N, classes), float32. With
// compute_dtype bfloat16 the input is rounded to bfloat16 first and the
// features return to float32 before the global average pool (max pooling,
// in the ImageNet stem, runs in float32 too).
class ResNet50 : public Module {
 public:
  explicit ResNet50(const ResNet50Options& opts = {});
  Tensor forward(const Tensor& x) override;
  const ResNet50Options& options() const { return opts_; }
  // The generator the dropout layers draw from (part of a run's RNG state).
  Generator& dropout_generator() { return *dropout_gen_; }

 private:
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m);

  ResNet50Options opts_;
  std::unique_ptr<Generator> dropout_gen_;
  std::vector<std::shared_ptr<Module>> order_;  // children in forward order
  std::shared_ptr<BatchNorm2d> stem_bn_;  // with stem_relu_, one fused pass
  std::shared_ptr<ReLU> stem_relu_;
  std::shared_ptr<Module> maxpool_, avgpool_;  // where bfloat16 features turn float32
  std::vector<Conv2d*> convs_;  // every convolution, owned by the module tree
};

}  // namespace lrt

// ResNet50's construction (torchvision's names and initialisation) and
// forward pass.
#include "layers/resnet50.h"

#include "core/ops.h"

namespace lrt {

namespace {

std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, Generator* gen) {
  auto c = std::make_shared<Conv2d>(Conv2dConfig{in, out, k, stride, pad, 1, false}, gen);
  c->kaiming_normal_fan_out(gen);
  return c;
}

}  // namespace

// ---------------------------------------------------------------- Bottleneck --

Bottleneck::Bottleneck(int64_t in, int64_t width, int64_t stride, Generator* gen, bool fused) : fused_(fused) {
  conv1_ = register_module("conv1", make_conv(in, width, 1, 1, 0, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(width));
  conv2_ = register_module("conv2", make_conv(width, width, 3, stride, 1, gen));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(width));
  conv3_ = register_module("conv3", make_conv(width, width * kExpansion, 1, 1, 0, gen));
  bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(width * kExpansion));
  if (stride != 1 || in != width * kExpansion) {
    downsample_ = register_module(
        "downsample", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
                          make_conv(in, width * kExpansion, 1, stride, 0, gen),
                          std::make_shared<BatchNorm2d>(width * kExpansion)}));
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  if (fused_) {
    Tensor h = bn1_->forward_act(conv1_->forward(x), Tensor(), true);
    h = bn2_->forward_act(conv2_->forward(h), Tensor(), true);
    return bn3_->forward_act(conv3_->forward(h), downsample_ ? downsample_->forward(x) : x, true);
  }
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));
  h = relu(bn2_->forward(conv2_->forward(h)));
  h = bn3_->forward(conv3_->forward(h));
  return relu(h + (downsample_ ? downsample_->forward(x) : x));
}

// ------------------------------------------------------------------ ResNet50 --

template <class M>
std::shared_ptr<M> ResNet50::add(const std::string& name, std::shared_ptr<M> m) {
  order_.push_back(m);
  return register_module(name, std::move(m));
}

ResNet50::ResNet50(const ResNet50Options& opts)
    : opts_(opts), dropout_gen_(std::make_unique<Generator>(opts.seed ^ 0x9E3779B97F4A7C15ull)) {
  LRT_CHECK(opts.classes > 0, "ResNet50: the number of classes must be positive, got ", opts.classes);
  LRT_CHECK(opts.compute_dtype == DType::Float32 || opts.compute_dtype == DType::BFloat16,
            "ResNet50: compute dtype ", opts.compute_dtype, " is not supported (float32 or bfloat16)");
  Generator init(opts.seed);
  Generator* gen = &init;
  if (opts.stem == ResNetStem::Cifar) {
    add("conv1", make_conv(3, 64, 3, 1, 1, gen));
  } else {
    add("conv1", make_conv(3, 64, 7, 2, 3, gen));
  }
  stem_bn_ = add("bn1", std::make_shared<BatchNorm2d>(64));
  stem_relu_ = add("relu", std::make_shared<ReLU>());
  if (opts.stem == ResNetStem::ImageNet) maxpool_ = add("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));

  int64_t in = 64;
  const int blocks[] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = int64_t(64) << stage;
    auto layer = std::make_shared<Sequential>();
    for (int b = 0; b < blocks[stage]; ++b) {
      layer->push_back(
          std::make_shared<Bottleneck>(in, width, (stage > 0 && b == 0) ? 2 : 1, gen, opts.fuse_bn_act));
      in = width * Bottleneck::kExpansion;
    }
    add("layer" + std::to_string(stage + 1), layer);
  }
  avgpool_ = add("avgpool", std::make_shared<GlobalAvgPool>());

  if (opts.head == ResNetHead::Linear) {
    add("fc", std::make_shared<Linear>(in, opts.classes, true, gen));
  } else {
    add("fc_start", std::make_shared<Linear>(in, 256, true, gen));
    add("relu_start", std::make_shared<ReLU>());
    add("dropout_start", std::make_shared<Dropout>(opts.dropout, dropout_gen_.get()));
    add("fc_mid", std::make_shared<Linear>(256, 128, true, gen));
    add("relu_mid", std::make_shared<ReLU>());
    add("fc_bn", std::make_shared<BatchNorm1d>(128));
    add("dropout_mid", std::make_shared<Dropout>(opts.dropout, dropout_gen_.get()));
    add("fc", std::make_shared<Linear>(128, opts.classes, true, gen));
  }
  // Every convolution, for cast_weights_together.
  std::vector<const Module*> stack{this};
  while (!stack.empty()) {
    const Module* m = stack.back();
    stack.pop_back();
    for (auto it = m->children().rbegin(); it != m->children().rend(); ++it) {
      if (auto* conv = dynamic_cast<Conv2d*>(it->second.get())) convs_.push_back(conv);
      stack.push_back(it->second.get());
    }
  }
}

Tensor ResNet50::forward(const Tensor& x) {
  LRT_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3, "ResNet50: expects images (N, 3, H, W), got shape ",
            x.defined() ? to_string(x.shape()) : std::string("undefined"));
  // Mixed precision: bfloat16 from the input to the features; the input's
  // own dtype (float32, or float64 for gradient checks) otherwise.
  const bool bf16 = opts_.compute_dtype == DType::BFloat16;
  Tensor h = bf16 ? x.to(DType::BFloat16) : x;
  // channels_last: the input is laid out NHWC once; a layer whose output
  // left that layout (max pooling) is followed by a copy back into it.
  const auto layout = [this](const Tensor& t) {
    return opts_.channels_last && t.dim() == 4 ? t.contiguous(MemoryFormat::ChannelsLast) : t;
  };
  h = layout(h);
  // Every weight's bfloat16 copy in one pass; each convolution takes its own
  // (and any left unused are dropped when forward ends, even on a throw).
  struct DropUnused {
    const std::vector<Conv2d*>& convs;
    ~DropUnused() {
      for (Conv2d* c : convs) c->set_compute_weight(Tensor());
    }
  } drop_unused{convs_};
  if (bf16 && opts_.cast_weights_together && x.device().is_cuda()) {
    const MemoryFormat f = opts_.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
    std::vector<Tensor> weights;
    for (Conv2d* c : convs_) weights.push_back(c->weight());
    const std::vector<Tensor> cast = to_each(weights, DType::BFloat16, std::vector<MemoryFormat>(weights.size(), f));
    for (size_t i = 0; i < convs_.size(); ++i) convs_[i]->set_compute_weight(cast[i]);
  }
  const bool fuse = opts_.fuse_bn_act;
  for (const auto& m : order_) {
    if (fuse && m == stem_relu_) continue;  // ran inside the stem BN's pass
    if (bf16 && m == avgpool_) h = h.to(DType::Float32);
    if (bf16 && m == maxpool_)
      h = m->forward(h.to(DType::Float32)).to(DType::BFloat16);
    else
      h = fuse && m == stem_bn_ ? stem_bn_->forward_act(h, Tensor(), true) : m->forward(h);
    h = layout(h);
  }
  return h;
}

}  // namespace lrt

// CPU-vs-CUDA parity of the bfloat16 mixed-precision path (lrt_cuda_tests;
// runs only where a CUDA device answers): elementwise ops, conv2d through
// cuDNN's bfloat16 tensor-core algorithms, batch_norm_act's bfloat16 kernels,
// and ResNet50 with compute_dtype bfloat16 through a fused Adam step.
//
// The CPU computes bfloat16 ops as the float32 op on widened values, rounded
// once (kernels/cpu/widen.h). Tolerances:
// - elementwise add/sub/mul/div/max/relu: both devices round the same
//   IEEE float result, so the bits agree;
// - batch norm given the same per-channel values: every per-element
//   operation is rounded alone on both devices, so y (and gx in eval mode)
//   agree to the bit; the statistics are float32 results of double sums
//   (1e-6); the training-mode gx follows from the sums' coefficients, rounded
//   to bfloat16: 2^-7 norm-wise;
// - convolutions: float accumulation in different orders, each result
//   rounded to bfloat16: 2^-7 norm-wise (one rounding is at most 2^-9);
// - ResNet50: compared in eval mode (training mode at initialisation
//   amplifies any rounding difference, see tests/layers/test_mixed_precision.cpp),
//   logits within 5%.
#include <doctest/doctest.h>

#include <bit>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"
#include "layers/functional.h"
#include "layers/resnet50.h"
#include "lrt_config.h"
#include "optim/optimizer.h"
#include "testing.h"

namespace lrt {

using testing::check_cuda_close;
using testing::host;

namespace {

const Device kCuda("cuda");
constexpr double kBf16Norm = 1.0 / 128;  // 2^-7, norm-wise

Tensor bf16_normal(const Shape& shape, uint64_t seed) {
  return testing::normal(shape, DType::Float32, seed).to(DType::BFloat16);
}

Tensor poisoned(const Shape& shape, DType dt) {
  return full(shape, testing::kNaN, TensorOptions(dt).with_device(kCuda));
}

std::vector<uint16_t> bits_of(const Tensor& t) {
  REQUIRE(t.dtype() == DType::BFloat16);
  const Tensor c = t.to(kCPU).contiguous();
  std::vector<uint16_t> out(static_cast<size_t>(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) out[static_cast<size_t>(i)] = c.data<BFloat16>()[i].bits;
  return out;
}

}  // namespace

TEST_CASE("CUDA: float32 to bfloat16 gives the CPU's bits for every exponent, tie, subnormal, infinity and NaN") {
  // Every upper half (sign, exponent, the 7 kept mantissa bits) with lower
  // halves below, at and above the tie, and the extremes: round to nearest
  // even, carries into the exponent and to infinity, subnormals, signed
  // zeros, and NaNs of both signs (0x7fc0 on both devices).
  const uint32_t lows[] = {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu};
  std::vector<float> v;
  for (uint32_t hi = 0; hi < 0x10000u; ++hi)
    for (uint32_t lo : lows) v.push_back(std::bit_cast<float>(hi << 16 | lo));
  const Tensor x = from_vector<float>(v, {static_cast<int64_t>(v.size())}, DType::Float32);
  const Tensor want = x.to(DType::BFloat16), got = x.to(kCuda).to(DType::BFloat16);
  const std::vector<uint16_t> w = bits_of(want), g = bits_of(got);
  REQUIRE(w.size() == g.size());
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] != g[i] && differ++ == 0) first = i;
  CAPTURE(first);
  CHECK(differ == 0);
  if (differ) MESSAGE("first difference: float bits ", std::bit_cast<uint32_t>(v[first]), " gave ", g[first],
                      " on CUDA, ", w[first], " on the CPU");
  CHECK(w[static_cast<size_t>(0x7fc0u) * 6 + 1] == 0x7fc0u);  // the set holds NaNs (float bits 0x7fc00001)
}

TEST_CASE("CUDA: bfloat16 elementwise ops give the CPU's bits, packed and strided") {
  for (int64_t n : {int64_t(8) * 4099, int64_t(4099)}) {  // 16-byte packs / a tail
    CAPTURE(n);
    const Tensor a = bf16_normal({n}, 1), b = bf16_normal({n}, 2);
    const Tensor ad = a.to(kCuda), bd = b.to(kCuda);
    CHECK(bits_of(ad + bd) == bits_of(a + b));
    CHECK(bits_of(ad - bd) == bits_of(a - b));
    CHECK(bits_of(ad * bd) == bits_of(a * b));
    CHECK(bits_of(ad / bd) == bits_of(a / b));
    CHECK(bits_of(maximum(ad, bd)) == bits_of(maximum(a, b)));
    CHECK(bits_of(relu(ad)) == bits_of(relu(a)));
    CHECK(bits_of(ad * 0.3) == bits_of(a * 0.3));
  }
  const Tensor m = bf16_normal({37, 19}, 3), t = bf16_normal({19, 37}, 4);
  CHECK(bits_of(m.to(kCuda) + t.to(kCuda).transpose(0, 1)) == bits_of(m + t.transpose(0, 1)));
}

TEST_CASE("CUDA: bfloat16 conv2d kernels agree with the CPU, heuristic and searched algorithms") {
  struct Case {
    const char* name;
    Shape x, w;
    int64_t stride, pad;
  };
  const Case cases[] = {
      {"CIFAR stem 3x3, 3 -> 64 on 32x32", {8, 3, 32, 32}, {64, 3, 3, 3}, 1, 1},
      {"3x3 64 -> 64 on 32x32", {8, 64, 32, 32}, {64, 64, 3, 3}, 1, 1},
      {"3x3 stride 2, 128 on 16x16", {4, 128, 16, 16}, {128, 128, 3, 3}, 2, 1},
      {"1x1 256 -> 64 on 8x8", {4, 256, 8, 8}, {64, 256, 1, 1}, 1, 0},
      {"1x1 stride 2, 512 -> 1024 on 8x8", {2, 512, 8, 8}, {1024, 512, 1, 1}, 2, 0},
      {"odd channels 5 -> 7 on 9x9", {3, 5, 9, 9}, {7, 5, 3, 3}, 1, 1},
  };
  for (bool benchmark : {false, true}) {
    for (const Case& c : cases) {
      CAPTURE(benchmark);
      CAPTURE(c.name);
      kernels::ConvParams p;
      p.stride = c.stride;
      p.padding = c.pad;
      p.benchmark = benchmark;
      const Shape ys = kernels::conv2d_output_shape(c.x, c.w, p);
      const Tensor x = bf16_normal(c.x, 10), w = bf16_normal(c.w, 11), gy = bf16_normal(ys, 12);
      const Tensor xd = x.to(kCuda), wd = w.to(kCuda), gyd = gy.to(kCuda);

      Tensor want = empty(ys, TensorOptions(DType::BFloat16)), got = poisoned(ys, DType::BFloat16);
      kernels::conv2d_forward(x, w, Tensor(), want, p);
      kernels::conv2d_forward(xd, wd, Tensor(), got, p);
      check_cuda_close(got, want, kBf16Norm, "forward");

      Tensor gx_want = empty(c.x, TensorOptions(DType::BFloat16)), gx_got = poisoned(c.x, DType::BFloat16);
      kernels::conv2d_backward_data(gy, w, gx_want, p);
      kernels::conv2d_backward_data(gyd, wd, gx_got, p);
      check_cuda_close(gx_got, gx_want, kBf16Norm, "backward data");

      Tensor gw_want = empty(c.w, TensorOptions(DType::BFloat16)), gw_got = poisoned(c.w, DType::BFloat16);
      kernels::conv2d_backward_filter(x, gy, gw_want, p);
      kernels::conv2d_backward_filter(xd, gyd, gw_got, p);
      check_cuda_close(gw_got, gw_want, kBf16Norm, "backward filter");
    }
  }
}

#if LRT_HAVE_CUDA
TEST_CASE("CUDA: bfloat16 batch-norm kernels give the CPU's bits given its statistics; sums agree") {
  struct Case {
    const char* name;
    Shape x;
    bool misaligned;
  };
  const Case cases[] = {
      {"(64, 64, 32, 32): many blocks a channel", {64, 64, 32, 32}, false},
      {"(8, 2048, 4, 4): packs of 8 over HW 16", {8, 2048, 4, 4}, false},
      {"(4, 6, 5, 5): HW 25, one value at a time", {4, 6, 5, 5}, false},
      {"(4, 8, 4, 4) misaligned", {4, 8, 4, 4}, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const int64_t ch = c.x[1];
    // A misaligned view: one element into a larger buffer.
    auto place = [&](const Tensor& t, Device dev) {
      if (!c.misaligned) return t.to(dev);
      Tensor big = empty({t.numel() + 1}, TensorOptions(t.dtype()).with_device(dev));
      Tensor v = big.slice(0, 1, t.numel() + 1).reshape(t.shape());
      v.copy_(t.to(dev));
      return v;
    };
    const Tensor x = bf16_normal(c.x, 20) * 3.0 + 1.0, r = bf16_normal(c.x, 21), gy = bf16_normal(c.x, 22);
    const TensorOptions f32;
    const Tensor w = testing::normal({ch}, DType::Float32, 23), b = testing::normal({ch}, DType::Float32, 24);

    // Statistics.
    Tensor mean = empty({ch}, f32), invstd = empty({ch}, f32), rm = zeros({ch}), rv = ones({ch});
    kernels::cpu::batch_norm_stats(x, mean, invstd, 1e-5, rm, rv, 0.1);
    Tensor mean_d = poisoned({ch}, DType::Float32), invstd_d = poisoned({ch}, DType::Float32);
    Tensor rm_d = zeros({ch}, f32.with_device(kCuda)), rv_d = ones({ch}, f32.with_device(kCuda));
    kernels::cuda::batch_norm_stats(place(x, kCuda), mean_d, invstd_d, 1e-5, rm_d, rv_d, 0.1);
    check_cuda_close(mean_d, mean, 1e-6, "mean");
    check_cuda_close(invstd_d, invstd, 1e-6, "invstd");
    check_cuda_close(rm_d, rm, 1e-6, "running_mean");
    check_cuda_close(rv_d, rv, 1e-6, "running_var");

    // Forward given the CPU's statistics: every ending, the same bits.
    const Tensor mean_c = mean.to(kCuda), invstd_c = invstd.to(kCuda), w_c = w.to(kCuda), b_c = b.to(kCuda);
    for (bool relu : {false, true}) {
      for (bool with_r : {false, true}) {
        CAPTURE(relu);
        CAPTURE(with_r);
        Tensor want = empty(c.x, TensorOptions(DType::BFloat16));
        kernels::cpu::batch_norm_apply(x, mean, invstd, w, b, with_r ? r : Tensor(), relu, want);
        Tensor got = place(full(c.x, testing::kNaN, TensorOptions(DType::BFloat16)), kCuda);
        kernels::cuda::batch_norm_apply(place(x, kCuda), mean_c, invstd_c, w_c, b_c,
                                        with_r ? place(r, kCuda) : Tensor(), relu, got);
        CHECK(bits_of(got) == bits_of(want));

        // Backward through that ending.
        const Tensor relu_out = relu ? want : Tensor();
        for (bool training : {true, false}) {
          CAPTURE(training);
          Tensor gx = empty(c.x, TensorOptions(DType::BFloat16)), gr = empty(c.x, TensorOptions(DType::BFloat16));
          Tensor gw = empty({ch}, f32), gb = empty({ch}, f32);
          kernels::cpu::batch_norm_backward(gy, relu_out, x, mean, invstd, w, training, gx, gw, gb, gr);
          Tensor gx_d = place(full(c.x, testing::kNaN, TensorOptions(DType::BFloat16)), kCuda);
          Tensor gr_d = place(full(c.x, testing::kNaN, TensorOptions(DType::BFloat16)), kCuda);
          Tensor gw_d = poisoned({ch}, DType::Float32), gb_d = poisoned({ch}, DType::Float32);
          kernels::cuda::batch_norm_backward(place(gy, kCuda), relu ? place(relu_out, kCuda) : Tensor(),
                                             place(x, kCuda), mean_c, invstd_c, w_c, training, gx_d, gw_d, gb_d,
                                             gr_d);
          CHECK(bits_of(gr_d) == bits_of(gr));
          if (training)
            check_cuda_close(gx_d, gx, kBf16Norm, "gx");
          else
            CHECK(bits_of(gx_d) == bits_of(gx));
          check_cuda_close(gw_d, gw, 1e-5, "gweight");
          check_cuda_close(gb_d, gb, 1e-5, "gbias");
          if (relu && !with_r) {
            // The ReLU's mask recomputed from x (no relu_out, no gresidual):
            // the bits of reading the stored bfloat16 output.
            Tensor gx_x = place(full(c.x, testing::kNaN, TensorOptions(DType::BFloat16)), kCuda);
            Tensor gw_x = poisoned({ch}, DType::Float32), gb_x = poisoned({ch}, DType::Float32);
            kernels::cuda::batch_norm_backward(place(gy, kCuda), Tensor(), place(x, kCuda), mean_c, invstd_c, w_c,
                                               training, gx_x, gw_x, gb_x, Tensor(), true, b_c);
            CHECK(bits_of(gx_x) == bits_of(gx_d));
            CHECK(testing::host(gw_x) == testing::host(gw_d));
            CHECK(testing::host(gb_x) == testing::host(gb_d));
          }
        }
      }
    }
  }
}

#endif  // LRT_HAVE_CUDA

TEST_CASE("CUDA: a bfloat16 ResNet50 matches the CPU's in eval mode and trains with float32 masters") {
  ResNet50Options o;
  o.seed = 5;
  o.compute_dtype = DType::BFloat16;
  ResNet50 cpu_model(o), cuda_model(o);
  cuda_model.to(kCuda);
  const Tensor x = testing::normal({4, 3, 16, 16}, DType::Float32, 6);
  const Tensor labels = from_vector<int64_t>({0, 2, 4, 6}, {4});
  cpu_model.eval();
  cuda_model.eval();
  const Tensor l_cpu = cpu_model.forward(x), l_cuda = cuda_model.forward(x.to(kCuda));
  CHECK(l_cuda.dtype() == DType::Float32);
  check_cuda_close(l_cuda, l_cpu, 0.05, "eval logits");

  // A training step on CUDA: float32 gradients, the fused Adam updates the
  // float32 parameters, and they stay float32.
  cuda_model.train();
  optim::Optimizer opt({{cuda_model.named_parameters(), 1.0}}, optim::OptimizerConfig{});
  const auto before = cuda_model.named_parameters();
  std::vector<Tensor> copies;
  for (const auto& p : before) copies.push_back(p.tensor.detach().clone());
  cuda_model.zero_grad();
  Tensor loss = cross_entropy(cuda_model.forward(x.to(kCuda)), labels.to(kCuda));
  CHECK(std::isfinite(loss.item()));
  loss.backward();
  opt.step(1e-3);
  const auto after = cuda_model.named_parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    CAPTURE(after[i].name);
    CHECK(after[i].tensor.dtype() == DType::Float32);
    CHECK(after[i].tensor.grad().dtype() == DType::Float32);
    CHECK(rel_error(after[i].tensor.to(kCPU), copies[i].to(kCPU)) > 0.0);  // every parameter moved
  }
}

}  // namespace lrt

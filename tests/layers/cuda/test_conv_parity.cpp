// CPU-vs-CUDA parity of conv2d (lrt_cuda_tests; runs only where a CUDA
// device answers, see cuda_test_main.cpp): cuDNN's forward, backward data,
// backward filter and the bias gradient against the im2col + GEMM CPU
// reference, through the kernels (outputs poisoned with NaN first, so an
// element cuDNN leaves unwritten shows) and through conv2d's autograd. Shapes:
// the CPU suite's edge cases (stride 2, padding 1 and 3, 1x1 / 3x3 / 7x7 /
// 3x2 kernels, dilation 2, batch 1, odd sizes, C != K) plus a ResNet stage
// (N=8, 64 -> 64, 3x3 on 32x32); algorithms by cuDNN's heuristics and, once
// more, by its timed search (set_conv_benchmark(true)).
//
// Tolerances (||cuda - cpu|| / ||cpu||). float32: both sides sum in float32
// in different orders (up to C R S = 576 products per output, N P Q = 8192
// per weight gradient), and cuDNN may pick Winograd or FFT algorithms whose
// transforms add rounding of their own; norm-wise that stays within about
// 1e-5, checked at 5e-5. TF32 tensor-core math (10-bit mantissa) would give
// ~5e-4 and fail: kernels/cuda/conv.cu keeps float32 in FMA math unless TF32
// is allowed (set_conv_allow_tf32), which is checked at 3e-3. float64
// sums of those lengths agree to ~1e-15, checked at 1e-12. The bias gradient
// runs the same reduce kernels on both devices, summing in double: 1e-6 for
// float32 covers one float rounding of the partial sums.
#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/conv.h"
#include "layers/conv_waiting.h"
#include "layers/functional.h"
#include "testing.h"

namespace lrt {

using testing::check_cuda_close;
using testing::host;

namespace {

const Device kCuda("cuda");

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, k, r, s, stride, padding, dilation;
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {k, c, r, s}; }
  kernels::ConvParams params(bool benchmark, bool tf32 = false) const {
    return {stride, padding, dilation, benchmark, tf32};
  }
  Conv2dOptions opts() const { return {stride, padding, dilation}; }
};

const ConvCase kCases[] = {
    {"3x3 pad 1", 2, 3, 6, 6, 4, 3, 3, 1, 1, 1},
    {"3x3 stride 2 pad 1, odd size", 2, 3, 7, 5, 5, 3, 3, 2, 1, 1},
    {"1x1 pointwise, batch 1, 7x5", 1, 4, 7, 5, 6, 1, 1, 1, 0, 1},
    {"1x1 stride 2", 3, 4, 7, 5, 2, 1, 1, 2, 0, 1},
    {"7x7 stride 2 pad 3", 2, 3, 33, 31, 8, 7, 7, 2, 3, 1},
    {"3x3 dilation 2 pad 2", 2, 2, 7, 6, 3, 3, 3, 1, 2, 2},
    {"3x3 pad 3, batch 1", 1, 2, 5, 4, 3, 3, 3, 1, 3, 1},
    {"3x2 kernel, no padding", 2, 3, 7, 5, 4, 3, 2, 1, 0, 1},
    {"3x3 on 20x20, batch 5", 5, 2, 20, 20, 3, 3, 3, 1, 1, 1},
    {"ResNet bottleneck 1x1 256 -> 64 on 8x8", 4, 256, 8, 8, 64, 1, 1, 1, 0, 1},
    {"ResNet stage 3x3 64 -> 64 on 32x32", 8, 64, 32, 32, 64, 3, 3, 1, 1, 1},
};

double tolerance(DType dt, bool tf32 = false) { return dt == DType::Float32 ? (tf32 ? 3e-3 : 5e-5) : 1e-12; }
double bias_tolerance(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-12; }

Tensor poisoned_cuda(const Shape& shape, DType dt) {
  return full(shape, testing::kNaN, TensorOptions(dt).with_device(kCuda));
}

// The kernels of kernels/conv.h on both devices, each CUDA output poisoned.
void check_kernels(const ConvCase& cc, DType dt, bool benchmark, uint64_t seed, bool tf32 = false) {
  const kernels::ConvParams p = cc.params(benchmark, tf32);
  const Shape y_shape = kernels::conv2d_output_shape(cc.x_shape(), cc.w_shape(), p);
  Tensor x = testing::normal(cc.x_shape(), dt, seed), w = testing::normal(cc.w_shape(), dt, seed + 1);
  Tensor b = testing::normal({cc.k}, dt, seed + 2), gy = testing::normal(y_shape, dt, seed + 3);
  Tensor xd = x.to(kCuda), wd = w.to(kCuda), bd = b.to(kCuda), gyd = gy.to(kCuda);

  for (bool with_bias : {false, true}) {
    CAPTURE(with_bias);
    Tensor want = empty(y_shape, dt), got = poisoned_cuda(y_shape, dt);
    kernels::conv2d_forward(x, w, with_bias ? b : Tensor(), want, p);
    kernels::conv2d_forward(xd, wd, with_bias ? bd : Tensor(), got, p);
    check_cuda_close(got, want, tolerance(dt, tf32), "forward");
  }
  Tensor gx_want = empty(cc.x_shape(), dt), gx_got = poisoned_cuda(cc.x_shape(), dt);
  kernels::conv2d_backward_data(gy, w, gx_want, p);
  kernels::conv2d_backward_data(gyd, wd, gx_got, p);
  check_cuda_close(gx_got, gx_want, tolerance(dt, tf32), "backward data");

  Tensor gw_want = empty(cc.w_shape(), dt), gw_got = poisoned_cuda(cc.w_shape(), dt);
  kernels::conv2d_backward_filter(x, gy, gw_want, p);
  kernels::conv2d_backward_filter(xd, gyd, gw_got, p);
  check_cuda_close(gw_got, gw_want, tolerance(dt, tf32), "backward filter");

  Tensor gb_want = empty({cc.k}, dt), gb_got = poisoned_cuda({cc.k}, dt);
  kernels::conv2d_backward_bias(gy, gb_want);
  kernels::conv2d_backward_bias(gyd, gb_got);
  check_cuda_close(gb_got, gb_want, bias_tolerance(dt), "backward bias");
}

// conv2d with autograd on both devices: the output and all three gradients
// of sum(conv2d(x, w, b) * proj).
void check_autograd(const ConvCase& cc, DType dt, uint64_t seed) {
  const Shape y_shape = kernels::conv2d_output_shape(cc.x_shape(), cc.w_shape(), cc.params(false));
  Tensor x = testing::normal(cc.x_shape(), dt, seed), w = testing::normal(cc.w_shape(), dt, seed + 1);
  Tensor b = testing::normal({cc.k}, dt, seed + 2), proj = testing::normal(y_shape, dt, seed + 3);
  auto run = [&](Device device) {
    std::vector<Tensor> leaves{x.to(device).detach(), w.to(device).detach(), b.to(device).detach()};
    for (Tensor& t : leaves) t.set_requires_grad(true);
    Tensor y = conv2d(leaves[0], leaves[1], leaves[2], cc.opts());
    sum(y * proj.to(device)).backward();
    return std::vector<Tensor>{y.detach(), leaves[0].grad(), leaves[1].grad(), leaves[2].grad()};
  };
  const std::vector<Tensor> want = run(kCPU), got = run(kCuda);
  check_cuda_close(got[0], want[0], tolerance(dt), "conv2d");
  check_cuda_close(got[1], want[1], tolerance(dt), "x.grad");
  check_cuda_close(got[2], want[2], tolerance(dt), "weight.grad");
  check_cuda_close(got[3], want[3], bias_tolerance(dt), "bias.grad");
}

}  // namespace

TEST_CASE("CUDA: conv2d kernels agree with the CPU with cuDNN's heuristic algorithms") {
  uint64_t seed = 5000;
  for (DType dt : testing::kFloatTypes)
    for (const ConvCase& cc : kCases) {
      CAPTURE(dt);
      CAPTURE(cc.name);
      check_kernels(cc, dt, false, seed += 10);
    }
}

TEST_CASE("CUDA: conv2d kernels agree with the CPU with algorithms from cuDNN's timed search") {
  const testing::ConvSwitches restore;
  set_conv_benchmark(true);
  uint64_t seed = 6000;
  for (DType dt : testing::kFloatTypes)
    for (const ConvCase& cc : kCases) {
      CAPTURE(dt);
      CAPTURE(cc.name);
      check_kernels(cc, dt, true, seed += 10);
      // Through the layer too, which reads the switch.
      check_autograd(cc, dt, seed + 5);
    }
}

TEST_CASE("CUDA: with TF32 allowed, float32 conv2d stays within TF32's error of the CPU, float64 exact as before") {
  const testing::ConvSwitches restore;
  const bool before = conv_allow_tf32();
  uint64_t seed = 6500;
  for (bool benchmark : {false, true})
    for (DType dt : testing::kFloatTypes)
      for (const ConvCase& cc : kCases) {
        CAPTURE(benchmark);
        CAPTURE(dt);
        CAPTURE(cc.name);
        check_kernels(cc, dt, benchmark, seed += 10, true);
      }
  // The layer reads the switch; it is off again afterwards.
  set_conv_allow_tf32(true);
  CHECK(conv_allow_tf32());
  const ConvCase& stage = kCases[std::size(kCases) - 1];
  const Tensor x = testing::normal(stage.x_shape(), DType::Float32, 6600);
  const Tensor w = testing::normal(stage.w_shape(), DType::Float32, 6601);
  const Tensor want = conv2d(x, w, Tensor(), stage.opts());
  check_cuda_close(conv2d(x.to(kCuda), w.to(kCuda), Tensor(), stage.opts()), want, 3e-3, "conv2d with TF32");
  set_conv_allow_tf32(before);
  CHECK(conv_allow_tf32() == before);
}

TEST_CASE("CUDA: conv2d and its gradients agree with the CPU") {
  uint64_t seed = 7000;
  for (DType dt : testing::kFloatTypes)
    for (const ConvCase& cc : kCases) {
      CAPTURE(dt);
      CAPTURE(cc.name);
      check_autograd(cc, dt, seed += 10);
    }
}

TEST_CASE("CUDA: conv2d adds its input's gradient into the one waiting (cuDNN beta 1), also through a timed search") {
  // The search writes a scratch buffer, not the waiting gradient; the shapes
  // are this test's own, so each (dtype, layout, search) searches afresh here.
  const testing::ConvSwitches restore;
  uint64_t seed = 8500;
  for (bool benchmark : {false, true})
    for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
      for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
        if (f == MemoryFormat::ChannelsLast && dt == DType::Float64) continue;  // float64 runs NCHW
        CAPTURE(benchmark);
        CAPTURE(dt);
        CAPTURE(to_string(f));
        set_conv_benchmark(benchmark);
        auto normal = [&](const Shape& s) { return testing::normal(s, DType::Float64, ++seed).to(dt); };
        const Tensor x0 = normal({3, 5, 9, 9}), w0 = normal({6, 5, 3, 3}), proj = normal({3, 6, 9, 9});
        const Tensor other = normal({3, 5, 9, 9});
        auto on_cuda = [&](const Tensor& t) { return t.to(kCuda).contiguous(f).detach(); };
        const auto got = testing::conv_grad_into_waiting(on_cuda(x0), on_cuda(w0), on_cuda(proj), on_cuda(other),
                                                         {1, 1, 1});
        const auto want = testing::conv_grad_into_waiting(x0, w0, proj, other, {1, 1, 1});
        CHECK(got.added_into);
        CHECK(memory_format_of(got.x_grad) == f);
        // bfloat16: cuDNN rounds the sum once, the CPU the part and the sum.
        check_cuda_close(got.x_grad, want.x_grad, dt == DType::BFloat16 ? 1.0 / 64 : tolerance(dt), "x.grad");
      }
}

TEST_CASE("CUDA: a frozen weight gets no gradient on CUDA either") {
  const ConvCase& cc = kCases[1];
  Tensor x = testing::normal(cc.x_shape(), DType::Float32, 8001).to(kCuda).detach();
  x.set_requires_grad(true);
  Tensor w = testing::normal(cc.w_shape(), DType::Float32, 8002).to(kCuda);
  sum(conv2d(x, w, Tensor(), cc.opts())).backward();
  CHECK_FALSE(w.grad().defined());
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device().is_cuda());
}

TEST_CASE("CUDA: conv2d rejects inputs on different devices, naming conv2d, the shapes and the devices") {
  Tensor x = testing::normal({2, 3, 8, 8}, DType::Float32, 8101);
  Tensor w = testing::normal({4, 3, 3, 3}, DType::Float32, 8102);
  testing::check_mentions(testing::error_of([&] { conv2d(x, w.to(kCuda), Tensor()); }),
                          {"conv2d", "(2, 3, 8, 8)", "(4, 3, 3, 3)", "cpu", "cuda"});
  testing::check_mentions(testing::error_of([&] { conv2d(x.to(kCuda), w.to(kCuda), zeros({4}, DType::Float32)); }),
                          {"conv2d", "bias", "(4,)", "cpu", "cuda"});
}

}  // namespace lrt

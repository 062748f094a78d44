// Tests of conv2d (layers/conv.cpp over kernels/cpu/conv.cpp): the forward
// against a direct float64 convolution written here, gradients by central
// differences in float64, the float32 backward against the float64 one, the
// frozen-weight and frozen-input cases, and the argument checks. The shapes
// cover stride 2, padding 1 and 3, 1x1 / 3x3 / 7x7 / 3x2 kernels, dilation 2,
// batch 1, odd spatial sizes, C != K, and batches the CPU kernel splits into
// several chunks (one image or several per GEMM, with a shorter last chunk).
// Errors are measured as ||out - ref|| / ||ref||.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/conv.h"
#include "layers/conv_waiting.h"
#include "layers/functional.h"
#include "testing.h"

namespace lrt {

using testing::host;

namespace {

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, k, r, s, stride, padding, dilation;
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {k, c, r, s}; }
  Conv2dOptions opts() const { return {stride, padding, dilation}; }
};

// Small enough for central differences over every input element.
const ConvCase kCases[] = {
    {"3x3 pad 1", 2, 3, 6, 6, 4, 3, 3, 1, 1, 1},
    {"3x3 stride 2 pad 1, odd size", 2, 3, 7, 5, 5, 3, 3, 2, 1, 1},
    {"1x1 pointwise, batch 1, 7x5", 1, 4, 7, 5, 6, 1, 1, 1, 0, 1},
    {"1x1 pointwise, batch 3", 3, 4, 5, 3, 2, 1, 1, 1, 0, 1},
    {"1x1 stride 2", 3, 4, 7, 5, 2, 1, 1, 2, 0, 1},
    {"7x7 stride 2 pad 3", 2, 2, 9, 7, 3, 7, 7, 2, 3, 1},
    {"3x3 dilation 2 pad 2", 2, 2, 7, 6, 3, 3, 3, 1, 2, 2},
    {"3x3 pad 3, batch 1", 1, 2, 5, 4, 3, 3, 3, 1, 3, 1},
    {"3x2 kernel, no padding", 2, 3, 7, 5, 4, 3, 2, 1, 0, 1},
    {"window covers the image", 2, 2, 4, 4, 1, 4, 4, 1, 0, 1},
    {"3x3 stride 3 dilation 2 pad 1", 2, 2, 8, 9, 2, 3, 3, 3, 1, 2},
};

// Larger images, for the forward and float32-vs-float64 backward checks:
// P Q >= 1024 gives one image per GEMM, 20x20 and 19x19 two per GEMM and a shorter
// last chunk.
const ConvCase kLargeCases[] = {
    {"3x3 pad 1 on 32x33 (one image per GEMM)", 2, 2, 32, 33, 3, 3, 3, 1, 1, 1},
    {"1x1 pointwise on 32x32 (one image per GEMM)", 2, 3, 32, 32, 4, 1, 1, 1, 0, 1},
    {"3x3 on 20x20, batch 5 (chunks 2, 2, 1)", 5, 2, 20, 20, 3, 3, 3, 1, 1, 1},
    {"1x1 pointwise on 19x19, batch 3 (chunks 2, 1)", 3, 2, 19, 19, 4, 1, 1, 1, 0, 1},
    {"3x3 on 8x8, C=16 K=24, batch 9", 9, 16, 8, 8, 24, 3, 3, 1, 1, 1},
};

// The definition: y[n, k, p, q] = b[k] + sum_{c, r, s} x[n, c, p st - pad +
// r dil, q st - pad + s dil] w[k, c, r, s], out-of-range taps reading zero.
std::vector<double> naive_conv2d(const ConvCase& cc, const std::vector<double>& x, const std::vector<double>& w,
                                 const std::vector<double>& b) {
  const int64_t p_out = (cc.h + 2 * cc.padding - cc.dilation * (cc.r - 1) - 1) / cc.stride + 1;
  const int64_t q_out = (cc.w + 2 * cc.padding - cc.dilation * (cc.s - 1) - 1) / cc.stride + 1;
  std::vector<double> y(static_cast<size_t>(cc.n * cc.k * p_out * q_out));
  for (int64_t n = 0; n < cc.n; ++n)
    for (int64_t k = 0; k < cc.k; ++k)
      for (int64_t p = 0; p < p_out; ++p)
        for (int64_t q = 0; q < q_out; ++q) {
          double acc = b.empty() ? 0.0 : b[k];
          for (int64_t c = 0; c < cc.c; ++c)
            for (int64_t r = 0; r < cc.r; ++r)
              for (int64_t s = 0; s < cc.s; ++s) {
                const int64_t hi = p * cc.stride - cc.padding + r * cc.dilation;
                const int64_t wi = q * cc.stride - cc.padding + s * cc.dilation;
                if (hi < 0 || hi >= cc.h || wi < 0 || wi >= cc.w) continue;
                acc += x[((n * cc.c + c) * cc.h + hi) * cc.w + wi] * w[((k * cc.c + c) * cc.r + r) * cc.s + s];
              }
          y[((n * cc.k + k) * p_out + p) * q_out + q] = acc;
        }
  return y;
}

double rel_err(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

// float32 sums of up to C R S = 147 products (forward) or N P Q = 2000
// (filter gradient) products, rounded at each step: norm-wise errors stay
// within a few eps * sqrt(terms).
double tolerance(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }

void check_forward(const ConvCase& cc, DType dt, bool with_bias, uint64_t seed) {
  CAPTURE(cc.name);
  CAPTURE(dt);
  CAPTURE(with_bias);
  Tensor x = testing::normal(cc.x_shape(), dt, seed);
  Tensor w = testing::normal(cc.w_shape(), dt, seed + 1);
  Tensor b = with_bias ? testing::normal({cc.k}, dt, seed + 2) : Tensor();
  Tensor y = conv2d(x, w, b, cc.opts());
  const std::vector<double> want = naive_conv2d(cc, host(x), host(w), with_bias ? host(b) : std::vector<double>{});
  REQUIRE(y.dim() == 4);
  CHECK(y.size(0) == cc.n);
  CHECK(y.size(1) == cc.k);
  CHECK(y.dtype() == dt);
  CHECK(rel_err(host(y), want) < tolerance(dt));
}

// The three gradients of sum(conv2d(x, w, b) * proj) for float64 leaves
// holding the values of x, w, b converted to dt.
struct Grads3 {
  Tensor gx, gw, gb;
};
Grads3 conv_grads(const ConvCase& cc, DType dt, const Tensor& x64, const Tensor& w64, const Tensor& b64,
                  const Tensor& proj64) {
  Tensor x = x64.to(dt).detach(), w = w64.to(dt).detach(), b = b64.to(dt).detach();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  sum(conv2d(x, w, b, cc.opts()) * proj64.to(dt)).backward();
  return {x.grad(), w.grad(), b.grad()};
}

}  // namespace

TEST_CASE("conv2d forward matches a direct float64 convolution") {
  uint64_t seed = 1000;
  for (DType dt : testing::kFloatTypes)
    for (bool with_bias : {false, true}) {
      for (const ConvCase& cc : kCases) check_forward(cc, dt, with_bias, seed += 10);
      for (const ConvCase& cc : kLargeCases) check_forward(cc, dt, with_bias, seed += 10);
    }
}

TEST_CASE("conv2d gradients match central differences in float64") {
  uint64_t seed = 2000;
  for (const ConvCase& cc : kCases)
    for (bool with_bias : {false, true}) {
      CAPTURE(cc.name);
      CAPTURE(with_bias);
      std::vector<Tensor> inputs{testing::leaf(testing::normal(cc.x_shape(), DType::Float64, ++seed)),
                                 testing::leaf(testing::normal(cc.w_shape(), DType::Float64, ++seed))};
      if (with_bias) inputs.push_back(testing::leaf(testing::normal({cc.k}, DType::Float64, ++seed)));
      testing::check_gradients(
          [&](const std::vector<Tensor>& in) {
            return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), cc.opts());
          },
          inputs);
    }
}

TEST_CASE("conv2d float32 gradients match the float64 ones, on chunked and single-image batches") {
  uint64_t seed = 3000;
  auto check_case = [&](const ConvCase& cc) {
    CAPTURE(cc.name);
    Tensor x = testing::normal(cc.x_shape(), DType::Float64, ++seed);
    Tensor w = testing::normal(cc.w_shape(), DType::Float64, ++seed);
    Tensor b = testing::normal({cc.k}, DType::Float64, ++seed);
    const Shape y_shape =
        kernels::conv2d_output_shape(cc.x_shape(), cc.w_shape(), {cc.stride, cc.padding, cc.dilation});
    Tensor proj = testing::normal(y_shape, DType::Float64, ++seed);
    const Grads3 g64 = conv_grads(cc, DType::Float64, x, w, b, proj);
    const Grads3 g32 = conv_grads(cc, DType::Float32, x, w, b, proj);
    CHECK(g32.gx.dtype() == DType::Float32);
    CHECK(rel_err(host(g32.gx), host(g64.gx)) < tolerance(DType::Float32));
    CHECK(rel_err(host(g32.gw), host(g64.gw)) < tolerance(DType::Float32));
    CHECK(rel_err(host(g32.gb), host(g64.gb)) < tolerance(DType::Float32));
  };
  for (const ConvCase& cc : kCases) check_case(cc);
  for (const ConvCase& cc : kLargeCases) check_case(cc);
}

TEST_CASE("conv2d gradients match central differences on a batch split into chunks") {
  // Central differences over every larger shape would take minutes; the
  // float32-vs-float64 test covers their chunking, and this pointwise batch
  // (two images in one GEMM, then one) the float64 path end to end.
  const ConvCase& cc = kLargeCases[3];
  std::vector<Tensor> inputs{testing::leaf(testing::normal(cc.x_shape(), DType::Float64, 4001)),
                             testing::leaf(testing::normal(cc.w_shape(), DType::Float64, 4002)),
                             testing::leaf(testing::normal({cc.k}, DType::Float64, 4003))};
  testing::check_gradients([&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], cc.opts()); },
                           inputs);
}

TEST_CASE("a frozen weight gets no gradient while the input's is unchanged; a frozen input likewise") {
  const ConvCase cc = kCases[1];
  Tensor x0 = testing::normal(cc.x_shape(), DType::Float64, 11);
  Tensor w0 = testing::normal(cc.w_shape(), DType::Float64, 12);
  Tensor b0 = testing::normal({cc.k}, DType::Float64, 13);

  // Reference: everything requires grad.
  Tensor xr = testing::leaf(x0), wr = testing::leaf(w0), br = testing::leaf(b0);
  sum(square(conv2d(xr, wr, br, cc.opts()))).backward();

  SUBCASE("frozen weight") {
    Tensor x = testing::leaf(x0), w = w0.clone(), b = testing::leaf(b0);
    sum(square(conv2d(x, w, b, cc.opts()))).backward();
    CHECK_FALSE(w.grad().defined());
    REQUIRE(x.grad().defined());
    testing::check_close(host(x.grad()), host(xr.grad()), 1e-14, 1e-14, "x.grad");
    testing::check_close(host(b.grad()), host(br.grad()), 1e-14, 1e-14, "b.grad");
  }
  SUBCASE("frozen input and bias") {
    Tensor x = x0.clone(), w = testing::leaf(w0), b = b0.clone();
    sum(square(conv2d(x, w, b, cc.opts()))).backward();
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(b.grad().defined());
    REQUIRE(w.grad().defined());
    testing::check_close(host(w.grad()), host(wr.grad()), 1e-14, 1e-14, "w.grad");
  }
  SUBCASE("nothing requires grad: no graph") {
    Tensor y = conv2d(x0, w0, b0, cc.opts());
    CHECK_FALSE(y.requires_grad());
  }
}

TEST_CASE("conv2d adds its input's gradient into one already waiting from another consumer, same bits as an add") {
  // conv2d's backward adds its part into the gradient waiting for its input
  // instead of a new tensor that the engine then adds.
  uint64_t seed = 900;
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float64}) {
    CAPTURE(dt);
    const Tensor x0 = testing::normal({2, 3, 6, 6}, DType::Float32, ++seed).to(dt);
    const Tensor w0 = testing::normal({4, 3, 3, 3}, DType::Float32, ++seed).to(dt);
    const Tensor proj = testing::normal({2, 4, 6, 6}, DType::Float32, ++seed).to(dt);
    const Tensor other = testing::normal({2, 3, 6, 6}, DType::Float32, ++seed).to(dt);
    const auto got = testing::conv_grad_into_waiting(x0, w0, proj, other, {1, 1, 1});
    // The two parts computed apart and added, as the engine does otherwise.
    const Tensor part = empty(x0.shape(), x0.options());
    kernels::conv2d_backward_data(proj, w0, part, kernels::ConvParams{1, 1, 1});
    REQUIRE(got.x_grad.defined());
    CHECK(host(got.x_grad) == host(add(other, part)));
    CHECK(got.added_into);
    // Switched off (to measure it): summed in a separate pass, the same bits.
    testing::WaitingGradResult apart;
    {
      const testing::ConvSwitches restore;  // the switch, even should the backward throw
      set_conv_grad_blend(false);
      apart = testing::conv_grad_into_waiting(x0, w0, proj, other, {1, 1, 1});
    }
    CHECK_FALSE(apart.added_into);
    CHECK(host(apart.x_grad) == host(got.x_grad));
  }
}

TEST_CASE("kernel_repeat runs conv2d's kernels that many times, for timing only") {
  // The timing probe of layers/functional.h. The input gradient blended
  // into the waiting one shows the count: it is added twice with 2, not at
  // all with 0. The forward output is overwritten with the same values.
  CHECK(kernel_repeat(KernelGroup::Convolution) == 1);
  const DType dt = DType::Float64;
  const Tensor x0 = testing::normal({2, 3, 6, 6}, dt, 931), w0 = testing::normal({4, 3, 3, 3}, dt, 932);
  const Tensor proj = testing::normal({2, 4, 6, 6}, dt, 933), other = testing::normal({2, 3, 6, 6}, dt, 934);
  const Tensor part = empty(x0.shape(), x0.options());
  kernels::conv2d_backward_data(proj, w0, part, kernels::ConvParams{1, 1, 1});
  const Tensor want_y = conv2d(x0, w0, Tensor(), {1, 1, 1});
  for (int times : {0, 1, 2, 3}) {
    CAPTURE(times);
    testing::WaitingGradResult got;
    Tensor y;
    int64_t blended_calls = 0, plain_calls = 0;
    {
      const testing::ConvSwitches restore;  // the count, even should the backward throw
      set_conv_grad_blend(true);
      set_kernel_repeat(KernelGroup::Convolution, times);
      int64_t before = kernel_calls(KernelGroup::Convolution);
      // Forward, and the input's gradient blended (the weight needs none).
      got = testing::conv_grad_into_waiting(x0, w0, proj, other, {1, 1, 1});
      blended_calls = kernel_calls(KernelGroup::Convolution) - before;
      // Forward, and both gradients, the input's into a new tensor.
      before = kernel_calls(KernelGroup::Convolution);
      Tensor x = x0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
      y = conv2d(x, w, Tensor(), {1, 1, 1});
      sum(y * proj).backward();
      plain_calls = kernel_calls(KernelGroup::Convolution) - before;
    }
    CHECK(blended_calls == 2 * times);
    CHECK(plain_calls == 3 * times);
    REQUIRE(got.added_into);
    Tensor want = other;
    for (int i = 0; i < times; ++i) want = add(want, part);
    CHECK(host(got.x_grad) == host(want));
    if (times > 0) CHECK(host(y.detach()) == host(want_y));
  }
  CHECK(kernel_repeat(KernelGroup::Convolution) == 1);  // put back by the guard
  CHECK_THROWS_WITH_AS(set_kernel_repeat(KernelGroup::Convolution, 9), doctest::Contains("outside 0..8"), Error);
}

TEST_CASE("conv2d reads strided inputs and gives their gradients in their shapes") {
  const ConvCase cc = kCases[0];
  // (N, C, W, H) transposed to (N, C, H, W): a non-contiguous view.
  Tensor base = testing::leaf(testing::normal({cc.n, cc.c, cc.w, cc.h}, DType::Float64, 21));
  Tensor x = base.transpose(2, 3);
  REQUIRE_FALSE(x.is_contiguous());
  Tensor w = testing::leaf(testing::normal(cc.w_shape(), DType::Float64, 22));
  Tensor y = conv2d(x, w, Tensor(), cc.opts());
  const std::vector<double> want = naive_conv2d(cc, host(x), host(w), {});
  CHECK(rel_err(host(y), want) < 1e-12);
  sum(y).backward();
  REQUIRE(base.grad().defined());
  CHECK(base.grad().shape() == base.shape());

  testing::check_gradients(
      [&](const std::vector<Tensor>& in) { return conv2d(in[0].transpose(2, 3), in[1], Tensor(), cc.opts()); },
      {base, w});
}

TEST_CASE("an empty batch gives an empty output and zero weight and bias gradients") {
  Tensor x = testing::leaf(zeros({0, 3, 5, 5}, DType::Float64));
  Tensor w = testing::leaf(testing::normal({4, 3, 3, 3}, DType::Float64, 31));
  Tensor b = testing::leaf(testing::normal({4}, DType::Float64, 32));
  Tensor y = conv2d(x, w, b, {1, 1, 1});
  CHECK(y.shape() == Shape{0, 4, 5, 5});
  y.backward(zeros(y.shape(), DType::Float64));
  REQUIRE(w.grad().defined());
  REQUIRE(b.grad().defined());
  testing::check_equal(host(w.grad()), std::vector<double>(36 * 3, 0.0), "w.grad");
  testing::check_equal(host(b.grad()), std::vector<double>(4, 0.0), "b.grad");
}

TEST_CASE("the output size follows floor division, also for windows larger than the padded input") {
  using kernels::conv_out_size;
  CHECK(conv_out_size(32, 3, {1, 1, 1}) == 32);
  CHECK(conv_out_size(32, 3, {2, 1, 1}) == 16);
  CHECK(conv_out_size(32, 7, {2, 3, 1}) == 16);
  CHECK(conv_out_size(7, 3, {2, 0, 1}) == 3);
  CHECK(conv_out_size(7, 3, {1, 0, 2}) == 3);
  CHECK(conv_out_size(2, 3, {1, 0, 1}) == 0);
  CHECK(conv_out_size(2, 3, {2, 0, 1}) == 0);  // (2 - 3) / 2 truncates to 0; floor is -1
  CHECK(conv_out_size(1, 5, {2, 0, 1}) == -1);
  const kernels::ConvRange r = kernels::conv_valid_range(5, 5, 0, {1, 2, 1});  // tap 0 reads o - 2
  CHECK(r.lo == 2);
  CHECK(r.hi == 5);
  const kernels::ConvRange none = kernels::conv_valid_range(2, 1, 0, {1, 4, 1});  // all padding
  CHECK(none.lo == none.hi);
}

TEST_CASE("conv_benchmark is a process-wide switch that leaves CPU results unchanged") {
  const bool before = conv_benchmark();
  const ConvCase cc = kCases[0];
  Tensor x = testing::normal(cc.x_shape(), DType::Float32, 41);
  Tensor w = testing::normal(cc.w_shape(), DType::Float32, 42);
  Tensor y0 = conv2d(x, w, Tensor(), cc.opts());
  set_conv_benchmark(true);
  CHECK(conv_benchmark());
  Tensor y1 = conv2d(x, w, Tensor(), cc.opts());
  set_conv_benchmark(false);
  CHECK_FALSE(conv_benchmark());
  testing::check_equal(host(y1), host(y0), "y");
  set_conv_benchmark(before);
}

TEST_CASE("conv_allow_tf32 is off by default and leaves CPU results unchanged") {
  CHECK_FALSE(conv_allow_tf32());
  const ConvCase cc = kCases[0];
  Tensor x = testing::normal(cc.x_shape(), DType::Float32, 43);
  Tensor w = testing::normal(cc.w_shape(), DType::Float32, 44);
  Tensor y0 = conv2d(x, w, Tensor(), cc.opts());
  set_conv_allow_tf32(true);
  CHECK(conv_allow_tf32());
  Tensor y1 = conv2d(x, w, Tensor(), cc.opts());
  set_conv_allow_tf32(false);
  CHECK_FALSE(conv_allow_tf32());
  testing::check_equal(host(y1), host(y0), "y");
}

TEST_CASE("conv2d rejects bad arguments, naming conv2d and the shapes") {
  using testing::check_mentions;
  using testing::error_of;
  Tensor x = testing::normal({2, 3, 8, 8}, DType::Float32, 51);
  Tensor w = testing::normal({4, 3, 3, 3}, DType::Float32, 52);
  Tensor b = testing::normal({4}, DType::Float32, 53);

  SUBCASE("wrong rank") {
    check_mentions(error_of([&] { conv2d(x.reshape({2, 3, 64}), w, b); }),
                   {"conv2d", "4-D", "(2, 3, 64)", "(4, 3, 3, 3)"});
    check_mentions(error_of([&] { conv2d(x, w.reshape({4, 27}), b); }), {"conv2d", "4-D", "(2, 3, 8, 8)", "(4, 27)"});
  }
  SUBCASE("channel mismatch") {
    Tensor w5 = testing::normal({4, 5, 3, 3}, DType::Float32, 54);
    check_mentions(error_of([&] { conv2d(x, w5, b); }), {"conv2d", "(2, 3, 8, 8)", "(4, 5, 3, 3)", "channels"});
  }
  SUBCASE("dtype mismatch") {
    check_mentions(error_of([&] { conv2d(x.to(DType::Float64), w, b); }),
                   {"conv2d", "(2, 3, 8, 8)", "(4, 3, 3, 3)", "float64", "float32"});
    check_mentions(error_of([&] { conv2d(x, w, b.to(DType::Float64)); }), {"conv2d", "bias", "(4,)", "float64"});
  }
  SUBCASE("integer tensors") {
    check_mentions(error_of([&] { conv2d(x.to(DType::Int64), w.to(DType::Int64), Tensor()); }), {"conv2d", "int64"});
  }
  SUBCASE("bias shape") {
    check_mentions(error_of([&] { conv2d(x, w, testing::normal({3}, DType::Float32, 55)); }),
                   {"conv2d", "bias", "(3,)", "(4, 3, 3, 3)"});
  }
  SUBCASE("output smaller than 1x1") {
    check_mentions(error_of([&] { conv2d(x, testing::normal({4, 3, 9, 9}, DType::Float32, 56), b); }),
                   {"conv2d", "(2, 3, 8, 8)", "(4, 3, 9, 9)", "output"});
    check_mentions(error_of([&] { conv2d(x, w, b, {1, 0, 5}); }), {"conv2d", "(2, 3, 8, 8)", "dilation 5", "output"});
  }
  SUBCASE("stride, dilation and padding ranges") {
    check_mentions(error_of([&] { conv2d(x, w, b, {0, 1, 1}); }), {"conv2d", "(2, 3, 8, 8)", "stride 0"});
    check_mentions(error_of([&] { conv2d(x, w, b, {1, -1, 1}); }), {"conv2d", "padding -1"});
    check_mentions(error_of([&] { conv2d(x, w, b, {1, 1, 0}); }), {"conv2d", "dilation 0"});
  }
  SUBCASE("kernel entry points check shapes too") {
    Tensor y = empty({2, 4, 7, 7}, DType::Float32);  // should be 8x8 with padding 1
    check_mentions(error_of([&] { kernels::conv2d_forward(x, w, b, y, {1, 1, 1}); }),
                   {"conv2d_forward", "(2, 3, 8, 8)", "(2, 4, 7, 7)"});
    Tensor gw = empty({4, 3, 3, 3}, DType::Float32);
    check_mentions(error_of([&] { kernels::conv2d_backward_filter(x, y, gw, {1, 1, 1}); }),
                   {"conv2d_backward_filter", "(2, 4, 7, 7)"});
  }
}

}  // namespace lrt

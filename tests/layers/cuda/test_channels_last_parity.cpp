// channels_last (NHWC) on CUDA against the CPU's NCHW results (lrt_cuda_tests;
// runs only where a CUDA device answers). cuDNN convolutions given NHWC
// activations and a KRSC filter, the NHWC batch-norm kernels of
// kernels/cuda/batch_norm.cu, and a whole ResNet50 step. CUDA outputs are
// poisoned with NaN first, so an unwritten element shows.
//
// Tolerances are the NCHW parity suites' (test_conv_parity.cpp,
// test_batch_norm_parity.cpp, test_mixed_precision_parity.cpp), for the
// same reasons: the convolution sums run in another order (5e-5 float32,
// 1e-12 float64, 2^-7 bfloat16, norm-wise; float64 convolutions compute in
// NCHW between layout copies, as PyTorch's do); the batch-norm statistics and
// backward sums accumulate in double in another order (1e-6 float32, 1e-11
// float64); and given the same per-channel values every elementwise pass
// computes each element with the same operations as the CPU, so the
// normalised output, the eval-mode input gradient and the residual's
// gradient must be the CPU's bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
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
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

bool nhwc(const Tensor& t) { return memory_format_of(t) == kCL; }

// t's values on the device, laid out channels_last.
Tensor nhwc_cuda(const Tensor& t) { return t.to(kCuda).contiguous(kCL).detach(); }

// A channels_last CUDA tensor of NaN.
Tensor poisoned_nhwc(const Shape& s, DType dt) {
  return full(s, testing::kNaN, TensorOptions(dt).with_device(kCuda)).contiguous(kCL).detach();
}

double conv_tolerance(DType dt) {
  return dt == DType::Float32 ? 5e-5 : dt == DType::Float64 ? 1e-12 : 1.0 / 128;
}
Tensor random(const Shape& s, DType dt, uint64_t seed) {
  const Tensor t = testing::normal(s, DType::Float32, seed);
  return dt == DType::Float64 ? testing::normal(s, dt, seed) : t.to(dt);
}

}  // namespace

TEST_CASE("CUDA: channels_last convolution kernels agree with the CPU's NCHW ones") {
  struct Case {
    const char* name;
    Shape x, w;
    int64_t stride, pad;
  };
  const Case cases[] = {
      {"CIFAR stem 3x3, 3 -> 64", {4, 3, 32, 32}, {64, 3, 3, 3}, 1, 1},
      {"3x3 64 -> 64 on 16x16", {4, 64, 16, 16}, {64, 64, 3, 3}, 1, 1},
      {"3x3 stride 2, 32 on 15x15", {3, 32, 15, 15}, {32, 32, 3, 3}, 2, 1},
      {"1x1 256 -> 64 on 8x8", {4, 256, 8, 8}, {64, 256, 1, 1}, 1, 0},
      {"1x1 stride 2, 128 -> 256 on 8x8", {2, 128, 8, 8}, {256, 128, 1, 1}, 2, 0},
      {"odd channels 5 -> 7 on 9x9", {3, 5, 9, 9}, {7, 5, 3, 3}, 1, 1},
  };
  uint64_t seed = 300;
  for (DType dt : {DType::Float32, DType::BFloat16})  // float64 convolutions run NCHW
    for (bool benchmark : {false, true})
      for (const Case& c : cases) {
        CAPTURE(dt);
        CAPTURE(benchmark);
        CAPTURE(c.name);
        kernels::ConvParams p;
        p.stride = c.stride;
        p.padding = c.pad;
        p.benchmark = benchmark;
        const Shape ys = kernels::conv2d_output_shape(c.x, c.w, p);
        const Tensor x = random(c.x, dt, ++seed), w = random(c.w, dt, ++seed), gy = random(ys, dt, ++seed);
        const Tensor xd = nhwc_cuda(x), wd = nhwc_cuda(w), gyd = nhwc_cuda(gy);

        Tensor want = empty(ys, TensorOptions(dt)), got = poisoned_nhwc(ys, dt);
        kernels::conv2d_forward(x, w, Tensor(), want, p);
        kernels::conv2d_forward(xd, wd, Tensor(), got, p);
        CHECK(nhwc(got));
        check_cuda_close(got, want, conv_tolerance(dt), "forward");

        Tensor gx_want = empty(c.x, TensorOptions(dt)), gx_got = poisoned_nhwc(c.x, dt);
        kernels::conv2d_backward_data(gy, w, gx_want, p);
        kernels::conv2d_backward_data(gyd, wd, gx_got, p);
        check_cuda_close(gx_got, gx_want, conv_tolerance(dt), "backward data");

        Tensor gw_want = empty(c.w, TensorOptions(dt)), gw_got = poisoned_nhwc(c.w, dt);
        kernels::conv2d_backward_filter(x, gy, gw_want, p);
        kernels::conv2d_backward_filter(xd, gyd, gw_got, p);
        check_cuda_close(gw_got, gw_want, conv_tolerance(dt), "backward filter");
      }
}

TEST_CASE("CUDA: conv2d on a channels_last input answers in channels_last, values and gradients as the CPU's") {
  // float64 computes in NCHW between layout copies; the others in NHWC.
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float64}) {
    CAPTURE(dt);
    const Tensor x0 = random({4, 16, 12, 12}, dt, 401), w0 = random({24, 16, 3, 3}, dt, 402);
    const Tensor proj = random({4, 24, 6, 6}, dt, 403);
    auto run = [&](Device dev, bool cl) {
      Tensor x = (cl ? nhwc_cuda(x0) : x0.to(dev)).detach().set_requires_grad(true);
      Tensor w = w0.to(dev).detach().set_requires_grad(true);
      Tensor y = conv2d(x, w, Tensor(), {2, 1, 1});
      sum(y * proj.to(dev)).backward();
      return std::vector<Tensor>{y, x.grad(), w.grad()};
    };
    const auto want = run(kCPU, false), got = run(kCuda, true);
    CHECK(nhwc(got[0]));
    CHECK(nhwc(got[1]));
    CHECK(got[2].is_contiguous());
    // bfloat16 gradients sum bfloat16 products of the upstream values: 2^-6.
    const double tol = dt == DType::BFloat16 ? 1.0 / 64 : dt == DType::Float64 ? 1e-12 : 5e-5;
    check_cuda_close(got[0], want[0], tol, "y");
    check_cuda_close(got[1], want[1], tol, "x.grad");
    check_cuda_close(got[2], want[2], tol, "w.grad");
  }
}

#if LRT_HAVE_CUDA  // the CUDA kernel entry points exist only in CUDA builds

namespace {

double sum_tolerance(DType dt) { return dt == DType::Float64 ? 1e-11 : 1e-6; }
double value_tolerance(DType dt) { return dt == DType::Float64 ? 1e-11 : 1e-5; }

void check_same(const Tensor& got, const Tensor& want, const std::string& what) {
  CHECK(got.device().is_cuda());
  REQUIRE(got.shape() == want.shape());
  testing::check_equal(host(got), host(want), what);
}

}  // namespace

TEST_CASE("CUDA: channels_last batch-norm kernels match the CPU's, elementwise passes to the bit") {
  namespace kb = kernels;
  const Shape shapes[] = {{256, 64, 32, 32}, {8, 2048, 4, 4}, {4, 3, 5, 7}, {3, 40, 5, 5}, {2, 6, 1, 9}};
  uint64_t seed = 500;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (const Shape& s : shapes) {
      if (dt == DType::Float64 && s[0] == 256) continue;  // the large case once per storage width
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const DType ct = dt == DType::BFloat16 ? DType::Float32 : dt;  // per-channel dtype
      const int64_t c = s[1];
      const double eps = 1e-5, momentum = 0.1;
      const Tensor x = random(s, dt, ++seed) * 1.5 + 0.25, gy = random(s, dt, ++seed);
      const Tensor w = testing::uniform({c}, 0.5, 2.0, ct, ++seed), b = testing::normal({c}, ct, ++seed);
      const Tensor rm0 = testing::normal({c}, ct, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, ct, ++seed);
      const Tensor xg = nhwc_cuda(x), gyg = nhwc_cuda(gy), wg = w.to(kCuda), bg = b.to(kCuda);
      REQUIRE(nhwc(xg));

      Tensor mean = empty({c}, ct), invstd = empty({c}, ct), rm = rm0.clone(), rv = rv0.clone();
      Tensor mean_g = full({c}, testing::kNaN, TensorOptions(ct).with_device(kCuda));
      Tensor invstd_g = full({c}, testing::kNaN, TensorOptions(ct).with_device(kCuda));
      Tensor rm_g = rm0.to(kCuda), rv_g = rv0.to(kCuda);
      kb::cpu::batch_norm_stats(x, mean, invstd, eps, rm, rv, momentum);
      kb::cuda::batch_norm_stats(xg, mean_g, invstd_g, eps, rm_g, rv_g, momentum);
      check_cuda_close(mean_g, mean, sum_tolerance(dt), "mean");
      check_cuda_close(invstd_g, invstd, sum_tolerance(dt), "invstd");
      check_cuda_close(rm_g, rm, sum_tolerance(dt), "running_mean");
      check_cuda_close(rv_g, rv, sum_tolerance(dt), "running_var");
      mean_g = mean.to(kCuda);
      invstd_g = invstd.to(kCuda);

      for (int ending = 0; ending < 3; ++ending) {  // none, ReLU, residual add + ReLU
        const bool relu = ending > 0, with_res = ending == 2;
        CAPTURE(ending);
        const Tensor r = with_res ? random(s, dt, ++seed) : Tensor();
        const Tensor rg = with_res ? nhwc_cuda(r) : Tensor();
        Tensor y = empty(s, TensorOptions(dt)), y_g = poisoned_nhwc(s, dt);
        kb::cpu::batch_norm_apply(x, mean, invstd, w, b, r, relu, y);
        kb::cuda::batch_norm_apply(xg, mean_g, invstd_g, wg, bg, rg, relu, y_g);
        check_same(y_g, y, "y");
        const Tensor yo = relu ? y : Tensor(), yo_g = relu ? y_g : Tensor();
        for (bool training : {true, false}) {
          CAPTURE(training);
          Tensor gx = empty(s, TensorOptions(dt)), gw = empty({c}, ct), gb = empty({c}, ct);
          Tensor gr = with_res ? empty(s, TensorOptions(dt)) : Tensor();
          Tensor gx_g = poisoned_nhwc(s, dt), gr_g = with_res ? poisoned_nhwc(s, dt) : Tensor();
          Tensor gw_g = full({c}, testing::kNaN, TensorOptions(ct).with_device(kCuda)), gb_g = gw_g.clone();
          kb::cpu::batch_norm_backward(gy, yo, x, mean, invstd, w, training, gx, gw, gb, gr);
          kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wg, training, gx_g, gw_g, gb_g, gr_g);
          if (training)
            check_cuda_close(gx_g, gx, value_tolerance(dt), "gx");
          else
            check_same(gx_g, gx, "gx (eval)");
          check_cuda_close(gw_g, gw, sum_tolerance(dt), "gweight");
          check_cuda_close(gb_g, gb, sum_tolerance(dt), "gbias");
          if (with_res) check_same(gr_g, gr, "gresidual");
        }
      }
    }
}

TEST_CASE("CUDA: channels_last batch-norm kernels give the same bits from run to run") {
  for (DType dt : {DType::Float32, DType::BFloat16})
    for (const Shape& s : {Shape{256, 64, 32, 32}, Shape{8, 2048, 4, 4}}) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const int64_t c = s[1];
      const Tensor x = nhwc_cuda(random(s, dt, 601)), gy = nhwc_cuda(random(s, dt, 602));
      const Tensor w = testing::uniform({c}, 0.5, 2.0, DType::Float32, 603).to(kCuda);
      std::vector<std::vector<double>> runs[2];
      for (auto& r : runs) {
        const TensorOptions co = TensorOptions(DType::Float32).with_device(kCuda);
        Tensor mean = empty({c}, co), invstd = empty({c}, co), rm = zeros({c}, co), rv = ones({c}, co);
        kernels::cuda::batch_norm_stats(x, mean, invstd, 1e-5, rm, rv, 0.1);
        Tensor gx = poisoned_nhwc(s, dt), gw = empty({c}, co), gb = empty({c}, co);
        kernels::cuda::batch_norm_backward(gy, Tensor(), x, mean, invstd, w, true, gx, gw, gb, Tensor());
        r = {host(mean), host(invstd), host(rm), host(rv), host(gx), host(gw), host(gb)};
      }
      CHECK(runs[0] == runs[1]);
    }
}

#endif  // LRT_HAVE_CUDA

TEST_CASE("CUDA: a channels_last ResNet50 step matches the NCHW one") {
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    CAPTURE(dt);
    const Tensor x = testing::normal({8, 3, 32, 32}, DType::Float32, 701).to(kCuda);
    const Tensor labels = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8}).to(kCuda);
    auto run = [&](bool channels_last) {
      ResNet50Options o;
      o.seed = 9;
      o.compute_dtype = dt;
      o.channels_last = channels_last;
      ResNet50 model(o);
      model.to(kCuda);
      const Tensor logits = model.forward(x);
      cross_entropy(logits, labels).backward();
      std::vector<Tensor> out{logits.detach()};
      for (const auto& p : model.named_parameters()) out.push_back(p.tensor.grad());
      return out;
    };
    const auto nchw = run(false), nhwc_run = run(true);
    REQUIRE(nchw.size() == nhwc_run.size());
    // float32: convolution sums in another order through 50 layers; bfloat16
    // roundings on top (the mixed-precision suite's ResNet50 bound). The
    // gradients are compared as one vector, norm-wise, so that tensors whose
    // gradients are tiny do not set the bound.
    const double tol = dt == DType::Float32 ? 1e-3 : 0.05;
    check_cuda_close(nhwc_run[0], nchw[0].to(kCPU), tol, "logits");
    double diff2 = 0.0, ref2 = 0.0;
    for (size_t i = 1; i < nchw.size(); ++i) {
      CAPTURE(i);
      CHECK(nhwc_run[i].is_contiguous());
      const std::vector<double> a = host(nhwc_run[i]), b = host(nchw[i]);
      REQUIRE(a.size() == b.size());
      for (size_t k = 0; k < a.size(); ++k) {
        diff2 += (a[k] - b[k]) * (a[k] - b[k]);
        ref2 += b[k] * b[k];
      }
    }
    REQUIRE(ref2 > 0.0);
    CHECK(std::sqrt(diff2 / ref2) <= tol);
  }
}

}  // namespace lrt

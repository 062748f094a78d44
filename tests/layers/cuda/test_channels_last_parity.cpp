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
#include <tuple>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"
#include "layers/functional.h"
#include "layers/modules.h"
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

TEST_CASE("CUDA: a bf16 Conv2d on a channels_last input casts its weight straight to KRSC, same bits as cast then copy") {
  // Deterministic algorithms, so the two runs can be compared bit for bit.
  const testing::DeterministicConvs deterministic;
  Generator gen(77);
  Conv2d conv({16, 24, 3, 1, 1}, &gen);
  conv.to(kCuda);
  const Tensor x0 = random({4, 16, 10, 10}, DType::BFloat16, 404);
  const Tensor proj = random({4, 24, 10, 10}, DType::BFloat16, 405).to(kCuda);
  // The module: one copy converts the float32 weight and lays it out KRSC.
  Tensor x = nhwc_cuda(x0).set_requires_grad(true);
  Tensor y = conv.forward(x);
  sum(y * proj).backward();
  const Tensor gw = conv.weight().grad();
  // The same through a plain cast, which conv2d then lays out KRSC itself.
  Tensor w = conv.weight().detach().set_requires_grad(true);
  Tensor x2 = nhwc_cuda(x0).set_requires_grad(true);
  Tensor y2 = conv2d(x2, w.to(DType::BFloat16), Tensor(), {1, 1, 1});
  sum(y2 * proj).backward();

  CHECK(nhwc(y));
  REQUIRE(gw.defined());
  CHECK(gw.dtype() == DType::Float32);
  CHECK(gw.is_contiguous());  // the parameter's own layout
  testing::check_equal(host(y), host(y2), "y");
  testing::check_equal(host(x.grad()), host(x2.grad()), "x.grad");
  testing::check_equal(host(gw), host(w.grad()), "weight.grad");
}

TEST_CASE("CUDA: global_avg_pool of channels_last features gives the CPU's NCHW bits, gradient channels_last") {
  // Both sum each plane's values in order in double and scale once.
  uint64_t seed = 410;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Shape& s : std::vector<Shape>{{256, 64, 4, 4}, {3, 5, 7, 3}}) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const Tensor x0 = random(s, dt, ++seed), proj = random({s[0], s[1]}, dt, ++seed);
      auto run = [&](Device dev, bool cl) {
        Tensor x = (cl ? nhwc_cuda(x0) : x0.to(dev)).detach().set_requires_grad(true);
        Tensor y = global_avg_pool(x);
        sum(y * proj.to(dev)).backward();
        return std::vector<Tensor>{y, x.grad()};
      };
      const auto want = run(kCPU, false), got = run(kCuda, true);
      REQUIRE(got[1].defined());
      CHECK(nhwc(got[1]));
      testing::check_equal(host(got[0]), host(want[0]), "y");
      testing::check_equal(host(got[1]), host(want[1]), "x.grad");
    }
}

#if LRT_HAVE_CUDA  // the CUDA kernel entry points exist only in CUDA builds

namespace {

// nhwc_cuda's values one value past an aligned address (the kernels'
// one-value and one-channel-a-lane paths): a view of a larger buffer.
Tensor misaligned_nhwc_cuda(const Tensor& t) {
  const int64_t n = t.size(0), c = t.size(1), h = t.size(2), w = t.size(3);
  Tensor buf = empty({t.numel() + 1}, TensorOptions(t.dtype()).with_device(kCuda));
  Tensor v = buf.slice(0, 1, t.numel() + 1).reshape({n, h, w, c}).transpose(1, 3).transpose(2, 3);
  v.copy_(t);
  return v;
}

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
  // {2, 130, 3, 3}: 130 channels a row make the elementwise passes find each
  // pack's channels (no grid whose thread count is a multiple of 130).
  // Misaligned inputs (a view one value into a buffer; even C then takes
  // one channel a lane in the reductions and one value a pack elsewhere)
  // for the smaller shapes.
  const Shape shapes[] = {{256, 64, 32, 32}, {8, 2048, 4, 4}, {4, 3, 5, 7}, {3, 40, 5, 5}, {2, 6, 1, 9}, {2, 130, 3, 3}};
  uint64_t seed = 500;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (const Shape& s : shapes)
      for (bool misaligned : {false, true}) {
        if (dt == DType::Float64 && s[0] == 256) continue;  // the large case once per storage width
        if (misaligned && (s[0] == 256 || dt == DType::Float64)) continue;
        CAPTURE(dt);
        CAPTURE(to_string(s));
        CAPTURE(misaligned);
        auto on_cuda = [&](const Tensor& t) { return misaligned ? misaligned_nhwc_cuda(t) : nhwc_cuda(t); };
        const DType ct = dt == DType::BFloat16 ? DType::Float32 : dt;  // per-channel dtype
        const int64_t c = s[1];
        const double eps = 1e-5, momentum = 0.1;
        const Tensor x = random(s, dt, ++seed) * 1.5 + 0.25, gy = random(s, dt, ++seed);
        const Tensor w = testing::uniform({c}, 0.5, 2.0, ct, ++seed), b = testing::normal({c}, ct, ++seed);
        const Tensor rm0 = testing::normal({c}, ct, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, ct, ++seed);
        const Tensor xg = on_cuda(x), gyg = on_cuda(gy), wg = w.to(kCuda), bg = b.to(kCuda);
        REQUIRE(nhwc(xg));
        REQUIRE(xg.is_contiguous(kCL));

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

        for (int ending = 0; ending < 4; ++ending) {  // none, ReLU, residual add + ReLU, residual add
          const bool relu = ending == 1 || ending == 2, with_res = ending >= 2;
          CAPTURE(ending);
          const Tensor r = with_res ? random(s, dt, ++seed) : Tensor();
          const Tensor rg = with_res ? on_cuda(r) : Tensor();
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
            if (with_res) {
              check_same(gr_g, gr, "gresidual");
              // Without the sums pass (only the residual's gradient asked for)
              // the input-gradient pass masks gy itself: the same bits as the
              // sums pass writing it.
              Tensor gr_only = poisoned_nhwc(s, dt);
              kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wg, training, Tensor(), Tensor(), Tensor(),
                                            gr_only);
              check_same(gr_only, gr, "gresidual alone");
            }
            if (relu && !with_res) {
              // The mask recomputed from x instead of read from y: the same bits.
              Tensor gx_x = poisoned_nhwc(s, dt);
              Tensor gw_x = full({c}, testing::kNaN, TensorOptions(ct).with_device(kCuda)), gb_x = gw_x.clone();
              kb::cuda::batch_norm_backward(gyg, Tensor(), xg, mean_g, invstd_g, wg, training, gx_x, gw_x, gb_x,
                                            Tensor(), true, bg);
              check_same(gx_x, gx_g.to(kCPU), "gx, mask from x");
              check_same(gw_x, gw_g.to(kCPU), "gweight, mask from x");
              check_same(gb_x, gb_g.to(kCPU), "gbias, mask from x");
              // And without the affine parameters (no weight, no bias).
              Tensor y0 = poisoned_nhwc(s, dt);
              kb::cuda::batch_norm_apply(xg, mean_g, invstd_g, Tensor(), Tensor(), Tensor(), true, y0);
              Tensor gx_r = poisoned_nhwc(s, dt), gx_0 = poisoned_nhwc(s, dt);
              Tensor gb_r = full({c}, testing::kNaN, TensorOptions(ct).with_device(kCuda)), gb_0 = gb_r.clone();
              kb::cuda::batch_norm_backward(gyg, y0, xg, mean_g, invstd_g, Tensor(), training, gx_r, Tensor(), gb_r,
                                            Tensor());
              kb::cuda::batch_norm_backward(gyg, Tensor(), xg, mean_g, invstd_g, Tensor(), training, gx_0, Tensor(),
                                            gb_0, Tensor(), true, Tensor());
              check_same(gx_0, gx_r.to(kCPU), "gx, mask from x, no affine");
              check_same(gb_0, gb_r.to(kCPU), "gbias, mask from x, no affine");
            }
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

namespace {

// A ResNet50 step on CUDA at batch 8: the logits, then every parameter's
// gradient, as host vectors.
std::vector<std::vector<double>> resnet_step(DType dt, bool channels_last, bool training,
                                             bool cast_weights_together = true) {
  const Tensor x = testing::normal({8, 3, 32, 32}, DType::Float32, 701).to(kCuda);
  const Tensor labels = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8}).to(kCuda);
  ResNet50Options o;
  o.seed = 9;
  o.compute_dtype = dt;
  o.channels_last = channels_last;
  o.cast_weights_together = cast_weights_together;
  ResNet50 model(o);
  model.to(kCuda);
  if (!training) model.eval();
  const Tensor logits = model.forward(x);
  cross_entropy(logits, labels).backward();
  std::vector<std::vector<double>> out{host(logits.detach())};
  for (const auto& p : model.named_parameters()) {
    CHECK(p.tensor.grad().is_contiguous());
    out.push_back(host(p.tensor.grad()));
  }
  return out;
}

// Norm-wise relative difference of a against b over the entries [from, to)
// taken as one vector.
double rel_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b, size_t from,
                size_t to) {
  REQUIRE(a.size() == b.size());
  double diff2 = 0.0, ref2 = 0.0;
  for (size_t i = from; i < to; ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (size_t k = 0; k < a[i].size(); ++k) {
      diff2 += (a[i][k] - b[i][k]) * (a[i][k] - b[i][k]);
      ref2 += b[i][k] * b[i][k];
    }
  }
  REQUIRE(ref2 > 0.0);
  return std::sqrt(diff2 / ref2);
}

}  // namespace

// The whole model, channels_last against NCHW (other convolution
// algorithms: the same sums in another order). Gradients are compared in
// eval mode: at initialisation a training-mode step (batch statistics of 8
// images) is so ill-conditioned that a 1e-6 relative change of the input
// moves the float32 gradients by about 2% (measured on the CPU), which would
// hide a layout bug as well as flag noise; in eval mode that change moves
// them by about 2e-4. Training mode is checked on the logits, which the
// NHWC statistics kernels produce.
TEST_CASE("CUDA: a channels_last ResNet50 step matches the NCHW one") {
  using Run = std::vector<std::vector<double>>;
  SUBCASE("float32") {
    for (bool training : {false, true}) {
      CAPTURE(training);
      const Run nchw = resnet_step(DType::Float32, false, training);
      const Run nhwc = resnet_step(DType::Float32, true, training);
      CHECK(rel_diff(nhwc, nchw, 0, 1) <= (training ? 1e-3 : 1e-4));  // logits
      if (!training) CHECK(rel_diff(nhwc, nchw, 1, nchw.size()) <= 1e-3);  // gradients, as one vector
    }
  }
  SUBCASE("bfloat16, as close to float32 as the NCHW bfloat16 step") {
    // bfloat16 rounds each activation to 8 bits, so the layouts' results
    // differ by those roundings; channels_last must be no further from the
    // float32 step than NCHW is (within 2x).
    const Run ref = resnet_step(DType::Float32, false, false);
    const Run nchw = resnet_step(DType::BFloat16, false, false);
    const Run nhwc = resnet_step(DType::BFloat16, true, false);
    for (const auto& [what, from, to] : {std::tuple<const char*, size_t, size_t>{"logits", 0, 1},
                                         std::tuple<const char*, size_t, size_t>{"gradients", 1, ref.size()}}) {
      CAPTURE(what);
      const double base = rel_diff(nchw, ref, from, to), got = rel_diff(nhwc, ref, from, to);
      CAPTURE(base);
      CHECK(base < 0.5);  // a sanity bound: bfloat16 tracks float32 at all
      CHECK(got <= 2.0 * base + 1e-3);
    }
  }
}

// ResNet50Options::cast_weights_together: all 53 weights rounded to
// bfloat16 in one launch give the bits of a copy a convolution, in both
// layouts and modes (deterministic algorithms, so that two runs repeat).
TEST_CASE("CUDA: a bfloat16 ResNet50 step with its weights cast together gives the bits of one cast a convolution") {
  const testing::DeterministicConvs deterministic;
  for (bool channels_last : {false, true})
    for (bool training : {true, false}) {
      CAPTURE(channels_last);
      CAPTURE(training);
      const auto together = resnet_step(DType::BFloat16, channels_last, training, true);
      const auto separate = resnet_step(DType::BFloat16, channels_last, training, false);
      CHECK(together == separate);
    }
}

}  // namespace lrt

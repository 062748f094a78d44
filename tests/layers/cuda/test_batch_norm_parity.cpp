// CPU-vs-CUDA parity of batch normalisation (lrt_cuda_tests; runs only where
// a CUDA device answers). The kernel entry points of kernels/batch_norm.h
// run on both devices over the same random inputs, the CUDA outputs poisoned
// with NaN first so an unwritten element shows; then lrt::batch_norm runs
// end to end with autograd and running statistics on both devices. Shapes
// cover ResNet50-on-CIFAR sizes ((256, 64, 32, 32) splits each channel over
// many blocks; (8, 2048, 4, 4) gives one block a channel), batch 1 in eval,
// 2-D input, spatial sizes that are no multiple of the 16-byte pack (the
// one-value path), and a misaligned input.
//
// Tolerances (relative, norm-wise ||cuda - cpu|| / ||cpu||). The
// statistics and the backward sums accumulate in double on both devices in
// different orders, so the doubles agree to ~1e-13 (sums of up to 2^18
// terms) and the float32 results to one rounding (6e-8): 1e-6 for float32,
// 1e-11 for float64. Each per-element operation is rounded alone (no fused
// multiply-add), so an elementwise pass given the same per-channel values
// agrees to the bit: the kernel tests feed both devices the CPU's mean and
// invstd and require identical y, and identical gx in eval mode (in training
// gx takes coefficients from the sums: 1e-5 for float32, 1e-11 for float64).
// End to end, training-mode y and gx follow from each device's own
// statistics (same 1e-5 / 1e-11); eval mode takes its per-channel values from
// the running statistics by the same double arithmetic on both devices, so y
// and gx agree to the bit. CUDA results must also be identical from run to
// run (fixed reduction order).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "layers/functional.h"
#include "lrt_config.h"
#include "small_net.h"
#include "testing.h"
#if defined(LRT_EMULATED_CUDA)
#include "emulated/cudnn.h"
#endif

namespace lrt {

using testing::host;

namespace {

const Device kCuda("cuda");

double sum_tolerance(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-11; }
double value_tolerance(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-11; }

void check_close(const Tensor& cuda_result, const Tensor& cpu_result, double tol, const std::string& what) {
  CAPTURE(what);
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  CHECK(cuda_result.dtype() == cpu_result.dtype());
  const std::vector<double> got = host(cuda_result);
  bool any_nan = false;
  for (double v : got) any_nan = any_nan || std::isnan(v);
  CHECK_FALSE(any_nan);
  CHECK(rel_error(cuda_result, cpu_result) <= tol);
}

void check_same(const Tensor& cuda_result, const Tensor& cpu_result, const std::string& what) {
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  testing::check_equal(host(cuda_result), host(cpu_result), what);
}

struct Case {
  Shape shape;
  bool training;  // false: eval mode only (a batch of one, as at inference)
};

const Case kCases[] = {
    {{256, 64, 32, 32}, true}, {{8, 2048, 4, 4}, true}, {{1, 3, 5, 7}, false},  {{2, 128}, true},
    {{4, 3, 5, 7}, true},      {{37, 6}, true},         {{64, 16, 8, 8}, true}, {{2, 1, 3, 2}, true},
};

Tensor input(const Shape& s, DType dt, uint64_t seed) { return testing::normal(s, dt, seed) * 1.7 + 0.4; }

}  // namespace

#if LRT_HAVE_CUDA

namespace kb = kernels;

namespace {

// A contiguous copy of t on the CUDA device whose first element sits one
// element past a 16-byte boundary.
Tensor misaligned_cuda(const Tensor& t) {
  Tensor buf = empty({t.numel() + 1}, TensorOptions(t.dtype()).with_device(kCuda));
  Tensor v = buf.slice(0, 1, t.numel() + 1).reshape(t.shape());
  v.copy_(t);
  return v;
}

Tensor poisoned(const Shape& s, DType dt) { return full(s, testing::kNaN, TensorOptions(dt).with_device(kCuda)); }

}  // namespace

TEST_CASE("CUDA: batch_norm kernels match the CPU's, outputs poisoned first") {
  uint64_t seed = 1000;
  for (DType dt : testing::kFloatTypes)
    for (const Case& cs : kCases)
      for (bool misaligned : {false, true}) {
        if (misaligned && numel_of(cs.shape) > (int64_t(1) << 20)) continue;
        CAPTURE(dt);
        CAPTURE(to_string(cs.shape));
        CAPTURE(misaligned);
        const int64_t c = cs.shape[1];
        const double eps = 1e-5, momentum = 0.1;
        Tensor x = input(cs.shape, dt, ++seed);
        Tensor w = testing::uniform({c}, 0.5, 2.0, dt, ++seed), b = testing::normal({c}, dt, ++seed);
        Tensor rm0 = testing::normal({c}, dt, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, dt, ++seed);
        Tensor gy = testing::normal(cs.shape, dt, ++seed);
        Tensor xg = misaligned ? misaligned_cuda(x) : x.to(kCuda);
        Tensor gyg = misaligned ? misaligned_cuda(gy) : gy.to(kCuda);
        Tensor wg = w.to(kCuda), bg = b.to(kCuda);

        for (bool training : {true, false}) {
          if (training && !cs.training) continue;
          CAPTURE(training);
          // Per-channel values: the batch's (with the running update) or the running ones.
          Tensor mean = training ? empty({c}, dt) : rm0.clone(), invstd = empty({c}, dt);
          Tensor rm = rm0.clone(), rv = rv0.clone();
          Tensor mean_g = training ? poisoned({c}, dt) : rm0.to(kCuda), invstd_g = poisoned({c}, dt);
          Tensor rm_g = rm0.to(kCuda), rv_g = rv0.to(kCuda);
          if (training) {
            kb::cpu::batch_norm_stats(x, mean, invstd, eps, rm, rv, momentum);
            kb::cuda::batch_norm_stats(xg, mean_g, invstd_g, eps, rm_g, rv_g, momentum);
            check_close(mean_g, mean, sum_tolerance(dt), "mean");
            check_close(invstd_g, invstd, sum_tolerance(dt), "invstd");
            check_close(rm_g, rm, sum_tolerance(dt), "running_mean");
            check_close(rv_g, rv, sum_tolerance(dt), "running_var");
          } else {
            kb::cpu::batch_norm_invstd(rv, invstd, eps);
            kb::cuda::batch_norm_invstd(rv_g, invstd_g, eps);
            check_same(invstd_g, invstd, "invstd from running_var");
          }
          // From here on both devices get the CPU's per-channel values, so
          // the elementwise passes are compared on their own.
          mean_g = mean.to(kCuda);
          invstd_g = invstd.to(kCuda);

          // Endings: 0 none, 1 ReLU, 2 residual add, 3 residual add + ReLU
          // (the fused ones with the affine parameters only).
          for (int ending = 0; ending < 5; ++ending) {
            const bool affine = ending != 4, relu = ending == 1 || ending == 3, with_res = ending == 2 || ending == 3;
            CAPTURE(affine);
            CAPTURE(relu);
            CAPTURE(with_res);
            const Tensor wc = affine ? w : Tensor(), bc = affine ? b : Tensor();
            const Tensor wgc = affine ? wg : Tensor(), bgc = affine ? bg : Tensor();
            const Tensor r = with_res ? testing::normal(cs.shape, dt, ++seed) : Tensor();
            const Tensor rg = !with_res ? Tensor() : misaligned ? misaligned_cuda(r) : r.to(kCuda);
            Tensor y = empty(cs.shape, dt), y_g = poisoned(cs.shape, dt);
            kb::cpu::batch_norm_apply(x, mean, invstd, wc, bc, r, relu, y);
            kb::cuda::batch_norm_apply(xg, mean_g, invstd_g, wgc, bgc, rg, relu, y_g);
            check_same(y_g, y, "y");
            const Tensor yo = relu ? y : Tensor(), yo_g = relu ? y_g : Tensor();

            Tensor gx = empty(cs.shape, dt), gw = empty({c}, dt), gb = empty({c}, dt);
            Tensor gx_g = poisoned(cs.shape, dt), gw_g = poisoned({c}, dt), gb_g = poisoned({c}, dt);
            Tensor gr = with_res ? empty(cs.shape, dt) : Tensor(), gr_g = with_res ? poisoned(cs.shape, dt) : Tensor();
            kb::cpu::batch_norm_backward(gy, yo, x, mean, invstd, wc, training, gx, gw, gb, gr);
            kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wgc, training, gx_g, gw_g, gb_g, gr_g);
            if (training)
              check_close(gx_g, gx, value_tolerance(dt), "gx");
            else
              check_same(gx_g, gx, "gx");
            check_close(gw_g, gw, sum_tolerance(dt), "gweight");
            check_close(gb_g, gb, sum_tolerance(dt), "gbias");
            if (with_res) check_same(gr_g, gr, "gresidual");

            // Each gradient alone (the others undefined) gives the same values.
            Tensor gx_only = poisoned(cs.shape, dt), gb_only = poisoned({c}, dt);
            kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wgc, training, gx_only, Tensor(), Tensor(),
                                          Tensor());
            check_same(gx_only, gx_g.to(kCPU), "gx alone");
            kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wgc, training, Tensor(), Tensor(), gb_only,
                                          Tensor());
            check_same(gb_only, gb_g.to(kCPU), "gbias alone");
            if (with_res) {
              Tensor gr_only = poisoned(cs.shape, dt);
              kb::cuda::batch_norm_backward(gyg, yo_g, xg, mean_g, invstd_g, wgc, training, Tensor(), Tensor(),
                                            Tensor(), gr_only);
              check_same(gr_only, gr, "gresidual alone");
            }
            if (relu && !with_res) {
              // The mask recomputed from x instead of read from y: the same bits.
              Tensor gx_x = poisoned(cs.shape, dt), gw_x = poisoned({c}, dt), gb_x = poisoned({c}, dt);
              kb::cuda::batch_norm_backward(gyg, Tensor(), xg, mean_g, invstd_g, wgc, training, gx_x, gw_x, gb_x,
                                            Tensor(), true, bgc);
              check_same(gx_x, gx_g.to(kCPU), "gx, mask from x");
              check_same(gw_x, gw_g.to(kCPU), "gweight, mask from x");
              check_same(gb_x, gb_g.to(kCPU), "gbias, mask from x");
              // And without the affine parameters (no weight, no bias).
              Tensor y0 = poisoned(cs.shape, dt);
              kb::cuda::batch_norm_apply(xg, mean_g, invstd_g, Tensor(), Tensor(), Tensor(), true, y0);
              Tensor gx_r = poisoned(cs.shape, dt), gb_r = poisoned({c}, dt);
              Tensor gx_0 = poisoned(cs.shape, dt), gb_0 = poisoned({c}, dt);
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

TEST_CASE("CUDA: batch_norm kernels give the same bits from run to run") {
  for (DType dt : testing::kFloatTypes)
    for (const Shape& s : {Shape{256, 64, 32, 32}, Shape{8, 2048, 4, 4}}) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const int64_t c = s[1];
      Tensor x = input(s, dt, 77).to(kCuda), gy = testing::normal(s, dt, 78).to(kCuda);
      Tensor w = testing::uniform({c}, 0.5, 2.0, dt, 79).to(kCuda);
      std::vector<std::vector<double>> runs[2];
      for (auto& r : runs) {
        Tensor mean = poisoned({c}, dt), invstd = poisoned({c}, dt),
               rm = zeros({c}, TensorOptions(dt).with_device(kCuda)),
               rv = ones({c}, TensorOptions(dt).with_device(kCuda));
        kb::cuda::batch_norm_stats(x, mean, invstd, 1e-5, rm, rv, 0.1);
        Tensor gx = poisoned(s, dt), gw = poisoned({c}, dt), gb = poisoned({c}, dt);
        kb::cuda::batch_norm_backward(gy, Tensor(), x, mean, invstd, w, true, gx, gw, gb, Tensor());
        r = {host(mean), host(invstd), host(rm), host(rv), host(gx), host(gw), host(gb)};
      }
      CHECK(runs[0] == runs[1]);
    }
}

#endif  // LRT_HAVE_CUDA

TEST_CASE("CUDA: lrt::batch_norm forward, running statistics and backward match the CPU") {
  uint64_t seed = 2000;
  for (DType dt : testing::kFloatTypes)
    for (const Case& cs : kCases)
      for (bool training : {true, false})
        for (bool fused : {false, true}) {
        if (training && !cs.training) continue;
        // In float32 the batch statistics differ between devices in the last
        // bits, which can flip the ReLU mask of an output next to zero (then
        // a whole gradient value differs); the kernel test above compares
        // the fused kernels with both devices given the same statistics.
        if (fused && training && dt == DType::Float32) continue;
        CAPTURE(dt);
        CAPTURE(to_string(cs.shape));
        CAPTURE(training);
        CAPTURE(fused);
        const int64_t c = cs.shape[1];
        const Tensor x0 = input(cs.shape, dt, ++seed), gy = testing::normal(cs.shape, dt, ++seed);
        const Tensor w0 = testing::uniform({c}, 0.5, 2.0, dt, ++seed), b0 = testing::normal({c}, dt, ++seed);
        const Tensor rm0 = testing::normal({c}, dt, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, dt, ++seed);
        const Tensor res0 = testing::normal(cs.shape, dt, ++seed);
        struct Run {
          Tensor y, rm, rv, gx, gw, gb, gr;
        };
        auto run = [&](Device dev) {
          Tensor x = x0.to(dev).detach().set_requires_grad(true);
          Tensor w = w0.to(dev).detach().set_requires_grad(true), b = b0.to(dev).detach().set_requires_grad(true);
          Tensor res = res0.to(dev).detach().set_requires_grad(true);
          Run r{Tensor(), rm0.to(dev).clone(), rv0.to(dev).clone(), Tensor(), Tensor(), Tensor(), Tensor()};
          // Two calls, so the running statistics are updated twice; fused:
          // the block ending relu(bn(x) + residual).
          auto call = [&] {
            return fused ? batch_norm_act(x, w, b, r.rm, r.rv, training, res, true, 0.1)
                         : batch_norm(x, w, b, r.rm, r.rv, training, 0.1);
          };
          call();
          r.y = call();
          r.y.backward(gy.to(dev));
          r.gx = x.grad();
          r.gw = w.grad();
          r.gb = b.grad();
          r.gr = fused ? res.grad() : Tensor();
          return r;
        };
        const Run want = run(kCPU), got = run(kCuda);
        if (training) {
          check_close(got.y, want.y, value_tolerance(dt), "y");
          check_close(got.rm, want.rm, sum_tolerance(dt), "running_mean");
          check_close(got.rv, want.rv, sum_tolerance(dt), "running_var");
          check_close(got.gx, want.gx, value_tolerance(dt), "gx");
        } else {
          check_same(got.y, want.y, "y");
          check_same(got.rm, want.rm, "running_mean unchanged");
          check_same(got.rv, want.rv, "running_var unchanged");
          check_same(got.gx, want.gx, "gx");
        }
        check_close(got.gw, want.gw, sum_tolerance(dt), "gweight");
        check_close(got.gb, want.gb, sum_tolerance(dt), "gbias");
        if (fused && training)
          check_close(got.gr, want.gr, value_tolerance(dt), "gresidual");
        else if (fused)
          check_same(got.gr, want.gr, "gresidual");
        }
}

#if LRT_HAVE_CUDA

TEST_CASE("CUDA: cuDNN's batch norm (set_bn_cudnn) matches the CPU, forward, running statistics and backward") {
  // Where cuDNN takes the case (else lrt's kernels run: the same check).
  // cuDNN sums in its own order and precision (float for float32 and
  // bfloat16 data), so its results are within a rounding of the CPU's
  // rather than its bits: 1e-4 for float32 (norm-wise; statistics of up to
  // 80 values a channel); bfloat16 y and gradients round once each way
  // (2^-7 norm-wise: 8e-3), the statistics and the per-channel gradients
  // being float32 (2e-3).
  struct Restore {
    ~Restore() { set_bn_cudnn(false); }
  } restore;
  set_bn_cudnn(true);
  uint64_t seed = 3000;
  const Shape shapes[] = {{4, 8, 5, 4}, {2, 16, 3, 3}, {3, 6, 2, 3}};
  for (const DType dt : {DType::Float32, DType::BFloat16})
    for (const MemoryFormat fmt : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
      for (const Shape& shape : shapes)
        for (int ending = 0; ending < 3; ++ending) {  // none, ReLU, residual add + ReLU
          if (dt == DType::BFloat16 && fmt == MemoryFormat::Contiguous) continue;
          const bool relu = ending > 0, add = ending == 2;
          CAPTURE(dt);
          CAPTURE(to_string(shape));
          CAPTURE(fmt == MemoryFormat::ChannelsLast);
          CAPTURE(ending);
          const int64_t c = shape[1];
          const DType pt = dt == DType::BFloat16 ? DType::Float32 : dt;  // the per-channel values' type
          const Tensor x0 = input(shape, DType::Float32, ++seed), gy0 = testing::normal(shape, DType::Float32, ++seed);
          const Tensor res0 = testing::normal(shape, DType::Float32, ++seed);
          const Tensor w0 = testing::uniform({c}, 0.5, 2.0, pt, ++seed), b0 = testing::normal({c}, pt, ++seed);
          const Tensor rm0 = testing::normal({c}, pt, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, pt, ++seed);
          struct Run {
            Tensor y, rm, rv, gx, gw, gb, gr;
          };
          // The same values on both devices (rounded to dt first), in fmt
          // on CUDA.
          const auto on = [&](const Tensor& t, Device dev) {
            const Tensor v = t.to(dt).to(dev);
            return dev.is_cuda() ? v.contiguous(fmt) : v;
          };
          auto run = [&](Device dev) {
            Tensor x = on(x0, dev).detach().set_requires_grad(true);
            Tensor res = on(res0, dev).detach().set_requires_grad(true);
            Tensor w = w0.to(dev).detach().set_requires_grad(true), b = b0.to(dev).detach().set_requires_grad(true);
            Run r{Tensor(), rm0.to(dev).clone(), rv0.to(dev).clone(), Tensor(), Tensor(), Tensor(), Tensor()};
            r.y = batch_norm_act(x, w, b, r.rm, r.rv, true, add ? res : Tensor(), relu, 0.1);
            r.y.backward(on(gy0, dev));
            r.gx = x.grad();
            r.gw = w.grad();
            r.gb = b.grad();
            r.gr = add ? res.grad() : Tensor();
            return r;
          };
          const Run want = run(kCPU), got = run(kCuda);
          // cuDNN was asked, and ran in the mode found for the case, or
          // refused it and lrt's kernels ran: the fused ops are asked for
          // only on NHWC data, the add with C a multiple of 4, in the
          // persistent mode, which NCHW data never runs in (the emulated
          // cuDNN takes every other case).
          const Tensor like = empty(shape, TensorOptions(dt).with_device(kCuda), fmt);
          const std::string mode = kb::cuda::batch_norm_cudnn_mode(like, relu, add);
          CAPTURE(mode);
          CHECK((mode == "persistent" || mode == "spatial" || mode == "refused"));
#if defined(LRT_EMULATED_CUDA)
          const bool nhwc = fmt == MemoryFormat::ChannelsLast;
          CHECK(mode == (relu && (!nhwc || (add && c % 4 != 0)) ? "refused" : nhwc ? "persistent" : "spatial"));
#endif
          CHECK(memory_format_of(got.y) == fmt);
          const double value_tol = dt == DType::BFloat16 ? 8e-3 : 1e-4;
          const double sum_tol = dt == DType::BFloat16 ? 2e-3 : 1e-4;
          const auto f32 = [](const Tensor& t) { return t.to(DType::Float32); };
          check_close(f32(got.y), f32(want.y), value_tol, "y");
          check_close(got.rm, want.rm, sum_tol, "running_mean");
          check_close(got.rv, want.rv, sum_tol, "running_var");
          check_close(f32(got.gx), f32(want.gx), value_tol, "gx");
          check_close(got.gw, want.gw, sum_tol, "gweight");
          check_close(got.gb, want.gb, sum_tol, "gbias");
          if (add) check_close(f32(got.gr), f32(want.gr), value_tol, "gresidual");
        }
  // For the log: what cuDNN took (on a GPU, whether it takes the fused ops
  // for bfloat16 and float32 data at all; it documents them for float16).
  std::string modes;
  for (const auto& [m, n] : kb::cuda::batch_norm_cudnn_modes()) modes += " " + m + ": " + std::to_string(n) + ";";
  MESSAGE("cuDNN's batch-norm cases so far (the process's):", modes);
}

#if defined(LRT_EMULATED_CUDA)
// Over the emulated cuDNN alone, which counts what it is asked (a GPU build
// has no such count): the plans of the convolutions and of cuDNN's batch
// norm (and of a convolution's bias) make an eager training step's cuDNN
// calls, after the first step, the runs alone.
TEST_CASE("CUDA (emulated cuDNN): eager steps after the first build no descriptors and ask cuDNN no sizes or searches") {
  using emulated_cudnn::record;
  struct Restore {
    ~Restore() { set_bn_cudnn(false); }
  } restore;
  set_bn_cudnn(true);
  for (const MemoryFormat fmt : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
    CAPTURE(fmt == MemoryFormat::ChannelsLast);
    // The small net, and a convolution with a bias in front of it.
    Generator gen(12);
    auto net = std::make_shared<Sequential>();
    net->push_back(std::make_shared<Conv2d>(Conv2dConfig{2, 2, 3, 1, 1, 1, true}, &gen));
    net->push_back(testing::small_net(11, 8));
    net->to(kCuda);
    const Tensor y = from_vector<int64_t>({0, 1, 2, 3, 0, 1}, {6}).to(kCuda);
    const auto step = [&](uint64_t seed) {
      net->zero_grad();
      const Tensor x = testing::normal({6, 2, 5, 5}, DType::Float32, seed, kCuda).contiguous(fmt);
      cross_entropy(net->forward(x), y).backward();
    };
    step(1);
    const auto before = record();
    step(2);
    step(3);
    const auto& after = record();
    CHECK(after.tensor_descriptors == before.tensor_descriptors);
    CHECK(after.searches == before.searches);
    CHECK(after.heuristics == before.heuristics);
    CHECK(after.bn_size_queries == before.bn_size_queries);
    // The work itself ran: cuDNN's batch norm forward and backward, and the
    // convolutions' passes (the first's input gradient is not asked for), a
    // step.
    CHECK(after.bn_runs == before.bn_runs + 4);
    CHECK(after.runs.size() == before.runs.size() + 10);
  }
}
#endif

#endif  // LRT_HAVE_CUDA

}  // namespace lrt

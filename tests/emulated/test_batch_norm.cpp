// The CUDA batch-norm kernels and their launchers (kernels/cuda/batch_norm.cu)
// on the emulated grid (emulated/grid.h), against the CPU kernels: NCHW and
// channels_last, float32, float64 and bfloat16, aligned and misaligned
// tensors, every ending and every combination of gradients asked for, on
// emulated devices of 132 SMs (an H200's count) and of 2, so the reductions
// take one block a channel, several, and the finishing merges, and the
// elementwise passes both their fixed-channel and their per-pack paths.
// Outputs are poisoned with NaN first, so an unwritten element shows.
//
// Tolerances are the CUDA parity suites' (tests/layers/cuda/
// test_batch_norm_parity.cpp, test_channels_last_parity.cpp,
// test_mixed_precision_parity.cpp), for the same reasons: the statistics and
// the backward sums accumulate in double in another order than the CPU's
// (1e-6 relative for float32 and bfloat16 data, 1e-11 for float64), the
// training-mode input gradient takes its coefficients from those sums (1e-5,
// 1e-11; bfloat16 2^-7), and every elementwise pass given the CPU's
// per-channel values computes each element with the CPU's operations, so y,
// the eval-mode input gradient and the residual's gradient are its bits.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "emulated/checks.h"
#include "emulated/grid.h"
#include "kernels/batch_norm.h"
#include "testing.h"

namespace lrt {

namespace {

namespace kb = kernels;
using emulated_checks::check_close;
using emulated_checks::check_same;
using testing::host;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

double sum_tolerance(DType dt) { return dt == DType::Float64 ? 1e-11 : 1e-6; }
double value_tolerance(DType dt) {
  return dt == DType::Float64 ? 1e-11 : dt == DType::BFloat16 ? 1.0 / 128 : 1e-5;
}

// Where the emulated kernels read and write: t's values in the layout asked
// for, at an aligned address or one value past one (a view into a larger
// buffer), as a CUDA tensor would sit.
struct Placement {
  bool channels_last;
  bool misaligned;

  Tensor operator()(const Tensor& t) const {
    const bool cl = channels_last && t.dim() == 4;
    if (!misaligned) return cl ? t.contiguous(kCL).detach() : t.clone();
    Tensor buf = empty({t.numel() + 1}, TensorOptions(t.dtype()));
    Tensor v = buf.slice(0, 1, t.numel() + 1);
    if (cl) {
      v = v.reshape({t.size(0), t.size(2), t.size(3), t.size(1)}).transpose(1, 3).transpose(2, 3);
    } else {
      v = v.reshape(t.shape());
    }
    v.copy_(t);
    return v;
  }
  // A tensor of NaN of shape s, placed.
  Tensor poisoned(const Shape& s, DType dt) const { return (*this)(full(s, testing::kNaN, TensorOptions(dt))); }
};

Tensor poisoned_channels(int64_t c, DType dt) { return full({c}, testing::kNaN, TensorOptions(dt)); }

Tensor random(const Shape& s, DType dt, uint64_t seed) {
  const Tensor t = testing::normal(s, DType::Float32, seed);
  return dt == DType::Float64 ? testing::normal(s, dt, seed) : t.to(dt);
}

struct Case {
  Shape shape;
  bool training;  // false: eval mode only (a batch of one)
};

// NCHW: {32, 3, 16, 16} and {64, 2, 16, 16} split each channel over several
// blocks, {64, 2, 48, 48} over 18 to 72 (on 132 SMs), so every lane of the
// finishing merge's warp holds partials, some several; HW 35 and 6 take one
// value at a time; {37, 6} is a 2-D input.
const Case kNchwCases[] = {{{32, 3, 16, 16}, true}, {{64, 2, 16, 16}, true}, {{64, 2, 48, 48}, true},
                           {{8, 64, 4, 4}, true},   {{4, 3, 5, 7}, true},    {{37, 6}, true},
                           {{2, 1, 3, 2}, true},    {{1, 3, 5, 7}, false}};
// channels_last: 96 and 40 channels take two a lane and 16-byte packs; 3
// (odd) one a lane; 130 channels make the elementwise passes find each
// pack's channels (no grid's thread count is a multiple of 130); 2048
// channels are 32 tiles of a reduction block; {16, 96, 6, 6} has 576 rows,
// {80, 8, 8, 8} 5120, in 40 ranges on 132 SMs (the finishing merge again).
const Case kNhwcCases[] = {{{16, 96, 6, 6}, true}, {{80, 8, 8, 8}, true},  {{3, 40, 5, 5}, true},
                           {{4, 3, 5, 7}, true},   {{2, 6, 1, 9}, true},   {{2, 130, 3, 3}, true},
                           {{2, 2048, 2, 2}, true}, {{1, 3, 5, 7}, false}};

void check_kernels(DType dt, const Case& cs, Placement at, uint64_t& seed) {
  const Shape& s = cs.shape;
  const DType ct = dt == DType::BFloat16 ? DType::Float32 : dt;  // per-channel dtype
  const int64_t c = s[1];
  const double eps = 1e-5, momentum = 0.1;
  const Tensor x = random(s, dt, ++seed) * 1.5 + 0.25, gy = random(s, dt, ++seed);
  const Tensor w = testing::uniform({c}, 0.5, 2.0, ct, ++seed), b = testing::normal({c}, ct, ++seed);
  const Tensor rm0 = testing::normal({c}, ct, ++seed), rv0 = testing::uniform({c}, 0.5, 3.0, ct, ++seed);
  const Tensor xe = at(x), gye = at(gy);
  if (at.channels_last && s.size() == 4) REQUIRE(memory_format_of(xe) == kCL);

  for (bool training : {true, false}) {
    if (training && !cs.training) continue;
    CAPTURE(training);
    // Per-channel values: the batch's (with the running update) or the running ones.
    Tensor mean = training ? empty({c}, TensorOptions(ct)) : rm0.clone(), invstd = empty({c}, TensorOptions(ct));
    Tensor rm = rm0.clone(), rv = rv0.clone();
    if (training) {
      Tensor mean_e = poisoned_channels(c, ct), invstd_e = poisoned_channels(c, ct);
      Tensor rm_e = rm0.clone(), rv_e = rv0.clone();
      kb::cpu::batch_norm_stats(x, mean, invstd, eps, rm, rv, momentum);
      kb::emulated::batch_norm_stats(xe, mean_e, invstd_e, eps, rm_e, rv_e, momentum);
      check_close(mean_e, mean, sum_tolerance(dt), "mean");
      check_close(invstd_e, invstd, sum_tolerance(dt), "invstd");
      check_close(rm_e, rm, sum_tolerance(dt), "running_mean");
      check_close(rv_e, rv, sum_tolerance(dt), "running_var");
    } else {
      Tensor invstd_e = poisoned_channels(c, ct);
      kb::cpu::batch_norm_invstd(rv, invstd, eps);
      kb::emulated::batch_norm_invstd(rv, invstd_e, eps);
      check_same(invstd_e, invstd, "invstd from running_var");
    }
    // From here on both get the CPU's per-channel values, so the
    // elementwise passes are compared on their own.

    // Endings: 0 none, 1 ReLU, 2 residual add, 3 residual add + ReLU, 4 none
    // without the affine parameters.
    for (int ending = 0; ending < 5; ++ending) {
      const bool affine = ending != 4, relu = ending == 1 || ending == 3, with_res = ending == 2 || ending == 3;
      CAPTURE(ending);
      const Tensor wc = affine ? w : Tensor(), bc = affine ? b : Tensor();
      const Tensor r = with_res ? random(s, dt, ++seed) : Tensor();
      const Tensor re = with_res ? at(r) : Tensor();
      Tensor y = empty(s, TensorOptions(dt)), y_e = at.poisoned(s, dt);
      kb::cpu::batch_norm_apply(x, mean, invstd, wc, bc, r, relu, y);
      kb::emulated::batch_norm_apply(xe, mean, invstd, wc, bc, re, relu, y_e);
      check_same(y_e, y, "y");
      const Tensor yo = relu ? y : Tensor(), yo_e = relu ? y_e : Tensor();

      Tensor gx = empty(s, TensorOptions(dt)), gw = empty({c}, TensorOptions(ct)), gb = empty({c}, TensorOptions(ct));
      Tensor gr = with_res ? empty(s, TensorOptions(dt)) : Tensor();
      Tensor gx_e = at.poisoned(s, dt), gw_e = poisoned_channels(c, ct), gb_e = poisoned_channels(c, ct);
      Tensor gr_e = with_res ? at.poisoned(s, dt) : Tensor();
      kb::cpu::batch_norm_backward(gy, yo, x, mean, invstd, wc, training, gx, gw, gb, gr);
      kb::emulated::batch_norm_backward(gye, yo_e, xe, mean, invstd, wc, training, gx_e, gw_e, gb_e, gr_e);
      if (training)
        check_close(gx_e, gx, value_tolerance(dt), "gx");
      else
        check_same(gx_e, gx, "gx (eval)");
      check_close(gw_e, gw, sum_tolerance(dt), "gweight");
      check_close(gb_e, gb, sum_tolerance(dt), "gbias");
      if (with_res) check_same(gr_e, gr, "gresidual");

      // Each gradient alone (the others undefined): the same values.
      Tensor gx_only = at.poisoned(s, dt), gb_only = poisoned_channels(c, ct);
      kb::emulated::batch_norm_backward(gye, yo_e, xe, mean, invstd, wc, training, gx_only, Tensor(), Tensor(),
                                        Tensor());
      check_same(gx_only, gx_e, "gx alone");
      kb::emulated::batch_norm_backward(gye, yo_e, xe, mean, invstd, wc, training, Tensor(), Tensor(), gb_only,
                                        Tensor());
      check_same(gb_only, gb_e, "gbias alone");
      if (with_res) {
        // Without the sums pass the input-gradient pass masks gy itself.
        Tensor gr_only = at.poisoned(s, dt);
        kb::emulated::batch_norm_backward(gye, yo_e, xe, mean, invstd, wc, training, Tensor(), Tensor(), Tensor(),
                                          gr_only);
        check_same(gr_only, gr, "gresidual alone");
      }
      if (relu && !with_res) {
        // The mask recomputed from x instead of read from y: the same bits.
        Tensor gx_x = at.poisoned(s, dt), gw_x = poisoned_channels(c, ct), gb_x = poisoned_channels(c, ct);
        kb::emulated::batch_norm_backward(gye, Tensor(), xe, mean, invstd, wc, training, gx_x, gw_x, gb_x, Tensor(),
                                          true, bc);
        check_same(gx_x, gx_e, "gx, mask from x");
        check_same(gw_x, gw_e, "gweight, mask from x");
        check_same(gb_x, gb_e, "gbias, mask from x");
      }
    }
  }
}

}  // namespace

TEST_CASE("emulated grid: CUDA batch-norm kernels match the CPU's, NCHW and channels_last, on devices of 132 and 2 SMs") {
  uint64_t seed = 7000;
  for (int sms : {132, 2}) {
    const emulated_grid::ScopedSmCount device(sms);
    for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
      for (bool channels_last : {false, true})
        for (const Case& cs : channels_last ? kNhwcCases : kNchwCases)
          for (bool misaligned : {false, true}) {
            if (misaligned && numel_of(cs.shape) > (int64_t(1) << 16)) continue;  // the small shapes show it
            CAPTURE(sms);
            CAPTURE(dt);
            CAPTURE(channels_last);
            CAPTURE(to_string(cs.shape));
            CAPTURE(misaligned);
            check_kernels(dt, cs, Placement{channels_last, misaligned}, seed);
          }
  }
}

}  // namespace lrt

// Batch normalisation kernels: the per-channel statistics, the normalisation
// and the backward pass, with their math written once here for the CPU loops
// (kernels/cpu/batch_norm.cpp) and the CUDA kernels (kernels/cuda/
// batch_norm.cu).
//
// The normalisation can end in a residual add and a ReLU in the same pass
// (y = relu(bn(x) + residual), ResNet's block endings), and its backward then
// takes the ReLU's output y for the mask and writes the residual's gradient
// too: one read of x and residual and one write of y instead of three passes
// and two intermediate tensors. Without a residual the backward can instead
// recompute the mask from x, which it reads anyway (relu_from_x).
//
// Conventions. x is contiguous and viewed as (N, C, HW): (N, C, H, W) with
// HW = H * W, or (N, C) with HW = 1; channel c of sample n is a run of HW
// values. On CUDA x may instead be channels_last (NHWC), viewed as (N * HW,
// C): a pixel's C values side by side (kernels/cuda/batch_norm.cu).
// mean and invstd (C) hold the batch mean and 1 / sqrt(var + eps) in
// the parameters' dtype, x's (float32 for a bfloat16 x); running_mean and
// running_var (C) too. Reductions accumulate in
// double whatever x's dtype. The variance comes from per-thread (per-task on
// the CPU) sums shifted by the run's first value, merged with Chan et al.'s
// pairwise formula: one read of x, and no E[x^2] - E[x]^2 cancellation (by
// Samuelson's inequality the shift is within sqrt(n) standard deviations of
// the mean, so the shifted sums lose at most log2(n) bits of double's 53).
// Partial results merge in a fixed order set by the shape alone, so results
// do not depend on thread counts or scheduling.
//
// Per-element products and sums are rounded one at a time (no fused
// multiply-add) so that, given the same per-channel values, CPU and CUDA give
// the same bits: eval mode, whose per-channel values come from the running
// statistics, agrees exactly.
//
// The entry points assume checked arguments (layers/batch_norm.cpp checks
// shapes, dtypes and devices): x, y, gy, gx of one shape, the (C) tensors
// contiguous, everything on x's device; the activations contiguous in x's
// memory format and x non-empty (check_bn_layout, which each entry point runs); the activations (x, y, gy,
// gx, residual) of x's dtype, the (C) tensors of x's or, for a bfloat16 x,
// float32. bfloat16 values are computed on in float (see the kernels).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>

#include "core/hd.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace lrt::kernels {

// The layout rule of the entry points: every activation given (x, residual,
// y; gy, relu_out, gx, gresidual) contiguous in x's memory format, which may
// be channels_last only where the kernels read it (nhwc_ok: CUDA).
// An empty input is refused (the layers handle empty batches themselves).
inline void check_bn_layout(const Tensor& x, std::initializer_list<const Tensor*> activations, bool nhwc_ok) {
  LRT_CHECK(x.numel() > 0, "batch_norm: the kernels take a non-empty input, got ", to_string(x.shape()));
  const MemoryFormat f = memory_format_of(x);
  LRT_CHECK(nhwc_ok || f == MemoryFormat::Contiguous,
            "batch_norm: the CPU kernels take NCHW tensors, got a channels_last input");
  LRT_CHECK(x.is_contiguous(f), "batch_norm: the input must be contiguous (NCHW or channels_last)");
  for (const Tensor* t : activations)
    LRT_CHECK(!t->defined() || t->is_contiguous(f), "batch_norm: every activation must be ", to_string(f),
              " like the input");
}

// relu_from_x (batch_norm_backward) stands for relu_out, and only for a
// block without a residual.
inline void check_relu_mask_source(const Tensor& relu_out, bool relu_from_x, const Tensor& gresidual) {
  LRT_CHECK(!relu_from_x || (!relu_out.defined() && !gresidual.defined()),
            "batch_norm_backward: relu_from_x recomputes the ReLU's mask of a block without a residual; it takes "
            "no relu_out or gresidual");
}

// ---- rounding one operation at a time ----
template <class T>
LRT_HD T bn_mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <class T>
LRT_HD T bn_add(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// ---- statistics ----
// The partial-result structs are plain aggregates (zeroed with {}), as CUDA
// shared memory takes no constructors.
//
// Sums of one run of values shifted by its first value.
struct BnShiftedSums {
  double shift, s1, s2;
  int64_t n;
};

LRT_HD BnShiftedSums bn_shifted_start(double first) { return BnShiftedSums{first, 0.0, 0.0, 0}; }

LRT_HD void bn_accumulate(BnShiftedSums& s, double x) {
  const double d = x - s.shift;
  s.s1 += d;
  s.s2 += d * d;
  s.n += 1;
}

// ---- bfloat16 on the GPU: short runs summed in float ----
// A GPU's double-precision units take few conversions and adds a cycle
// (Hopper: 16 float-to-double conversions and 64 double adds or
// multiply-adds a multiprocessor a cycle, against 128 float operations), so
// converting and summing every value of a bfloat16 tensor in double costs
// about as much time as reading it. The CUDA reductions over bfloat16
// therefore sum each short run of values (one pack or one unrolled group,
// at most kBnFloatRun) in float and add the run's sums to the double ones:
// two conversions a run instead of one a value. For bfloat16 values x -
// shift is exact in float where the two are within 2^15 of each other in
// magnitude (x - mean, the mean being a float, rounds once); each square,
// product and partial sum then rounds once to float (2^-24 of the run's
// shifted sums). The variance is a difference of those sums, so its
// relative error grows with how far the shift lies from the mean: about
// 2^-24 (1 + k^2) for a shift k standard deviations away, small for
// typical data (k of a few), up to 2^-24 n in the worst case Samuelson's
// inequality allows (k = sqrt(n)). Values beyond about 1e19 from the shift
// (a diverging run) overflow the float squares: the batch variance is then
// infinite where double sums would keep it finite. The CPU reference keeps
// summing every value in double.
constexpr int kBnFloatRun = 8;

struct BnFloatSums {
  float s1, s2;
  int n;
};

LRT_HD void bn_run_accumulate(BnFloatSums& r, float x, float shift) {
  const float d = x - shift;
  r.s1 += d;
  r.s2 += d * d;
  r.n += 1;
}

// Adds the run's sums to s (same shift) and empties the run.
LRT_HD void bn_run_flush(BnShiftedSums& s, BnFloatSums& r) {
  s.s1 += static_cast<double>(r.s1);
  s.s2 += static_cast<double>(r.s2);
  s.n += r.n;
  r = BnFloatSums{};
}

// Count, mean and sum of squared deviations from the mean.
struct BnMoments {
  double n, mean, m2;
};

LRT_HD BnMoments bn_moments(const BnShiftedSums& s) {
  BnMoments m{};
  if (s.n == 0) return m;
  m.n = static_cast<double>(s.n);
  const double d = s.s1 / m.n;
  m.mean = s.shift + d;
  const double m2 = s.s2 - s.s1 * d;
  m.m2 = m2 > 0.0 ? m2 : 0.0;  // rounding may leave a tiny negative for constant runs
  return m;
}

// a = a merged with b (Chan, Golub and LeVeque's pairwise update).
LRT_HD void bn_merge(BnMoments& a, const BnMoments& b) {
  if (b.n == 0.0) return;
  if (a.n == 0.0) {
    a = b;
    return;
  }
  const double n = a.n + b.n, delta = b.mean - a.mean, wb = b.n / n;
  a.mean += delta * wb;
  a.m2 += b.m2 + delta * delta * a.n * wb;
  a.n = n;
}

LRT_HD double bn_invstd(double var, double eps) { return 1.0 / math::sqrt(var + eps); }

// PyTorch's update: running = momentum * batch + (1 - momentum) * running.
LRT_HD double bn_running(double running, double batch, double momentum) {
  return momentum * batch + (1.0 - momentum) * running;
}

// The per-channel results of the statistics pass, in T. The running
// variance takes the unbiased variance m2 / (n - 1); normalising uses the
// biased m2 / n. (n > 1 is checked by the caller.)
template <class T>
LRT_HD void bn_finish_stats(const BnMoments& m, double eps, double momentum, T* mean, T* invstd, T* running_mean,
                            T* running_var) {
  *mean = static_cast<T>(m.mean);
  *invstd = static_cast<T>(bn_invstd(m.m2 / m.n, eps));
  if (running_mean) {
    *running_mean = static_cast<T>(bn_running(static_cast<double>(*running_mean), m.mean, momentum));
    *running_var = static_cast<T>(bn_running(static_cast<double>(*running_var), m.m2 / (m.n - 1.0), momentum));
  }
}

// ---- forward ----
// y = (x - mean) * scale + shift with scale = invstd * weight, shift = bias.
template <class T>
LRT_HD T bn_scale(const T* invstd, const T* weight, int64_t c) {
  return weight ? bn_mul(invstd[c], weight[c]) : invstd[c];
}

template <class T>
LRT_HD T bn_apply(T x, T mean, T scale, T shift) {
  return bn_add(bn_mul(x - mean, scale), shift);
}

// The fused ending: an optional residual added, then an optional ReLU, with
// the same rounding and NaN handling as the separate add and relu ops, so
// fused and unfused float32/float64 results are the same bits. (bfloat16
// rounds once at the end here, where separate ops round after each.)
template <class T>
LRT_HD T bn_epilogue(T v, const T* residual, bool relu) {
  if (residual) v = bn_add(v, *residual);
  return relu ? (v > T(0) ? v : T(0)) : v;
}

// ---- backward ----
// The gradient reaching the normalisation through the fused ReLU, whose
// output was y (the relu op's backward rule).
template <class T>
LRT_HD T bn_relu_grad(T gy, T y) {
  return y > T(0) ? gy : T(0);
}

// The same ReLU's mask recomputed from the normalisation's input, for a
// block without a residual: the output batch_norm_apply stored (the same
// operations on the same values, rounded to the stored type S) is positive.
// The backward then reads x, which it needs anyway, instead of the output.
template <class S, class T>
LRT_HD bool bn_relu_kept(T x, T mean, T scale, T shift) {
  const T y = bn_epilogue(bn_apply(x, mean, scale, shift), static_cast<const T*>(nullptr), true);
  return static_cast<T>(static_cast<S>(y)) > T(0);
}

// Per-channel sums of gy and gy * (x - mean).
struct BnGradSums {
  double gy, gy_xmu;
};

LRT_HD void bn_accumulate_grad(BnGradSums& s, double gy, double x, double mean) {
  s.gy += gy;
  s.gy_xmu += gy * (x - mean);
}

// The same in float for a short run of bfloat16 values (see BnFloatSums).
struct BnGradFloatSums {
  float gy, gy_xmu;
};

LRT_HD void bn_run_accumulate_grad(BnGradFloatSums& r, float gy, float x, float mean) {
  r.gy += gy;
  r.gy_xmu += gy * (x - mean);
}

LRT_HD void bn_run_flush_grad(BnGradSums& s, BnGradFloatSums& r) {
  s.gy += static_cast<double>(r.gy);
  s.gy_xmu += static_cast<double>(r.gy_xmu);
  r = BnGradFloatSums{};
}

LRT_HD void bn_merge_grad(BnGradSums& a, const BnGradSums& b) {
  a.gy += b.gy;
  a.gy_xmu += b.gy_xmu;
}

// With batch statistics, mean and invstd depend on x:
//   gx = scale * (gy - mean(gy) - xhat * mean(gy * xhat)),  xhat = (x - mean) invstd
//      = scale * (gy - mean_gy - (x - mean) * k),  k = invstd^2 sum(gy (x - mean)) / n.
// With running statistics they are constants and gx = scale * gy.
// gweight = sum(gy * xhat) and gbias = sum(gy) either way.
template <class T>
struct BnGradCoef {
  T scale, mean_gy, k;
};

template <class T>
LRT_HD void bn_finish_grad(const BnGradSums& s, double n, T invstd, const T* weight, int64_t c, BnGradCoef<T>* coef,
                           T* gweight, T* gbias) {
  const double is = static_cast<double>(invstd);
  if (gweight) *gweight = static_cast<T>(s.gy_xmu * is);
  if (gbias) *gbias = static_cast<T>(s.gy);
  if (coef) {
    const double w = weight ? static_cast<double>(weight[c]) : 1.0;
    coef->scale = static_cast<T>(w * is);
    coef->mean_gy = static_cast<T>(s.gy / n);
    coef->k = static_cast<T>(is * is * s.gy_xmu / n);
  }
}

template <class T>
LRT_HD T bn_grad_input(T gy, T x, T mean, const BnGradCoef<T>& coef) {
  return bn_mul((gy - coef.mean_gy) - bn_mul(x - mean, coef.k), coef.scale);
}

template <class T>
LRT_HD T bn_grad_input_eval(T gy, T scale) {
  return bn_mul(gy, scale);
}

// ---- entry points ----
// batch_norm_stats: mean and invstd of each channel over N and HW; when
//   running_mean and running_var are defined, updates them in place with
//   momentum (unbiased variance). N * HW > 1.
// batch_norm_invstd: invstd = 1 / sqrt(var + eps) per channel (eval mode).
// batch_norm_apply: y = (x - mean) * invstd * weight + bias; weight and bias
//   may be undefined (1 and 0). Then, when defined, + residual (x's shape);
//   then, when relu, max(y, 0).
// batch_norm_backward: from gy (x's shape) and the mean and invstd forward
//   used, writes whichever of gx, gweight, gbias, gresidual is defined.
//   training: mean and invstd were the batch's (they depend on x); else the
//   running ones. relu_out: forward's output when it ended in a ReLU
//   (undefined otherwise); gy is masked by relu_out > 0 first. gresidual
//   receives that masked gradient (the residual's, as it was added).
//   relu_from_x: the forward ended in a ReLU with no residual, and the mask
//   is recomputed from x (bn_relu_kept, with mean, invstd, weight and bias
//   as batch_norm_apply had them) instead of read from relu_out, which is
//   then undefined: the same gradients, one tensor less to read.
//   The CUDA kernels pick their vector width from every tensor a pass
//   reads or writes, so the same bits hold where the tensors share their
//   16-byte alignment (the layers' fresh allocations always do): a
//   misaligned relu_out or gresidual narrows the loads and changes the
//   order of the sums, hence the last bits of the reductions.
#define LRT_BATCH_NORM_DECLS                                                                                      \
  void batch_norm_stats(const Tensor& x, const Tensor& mean, const Tensor& invstd, double eps,                   \
                        const Tensor& running_mean, const Tensor& running_var, double momentum);                  \
  void batch_norm_invstd(const Tensor& var, const Tensor& invstd, double eps);                                    \
  void batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,          \
                        const Tensor& bias, const Tensor& residual, bool relu, const Tensor& y);                  \
  void batch_norm_backward(const Tensor& gy, const Tensor& relu_out, const Tensor& x, const Tensor& mean,         \
                           const Tensor& invstd, const Tensor& weight, bool training, const Tensor& gx,           \
                           const Tensor& gweight, const Tensor& gbias, const Tensor& gresidual,                  \
                           bool relu_from_x = false, const Tensor& bias = Tensor());

namespace cpu {
LRT_BATCH_NORM_DECLS
}  // namespace cpu

namespace cuda {
LRT_BATCH_NORM_DECLS
}  // namespace cuda

#undef LRT_BATCH_NORM_DECLS

// ---- cuDNN's batch norm (CUDA; chosen with lrt::set_bn_cudnn) ----
// Training mode through cuDNN's legacy functions with their fused ReLU and
// residual add (kernels/cuda/cudnn_batch_norm.cu, which says which mode
// runs where), for a 4-D x in either memory format, weight and bias defined:
// batch_norm_cudnn_forward: y = relu?(bn(x) [+ residual]); mean and invstd
//   as batch_norm_stats writes them (the batch mean and 1 / sqrt(var +
//   eps)), running_mean and running_var (when defined) updated likewise
//   (momentum, unbiased variance); *reserve becomes the reserve space the
//   backward reads (the ReLU's mask; undefined where there is none).
//   Returns false, having written nothing, where cuDNN refuses the shape,
//   type, layout and ops (kept: it is asked once; the fused ReLU and add
//   are asked for only on NHWC data, the add with C a multiple of 4): the
//   caller then runs lrt's kernels.
// batch_norm_cudnn_backward: from gy and the forward's x, y (read after a
//   ReLU), mean, invstd and reserve space, writes gx, gweight, gbias and,
//   after a residual add, gresidual: all of them, defined by the caller.
// Their sums are cuDNN's, in its order and precision: not the bits of lrt's
// kernels (which the CPU shares), and maybe not the same from run to run.
namespace cuda {
bool batch_norm_cudnn_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual,
                              bool relu, double eps, const Tensor& running_mean, const Tensor& running_var,
                              double momentum, const Tensor& y, const Tensor& mean, const Tensor& invstd,
                              Tensor* reserve);
void batch_norm_cudnn_backward(const Tensor& gy, const Tensor& x, const Tensor& y, const Tensor& weight,
                               const Tensor& bias, bool relu, bool residual, const Tensor& mean, const Tensor& invstd,
                               double eps, const Tensor& reserve, const Tensor& gx, const Tensor& gweight,
                               const Tensor& gbias, const Tensor& gresidual);
// What cuDNN's batch norm runs as for x's device, dtype, shape and memory
// format with these ops: "persistent", "spatial", "refused" (lrt's kernels
// run instead), or "" where no forward has asked yet; and how many of the
// keys asked so far came to each.
std::string batch_norm_cudnn_mode(const Tensor& x, bool relu, bool residual);
std::map<std::string, int> batch_norm_cudnn_modes();
}  // namespace cuda

}  // namespace lrt::kernels

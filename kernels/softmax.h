// Row-wise log-softmax and cross-entropy over (rows, classes) tensors: the math
// shared by the CPU loops (kernels/cpu/softmax.cpp) and the CUDA kernels
// (kernels/cuda/softmax.cu), and their entry points.
//
// Stability: a row is shifted by its max before exp, so logits of any
// magnitude give finite results. Row sums (of exp, and of gradients)
// accumulate in double. A row's log-sum-exp is kept as its two parts, max and
// log(sum exp(x - max)), and applied as (x - max) - log_sum in double: added
// into one number, the small log_sum would round away against a huge max
// (logits of 1e30 in float32, 1e300 in float64). A row holding NaN or +inf
// yields NaN, as in PyTorch.
//
// Row partials take (begin, end, step) so the CPU walks a row in one piece
// and a CUDA warp splits it across its lanes before merging. The checked
// entry points route to kernels::cpu or kernels::cuda; their routing lives in
// kernels/cpu/softmax.cpp, the file every build compiles.
#pragma once

#include <cstdint>
#include <limits>

#include "core/error.h"
#include "core/hd.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace lrt::kernels {

// Max of row[begin], row[begin + step], ... (-inf when empty; NaNs skipped,
// they reach the result through the exp sum).
template <class T>
LRT_HD T row_max_part(const T* row, int64_t begin, int64_t end, int64_t step) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = begin; j < end; j += step)
    if (row[j] > m) m = row[j];
  return m;
}

// Sum of exp(row[j] - max) over the same elements, exp in T, sum in double.
template <class T>
LRT_HD double row_exp_sum_part(const T* row, T max, int64_t begin, int64_t end, int64_t step) {
  double s = 0.0;
  for (int64_t j = begin; j < end; j += step) s += static_cast<double>(math::exp(static_cast<T>(row[j] - max)));
  return s;
}

template <class T>
LRT_HD double row_sum_part(const T* row, int64_t begin, int64_t end, int64_t step) {
  double s = 0.0;
  for (int64_t j = begin; j < end; j += step) s += static_cast<double>(row[j]);
  return s;
}

// A row's log-sum-exp in two parts: log_softmax(x) = (x - max) - log_sum.
struct RowLse {
  double max, log_sum;
};
// Saved as a float64 (rows, 2) tensor and read back as RowLse.
static_assert(sizeof(RowLse) == 2 * sizeof(double));

template <class T>
LRT_HD RowLse row_lse(T max, double exp_sum) {
  return {static_cast<double>(max), math::log(exp_sum)};
}

// log_softmax(x) in double.
template <class T>
LRT_HD double log_softmax_double(T x, const RowLse& r) {
  return (static_cast<double>(x) - r.max) - r.log_sum;
}

template <class T>
LRT_HD T log_softmax_value(T x, const RowLse& r) {
  return static_cast<T>(log_softmax_double(x, r));
}

// d/dx of log_softmax: gx = gy - softmax * sum(gy), softmax = exp(y).
template <class T>
LRT_HD T log_softmax_grad(T gy, T y, double gy_sum) {
  return static_cast<T>(static_cast<double>(gy) - static_cast<double>(math::exp(y)) * gy_sum);
}

// -log_softmax(x)[label].
template <class T>
LRT_HD T cross_entropy_loss(T x_label, const RowLse& r) {
  return static_cast<T>(-log_softmax_double(x_label, r));
}

// d loss / d x = (softmax(x) - onehot(label)) * g.
template <class T>
LRT_HD T cross_entropy_grad(T x, const RowLse& r, bool is_label, T g) {
  const double p = static_cast<double>(math::exp(static_cast<T>(log_softmax_double(x, r))));
  return static_cast<T>((p - (is_label ? 1.0 : 0.0)) * static_cast<double>(g));
}

LRT_HD bool label_in_range(int64_t label, int64_t classes) { return label >= 0 && label < classes; }

// The error both devices raise for the first (lowest) row with a bad label.
[[noreturn]] inline void throw_bad_label(int64_t label, int64_t classes, int64_t row) {
  LRT_THROW("cross_entropy: label ", label, " out of range [0, ", classes, ") at row ", row);
}

// ---- entry points ----
// Each checks its tensors (contiguous, one device, one floating dtype, 2-D
// (rows, classes) with agreeing sizes; labels int64 (rows); lse float64
// (rows, 2), each row's RowLse {max, log_sum}; loss and gloss (rows) in the
// logits' dtype), then runs the CPU loop or the CUDA kernel of the tensors'
// device. Outputs are written, never accumulated into.
// y = log_softmax(x), row by row.
void log_softmax_forward(const Tensor& x, const Tensor& y);
// gx = gy - exp(y) * rowsum(gy).
void log_softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx);
// loss[i] = -log_softmax(logits)[i, labels[i]], saving lse for the backward.
// A label outside [0, classes) throws throw_bad_label's error for the first
// such row (the CPU before writing anything, CUDA after its launch, which
// makes the host wait for the device). check_labels false (CUDA): no wait
// and no error; such a row's loss and lse are NaN instead. The CPU always
// checks (it costs no wait there).
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& loss, const Tensor& lse,
                           bool check_labels = true);
// gx[i, j] = (softmax(logits)[i, j] - (j == labels[i])) * gloss[i].
void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, const Tensor& gloss,
                            const Tensor& gx);

// ---- the two implementations (unchecked, identical signatures) ----
#define LRT_SOFTMAX_KERNEL_DECLS                                                                                 \
  void log_softmax_forward(const Tensor& x, const Tensor& y);                                                    \
  void log_softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx);                                \
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& loss, const Tensor& lse,   \
                             bool check_labels);                                                                \
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, const Tensor& gloss, \
                              const Tensor& gx);

namespace cpu {
LRT_SOFTMAX_KERNEL_DECLS
}  // namespace cpu

namespace cuda {
LRT_SOFTMAX_KERNEL_DECLS
}  // namespace cuda

#undef LRT_SOFTMAX_KERNEL_DECLS

}  // namespace lrt::kernels

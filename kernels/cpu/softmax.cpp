// CPU loops (OpenMP, one thread per row) over the log-softmax and
// cross-entropy math of kernels/softmax.h, and the checks and device routing
// of its entry points (here because this file is built in every
// configuration). Each row is summed in one piece in index order, so results
// do not depend on the thread count.
#include <cstdint>

#include "kernels/route.h"
#include "kernels/indexing.h"
#include "kernels/softmax.h"
#include "lrt_config.h"

namespace lrt::kernels {

namespace cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save

template <class T>
RowLse lse_of_row(const T* row, int64_t cols) {
  const T m = row_max_part(row, 0, cols, 1);
  return row_lse(m, row_exp_sum_part(row, m, 0, cols, 1));
}
}  // namespace

void log_softmax_forward(const Tensor& x, const Tensor& y) {
  dispatch_floating(x.dtype(), "log_softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t rows = x.size(0), cols = x.size(1);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
#pragma omp parallel for if (rows * cols > kParallelMin)
    for (int64_t i = 0; i < rows; ++i) {
      const T* row = xp + i * cols;
      const RowLse lse = lse_of_row(row, cols);
      for (int64_t j = 0; j < cols; ++j) yp[i * cols + j] = log_softmax_value(row[j], lse);
    }
  });
}

void log_softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx) {
  dispatch_floating(y.dtype(), "log_softmax_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t rows = y.size(0), cols = y.size(1);
    const T* yp = y.data<T>();
    const T* gyp = gy.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for if (rows * cols > kParallelMin)
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t r = i * cols;
      const double s = row_sum_part(gyp + r, 0, cols, 1);
      for (int64_t j = 0; j < cols; ++j) gxp[r + j] = log_softmax_grad(gyp[r + j], yp[r + j], s);
    }
  });
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& loss, const Tensor& lse,
                           bool /*check_labels: always, it is free here*/) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  const int64_t* lab = labels.data<int64_t>();
  for (int64_t i = 0; i < rows; ++i)
    if (!label_in_range(lab[i], cols)) throw_bad_label(lab[i], cols, i);
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = logits.data<T>();
    T* lp = loss.data<T>();
    auto* sp = reinterpret_cast<RowLse*>(lse.data<double>());
#pragma omp parallel for if (rows * cols > kParallelMin)
    for (int64_t i = 0; i < rows; ++i) {
      const T* row = xp + i * cols;
      sp[i] = lse_of_row(row, cols);
      lp[i] = cross_entropy_loss(row[lab[i]], sp[i]);
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, const Tensor& gloss,
                            const Tensor& gx) {
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t rows = logits.size(0), cols = logits.size(1);
    const T* xp = logits.data<T>();
    const int64_t* lab = labels.data<int64_t>();
    const auto* sp = reinterpret_cast<const RowLse*>(lse.data<double>());
    const T* gp = gloss.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for if (rows * cols > kParallelMin)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        gxp[i * cols + j] = cross_entropy_grad(xp[i * cols + j], sp[i], j == lab[i], gp[i]);
  });
}

}  // namespace cpu

// ------------------------------------------------------------- routing --

namespace {

// t must be a contiguous tensor of `shape` on ref's device, of dtype dt.
void check_tensor(const Tensor& t, const Tensor& ref, const Shape& shape, DType dt, const char* what,
                  const char* op) {
  LRT_CHECK(t.defined(), op, ": ", what, " is undefined");
  detail::check_same_device(t, ref, op);
  LRT_CHECK(t.dtype() == dt && t.shape() == shape, op, ": ", what, " of dtype ", t.dtype(), " and shape ",
            to_string(t.shape()), ", expected ", dt, " ", to_string(shape));
  LRT_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous");
}

void check_rows(const Tensor& x, const char* op) {
  LRT_CHECK(x.defined(), op, ": input is undefined");
  detail::check_floating(x, op);
  LRT_CHECK(x.dim() == 2, op, ": expects a 2-D (rows, classes) tensor, got ", to_string(x.shape()));
  check_tensor(x, x, x.shape(), x.dtype(), "input", op);
}

}  // namespace

void log_softmax_forward(const Tensor& x, const Tensor& y) {
  check_rows(x, "log_softmax_forward");
  check_tensor(y, x, x.shape(), x.dtype(), "output", "log_softmax_forward");
  if (x.numel() == 0) return;
  LRT_ROUTE(x.device(), log_softmax_forward(x, y));
}

void log_softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx) {
  check_rows(y, "log_softmax_backward");
  check_tensor(gy, y, y.shape(), y.dtype(), "gy", "log_softmax_backward");
  check_tensor(gx, y, y.shape(), y.dtype(), "gx", "log_softmax_backward");
  if (y.numel() == 0) return;
  LRT_ROUTE(y.device(), log_softmax_backward(y, gy, gx));
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& loss, const Tensor& lse,
                           bool check_labels) {
  const char* op = "cross_entropy_forward";
  check_rows(logits, op);
  const int64_t rows = logits.size(0);
  check_tensor(labels, logits, {rows}, DType::Int64, "labels", op);
  check_tensor(loss, logits, {rows}, logits.dtype(), "loss", op);
  check_tensor(lse, logits, {rows, 2}, DType::Float64, "lse", op);
  if (rows == 0) return;
  LRT_ROUTE(logits.device(), cross_entropy_forward(logits, labels, loss, lse, check_labels));
}

void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, const Tensor& gloss,
                            const Tensor& gx) {
  const char* op = "cross_entropy_backward";
  check_rows(logits, op);
  const int64_t rows = logits.size(0);
  check_tensor(labels, logits, {rows}, DType::Int64, "labels", op);
  check_tensor(lse, logits, {rows, 2}, DType::Float64, "lse", op);
  check_tensor(gloss, logits, {rows}, logits.dtype(), "gloss", op);
  check_tensor(gx, logits, logits.shape(), logits.dtype(), "gx", op);
  if (logits.numel() == 0) return;
  LRT_ROUTE(logits.device(), cross_entropy_backward(logits, labels, lse, gloss, gx));
}

#undef LRT_SOFTMAX_ROUTE

}  // namespace lrt::kernels

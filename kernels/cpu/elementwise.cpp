// CPU loops (OpenMP) over the per-element math of kernels/elementwise.h:
// fill, copy/cast, unary and binary ops. Contiguous operands take a plain
// loop the compiler vectorises; others go through OffsetCalc.
#include <cstdint>
#include <cstring>

#include "kernels/cast.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save
}

void fill(const Tensor& out, double value) {
  dispatch_all(out.dtype(), "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = static_cast<T>(value);
    const int64_t n = out.numel();
    if (out.is_contiguous()) {
      T* p = out.data<T>();
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) p[i] = v;
      return;
    }
    const auto calc = make_offset_calc<1>(out.shape(), {out.strides()});
    T* p = out.data<T>();
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      int64_t off[1];
      calc.get(i, off);
      p[off[0]] = v;
    }
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype()));
    return;
  }
  dispatch_all(src.dtype(), "copy", [&](auto stag) {
    using S = typename decltype(stag)::type;
    dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      const S* s = src.data<S>();
      D* d = dst.data<D>();
      const int64_t n = dst.numel();
      if (src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape()) {
#pragma omp parallel for if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i) d[i] = cast_value<D>(s[i]);
        return;
      }
      const auto calc = make_offset_calc<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())});
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        int64_t off[2];
        calc.get(i, off);
        d[off[0]] = cast_value<D>(s[off[1]]);
      }
    });
  });
}

void unary(UnaryOp op, const Tensor& in, const Tensor& out, double scalar) {
  dispatch_floating_bf16(in.dtype(), "unary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_unary(op, [&](auto optag) {
      constexpr UnaryOp OP = decltype(optag)::value;
      const compute_t<T> s = static_cast<compute_t<T>>(scalar);
      const T* x = in.data<T>();
      T* y = out.data<T>();
      const int64_t n = out.numel();
      if (in.is_contiguous()) {
#pragma omp parallel for if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i) y[i] = unary_at<OP, T>(x[i], s);
        return;
      }
      const auto calc = make_offset_calc<1>(in.shape(), {in.strides()});
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        int64_t off[1];
        calc.get(i, off);
        y[i] = unary_at<OP, T>(x[off[0]], s);
      }
    });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_floating_bf16(a.dtype(), "binary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_binary(op, [&](auto optag) {
      constexpr BinaryOp OP = decltype(optag)::value;
      const T* x = a.data<T>();
      const T* w = b.data<T>();
      T* y = out.data<T>();
      const int64_t n = out.numel();
      if (a.is_contiguous() && b.is_contiguous() && a.shape() == out.shape() && b.shape() == out.shape()) {
#pragma omp parallel for if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i) y[i] = binary_at<OP, T>(x[i], w[i]);
        return;
      }
      const auto calc =
          make_offset_calc<2>(out.shape(), {broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())});
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        int64_t off[2];
        calc.get(i, off);
        y[i] = binary_at<OP, T>(x[off[0]], w[off[1]]);
      }
    });
  });
}

void copy_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts) {
  for (size_t i = 0; i < srcs.size(); ++i)
    if (srcs[i].numel() > 0) copy(srcs[i], dsts[i]);
}

}  // namespace lrt::kernels::cpu

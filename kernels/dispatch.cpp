// Argument checks shared by both devices, then the CPU or CUDA
// implementation of the tensors' device.
#include <algorithm>

#include "core/error.h"
#include "kernels/route.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"
#include "lrt_config.h"

namespace lrt::kernels {

Strides broadcast_strides(const Tensor& t, const Shape& shape) {
  const Shape& s = t.shape();
  LRT_CHECK(s.size() <= shape.size(), "cannot broadcast shape ", to_string(s), " to ", to_string(shape));
  Strides out(shape.size(), 0);
  const size_t lead = shape.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) {
    LRT_CHECK(s[i] == shape[lead + i] || s[i] == 1, "cannot broadcast shape ", to_string(s), " to ",
              to_string(shape));
    out[lead + i] = (s[i] == 1 && shape[lead + i] != 1) ? 0 : t.strides()[i];
  }
  return out;
}

namespace {

void check_defined(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts) LRT_CHECK(t->defined(), op, ": undefined tensor");
}

}  // namespace

void fill(const Tensor& out, double value) {
  check_defined({&out}, "fill");
  LRT_ROUTE(out.device(), fill(out, value));
}

void copy(const Tensor& src, const Tensor& dst) {
  check_defined({&src, &dst}, "copy");
  detail::check_same_device(src, dst, "copy");
  broadcast_strides(src, dst.shape());
  if (src.numel() == 0 || dst.numel() == 0) return;
  LRT_ROUTE(dst.device(), copy(src, dst));
}

void copy_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts) {
  LRT_CHECK(srcs.size() == dsts.size(), "copy_each: ", srcs.size(), " sources for ", dsts.size(), " destinations");
  if (srcs.empty()) return;
  for (size_t i = 0; i < srcs.size(); ++i) {
    check_defined({&srcs[i], &dsts[i]}, "copy_each");
    detail::check_same_device(srcs[i], dsts[i], "copy_each");
    detail::check_same_device(dsts[0], dsts[i], "copy_each");
    LRT_CHECK(srcs[i].shape() == dsts[i].shape(), "copy_each: source ", i, " of shape ", to_string(srcs[i].shape()),
              " for a destination of shape ", to_string(dsts[i].shape()));
  }
  LRT_ROUTE(dsts[0].device(), copy_each(srcs, dsts));
}

void unary(UnaryOp op, const Tensor& in, const Tensor& out, double scalar) {
  check_defined({&in, &out}, "unary");
  detail::check_same_device(in, out, "unary");
  detail::check_same_dtype(in, out, "unary");
  detail::check_floating_or_bf16(in, "unary");
  LRT_CHECK(in.shape() == out.shape(), "unary: input shape ", to_string(in.shape()), " and output shape ",
            to_string(out.shape()), " differ");
  LRT_CHECK(out.is_contiguous(), "unary: output must be contiguous");
  if (out.numel() == 0) return;
  LRT_ROUTE(out.device(), unary(op, in, out, scalar));
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_defined({&a, &b, &out}, "binary");
  detail::check_same_device(a, b, "binary");
  detail::check_same_device(a, out, "binary");
  detail::check_same_dtype(a, b, "binary");
  detail::check_same_dtype(a, out, "binary");
  detail::check_floating_or_bf16(a, "binary");
  LRT_CHECK(out.is_contiguous(), "binary: output must be contiguous");
  broadcast_strides(a, out.shape());
  broadcast_strides(b, out.shape());
  if (out.numel() == 0) return;
  LRT_ROUTE(out.device(), binary(op, a, b, out));
}

void reduce(ReduceOp op, const Tensor& in, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
            double scale) {
  check_defined({&in, &out}, "reduce");
  detail::check_same_device(in, out, "reduce");
  detail::check_floating(in, "reduce");
  LRT_CHECK(in.is_contiguous() && out.is_contiguous(), "reduce: input and output must be contiguous");
  LRT_CHECK(outer >= 0 && r >= 0 && inner >= 0 && outer * r * inner == in.numel(), "reduce: (", outer, ", ", r,
            ", ", inner, ") does not cover an input of ", in.numel(), " elements");
  LRT_CHECK(out.numel() == outer * inner, "reduce: output has ", out.numel(), " elements, expected ",
            outer * inner);
  LRT_CHECK(out.dtype() == (reduce_returns_index(op) ? DType::Int64 : in.dtype()), "reduce: output dtype ",
            out.dtype(), " does not fit the reduction");
  if (out.numel() == 0) return;
  LRT_ROUTE(out.device(), reduce(op, in, outer, r, inner, out, scale));
}

void nonfinite_flag(const std::vector<Tensor>& ins, const Tensor& flag) {
  check_defined({&flag}, "nonfinite_flag");
  LRT_CHECK(flag.numel() == 1 && flag.dtype() == DType::Float32 && flag.is_contiguous(),
            "nonfinite_flag: the flag must be one float32 value, got ", flag.dtype(), " of shape ",
            to_string(flag.shape()));
  for (const Tensor& t : ins) {
    check_defined({&t}, "nonfinite_flag");
    detail::check_same_device(t, flag, "nonfinite_flag");
    detail::check_floating_or_bf16(t, "nonfinite_flag");
    LRT_CHECK(t.is_contiguous(), "nonfinite_flag: the tensors must be contiguous");
  }
  LRT_ROUTE(flag.device(), nonfinite_flag(ins, flag));
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b, double alpha,
            double beta) {
  check_defined({&a, &b, &out}, "matmul");
  detail::check_same_device(a, b, "matmul");
  detail::check_same_device(a, out, "matmul");
  detail::check_same_dtype(a, b, "matmul");
  detail::check_same_dtype(a, out, "matmul");
  detail::check_floating(a, "matmul");
  LRT_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, "matmul: expects 2-D tensors, got ",
            to_string(a.shape()), ", ", to_string(b.shape()), " and ", to_string(out.shape()));
  LRT_CHECK(a.is_contiguous() && b.is_contiguous() && out.is_contiguous(), "matmul: operands must be contiguous");
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  LRT_CHECK(k == kb && out.size(0) == m && out.size(1) == n, "matmul: shapes ", to_string(a.shape()),
            (trans_a ? "^T" : ""), " @ ", to_string(b.shape()), (trans_b ? "^T" : ""), " -> ",
            to_string(out.shape()), " do not agree");
  if (out.numel() == 0) return;
  if (k == 0) {  // an empty sum: out = beta * out (BLAS libraries reject the zero leading dimensions)
    if (beta == 0.0) fill(out, 0.0);
    else unary(UnaryOp::MulScalar, out, out, beta);
    return;
  }
  LRT_ROUTE(out.device(), matmul(a, b, out, trans_a, trans_b, alpha, beta));
}

void fill_random(RandomKind kind, const Tensor& out, uint64_t seed, uint64_t offset) {
  check_defined({&out}, "fill_random");
  detail::check_floating(out, "fill_random");
  LRT_CHECK(out.is_contiguous(), "fill_random: output must be contiguous");
  if (out.numel() == 0) return;
  LRT_ROUTE(out.device(), fill_random(kind, out, seed, offset));
}

}  // namespace lrt::kernels

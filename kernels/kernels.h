// The kernel entry points: raw computation on tensors that already exist, with
// no autograd. Each function checks its arguments, then runs the CPU loop or
// the CUDA launcher of the tensors' device (kernels::cpu / kernels::cuda hold
// the two implementations, with identical signatures). Outputs are written,
// never resized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace lrt::kernels {

enum class RandomKind { Uniform, Normal };

// out[...] = value (out may be strided).
void fill(const Tensor& out, double value);
// dst[...] = cast(src[...]); src is broadcast to dst's shape; both on one
// device, any layouts, any dtypes with kernels.
void copy(const Tensor& src, const Tensor& dst);
// dsts[i] = cast(srcs[i]) for every pair, as copy(srcs[i], dsts[i]) would
// (same shapes, one device). On CUDA the pairs of a contiguous float32
// source and a bfloat16 destination, contiguous or channels_last, are done
// in one launch (a model's weights rounded for a bfloat16 forward); other
// pairs take a copy each.
void copy_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts);
// out = op(in, scalar); same shape and floating dtype; in may be strided, out
// contiguous.
void unary(UnaryOp op, const Tensor& in, const Tensor& out, double scalar = 0.0);
// out = op(a, b); a and b broadcast to out's shape; one floating dtype; out
// contiguous.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
// Reduces the middle axis of in viewed as (outer, r, inner); in contiguous.
// out is contiguous with outer * inner elements: values times scale for
// Sum/Max/Min (in's dtype), indices for ArgMax/ArgMin (int64).
void reduce(ReduceOp op, const Tensor& in, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
            double scale = 1.0);
// flag (a 0-d float32 tensor) = 1 when any value of any tensor of ins is NaN
// or infinite, else 0: one pass over all of them (on CUDA one launch for up
// to 256 tensors, after zeroing the flag). ins contiguous, floating or
// bfloat16, on flag's device.
void nonfinite_flag(const std::vector<Tensor>& ins, const Tensor& flag);
// out = alpha * op(a) @ op(b) + beta * out, row-major 2-D contiguous tensors,
// op(x) = x^T when the flag is set.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a = false, bool trans_b = false,
            double alpha = 1.0, double beta = 0.0);
// Fills a contiguous floating tensor from the Philox stream (seed, offset):
// element i uses counter offset + i / 4, lane i % 4.
void fill_random(RandomKind kind, const Tensor& out, uint64_t seed, uint64_t offset);

// ---- the two implementations ----
#define LRT_KERNEL_DECLS                                                                          \
  void fill(const Tensor& out, double value);                                                      \
  void copy(const Tensor& src, const Tensor& dst);                                                 \
  void copy_each(const std::vector<Tensor>& srcs, const std::vector<Tensor>& dsts);               \
  void unary(UnaryOp op, const Tensor& in, const Tensor& out, double scalar);                      \
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);                   \
  void reduce(ReduceOp op, const Tensor& in, int64_t outer, int64_t r, int64_t inner,              \
              const Tensor& out, double scale);                                                    \
  void nonfinite_flag(const std::vector<Tensor>& ins, const Tensor& flag);                        \
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool trans_a, bool trans_b,     \
              double alpha, double beta);                                                          \
  void fill_random(RandomKind kind, const Tensor& out, uint64_t seed, uint64_t offset);

namespace cpu {
LRT_KERNEL_DECLS
// The built-in cache-blocked GEMM (used when OpenBLAS is absent; always built
// so it is always tested). Row-major: C = alpha op(A) op(B) + beta C with
// leading dimensions lda, ldb, ldc.
template <class T>
void gemm_blocked(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);
// The GEMM matmul runs (OpenBLAS when built with it, else gemm_blocked), on
// raw row-major buffers with leading dimensions: for kernels that multiply
// parts of tensors, such as the convolution's column matrices.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc);
// Which CPU GEMM matmul uses: "openblas" or "blocked".
const char* gemm_backend();
// The kernels behind it, for reports: OpenBLAS's core name ("SkylakeX", and
// why where lrt chose it: see kernels/cpu/matmul.cpp) or "lrt's blocked
// GEMM". Sets OpenBLAS up if no GEMM has run yet.
std::string gemm_kernels();
}  // namespace cpu

namespace cuda {
LRT_KERNEL_DECLS
}  // namespace cuda

#undef LRT_KERNEL_DECLS

}  // namespace lrt::kernels

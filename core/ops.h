// Differentiable tensor ops: elementwise math with NumPy broadcasting,
// reductions, matmul and the casts between them. Each op checks its inputs
// (shapes, devices, dtypes, naming both sides on a mismatch), runs the kernels
// of the inputs' device, and records a backward closure when autograd needs it.
// Results are new contiguous tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lrt {

// ---- binary, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- with a scalar ----
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(const Tensor& a, double s);  // s - a
Tensor rdiv(const Tensor& a, double s);  // s / a
Tensor pow(const Tensor& a, double exponent);
Tensor clamp_min(const Tensor& a, double lo);

// ---- unary ----
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor square(const Tensor& a);
Tensor reciprocal(const Tensor& a);

// ---- comparisons (not differentiable; 0/1 in the input dtype) ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);

// ---- reductions ----
Tensor sum(const Tensor& a);  // all elements, a 0-d tensor
Tensor sum(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& a);
Tensor min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& a);  // int64 index into the flattened tensor
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
// Sums a broadcast result back down to shape (the gradient of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);
// ts[i].to(dt, formats[i]) for every i (values, layout and gradient the
// same), with the conversions done together where the kernels allow it
// (float32 to bfloat16 on CUDA: one launch for all; see
// kernels::copy_each). Undefined tensors stay undefined. In backward the
// gradients of leaves come back together as well, at the end of the pass
// (record_cast in core/autograd.h: bfloat16 to float32 on CUDA, one launch).
std::vector<Tensor> to_each(const std::vector<Tensor>& ts, DType dt, const std::vector<MemoryFormat>& formats);
// 1 (a 0-d float32 tensor on their device) when any value of any of the
// tensors is NaN or infinite, else 0: one pass over all of them (one launch
// on CUDA), not differentiable. Floating or bfloat16 tensors on one device,
// at least one. Nothing waits for the device.
Tensor nonfinite_flag(const std::vector<Tensor>& tensors);

// ---- linear algebra ----
// 2-D matrix product op(a) @ op(b), op(x) = x^T when the flag is set.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// ---- operators ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(a, s); }

// ---- comparing tensors in tests and tools ----
// max |a - b| over all elements (on the host, in double).
double max_abs_diff(const Tensor& a, const Tensor& b);
// ||a - b|| / ||b|| (in double); 0 when both are zero.
double rel_error(const Tensor& a, const Tensor& b);

}  // namespace lrt

// Strided element addressing shared by the CPU loops and the CUDA kernels:
// OffsetCalc<N> maps a linear index over an output shape to element offsets in
// N operands, each with its own strides (0 where an operand is broadcast).
// The host helpers build it from tensors.
#pragma once

#include <array>
#include <cstdint>

#include "core/dtype.h"
#include "core/hd.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace lrt::kernels {

template <int N>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  LRT_HD void get(int64_t linear, int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

// Strides of t when broadcast to shape (0 on broadcast and missing dims).
Strides broadcast_strides(const Tensor& t, const Shape& shape);

template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<Strides, N>& strides) {
  LRT_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "shape ", to_string(shape), " has more than ", kMaxDims,
            " dimensions");
  OffsetCalc<N> c;
  c.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < c.ndim; ++d) {
    c.sizes[d] = shape[d];
    for (int k = 0; k < N; ++k) c.strides[k][d] = strides[k][d];
  }
  return c;
}

// True when t's elements are laid out contiguously in row-major order.
inline bool is_dense(const Tensor& t) { return t.is_contiguous(); }

template <class T> struct TypeTag { using type = T; };

// Calls f(TypeTag<T>{}) for the C++ type of dtype (float32, float64 only).
template <class F>
void dispatch_floating(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(TypeTag<float>{}); return;
    case DType::Float64: f(TypeTag<double>{}); return;
    default: LRT_THROW(op, ": dtype ", dtype_name(dt), " is not supported (float32 or float64 expected)");
  }
}

// dispatch_floating plus bfloat16 (TypeTag<BFloat16>): the elementwise ops,
// which compute bfloat16 values in float (kernels/elementwise.h).
template <class F>
void dispatch_floating_bf16(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(TypeTag<float>{}); return;
    case DType::Float64: f(TypeTag<double>{}); return;
    case DType::BFloat16: f(TypeTag<BFloat16>{}); return;
    default: LRT_THROW(op, ": dtype ", dtype_name(dt), " is not supported (float32, float64 or bfloat16 expected)");
  }
}

// Calls f(TypeTag<T>{}) for every dtype (fill and copy; bfloat16 is BFloat16).
template <class F>
void dispatch_all(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(TypeTag<float>{}); return;
    case DType::Float64: f(TypeTag<double>{}); return;
    case DType::Int64: f(TypeTag<int64_t>{}); return;
    case DType::UInt8: f(TypeTag<uint8_t>{}); return;
    case DType::BFloat16: f(TypeTag<BFloat16>{}); return;
    default: LRT_THROW(op, ": dtype ", dtype_name(dt), " has no kernels");
  }
}

}  // namespace lrt::kernels

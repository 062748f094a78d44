// bfloat16 on the CPU: the kernels that take bfloat16 (convolution, batch
// normalisation) run their float code on widened copies and round each
// output once, which is what the CUDA kernels compute (float arithmetic on
// bfloat16 storage), up to summation order.
#pragma once

#include "core/tensor.h"

namespace lrt::kernels::cpu {

// A float32 copy of t (undefined stays undefined), outside autograd.
inline Tensor widen(const Tensor& t) { return t.defined() ? t.detach().to(DType::Float32) : Tensor(); }

// An uninitialised float32 tensor of t's shape and device (undefined stays
// undefined).
inline Tensor float_like(const Tensor& t) {
  return t.defined() ? empty(t.shape(), t.options().with_dtype(DType::Float32)) : Tensor();
}

}  // namespace lrt::kernels::cpu

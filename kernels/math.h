// Overloads of the C math functions for float and double that resolve the
// same way on the host and under nvcc, so per-element math can be written once
// in LRT_HD functions. float uses the f-suffixed functions (expf, logf, ...).
#pragma once

#include <cmath>

#include "core/hd.h"

namespace lrt::math {

LRT_HD float exp(float x) { return ::expf(x); }
LRT_HD double exp(double x) { return ::exp(x); }
LRT_HD float log(float x) { return ::logf(x); }
LRT_HD double log(double x) { return ::log(x); }
LRT_HD float sqrt(float x) { return ::sqrtf(x); }
LRT_HD double sqrt(double x) { return ::sqrt(x); }
LRT_HD float tanh(float x) { return ::tanhf(x); }
LRT_HD double tanh(double x) { return ::tanh(x); }
LRT_HD float pow(float x, float y) { return ::powf(x, y); }
LRT_HD double pow(double x, double y) { return ::pow(x, y); }
LRT_HD float abs(float x) { return ::fabsf(x); }
LRT_HD double abs(double x) { return ::fabs(x); }
LRT_HD float cos(float x) { return ::cosf(x); }
LRT_HD double cos(double x) { return ::cos(x); }
LRT_HD float sin(float x) { return ::sinf(x); }
LRT_HD double sin(double x) { return ::sin(x); }
template <class T>
LRT_HD bool isnan(T x) {
  return x != x;
}

// Products and sums rounded on their own. nvcc contracts a * b + c into one
// fused multiply-add by default; host code is built with -ffp-contract=off
// (see CMakeLists.txt). Math that must agree to the last bit on both devices
// uses these.
LRT_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LRT_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

}  // namespace lrt::math

// bfloat16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7
// mantissa bits), the storage type of mixed-precision training. One
// definition for the CPU and CUDA kernels (LRT_HD), bit-exact on both:
//   float -> bfloat16 rounds to nearest, ties to even; infinities and signed
//   zeros are kept, values that round past the largest finite bfloat16
//   become infinity (IEEE overflow under round-to-nearest), and every NaN
//   becomes the quiet NaN 0x7fc0. PyTorch's conversion, bit for bit.
//   bfloat16 -> float is exact.
// Other types convert through float (as in PyTorch), so a double is rounded
// twice; arithmetic is done in float by the kernels, never in bfloat16.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace lrt {

LRT_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

LRT_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Round to nearest even on the 16 dropped bits: add 0x7fff plus the lowest
// kept bit, then truncate; a carry out of the mantissa correctly bumps the
// exponent (up to infinity). On GPUs from sm_80 the hardware's conversion
// (cvt.rn.bf16.f32: the same rounding, subnormals kept, overflow to
// infinity) and the NaN fixup (any NaN to 0x7fc0, as here) take four
// instructions instead of eight.
LRT_HD uint16_t float_to_bfloat16_bits(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint16_t r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
  return (r & 0x7fffu) > 0x7f80u ? static_cast<uint16_t>(0x7fc0u) : r;
#else
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;  // NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
}

LRT_HD float bfloat16_bits_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

struct BFloat16 {
  uint16_t bits;

  BFloat16() = default;
  LRT_HD explicit BFloat16(float f) : bits(float_to_bfloat16_bits(f)) {}
  LRT_HD explicit BFloat16(double d) : BFloat16(static_cast<float>(d)) {}
  LRT_HD explicit operator float() const { return bfloat16_bits_to_float(bits); }

  LRT_HD static BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(BFloat16) == 2, "BFloat16 must be two bytes");

}  // namespace lrt

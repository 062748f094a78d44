// float16 (IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits) as raw
// bits, for code that hands half-precision data to a library (the cuDNN
// probe's fp16 graphs); lrt itself computes in float32 and bfloat16.
//   float -> float16 rounds to nearest, ties to even, subnormals included;
//   values from 65520 up (which round past 65504, the largest finite half)
//   become infinity; infinities and signed zeros are kept; every NaN becomes
//   a quiet NaN (0x7e00 with the sign).
//   float16 -> float is exact.
#pragma once

#include <cstdint>

#include "core/bfloat16.h"
#include "core/hd.h"

namespace lrt {

LRT_HD uint16_t float_to_half_bits(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // 65520 and up: infinity
  if (a >= 0x38800000u) {                                              // 2^-14 and up: a normal half
    // Round the 13 dropped bits to nearest even; a carry out of the
    // mantissa bumps the exponent. The exponent bias goes from 127 to 15.
    const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded >> 13) - (112u << 10)));
  }
  if (a <= 0x33000000u) return static_cast<uint16_t>(sign);  // up to 2^-25 (a tie, to even): zero
  // A subnormal half: the value in units of 2^-24, rounded to nearest even
  // (it may round up to 0x400, the smallest normal, which is its encoding).
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - (a >> 23);  // 14 to 24 here
  const uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  const uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
  return static_cast<uint16_t>(sign | r);
}

LRT_HD float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return bits_float(float_bits(v) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));  // infinity, NaN
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

}  // namespace lrt

// Tests of float16 (core/float16.h) against IEEE binary16 as defined: each
// pattern's value computed in double from its fields, and rounding checked
// against an oracle that searches the patterns for the nearest value (ties
// to the even pattern; from 65520 up, infinity). Every one of the 65,536
// patterns survives a trip through float; hand-picked ties, subnormals,
// overflow, signed zeros and NaNs; and random floats over the whole range.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/float16.h"
#include "core/philox.h"

namespace lrt {
namespace {

// A finite pattern's value, from the definition.
double half_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const double mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -mag : mag;
}

// The nearest half to a finite float, ties to the even pattern, 65520 and
// up to infinity.
uint16_t half_round_oracle(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double x = std::fabs(static_cast<double>(f));
  if (x >= 65520.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;  // the largest pattern whose value is <= x
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (half_value(mid) <= x)
      lo = mid;
    else
      hi = static_cast<uint16_t>(mid - 1);
  }
  if (lo == 0x7bff || half_value(lo) == x) return sign | lo;
  const double below = x - half_value(lo), above = half_value(static_cast<uint16_t>(lo + 1)) - x;
  const uint16_t pick = below < above ? lo : above < below ? static_cast<uint16_t>(lo + 1) : (lo & 1) ? lo + 1 : lo;
  return sign | pick;
}

}  // namespace

TEST_CASE("every float16 value converts to float exactly and back to itself") {
  int nans = 0;
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const auto h = static_cast<uint16_t>(b);
    const float f = half_bits_to_float(h);
    if (((b >> 10) & 0x1f) == 0x1f) {
      if (b & 0x3ff) {
        ++nans;
        CHECK(std::isnan(f));
        CHECK((float_to_half_bits(f) & 0x7fffu) == 0x7e00u);
        CHECK((float_to_half_bits(f) & 0x8000u) == (b & 0x8000u));
      } else {
        CHECK(std::isinf(f));
        CHECK(std::signbit(f) == bool(b & 0x8000u));
        CHECK(float_to_half_bits(f) == h);
      }
      continue;
    }
    if (static_cast<double>(f) != half_value(h)) FAIL_CHECK("pattern ", b, " reads as ", f);
    if (std::signbit(f) != bool(b & 0x8000u)) FAIL_CHECK("pattern ", b, " lost its sign");
    if (float_to_half_bits(f) != h) FAIL_CHECK("pattern ", b, " came back as ", float_to_half_bits(f));
  }
  CHECK(nans == 2 * 1023);
}

TEST_CASE("float to float16 rounds to nearest, ties to even, by the definition") {
  CHECK(float_to_half_bits(1.0f) == 0x3c00);
  CHECK(float_to_half_bits(-2.0f) == 0xc000);
  CHECK(float_to_half_bits(65504.0f) == 0x7bff);
  CHECK(float_to_half_bits(65519.99f) == 0x7bff);
  CHECK(float_to_half_bits(65520.0f) == 0x7c00);  // the tie past the largest half: infinity
  CHECK(float_to_half_bits(-1e9f) == 0xfc00);
  CHECK(float_to_half_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(float_to_half_bits(0.0f) == 0x0000);
  CHECK(float_to_half_bits(-0.0f) == 0x8000);
  CHECK(float_to_half_bits(std::ldexp(1.0f, -14)) == 0x0400);  // the smallest normal
  CHECK(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);  // the smallest subnormal
  CHECK(float_to_half_bits(std::ldexp(1.0f, -25)) == 0x0000);  // a tie: to 0, the even one
  CHECK(float_to_half_bits(std::ldexp(1.5f, -25)) == 0x0001);  // above the tie
  CHECK(float_to_half_bits(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: up to 2, the even one
  CHECK(float_to_half_bits(std::ldexp(5.0f, -25)) == 0x0002);  // 2.5 units: down to 2, the even one
  CHECK(float_to_half_bits(std::ldexp(-5.0f, -25)) == 0x8002);
  CHECK(float_to_half_bits(std::ldexp(1023.5f, -24)) == 0x0400);      // rounds up into the normals
  CHECK(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // a tie: to 1, the even one
  CHECK(float_to_half_bits(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // a tie: up to the even one
  CHECK(float_to_half_bits(2.0f - std::ldexp(1.0f, -12)) == 0x4000);  // the carry bumps the exponent
  CHECK((float_to_half_bits(std::nanf("")) & 0x7fffu) == 0x7e00u);

  // Random floats: the magnitudes of every exponent from 2^-30 to 2^17
  // (subnormals, normals, overflow), either sign.
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    const philox::U32x4 r = philox::block(2026, static_cast<uint64_t>(i));
    const uint32_t exp = 97 + r.x[0] % 48;  // 2^-30 .. 2^17
    const uint32_t bits = (r.x[1] & 0x807fffffu) | (exp << 23);
    const float f = std::bit_cast<float>(bits);
    if (float_to_half_bits(f) != half_round_oracle(f)) {
      FAIL_CHECK("float bits ", bits, " gave ", float_to_half_bits(f), ", not ", half_round_oracle(f));
      break;
    }
    ++checked;
  }
  CHECK(checked == 200000);
}

}  // namespace lrt

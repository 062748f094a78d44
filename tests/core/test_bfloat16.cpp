// Tests of bfloat16 (core/bfloat16.h) and bfloat16 tensors on the CPU:
// every one of the 65,536 values survives a trip through float; rounding of
// random and hand-picked floats against an oracle that picks the nearer of
// the two neighbouring bfloat16 values in double (ties to the even one);
// overflow, NaN, signed zero and subnormals; the double-through-float rule;
// and tensors: conversion both ways, fill, strided copy, item and printing.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/bfloat16.h"
#include "core/ops.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "testing.h"

namespace lrt {

using testing::bf16_round_oracle;

TEST_CASE("every bfloat16 value converts to float and back to itself; NaNs become 0x7fc0") {
  int nans = 0;
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const float f = bfloat16_bits_to_float(static_cast<uint16_t>(b));
    CHECK(std::bit_cast<uint32_t>(f) == b << 16);
    const uint16_t back = float_to_bfloat16_bits(f);
    if (std::isnan(f)) {
      ++nans;
      CHECK(back == 0x7fc0u);
    } else if (back != b) {
      FAIL_CHECK("pattern ", b, " came back as ", back);
    }
  }
  CHECK(nans == 2 * 127);  // exponent all ones, mantissa not zero, either sign
}

TEST_CASE("float to bfloat16 rounds to nearest, ties to even, like the oracle") {
  int64_t ties = 0;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = philox::block(7, static_cast<uint64_t>(i)).x[0];
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    const float f = std::bit_cast<float>(u);
    if (std::isnan(f)) continue;
    ties += (u & 0xffffu) == 0x8000u;
    const uint16_t got = float_to_bfloat16_bits(f), want = bf16_round_oracle(f);
    if (got != want) FAIL_CHECK("float bits ", u, ": got ", got, ", want ", want);
  }
  CHECK(ties > 400000);
}

TEST_CASE("bfloat16 rounding at the edges: overflow, infinities, NaN, zeros, subnormals, ties") {
  const float max_finite = std::bit_cast<float>(0x7f7f0000u);
  CHECK(float_to_bfloat16_bits(max_finite) == 0x7f7fu);
  // Below the halfway point to 2^128 stays finite; halfway (a tie, odd
  // mantissa) and above round to infinity.
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x7f7f7fffu)) == 0x7f7fu);
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x7f7f8000u)) == 0x7f80u);
  CHECK(float_to_bfloat16_bits(std::numeric_limits<float>::max()) == 0x7f80u);
  CHECK(float_to_bfloat16_bits(-std::numeric_limits<float>::max()) == 0xff80u);
  CHECK(float_to_bfloat16_bits(std::numeric_limits<float>::infinity()) == 0x7f80u);
  CHECK(float_to_bfloat16_bits(-std::numeric_limits<float>::infinity()) == 0xff80u);
  CHECK(float_to_bfloat16_bits(std::numeric_limits<float>::quiet_NaN()) == 0x7fc0u);
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0xff800001u)) == 0x7fc0u);  // signalling, negative
  CHECK(float_to_bfloat16_bits(0.0f) == 0x0000u);
  CHECK(float_to_bfloat16_bits(-0.0f) == 0x8000u);
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x00000001u)) == 0x0000u);  // tiny subnormal: to zero
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x00008000u)) == 0x0000u);  // tie, even
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x00018000u)) == 0x0002u);  // tie, odd: up
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x007fffffu)) == 0x0080u);  // largest subnormal: to normal
  CHECK(float_to_bfloat16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80u);        // tie at 1: even (1.0)
  CHECK(float_to_bfloat16_bits(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82u);    // tie, odd: up
  CHECK(float_to_bfloat16_bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81u);
}

TEST_CASE("a double becomes bfloat16 through float, as in PyTorch") {
  // 1 + 2^-8 + 2^-40 rounds to the float 1 + 2^-8, a bfloat16 tie that goes
  // to even (1.0); rounding the double directly would give 1 + 2^-7.
  const double d = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  CHECK(BFloat16(d).bits == 0x3f80u);
  const Tensor t = from_vector<double>({d}, {1}).to(DType::BFloat16);
  CHECK(t.to_vector<double>() == std::vector<double>{1.0});
}

TEST_CASE("bfloat16 tensors: conversion both ways, fill, strided copy, item and printing") {
  const Tensor x = testing::normal({4, 5}, DType::Float32, 3) * 100.0;
  const Tensor b = x.to(DType::BFloat16);
  CHECK(b.dtype() == DType::BFloat16);
  CHECK(b.shape() == x.shape());
  const std::vector<float> xs = x.to_vector<float>(), back = b.to(DType::Float32).to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const uint16_t want = bf16_round_oracle(xs[i]);
    CHECK(std::bit_cast<uint32_t>(back[i]) == static_cast<uint32_t>(want) << 16);
    CHECK(b.data<BFloat16>()[i].bits == want);
  }
  // Through float64 and int64 as well.
  CHECK(b.to(DType::Float64).to_vector<double>() == x.to(DType::BFloat16).to(DType::Float64).to_vector<double>());
  CHECK(from_vector<int64_t>({257, -3}, {2}).to(DType::BFloat16).to_vector<double>() ==
        std::vector<double>{256.0, -3.0});  // 257 needs 9 bits: ties to even

  Tensor f = empty({3}, DType::BFloat16);
  f.fill_(1.5);
  CHECK(f.to_vector<float>() == std::vector<float>{1.5f, 1.5f, 1.5f});
  CHECK(full({1}, -0.375, DType::BFloat16).item<double>() == -0.375);

  // A transposed view copies element by element.
  const Tensor t = b.transpose(0, 1).contiguous();
  const Tensor want = b.to(DType::Float32).transpose(0, 1).contiguous();
  CHECK(t.to(DType::Float32).to_vector<float>() == want.to_vector<float>());

  // bfloat16 to bfloat16 keeps every bit, strided too (a NaN's payload and sign included).
  Tensor nan = empty({2, 2}, DType::BFloat16);
  const uint16_t bits[] = {0x7fa1, 0xffc3, 0x3f80, 0x8001};
  for (int i = 0; i < 4; ++i) nan.data<BFloat16>()[i] = BFloat16::from_bits(bits[i]);
  const Tensor nt = nan.transpose(0, 1).contiguous();
  CHECK(nt.data<BFloat16>()[0].bits == 0x7fa1);
  CHECK(nt.data<BFloat16>()[1].bits == 0x3f80);
  CHECK(nt.data<BFloat16>()[2].bits == 0xffc3);
  CHECK(nt.data<BFloat16>()[3].bits == 0x8001);

  CHECK(f.str().find("bfloat16") != std::string::npos);
  CHECK(f.str().find("1.5") != std::string::npos);
}

}  // namespace lrt

// Tests of core/philox.h and core/random.*: Random123 known-answer vectors for
// Philox4x32-10, the Generator's (seed, offset) bookkeeping, reproducibility,
// the range and moments of rand/randn, and the layout of draws in the stream
// (element i of a draw uses block offset + i / 4, lane i % 4).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "core/random.h"
#include "core/tensor.h"

namespace lrt {

namespace {

void check_block(philox::U32x4 ctr, uint32_t k0, uint32_t k1, philox::U32x4 want) {
  const philox::U32x4 got = philox::philox4x32_10(ctr, k0, k1);
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(got.x[i] == want.x[i]);
  }
}

std::vector<float> draw_uniform(Generator& g, int64_t n) {
  return rand({n}, TensorOptions(DType::Float32), &g).to_vector<float>();
}
std::vector<float> draw_normal(Generator& g, int64_t n) {
  return randn({n}, TensorOptions(DType::Float32), &g).to_vector<float>();
}
std::vector<float> slice_of(const std::vector<float>& v, size_t begin, size_t n) {
  return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(begin),
                            v.begin() + static_cast<std::ptrdiff_t>(begin + n));
}

}  // namespace

TEST_CASE("philox4x32_10 reproduces the Random123 known-answer vectors") {
  check_block({{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  check_block({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
              {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}});
  check_block({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
              {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
}

TEST_CASE("block(seed, n) puts n in the low counter words and seed in the key") {
  const uint64_t seed = 0x0123456789abcdefull, n = 0x0000000500000007ull;
  const philox::U32x4 a = philox::block(seed, n);
  const philox::U32x4 b = philox::philox4x32_10({{0x00000007u, 0x00000005u, 0u, 0u}}, 0x89abcdefu, 0x01234567u);
  for (int i = 0; i < 4; ++i) CHECK(a.x[i] == b.x[i]);
  // Both halves of the seed and of the counter matter.
  CHECK(philox::block(1, 0).x[0] != philox::block(1 + (uint64_t(1) << 32), 0).x[0]);
  CHECK(philox::block(1, 3).x[0] != philox::block(1, 3 + (uint64_t(1) << 32)).x[0]);
}

TEST_CASE("uniform01 keeps the top 24 bits: 0 <= u < 1, exact in float") {
  CHECK(philox::uniform01(0u) == 0.0f);
  CHECK(philox::uniform01(0xffu) == 0.0f);
  CHECK(philox::uniform01(0x100u) == 1.0f / 16777216.0f);
  CHECK(philox::uniform01(0x80000000u) == 0.5f);
  CHECK(philox::uniform01(0xffffffffu) == 16777215.0f / 16777216.0f);
  CHECK(philox::uniform01(0xffffffffu) < 1.0f);
}

TEST_CASE("Generator reserves ceil(n / 4) blocks per draw and returns the starting offset") {
  Generator g(5);
  CHECK(g.seed() == 5);
  CHECK(g.offset() == 0);
  CHECK(g.reserve(1) == 0);
  CHECK(g.offset() == 1);
  CHECK(g.reserve(4) == 1);
  CHECK(g.offset() == 2);
  CHECK(g.reserve(5) == 2);
  CHECK(g.offset() == 4);
  CHECK(g.reserve(0) == 4);
  CHECK(g.offset() == 4);
  CHECK(g.reserve(8) == 4);
  CHECK(g.offset() == 6);
  g.set_offset(100);
  CHECK(g.reserve(3) == 100);
  CHECK(g.offset() == 101);
  g.manual_seed(9);
  CHECK(g.seed() == 9);
  CHECK(g.offset() == 0);
  CHECK(Generator().seed() == 0);

  Generator h(1);
  rand({10}, TensorOptions(DType::Float32), &h);
  CHECK(h.offset() == 3);
  randn({2, 2}, TensorOptions(DType::Float64), &h);
  CHECK(h.offset() == 4);
}

TEST_CASE("draws are the shared Philox transforms at the reserved offset") {
  Generator g(0xdeadbeefcafeull);
  g.set_offset(17);
  const std::vector<float> u = draw_uniform(g, 11);
  const std::vector<float> z = draw_normal(g, 9);
  bool uniform_ok = true, normal_ok = true;
  for (uint64_t i = 0; i < 11; ++i) uniform_ok = uniform_ok && u[i] == philox::uniform_at(0xdeadbeefcafeull, 17, i);
  for (uint64_t i = 0; i < 9; ++i)
    normal_ok = normal_ok && z[i] == static_cast<float>(philox::normal_at(0xdeadbeefcafeull, 20, i));
  CHECK(uniform_ok);
  CHECK(normal_ok);
}

TEST_CASE("four elements at once (uniform4_at, normal4_at) are the one-at-a-time transforms' bits") {
  bool uniform_ok = true, normal_ok = true;
  for (uint64_t j = 0; j < 5000; ++j) {
    float u[4];
    double z[4];
    philox::uniform4_at(0x1234567890abull, 3, j, u);
    philox::normal4_at(0x1234567890abull, 3, j, z);
    for (uint64_t w = 0; w < 4; ++w) {
      uniform_ok = uniform_ok && u[w] == philox::uniform_at(0x1234567890abull, 3, 4 * j + w);
      normal_ok = normal_ok && z[w] == philox::normal_at(0x1234567890abull, 3, 4 * j + w);
    }
  }
  CHECK(uniform_ok);
  CHECK(normal_ok);
}

TEST_CASE("large draws in both float types are the per-element transforms, their last partial block included") {
  const int64_t n = (1 << 16) + 3;  // threaded, and not a whole number of blocks
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    Generator g(77);
    g.set_offset(5);
    const std::vector<double> u = rand({n}, TensorOptions(dt), &g).to_vector<double>();
    const std::vector<double> z = randn({n}, TensorOptions(dt), &g).to_vector<double>();
    const uint64_t z_offset = 5 + static_cast<uint64_t>(n + 3) / 4;
    int64_t bad_u = 0, bad_z = 0;
    for (int64_t i = 0; i < n; ++i) {
      bad_u += u[i] != static_cast<double>(philox::uniform_at(77, 5, static_cast<uint64_t>(i)));
      bad_z += z[i] != static_cast<double>(static_cast<float>(philox::normal_at(77, z_offset, static_cast<uint64_t>(i))));
    }
    CHECK(bad_u == 0);
    CHECK(bad_z == 0);
  }
}

TEST_CASE("the same seed gives the same draws, a different seed different ones") {
  Generator a(1234), b(1234), c(1235);
  const std::vector<float> ra = draw_uniform(a, 1001), rb = draw_uniform(b, 1001), rc = draw_uniform(c, 1001);
  CHECK(ra == rb);
  int same = 0;
  for (size_t i = 0; i < ra.size(); ++i) same += ra[i] == rc[i];
  CHECK(same < 5);
  const std::vector<float> na = draw_normal(a, 1001), nb = draw_normal(b, 1001), nc = draw_normal(c, 1001);
  CHECK(na == nb);
  CHECK(na != nc);
  // A second draw continues the stream instead of repeating the first.
  CHECK(draw_uniform(a, 1001) != ra);

  // The float64 uniform draw holds the same 24-bit values.
  Generator d(1234);
  const std::vector<double> rd = rand({1001}, TensorOptions(DType::Float64), &d).to_vector<double>();
  bool same_values = true;
  for (size_t i = 0; i < rd.size(); ++i) same_values = same_values && rd[i] == static_cast<double>(ra[i]);
  CHECK(same_values);
}

TEST_CASE("manual_seed rewinds the default generator") {
  manual_seed(42);
  CHECK(default_generator().seed() == 42);
  CHECK(default_generator().offset() == 0);
  const std::vector<float> first = rand({64}).to_vector<float>();
  CHECK(default_generator().offset() == 16);
  manual_seed(42);
  CHECK(rand({64}).to_vector<float>() == first);
  CHECK(randn({3, 5}).shape() == Shape{3, 5});
}

TEST_CASE("rand lies in [0, 1) with the moments of a uniform distribution") {
  Generator g(77);
  const std::vector<float> u = draw_uniform(g, 1000000);
  double lo = 1.0, hi = 0.0, sum = 0.0, sq = 0.0;
  for (float x : u) {
    lo = std::min<double>(lo, x);
    hi = std::max<double>(hi, x);
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(u.size()), mean = sum / n, var = sq / n - mean * mean;
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(lo < 1e-4);
  CHECK(hi > 1.0 - 1e-4);
  // Standard errors over 1e6 samples: mean 2.9e-4, variance 7.5e-5; the
  // tolerances are about 7 of them.
  CHECK(std::fabs(mean - 0.5) < 2e-3);
  CHECK(std::fabs(var - 1.0 / 12.0) < 5e-4);
}

TEST_CASE("randn has mean 0, standard deviation 1 and normal tails over 1e6 samples") {
  Generator g(78);
  const std::vector<float> z = draw_normal(g, 1000000);
  double sum = 0.0, sq = 0.0, within1 = 0.0, biggest = 0.0;
  for (float x : z) {
    sum += x;
    sq += static_cast<double>(x) * x;
    within1 += std::fabs(x) < 1.0f;
    biggest = std::max(biggest, std::fabs(static_cast<double>(x)));
  }
  const double n = static_cast<double>(z.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  // Standard errors: mean 1e-3, sd 7e-4, P(|z| < 1) 4.7e-4; tolerances ~5x.
  CHECK(std::fabs(mean) < 5e-3);
  CHECK(std::fabs(sd - 1.0) < 4e-3);
  CHECK(std::fabs(within1 / n - 0.682689492) < 2.5e-3);
  // u1 >= 2^-24 bounds |z| by sqrt(-2 ln 2^-24) = 5.77; 1e6 samples reach past 4.
  CHECK(biggest <= 5.78);
  CHECK(biggest > 4.0);
}

TEST_CASE("draws of multiples of 4 elements are contiguous in the stream") {
  Generator a(31), b(31);
  const std::vector<float> first = draw_uniform(a, 8), second = draw_uniform(a, 7);
  const std::vector<float> whole = draw_uniform(b, 15);
  CHECK(first == slice_of(whole, 0, 8));
  CHECK(second == slice_of(whole, 8, 7));

  Generator c(32), d(32);
  const std::vector<float> n1 = draw_normal(c, 12), n2 = draw_normal(c, 10);
  const std::vector<float> nw = draw_normal(d, 22);
  CHECK(n1 == slice_of(nw, 0, 12));
  CHECK(n2 == slice_of(nw, 12, 10));
}

TEST_CASE("a draw of n elements not a multiple of 4 skips the rest of its last block") {
  Generator a(33), b(33);
  const std::vector<float> first = draw_uniform(a, 5), second = draw_uniform(a, 6);
  const std::vector<float> whole = draw_uniform(b, 14);
  CHECK(first == slice_of(whole, 0, 5));
  CHECK(second == slice_of(whole, 8, 6));  // lanes 5..7 of block 1 are never used
  CHECK(second != slice_of(whole, 5, 6));
}

}  // namespace lrt

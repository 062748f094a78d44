// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011): a counter-based generator, so element i of a draw can be computed
// independently on any device from (seed, counter) alone. The uniform and
// normal transforms below are shared by the CPU loop and the CUDA kernel.
#pragma once

#include <cstdint>
#include <math.h>

#include "core/hd.h"

namespace lrt::philox {

struct U32x4 {
  uint32_t x[4];
};

LRT_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds over counter c with key k (Random123's philox4x32 with R = 10).
LRT_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo(kM0, c.x[0], &hi0);
    const uint32_t lo1 = mulhilo(kM1, c.x[2], &hi1);
    c = U32x4{{hi1 ^ c.x[1] ^ k0, lo1, hi0 ^ c.x[3] ^ k1, lo0}};
  }
  return c;
}

// The four words for counter index n of stream seed.
LRT_HD U32x4 block(uint64_t seed, uint64_t n) {
  return philox4x32_10(U32x4{{static_cast<uint32_t>(n), static_cast<uint32_t>(n >> 32), 0u, 0u}},
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits: exact in float, identical everywhere.
LRT_HD float uniform01(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }

// Element i of a draw: counter offset + i / 4, word i % 4.
LRT_HD float uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
  const U32x4 r = block(seed, offset + i / 4);
  return uniform01(r.x[i % 4]);
}

// Box-Muller over words (2p, 2p+1) of the block: element i gets the cosine
// branch when even, the sine branch when odd. Computed in double so the float
// result is the same on CPU and CUDA except in rare last-bit ties.
// The Box-Muller radius and angle of the word pair (a, b).
LRT_HD void box_muller(uint32_t a, uint32_t b, double* radius, double* angle) {
  const double u1 = (static_cast<double>(a >> 8) + 1.0) * (1.0 / 16777216.0);  // (0, 1]
  const double u2 = static_cast<double>(b >> 8) * (1.0 / 16777216.0);         // [0, 1)
  *radius = ::sqrt(-2.0 * ::log(u1));
  *angle = 6.283185307179586476925 * u2;
}

LRT_HD double normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
  const U32x4 r = block(seed, offset + i / 4);
  const unsigned lane = static_cast<unsigned>(i % 4), pair = lane / 2;
  double radius, angle;
  box_muller(r.x[2 * pair], r.x[2 * pair + 1], &radius, &angle);
  return (lane % 2 == 0) ? radius * ::cos(angle) : radius * ::sin(angle);
}

// Elements 4j .. 4j + 3 of a draw at once (counter offset + j): the same
// operations as uniform_at and normal_at on each, so the same bits, with the
// block generated once and, for normals, each pair's radius once.
LRT_HD void uniform4_at(uint64_t seed, uint64_t offset, uint64_t j, float out[4]) {
  const U32x4 r = block(seed, offset + j);
  for (int w = 0; w < 4; ++w) out[w] = uniform01(r.x[w]);
}

LRT_HD void normal4_at(uint64_t seed, uint64_t offset, uint64_t j, double out[4]) {
  const U32x4 r = block(seed, offset + j);
  for (unsigned pair = 0; pair < 2; ++pair) {
    double radius, angle;
    box_muller(r.x[2 * pair], r.x[2 * pair + 1], &radius, &angle);
    out[2 * pair] = radius * ::cos(angle);
    out[2 * pair + 1] = radius * ::sin(angle);
  }
}

}  // namespace lrt::philox

// Generator: a Philox stream (seed) and a position in it (offset, counted in
// Philox blocks of four 32-bit words). Each draw of n numbers takes
// ceil(n / 4) blocks, so a draw is reproducible from (seed, offset) on any
// device.
#pragma once

#include <cstdint>
#include <mutex>

namespace lrt {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void manual_seed(uint64_t seed);
  void set_offset(uint64_t offset);
  // Reserves the blocks for n numbers and returns the offset they start at.
  uint64_t reserve(uint64_t n);

 private:
  mutable std::mutex mu_;
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

Generator& default_generator();
// Reseeds the default generator (and rewinds it).
void manual_seed(uint64_t seed);

}  // namespace lrt

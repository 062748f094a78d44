// FNV-1a 64 checksums for files lrt writes: weights files (save_weights puts
// one in their metadata) and training checkpoints. Not cryptographic: they
// catch damage (flipped bits, torn writes), not tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lrt {

class Fnv1a64 {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
  }
  // Fixed byte order, so a checksum does not depend on the host.
  void int64_le(int64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i));
    bytes(b, 8);
  }
  void string(const std::string& s) { bytes(s.data(), s.size()); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

// Over every tensor in the given order: its name, dtype name, sizes (int64
// little-endian) and bytes (row-major, from any device).
uint64_t tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors);

// 16 lowercase hex digits.
std::string checksum_hex(uint64_t value);

}  // namespace lrt

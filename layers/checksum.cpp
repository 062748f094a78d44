#include "layers/checksum.h"

#include "core/error.h"

namespace lrt {

uint64_t tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  Fnv1a64 h;
  for (const auto& [name, t] : tensors) {
    LRT_CHECK(t.defined(), "checksum: tensor '", name, "' is undefined");
    const Tensor host = t.to(kCPU).contiguous();
    h.string(name);
    h.string(dtype_name(host.dtype()));
    for (int64_t d : host.shape()) h.int64_le(d);
    h.bytes(host.data_ptr(), static_cast<size_t>(host.numel()) * dtype_size(host.dtype()));
  }
  return h.value();
}

std::string checksum_hex(uint64_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) s[static_cast<size_t>(i)] = digits[value & 0xf];
  return s;
}

}  // namespace lrt

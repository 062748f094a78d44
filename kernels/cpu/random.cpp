// CPU fill from the Philox stream; the per-element transforms are the shared
// ones in core/philox.h, so CPU and CUDA draws agree.
#include "core/philox.h"
#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cpu {

void fill_random(RandomKind kind, const Tensor& out, uint64_t seed, uint64_t offset) {
  dispatch_floating(out.dtype(), "fill_random", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int64_t n = out.numel();
    // Four elements a Philox block (element i is word i % 4 of block
    // offset + i / 4): each block is generated once.
    const int64_t blocks = (n + 3) / 4;
    if (kind == RandomKind::Uniform) {
#pragma omp parallel for if (n > (1 << 14))
      for (int64_t j = 0; j < blocks; ++j) {
        float v[4];
        philox::uniform4_at(seed, offset, static_cast<uint64_t>(j), v);
        for (int64_t w = 0; w < 4 && 4 * j + w < n; ++w) p[4 * j + w] = static_cast<T>(v[w]);
      }
    } else {
#pragma omp parallel for if (n > (1 << 14))
      for (int64_t j = 0; j < blocks; ++j) {
        double v[4];
        philox::normal4_at(seed, offset, static_cast<uint64_t>(j), v);
        for (int64_t w = 0; w < 4 && 4 * j + w < n; ++w) p[4 * j + w] = static_cast<T>(static_cast<float>(v[w]));
      }
    }
  });
}

}  // namespace lrt::kernels::cpu

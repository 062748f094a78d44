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
    if (kind == RandomKind::Uniform) {
#pragma omp parallel for if (n > (1 << 14))
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(philox::uniform_at(seed, offset, static_cast<uint64_t>(i)));
    } else {
#pragma omp parallel for if (n > (1 << 14))
      for (int64_t i = 0; i < n; ++i)
        p[i] = static_cast<T>(static_cast<float>(philox::normal_at(seed, offset, static_cast<uint64_t>(i))));
    }
  });
}

}  // namespace lrt::kernels::cpu

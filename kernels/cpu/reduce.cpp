// CPU reductions over the (outer, r, inner) view, using the shared math of
// kernels/reduce.h. Sums accumulate in double; long rows are split into
// chunks merged in order, so results do not depend on the thread count.
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/indexing.h"
#include "kernels/kernels.h"

namespace lrt::kernels::cpu {

namespace {

template <ReduceOp OP, class T>
void reduce_typed(const T* x, int64_t outer, int64_t r, int64_t inner, const Tensor& out, double scale) {
  const int64_t n_out = outer * inner;
  auto finish = [&](int64_t o, const ReduceState& st) {
    if constexpr (reduce_returns_index(OP)) out.data<int64_t>()[o] = st.i;
    else out.data<T>()[o] = static_cast<T>(st.v * scale);
  };
  if (n_out >= 64 || r < 4096) {
    // Many outputs: one thread per output, the row read with stride inner.
#pragma omp parallel for if (n_out * r > (1 << 15))
    for (int64_t o = 0; o < n_out; ++o) {
      const int64_t i0 = o / inner, j = o % inner;
      const T* row = x + i0 * r * inner + j;
      ReduceState st = reduce_init<OP>();
      for (int64_t k = 0; k < r; ++k) reduce_step<OP>(st, static_cast<double>(row[k * inner]), k);
      finish(o, st);
    }
    return;
  }
  // Few long rows: fixed-size chunks in parallel, merged in chunk order.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (r + kChunk - 1) / kChunk;
  std::vector<ReduceState> part(static_cast<size_t>(chunks));
  for (int64_t o = 0; o < n_out; ++o) {
    const int64_t i0 = o / inner, j = o % inner;
    const T* row = x + i0 * r * inner + j;
#pragma omp parallel for
    for (int64_t c = 0; c < chunks; ++c) {
      ReduceState st = reduce_init<OP>();
      const int64_t end = std::min(r, (c + 1) * kChunk);
      for (int64_t k = c * kChunk; k < end; ++k) reduce_step<OP>(st, static_cast<double>(row[k * inner]), k);
      part[c] = st;
    }
    ReduceState st = reduce_init<OP>();
    for (int64_t c = 0; c < chunks; ++c) reduce_merge<OP>(st, part[c]);
    finish(o, st);
  }
}

}  // namespace

void reduce(ReduceOp op, const Tensor& in, int64_t outer, int64_t r, int64_t inner, const Tensor& out,
            double scale) {
  dispatch_floating(in.dtype(), "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_reduce(op, [&](auto optag) {
      reduce_typed<decltype(optag)::value, T>(in.data<T>(), outer, r, inner, out, scale);
    });
  });
}

void nonfinite_flag(const std::vector<Tensor>& ins, const Tensor& flag) {
  bool bad = false;
  for (const Tensor& t : ins) {
    if (bad) break;
    dispatch_floating_bf16(t.dtype(), "nonfinite_flag", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* p = t.data<T>();
      const int64_t n = t.numel();
      bool found = false;
#pragma omp parallel for reduction(|| : found) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<T, BFloat16>)
          found = found || !std::isfinite(static_cast<float>(p[i]));
        else
          found = found || !std::isfinite(p[i]);
      }
      bad = found;
    });
  }
  flag.data<float>()[0] = bad ? 1.0f : 0.0f;
}

}  // namespace lrt::kernels::cpu

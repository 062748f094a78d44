// Per-element math of the reductions, shared by CPU and CUDA. A reduction
// views its contiguous input as (outer, r, inner) and reduces the middle axis.
// Sums accumulate in double (float32 sums of 2^26 elements stay accurate);
// max/argmax propagate NaN and argmax keeps the first index of the maximum.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/hd.h"
#include "kernels/math.h"

namespace lrt::kernels {

enum class ReduceOp { Sum, Max, Min, ArgMax, ArgMin };

struct ReduceState {
  double v;
  int64_t i;
};

template <ReduceOp OP>
LRT_HD ReduceState reduce_init() {
  if constexpr (OP == ReduceOp::Sum) return {0.0, 0};
  else if constexpr (OP == ReduceOp::Max || OP == ReduceOp::ArgMax) return {-std::numeric_limits<double>::infinity(), -1};
  else return {std::numeric_limits<double>::infinity(), -1};
}

// Merges b into a. For the arg ops ties go to the lower index, and a NaN wins
// (the first NaN's index), as in PyTorch.
template <ReduceOp OP>
LRT_HD void reduce_merge(ReduceState& a, const ReduceState& b) {
  if constexpr (OP == ReduceOp::Sum) {
    a.v += b.v;
  } else {
    if (b.i < 0) return;
    if (a.i < 0) { a = b; return; }
    const bool a_nan = math::isnan(a.v), b_nan = math::isnan(b.v);
    bool take;
    if (a_nan || b_nan) take = b_nan && (!a_nan || b.i < a.i);
    else if constexpr (OP == ReduceOp::Max || OP == ReduceOp::ArgMax) take = b.v > a.v || (b.v == a.v && b.i < a.i);
    else take = b.v < a.v || (b.v == a.v && b.i < a.i);
    if (take) a = b;
  }
}

template <ReduceOp OP>
LRT_HD void reduce_step(ReduceState& a, double x, int64_t idx) {
  if constexpr (OP == ReduceOp::Sum) a.v += x;
  else reduce_merge<OP>(a, ReduceState{x, idx});
}

constexpr bool reduce_returns_index(ReduceOp op) { return op == ReduceOp::ArgMax || op == ReduceOp::ArgMin; }

template <ReduceOp OP>
using ReduceTag = std::integral_constant<ReduceOp, OP>;

// Calls f(ReduceTag<op>{}) with the op as a compile-time constant.
template <class F>
void dispatch_reduce(ReduceOp op, F&& f) {
  switch (op) {
    case ReduceOp::Sum: f(ReduceTag<ReduceOp::Sum>{}); return;
    case ReduceOp::Max: f(ReduceTag<ReduceOp::Max>{}); return;
    case ReduceOp::Min: f(ReduceTag<ReduceOp::Min>{}); return;
    case ReduceOp::ArgMax: f(ReduceTag<ReduceOp::ArgMax>{}); return;
    case ReduceOp::ArgMin: f(ReduceTag<ReduceOp::ArgMin>{}); return;
  }
}

}  // namespace lrt::kernels

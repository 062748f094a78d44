// Element conversion shared by the CPU and CUDA copy kernels. C++ leaves
// float-to-integer conversion of NaN and out-of-range values undefined (x86
// and CUDA really do differ), so it is defined here once: NaN becomes 0 and
// other values saturate to the integer type's range before truncation.
// bfloat16 converts through float (core/bfloat16.h: round to nearest even).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/bfloat16.h"
#include "core/hd.h"

namespace lrt::kernels {

template <class D, class S>
LRT_HD D cast_value(S x) {
  if constexpr (std::is_same_v<S, D>) {
    return x;  // bit for bit (a bfloat16 NaN keeps its payload)
  } else if constexpr (std::is_same_v<S, BFloat16>) {
    return cast_value<D>(static_cast<float>(x));
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16(static_cast<float>(x));
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    if (x != x) return D(0);
    constexpr double lo = static_cast<double>(std::numeric_limits<D>::lowest());
    constexpr double hi = static_cast<double>(std::numeric_limits<D>::max());
    const double v = static_cast<double>(x);
    if (v <= lo) return std::numeric_limits<D>::lowest();
    if (v >= hi) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  } else if constexpr (std::is_integral_v<S> && std::is_integral_v<D> && sizeof(D) < sizeof(S)) {
    // Narrowing between integers saturates as well.
    if (x <= static_cast<S>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (x >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(x);
  } else {
    return static_cast<D>(x);
  }
}

}  // namespace lrt::kernels

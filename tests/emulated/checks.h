// Helpers of the emulated-grid suites: poisoned outputs, and comparisons of
// an emulated kernel's result with the CPU kernel's.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "core/ops.h"
#include "testing.h"

namespace lrt::emulated_checks {

// A tensor of shape s whose every element is a poison value (NaN, or 77 for
// integers), in memory format f.
inline Tensor poisoned(const Shape& s, DType dt, MemoryFormat f = MemoryFormat::Contiguous) {
  Tensor t = empty(s, TensorOptions(dt), f);
  t.fill_(is_floating(dt) ? testing::kNaN : 77.0);
  return t;
}

// The same values, bit for bit (two NaNs match), of the same dtype.
inline void check_same(const Tensor& got, const Tensor& want, const std::string& what) {
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  testing::check_equal(testing::host(got), testing::host(want), what);
}

// No NaN (nothing left unwritten), and within tol of want norm-wise.
inline void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  CAPTURE(what);
  REQUIRE(got.shape() == want.shape());
  bool any_nan = false;
  for (double v : testing::host(got)) any_nan = any_nan || std::isnan(v);
  CHECK_FALSE(any_nan);
  CHECK(rel_error(got, want) <= tol);
}

}  // namespace lrt::emulated_checks

// Shape helpers.
#include "core/shape.h"

#include <algorithm>

#include "core/error.h"

namespace lrt {

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

std::string to_string(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LRT_CHECK(da == db || da == 1 || db == 1, "shapes ", to_string(a), " and ", to_string(b),
              " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int wrap_dim(int64_t dim, int ndim) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  LRT_CHECK(dim >= lo && dim <= hi, "dimension ", dim, " out of range for a tensor of ", ndim,
            " dimensions (expected ", lo, " to ", hi, ")");
  return static_cast<int>(dim < 0 ? dim + std::max(ndim, 1) : dim);
}

void check_shape(const Shape& s) {
  LRT_CHECK(s.size() <= static_cast<size_t>(kMaxDims), "shape ", to_string(s), " has ", s.size(),
            " dimensions; at most ", kMaxDims, " are supported");
  for (int64_t d : s) LRT_CHECK(d >= 0, "shape ", to_string(s), " has a negative size");
}

}  // namespace lrt

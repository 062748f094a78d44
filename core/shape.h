// Shape: the sizes of a tensor's dimensions (at most kMaxDims), plus the
// helpers every op needs: element count, contiguous strides, NumPy
// broadcasting, and dimension wrapping (dim -1 is the last).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace lrt {

constexpr int kMaxDims = 8;

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel_of(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string to_string(const Shape& s);  // "(2, 3, 4)"
// NumPy broadcasting of two shapes; throws naming both when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Maps dim in [-ndim, ndim) to [0, ndim); throws naming the dim and the shape.
int wrap_dim(int64_t dim, int ndim);
// Checks every size is >= 0 and there are at most kMaxDims dimensions.
void check_shape(const Shape& s);

}  // namespace lrt

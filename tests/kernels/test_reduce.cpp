// Tests of the reductions (kernels/reduce.h, kernels/cpu/reduce.cpp) through
// the ops API and kernels::reduce: sum/mean/max/min/argmax/argmin over all
// elements and over each dim (keepdim both ways) against a naive double
// reference, ties, NaN, the long-row chunked path, thread-count independence,
// float32 accuracy over 2^25 and 2^26 elements, and empty inputs. The
// non-finite flag over lists of tensors.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

using kernels::ReduceOp;
using testing::host;

namespace {

const char* const kOps[] = {"sum", "mean", "max", "min", "argmax", "argmin"};

Tensor apply(const std::string& op, const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  if (op == "sum") return dim ? sum(x, *dim, keepdim) : sum(x);
  if (op == "mean") return dim ? mean(x, *dim, keepdim) : mean(x);
  if (op == "max") return dim ? max(x, *dim, keepdim) : max(x);
  if (op == "min") return dim ? min(x, *dim, keepdim) : min(x);
  if (op == "argmax") return dim ? argmax(x, *dim, keepdim) : argmax(x);
  return dim ? argmin(x, *dim, keepdim) : argmin(x);
}

struct Reduced {
  Shape shape;
  std::vector<double> values;
};

// The naive reduction of a row-major array, in double; the arg ops return the
// first index of the extremum, and a NaN wins (its first index), as in PyTorch.
Reduced reference(const std::string& op, const std::vector<double>& x, const Shape& shape,
                  std::optional<int64_t> dim, bool keepdim) {
  int64_t outer = 1, r = numel_of(shape), inner = 1;
  Shape out_shape;
  if (dim) {
    const int d = wrap_dim(*dim, static_cast<int>(shape.size()));
    r = shape.empty() ? 1 : shape[d];
    for (int i = 0; i < d; ++i) outer *= shape[i];
    for (size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
    out_shape = shape;
    if (!shape.empty()) {
      if (keepdim) out_shape[d] = 1;
      else out_shape.erase(out_shape.begin() + d);
    }
  }
  Reduced out{out_shape, {}};
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double acc = 0.0, best = 0.0;
      int64_t best_i = -1;
      for (int64_t k = 0; k < r; ++k) {
        const double v = x[(o * r + k) * inner + j];
        acc += v;
        const bool better_max = v > best, better_min = v < best;
        const bool want_max = op == "max" || op == "argmax";
        if (best_i < 0 || (!std::isnan(best) && (std::isnan(v) || (want_max ? better_max : better_min)))) {
          best = v;
          best_i = k;
        }
      }
      if (op == "sum") out.values.push_back(acc);
      else if (op == "mean") out.values.push_back(acc / static_cast<double>(r));
      else if (op == "max" || op == "min") out.values.push_back(best);
      else out.values.push_back(static_cast<double>(best_i));
    }
  return out;
}

void check_reduction(const std::string& op, const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  CAPTURE(op);
  CAPTURE(dim ? *dim : 99);
  CAPTURE(keepdim);
  const Reduced want = reference(op, host(x), x.shape(), dim, keepdim);
  Tensor y = apply(op, x, dim, keepdim);
  CHECK(y.shape() == want.shape);
  const bool is_arg = op == "argmax" || op == "argmin";
  CHECK(y.dtype() == (is_arg ? DType::Int64 : x.dtype()));
  // Sums accumulate in double; what remains is the final rounding to float32.
  // Float64 sums may add in another order than the reference (chunks); the
  // absolute slack covers that for values of order 1.
  const bool f32 = x.dtype() == DType::Float32;
  const double rtol = is_arg ? 0.0 : (f32 ? 1e-6 : 1e-12);
  const double atol = is_arg ? 0.0 : (f32 ? 1e-6 : 1e-10);
  testing::check_close(host(y), want.values, rtol, atol, op);
}

using testing::kFloatTypes;

}  // namespace

TEST_CASE("reductions over all elements match a naive double reference for sizes 1 to 2^20 + 3") {
  uint64_t seed = 100;
  for (DType dt : kFloatTypes)
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(dt);
      CAPTURE(n);
      Tensor x = testing::normal({n}, dt, ++seed);
      for (const char* op : kOps) check_reduction(op, x, std::nullopt, false);
      Tensor m = testing::normal({3, 4, 5}, dt, ++seed);
      for (const char* op : kOps) check_reduction(op, m, std::nullopt, false);
    }
}

TEST_CASE("reductions over each dim with keepdim true and false") {
  uint64_t seed = 200;
  const std::vector<Shape> shapes = {{3, 4, 5}, {2, 1, 6}, {5}, {1}, {6, 70}, {70, 6}, {2, 3, 2, 3}};
  for (DType dt : kFloatTypes)
    for (const Shape& shape : shapes) {
      CAPTURE(dt);
      CAPTURE(to_string(shape));
      Tensor x = testing::normal(shape, dt, ++seed);
      const int64_t nd = static_cast<int64_t>(shape.size());
      for (int64_t dim = -nd; dim < nd; ++dim)
        for (bool keepdim : {false, true})
          for (const char* op : kOps) check_reduction(op, x, dim, keepdim);
    }
}

TEST_CASE("reductions of a 0-d tensor return its value") {
  Tensor s = scalar_tensor(-2.5, DType::Float64);
  CHECK(sum(s).item() == -2.5);
  CHECK(mean(s, 0).item() == -2.5);
  CHECK(max(s, -1, true).item() == -2.5);
  CHECK(argmax(s).item() == 0.0);
  CHECK(sum(s, 0, true).dim() == 0);
}

TEST_CASE("reductions read transposed and sliced inputs in logical order") {
  for (DType dt : kFloatTypes) {
    Tensor base = testing::normal({9, 14}, dt, 300);
    for (const Tensor& x : {base.t(), base.slice(1, 1, 14, 3), base.slice(0, 2, 3).expand({4, 14})})
      for (int64_t dim : {0, 1})
        for (const char* op : kOps) check_reduction(op, x, dim, false);
  }
}

TEST_CASE("argmax and argmin return the first index of a tie") {
  Tensor a = from_vector<double>({1, 5, 5, 2, 5, -1, -1}, {7}, DType::Float32);
  CHECK(argmax(a).item() == 1.0);
  CHECK(argmin(a).item() == 5.0);
  CHECK(argmax(full({9}, 3.0)).item() == 0.0);
  CHECK(argmin(full({9}, -INFINITY)).item() == 0.0);
  CHECK(argmax(full({9}, -INFINITY)).item() == 0.0);
  Tensor m = from_vector<double>({2, 7, 7,  //
                                  7, 7, 1,  //
                                  0, 0, 0},
                                 {3, 3}, DType::Float64);
  CHECK(argmax(m, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
  CHECK(argmax(m, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
  CHECK(argmin(m, 0).to_vector<int64_t>() == std::vector<int64_t>{2, 2, 2});
  CHECK(argmin(m, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 0});
  CHECK(argmax(m).item() == 1.0);
}

TEST_CASE("max, min and the arg ops propagate NaN; sum and mean too") {
  const double nan = testing::kNaN;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor a = from_vector<double>({1, nan, 3, nan, -4}, {5}, dt);
    CHECK(std::isnan(max(a).item()));
    CHECK(std::isnan(min(a).item()));
    CHECK(argmax(a).item() == 1.0);
    CHECK(argmin(a).item() == 1.0);
    CHECK(std::isnan(sum(a).item()));
    CHECK(std::isnan(mean(a).item()));
    Tensor m = from_vector<double>({1, 2, 3,  //
                                    4, nan, 6},
                                   {2, 3}, dt);
    const std::vector<double> rows = host(max(m, 1));
    CHECK(rows[0] == 3.0);
    CHECK(std::isnan(rows[1]));
    const std::vector<double> cols = host(min(m, 0));
    CHECK(cols[0] == 1.0);
    CHECK(std::isnan(cols[1]));
    CHECK(cols[2] == 3.0);
    CHECK(argmax(m, 1).to_vector<int64_t>() == std::vector<int64_t>{2, 1});
  }
}

TEST_CASE("kernels::reduce over long rows (the chunked path) keeps first-index ties and the first NaN") {
  // Few outputs with rows of 100,000: rows are split into chunks merged in order.
  const int64_t outer = 3, r = 100000, inner = 1;
  Tensor x = testing::normal({outer, r}, DType::Float32, 400);
  x.slice(0, 0, 1).slice(1, 20000, 20001).fill_(50.0);  // the same maximum in two chunks
  x.slice(0, 0, 1).slice(1, 70000, 70001).fill_(50.0);
  x.slice(0, 1, 2).slice(1, 90000, 90001).fill_(testing::kNaN);
  x.slice(0, 1, 2).slice(1, 30000, 30001).fill_(testing::kNaN);
  x.slice(0, 2, 3).slice(1, 99999, 100000).fill_(-50.0);
  Tensor idx = full({outer}, -7.0, DType::Int64);
  kernels::reduce(ReduceOp::ArgMax, x, outer, r, inner, idx, 1.0);
  const std::vector<int64_t> am = idx.to_vector<int64_t>();
  CHECK(am[0] == 20000);
  CHECK(am[1] == 30000);
  kernels::reduce(ReduceOp::ArgMin, x, outer, r, inner, idx, 1.0);
  CHECK(idx.to_vector<int64_t>()[2] == 99999);

  Tensor out = full({outer}, testing::kNaN, DType::Float32);
  kernels::reduce(ReduceOp::Sum, x, outer, r, inner, out, 0.5);
  const Reduced want = reference("sum", host(x), {outer, r}, 1, false);
  const std::vector<double> got = host(out);
  CHECK(std::isnan(got[1]));
  testing::check_close({got[0], got[2]}, {0.5 * want.values[0], 0.5 * want.values[2]}, 1e-6, 1e-6, "scaled sum");

  // Long rows with an inner stride: (1, 50000, 5).
  Tensor y = testing::normal({50000, 5}, DType::Float64, 401);
  Tensor out2 = full({5}, testing::kNaN, DType::Float64);
  kernels::reduce(ReduceOp::Max, y, 1, 50000, 5, out2, 1.0);
  testing::check_close(host(out2), reference("max", host(y), {50000, 5}, 0, false).values, 0.0, 0.0, "max");
  Tensor idx2 = full({5}, -7.0, DType::Int64);
  kernels::reduce(ReduceOp::ArgMin, y, 1, 50000, 5, idx2, 1.0);
  testing::check_close(host(idx2), reference("argmin", host(y), {50000, 5}, 0, false).values, 0.0, 0.0, "argmin");
}

TEST_CASE("kernels::reduce writes scaled values into a poisoned output and checks its arguments") {
  Tensor x = testing::normal({4, 6, 3}, DType::Float64, 500);
  Tensor out = full({4, 3}, testing::kNaN, DType::Float64);
  kernels::reduce(ReduceOp::Sum, x, 4, 6, 3, out, 0.25);
  std::vector<double> want = reference("sum", host(x), {4, 6, 3}, 1, false).values;
  for (double& v : want) v *= 0.25;
  testing::check_close(host(out), want, 1e-14, 1e-14, "sum * 0.25");

  CHECK_THROWS_AS(kernels::reduce(ReduceOp::Sum, x, 4, 5, 3, out, 1.0), Error);  // does not cover the input
  CHECK_THROWS_AS(kernels::reduce(ReduceOp::Sum, x, 4, 6, 3, empty({5}, DType::Float64), 1.0), Error);
  CHECK_THROWS_AS(kernels::reduce(ReduceOp::ArgMax, x, 4, 6, 3, out, 1.0), Error);  // needs int64
  CHECK_THROWS_AS(kernels::reduce(ReduceOp::Sum, x.transpose(0, 2), 3, 6, 4, out, 1.0), Error);
}

TEST_CASE("reduction results do not depend on the number of threads") {
  Tensor x = testing::normal({(int64_t(1) << 20) + 3}, DType::Float32, 600);
  Tensor m = testing::normal({4, 300000}, DType::Float32, 601);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double s1 = sum(x).item(), a1 = argmax(x).item();
  const std::vector<double> r1 = host(sum(m, 1));
  omp_set_num_threads(std::max(2, threads));
  const double s2 = sum(x).item(), a2 = argmax(x).item();
  const std::vector<double> r2 = host(sum(m, 1));
  omp_set_num_threads(threads);
  CHECK(s1 == s2);
  CHECK(a1 == a2);
  CHECK(r1 == r2);
}

TEST_CASE("float32 sums of 2^25 ones and of 2^26 values stay accurate") {
  // A float32 running sum stops growing at 2^24 (adding 1 rounds away), and
  // a float32 running sum of 2^26 values near 0.5 loses most of its digits
  // once the sum passes 2^24; accumulating in double keeps both exact or
  // within 1e-6.
  const int64_t n25 = int64_t(1) << 25;
  CHECK(sum(ones({n25})).item() == static_cast<double>(n25));
  CHECK(mean(ones({n25})).item() == 1.0);

  const int64_t n26 = int64_t(1) << 26;
  Tensor tenth = full({n26}, 0.1);
  const double want_tenth = static_cast<double>(n26) * static_cast<double>(0.1f);
  CHECK(std::fabs(sum(tenth).item() - want_tenth) <= 1e-6 * want_tenth);

  Generator g(700);
  Tensor u = rand({n26}, DType::Float32, &g);
  const float* p = u.data<float>();
  double want = 0.0;
  for (int64_t i = 0; i < n26; ++i) want += p[i];
  const double got = sum(u).item();
  CHECK(std::fabs(got - want) <= 1e-6 * want);
  CHECK(std::fabs(mean(u).item() - want / static_cast<double>(n26)) <= 1e-6);
}

TEST_CASE("sums over empty dims are 0") {
  CHECK(sum(empty({0})).item() == 0.0);
  CHECK(sum(empty({0, 4}, DType::Float64)).item() == 0.0);
  Tensor r = sum(empty({3, 0}), 1);
  CHECK(r.shape() == Shape{3});
  CHECK(host(r) == std::vector<double>(3, 0.0));
  Tensor c = sum(empty({0, 3}), 0, true);
  CHECK(c.shape() == Shape{1, 3});
  CHECK(host(c) == std::vector<double>(3, 0.0));
  CHECK(sum(empty({0, 3}), 1).shape() == Shape{0});
  CHECK(max(empty({0, 3}), 1).shape() == Shape{0});  // nothing to reduce into: no error
}

TEST_CASE("max, min, argmax, argmin and mean of nothing throw") {
  CHECK_THROWS_WITH_AS(max(empty({0})), doctest::Contains("empty"), Error);
  CHECK_THROWS_AS(min(empty({2, 0}), 1), Error);
  CHECK_THROWS_AS(argmax(empty({0})), Error);
  CHECK_THROWS_AS(argmin(empty({0, 2}), 0), Error);
  CHECK_THROWS_AS(mean(empty({0})), Error);
  CHECK_THROWS_AS(mean(empty({4, 0}), 1), Error);
}

namespace {

// A tensor of dtype dt and n values, finite and of every kind: large, tiny,
// subnormal, signed zeros.
Tensor finite_values(int64_t n, DType dt, uint64_t seed) {
  std::vector<double> v = host(testing::normal({n}, DType::Float64, seed) * 1e3);
  const double big = dt == DType::Float64 ? 1e300 : 3.0e38;
  const double extremes[] = {big, -big, 1e-40, -0.0, 0.0, 1e-30};
  const size_t step = v.size() / std::size(extremes);
  for (size_t k = 0; k < std::size(extremes) && k < v.size(); ++k) v[k * step] = extremes[k];
  return from_vector<double>(v, {n}).to(dt);
}

}  // namespace

TEST_CASE("nonfinite_flag finds a NaN or an infinity anywhere in a list of tensors, and nothing else") {
  const double bad[] = {testing::kNaN, std::numeric_limits<double>::infinity(),
                        -std::numeric_limits<double>::infinity()};
  uint64_t seed = 40;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(65536), int64_t(65537), int64_t(1 << 20) + 3}) {
      CAPTURE(dt);
      CAPTURE(n);
      std::vector<Tensor> list{finite_values(5, dt, ++seed), finite_values(n, dt, ++seed),
                               finite_values(3, dt, ++seed)};
      // Finite values whose sum overflows are still finite.
      CHECK(nonfinite_flag(list).item() == 0.0);
      CHECK(nonfinite_flag(list).dtype() == DType::Float32);
      CHECK(nonfinite_flag(list).dim() == 0);
      for (double b : bad)
        for (int64_t at :
             {int64_t(0), n / 2, n - 1, std::min<int64_t>(n - 1, 65535), std::min<int64_t>(n - 1, 65536)}) {
          CAPTURE(b);
          CAPTURE(at);
          Tensor t = list[1].clone();
          t.slice(0, at, at + 1).fill_(b);
          CHECK(nonfinite_flag({list[0], t, list[2]}).item() == 1.0);
          CHECK(nonfinite_flag({t}).item() == 1.0);
        }
    }
}

TEST_CASE("nonfinite_flag reads strided tensors and checks its arguments") {
  Tensor m = testing::normal({30, 40}, DType::Float32, 50);
  m.slice(0, 29, 30).slice(1, 3, 4).fill_(testing::kNaN);
  CHECK(nonfinite_flag({m.transpose(0, 1)}).item() == 1.0);
  CHECK(nonfinite_flag({m.slice(0, 0, 29).transpose(0, 1)}).item() == 0.0);
  CHECK(nonfinite_flag({empty({0}), ones({2})}).item() == 0.0);
  testing::check_mentions(testing::error_of([] { nonfinite_flag({}); }), {"nonfinite_flag", "no tensors"});
  testing::check_mentions(testing::error_of([] { nonfinite_flag({ones({2}), Tensor()}); }),
                          {"nonfinite_flag", "undefined"});
  testing::check_mentions(testing::error_of([] { nonfinite_flag({zeros({2}, DType::Int64)}); }), {"nonfinite_flag"});
}

}  // namespace lrt

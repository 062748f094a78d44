// Tests of the elementwise kernels (kernels/elementwise.h, kernels/cpu/
// elementwise.cpp) through the ops API and through kernels::unary/binary/
// fill/copy directly: every UnaryOp and BinaryOp against a float64 reference
// computed here with std:: math, float32 and float64, contiguous, strided and
// broadcast operands, sizes that cross the parallel threshold, and casts.
// Kernels that write into a preallocated tensor get a NaN-poisoned output.
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

using kernels::BinaryOp;
using kernels::UnaryOp;
using testing::host;

namespace {

struct UnaryCase {
  const char* name;
  UnaryOp op;
  double scalar;
  double (*ref)(double x, double s);
  // Input domain: "any", "positive" (log, sqrt, ...), "nonzero" (division).
  const char* domain;
};

double sign_of(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", UnaryOp::Neg, 0, [](double x, double) { return -x; }, "any"},
      {"exp", UnaryOp::Exp, 0, [](double x, double) { return std::exp(x); }, "any"},
      {"log", UnaryOp::Log, 0, [](double x, double) { return std::log(x); }, "positive"},
      {"sqrt", UnaryOp::Sqrt, 0, [](double x, double) { return std::sqrt(x); }, "positive"},
      {"rsqrt", UnaryOp::Rsqrt, 0, [](double x, double) { return 1.0 / std::sqrt(x); }, "positive"},
      {"abs", UnaryOp::Abs, 0, [](double x, double) { return std::fabs(x); }, "any"},
      {"relu", UnaryOp::Relu, 0, [](double x, double) { return x > 0 ? x : 0.0; }, "any"},
      {"sigmoid", UnaryOp::Sigmoid, 0, [](double x, double) { return 1.0 / (1.0 + std::exp(-x)); }, "any"},
      {"tanh", UnaryOp::Tanh, 0, [](double x, double) { return std::tanh(x); }, "any"},
      {"square", UnaryOp::Square, 0, [](double x, double) { return x * x; }, "any"},
      {"reciprocal", UnaryOp::Reciprocal, 0, [](double x, double) { return 1.0 / x; }, "nonzero"},
      {"sign", UnaryOp::Sign, 0, [](double x, double) { return sign_of(x); }, "any"},
      {"add_scalar", UnaryOp::AddScalar, 1.75, [](double x, double s) { return x + s; }, "any"},
      {"mul_scalar", UnaryOp::MulScalar, -2.5, [](double x, double s) { return x * s; }, "any"},
      {"rsub_scalar", UnaryOp::RsubScalar, 3.0, [](double x, double s) { return s - x; }, "any"},
      {"rdiv_scalar", UnaryOp::RdivScalar, -1.5, [](double x, double s) { return s / x; }, "nonzero"},
      {"pow_scalar 2.7", UnaryOp::PowScalar, 2.7, [](double x, double s) { return std::pow(x, s); }, "positive"},
      {"pow_scalar 3", UnaryOp::PowScalar, 3.0, [](double x, double s) { return std::pow(x, s); }, "any"},
      {"pow_scalar 2", UnaryOp::PowScalar, 2.0, [](double x, double s) { return std::pow(x, s); }, "any"},
      {"pow_scalar 0.5", UnaryOp::PowScalar, 0.5, [](double x, double s) { return std::pow(x, s); }, "positive"},
      {"pow_scalar -1.5", UnaryOp::PowScalar, -1.5, [](double x, double s) { return std::pow(x, s); }, "positive"},
      {"max_scalar", UnaryOp::MaxScalar, 0.3, [](double x, double s) { return x > s ? x : s; }, "any"},
      {"gt_scalar", UnaryOp::GtScalar, -0.2, [](double x, double s) { return x > s ? 1.0 : 0.0; }, "any"},
  };
  return cases;
}

struct BinaryCase {
  const char* name;
  BinaryOp op;
  double (*ref)(double a, double b);
  const char* domain;  // of both operands, as for UnaryCase
};

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases = {
      {"add", BinaryOp::Add, [](double a, double b) { return a + b; }, "any"},
      {"sub", BinaryOp::Sub, [](double a, double b) { return a - b; }, "any"},
      {"mul", BinaryOp::Mul, [](double a, double b) { return a * b; }, "any"},
      {"div", BinaryOp::Div, [](double a, double b) { return a / b; }, "nonzero"},
      {"maximum", BinaryOp::Maximum, [](double a, double b) { return a > b ? a : b; }, "any"},
      {"minimum", BinaryOp::Minimum, [](double a, double b) { return a < b ? a : b; }, "any"},
      {"pow", BinaryOp::Pow, [](double a, double b) { return std::pow(a, b); }, "positive"},
      {"relu_backward", BinaryOp::ReluBackward, [](double g, double x) { return x > 0 ? g : 0.0; }, "any"},
      {"eq", BinaryOp::Eq, [](double a, double b) { return a == b ? 1.0 : 0.0; }, "any"},
      {"gt", BinaryOp::Gt, [](double a, double b) { return a > b ? 1.0 : 0.0; }, "any"},
  };
  return cases;
}

// Random inputs in an op's domain.
Tensor input_for(const char* domain, const Shape& shape, DType dt, uint64_t seed) {
  const std::string d = domain;
  if (d == "positive") return testing::uniform(shape, 0.1, 3.0, dt, seed);
  if (d == "nonzero") return testing::away_from(shape, 0.0, 0.25, dt, seed);
  return testing::normal(shape, dt, seed) * 2.0;
}

// The values of x as the kernel saw them (rounded to x's dtype), in double.
std::vector<double> unary_reference(const UnaryCase& c, const Tensor& x) {
  std::vector<double> v = host(x);
  for (double& e : v) e = c.ref(e, c.scalar);
  return v;
}

std::vector<double> binary_reference(const BinaryCase& c, const Tensor& a, const Tensor& b, const Shape& out) {
  const std::vector<double> av = host(a), bv = host(b);
  std::vector<double> r(static_cast<size_t>(numel_of(out)));
  for (int64_t i = 0; i < numel_of(out); ++i)
    r[i] = c.ref(av[testing::broadcast_source(i, out, a.shape())], bv[testing::broadcast_source(i, out, b.shape())]);
  return r;
}

// float32 math (expf, powf, ...) is within a few ulp of the float64 value of
// the same float inputs; float64 math is within an ulp or two.
double rtol_for(DType dt) { return dt == DType::Float32 ? 2e-6 : 1e-14; }
double atol_for(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-14; }

Tensor poisoned(const Shape& shape, DType dt) { return full(shape, testing::kNaN, dt); }

void check_unary_kernel(const UnaryCase& c, const Tensor& x) {
  Tensor out = poisoned(x.shape(), x.dtype());
  kernels::unary(c.op, x, out, c.scalar);
  testing::check_close(host(out), unary_reference(c, x), rtol_for(x.dtype()), atol_for(x.dtype()), c.name);
}

void check_binary_kernel(const BinaryCase& c, const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = poisoned(shape, a.dtype());
  kernels::binary(c.op, a, b, out);
  testing::check_close(host(out), binary_reference(c, a, b, shape), rtol_for(a.dtype()), atol_for(a.dtype()), c.name);
}

// Reads a contiguous tensor's elements directly, without the copy kernel.
std::vector<double> raw_values(const Tensor& t) {
  REQUIRE(t.is_contiguous());
  auto read = [&t](const auto* p) {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<double>(p[i]);
    return v;
  };
  switch (t.dtype()) {
    case DType::Float32: return read(t.data<float>());
    case DType::Float64: return read(t.data<double>());
    case DType::Int64: return read(t.data<int64_t>());
    case DType::UInt8: return read(t.data<uint8_t>());
    case DType::BFloat16: {
      std::vector<double> v(static_cast<size_t>(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) v[i] = testing::bf16_pattern_value(t.data<BFloat16>()[i].bits);
      return v;
    }
    default: FAIL("no raw reader for dtype " << dtype_name(t.dtype()));
  }
  return {};
}

// The value v (held exactly in double) after C++'s conversion to dt.
double converted(double v, DType dt) {
  switch (dt) {
    case DType::Float32: return static_cast<float>(v);
    case DType::Int64: return static_cast<double>(static_cast<int64_t>(v));
    case DType::UInt8: return static_cast<uint8_t>(v);
    case DType::BFloat16: return testing::bf16_pattern_value(testing::bf16_round_oracle(static_cast<float>(v)));
    default: return v;
  }
}

using testing::cast_source;
using testing::kAllTypes;
using testing::kFloatTypes;

}  // namespace

// ------------------------------------------------------------ kernels --

TEST_CASE("every UnaryOp matches std:: math on contiguous inputs of sizes 1 to 2^20 + 3") {
  uint64_t seed = 1000;
  for (DType dt : kFloatTypes)
    for (const UnaryCase& c : unary_cases())
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(dt);
        CAPTURE(std::string(c.name));
        CAPTURE(n);
        check_unary_kernel(c, input_for(c.domain, {n}, dt, ++seed));
      }
}

TEST_CASE("every UnaryOp reads transposed, stepped and expanded inputs") {
  uint64_t seed = 2000;
  for (DType dt : kFloatTypes)
    for (const UnaryCase& c : unary_cases()) {
      CAPTURE(dt);
      CAPTURE(std::string(c.name));
      Tensor base = input_for(c.domain, {9, 13}, dt, ++seed);
      check_unary_kernel(c, base.t());
      check_unary_kernel(c, base.slice(1, 1, 13, 3).slice(0, 0, 9, 2));
      check_unary_kernel(c, base.slice(0, 4, 5).expand({6, 13}));
    }
}

TEST_CASE("every BinaryOp matches the reference on contiguous inputs of sizes 1 to 2^20 + 3") {
  uint64_t seed = 2500;
  for (DType dt : kFloatTypes)
    for (const BinaryCase& c : binary_cases())
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(dt);
        CAPTURE(std::string(c.name));
        CAPTURE(n);
        seed += 2;
        check_binary_kernel(c, input_for(c.domain, {n}, dt, seed), input_for(c.domain, {n}, dt, seed + 1));
      }
}

TEST_CASE("every BinaryOp matches the reference on same-shape, strided and broadcast operands") {
  uint64_t seed = 3000;
  for (DType dt : kFloatTypes)
    for (const BinaryCase& c : binary_cases()) {
      CAPTURE(dt);
      CAPTURE(std::string(c.name));
      Tensor a = input_for(c.domain, {7, 11}, dt, ++seed);
      Tensor b = input_for(c.domain, {7, 11}, dt, ++seed);
      check_binary_kernel(c, a, b);
      check_binary_kernel(c, a, a);  // equal operands: ties for max/min/eq/gt
      Tensor bt = input_for(c.domain, {11, 7}, dt, ++seed).t();
      check_binary_kernel(c, a, bt);
      check_binary_kernel(c, a.slice(1, 0, 10, 2), bt.slice(1, 1, 11, 2));
      const std::pair<Shape, Shape> broadcasts[] = {
          {{4, 1, 3}, {5, 3}}, {{3, 1}, {1, 4}}, {{}, {2, 3}}, {{2, 3, 1, 5}, {1}}};
      for (const auto& [sa, sb] : broadcasts) {
        seed += 2;
        check_binary_kernel(c, input_for(c.domain, sa, dt, seed), input_for(c.domain, sb, dt, seed + 1));
      }
    }
}

TEST_CASE("elementwise kernels over 2^20 + 3 elements take the parallel path correctly") {
  const int64_t n = (int64_t(1) << 20) + 3;
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor x = testing::normal({n}, dt, 4001);
    Tensor y = testing::normal({n}, dt, 4002);
    check_unary_kernel(unary_cases()[1], x);   // exp
    check_unary_kernel(unary_cases()[8], x);   // tanh
    check_binary_kernel(binary_cases()[2], x, y);  // mul
    // Strided and broadcast operands over the parallel OffsetCalc loop.
    Tensor m = testing::normal({1024, 1027}, dt, 4003);
    Tensor row = testing::normal({1027}, dt, 4004);
    check_unary_kernel(unary_cases()[1], m.t());
    check_binary_kernel(binary_cases()[0], m.t(), row.unsqueeze(1));
  }
}

TEST_CASE("NaN propagates through maximum, minimum and max_scalar from either side") {
  for (DType dt : kFloatTypes) {
    Tensor a = from_vector<double>({testing::kNaN, 1.0, testing::kNaN, -2.0}, {4}, dt);
    Tensor b = from_vector<double>({0.5, testing::kNaN, testing::kNaN, -3.0}, {4}, dt);
    for (BinaryOp op : {BinaryOp::Maximum, BinaryOp::Minimum}) {
      Tensor out = full({4}, 7.0, dt);
      kernels::binary(op, a, b, out);
      const std::vector<double> v = host(out);
      CHECK(std::isnan(v[0]));
      CHECK(std::isnan(v[1]));
      CHECK(std::isnan(v[2]));
      CHECK(v[3] == (op == BinaryOp::Maximum ? -2.0 : -3.0));
    }
    Tensor out = full({4}, 7.0, dt);
    kernels::unary(UnaryOp::MaxScalar, a, out, 0.0);
    const std::vector<double> v = host(out);
    CHECK(std::isnan(v[0]));
    CHECK(v[1] == 1.0);
    CHECK(v[3] == 0.0);
  }
}

TEST_CASE("binary kernels may write into one of their inputs") {
  Tensor a = testing::normal({5, 6}, DType::Float32, 4101);
  Tensor b = testing::normal({5, 6}, DType::Float32, 4102);
  std::vector<double> want = host(a);
  const std::vector<double> bv = host(b);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<float>(static_cast<float>(want[i]) + static_cast<float>(bv[i]));
  kernels::binary(BinaryOp::Add, a, b, a);
  CHECK(host(a) == want);
}

TEST_CASE("elementwise kernels check their arguments") {
  Tensor a = ones({2, 3}), out = empty({2, 3});
  CHECK_THROWS_AS(kernels::unary(UnaryOp::Exp, a, empty({3, 2})), Error);
  CHECK_THROWS_AS(kernels::unary(UnaryOp::Exp, a, empty({3, 2}).t()), Error);  // non-contiguous output
  CHECK_THROWS_AS(kernels::unary(UnaryOp::Exp, a, empty({2, 3}, DType::Float64)), Error);
  CHECK_THROWS_AS(kernels::unary(UnaryOp::Exp, ones({2}, DType::Int64), empty({2}, DType::Int64)), Error);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, a, ones({4}), out), Error);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, a, ones({2, 3}), empty({3})), Error);
  CHECK_THROWS_AS(kernels::binary(BinaryOp::Add, ones({2, 3}, DType::Int64), ones({2, 3}, DType::Int64),
                                  empty({2, 3}, DType::Int64)),
                  Error);
  CHECK_THROWS_AS(kernels::copy(ones({2, 3}), empty({3, 2})), Error);
  CHECK_THROWS_AS(kernels::fill(Tensor(), 1.0), Error);
  // Empty tensors are a no-op, not an error.
  CHECK_NOTHROW(kernels::unary(UnaryOp::Exp, empty({0, 3}), empty({0, 3})));
}

// ------------------------------------------------------------ fill, copy --

TEST_CASE("fill writes every element of every dtype, contiguous or strided") {
  for (DType dt : kAllTypes) {
    CAPTURE(dt);
    for (int64_t n : testing::kEdgeSizes) {
      Tensor t = empty({n}, dt);
      kernels::fill(t, 37.0);
      CHECK(raw_values(t) == std::vector<double>(static_cast<size_t>(n), 37.0));
    }
    Tensor m = full({6, 5}, 3.0, dt);
    kernels::fill(m.slice(1, 1, 5, 2), 9.0);  // columns 1 and 3
    const std::vector<double> v = raw_values(m);
    bool ok = true;
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 5; ++j) ok = ok && v[i * 5 + j] == ((j == 1 || j == 3) ? 9.0 : 3.0);
    CHECK(ok);
  }
  Tensor f = empty({3}, DType::Float32);
  kernels::fill(f, 0.1);
  CHECK(f.to_vector<float>() == std::vector<float>(3, 0.1f));
}

TEST_CASE("copy casts between every pair of dtypes like static_cast") {
  uint64_t seed = 5000;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes)
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(from);
        CAPTURE(to);
        CAPTURE(n);
        Tensor src = cast_source(from, {n}, ++seed);
        Tensor dst = full({n}, 123.0, to);
        kernels::copy(src, dst);
        std::vector<double> want = raw_values(src);
        for (double& v : want) v = converted(v, to);
        testing::check_equal(raw_values(dst), want, "copy");
      }
}

TEST_CASE("casts to integers saturate out-of-range values and turn NaN into 0") {
  const double nan = testing::kNaN, inf = INFINITY;
  const std::vector<double> v = {nan, 2.9, -2.9, 0.999, -0.5, 255.5, 256.0, 300.0, 1e30, -1e30, inf, -inf};
  for (DType from : kFloatTypes) {
    CAPTURE(from);
    Tensor src = from_vector<double>(v, {static_cast<int64_t>(v.size())}, from);
    CHECK(src.to(DType::Int64).to_vector<int64_t>() ==
          std::vector<int64_t>{0, 2, -2, 0, 0, 255, 256, 300, INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN});
    CHECK(src.to(DType::UInt8).to_vector<uint8_t>() ==
          std::vector<uint8_t>{0, 2, 0, 0, 0, 255, 255, 255, 255, 0, 255, 0});
  }
  Tensor wide = from_vector<int64_t>({-5, 0, 17, 255, 256, int64_t(1) << 40, INT64_MIN}, {7}, DType::Int64);
  CHECK(wide.to(DType::UInt8).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 17, 255, 255, 255, 0});
}

TEST_CASE("copy reads strided and broadcast sources and writes strided destinations") {
  uint64_t seed = 6000;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes) {
      CAPTURE(from);
      CAPTURE(to);
      Tensor src = cast_source(from, {6, 8}, ++seed);
      const std::vector<double> s = raw_values(src);

      Tensor dst = full({8, 6}, 99.0, to);
      kernels::copy(src.t(), dst);  // transposed source
      std::vector<double> want(48);
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 6; ++j) want[i * 6 + j] = converted(s[j * 8 + i], to);
      testing::check_equal(raw_values(dst), want, "transposed source");

      Tensor dst2 = full({3, 6, 8}, 99.0, to);
      kernels::copy(src, dst2);  // broadcast over a new leading dim
      std::vector<double> want2;
      for (int r = 0; r < 3; ++r)
        for (double v : s) want2.push_back(converted(v, to));
      testing::check_equal(raw_values(dst2), want2, "broadcast source");

      Tensor base = full({8, 6}, 99.0, to);
      kernels::copy(src, base.t());  // transposed destination
      std::vector<double> want3(48);
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 6; ++j) want3[i * 6 + j] = converted(s[j * 8 + i], to);
      testing::check_equal(raw_values(base), want3, "transposed destination");
    }
}

// ------------------------------------------------------------ ops API --

TEST_CASE("unary ops of the ops API match std:: math for float32 and float64, contiguous and strided") {
  struct OpCase {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    double (*ref)(double);
    const char* domain;
  };
  const std::vector<OpCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, "any"},
      {"operator-", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, "any"},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, "any"},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, "positive"},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, "positive"},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, "positive"},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }, "any"},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, "any"},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, "any"},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, "any"},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, "any"},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1.0 / x; }, "nonzero"},
      {"add 1.5", [](const Tensor& x) { return add(x, 1.5); }, [](double x) { return x + 1.5; }, "any"},
      {"x + 2", [](const Tensor& x) { return x + 2.0; }, [](double x) { return x + 2.0; }, "any"},
      {"2 + x", [](const Tensor& x) { return 2.0 + x; }, [](double x) { return 2.0 + x; }, "any"},
      {"x - 0.75", [](const Tensor& x) { return x - 0.75; }, [](double x) { return x - 0.75; }, "any"},
      {"mul -3", [](const Tensor& x) { return mul(x, -3.0); }, [](double x) { return x * -3.0; }, "any"},
      {"0.5 * x", [](const Tensor& x) { return 0.5 * x; }, [](double x) { return 0.5 * x; }, "any"},
      {"x / 4", [](const Tensor& x) { return x / 4.0; }, [](double x) { return x / 4.0; }, "any"},
      {"rsub 1", [](const Tensor& x) { return rsub(x, 1.0); }, [](double x) { return 1.0 - x; }, "any"},
      {"5 - x", [](const Tensor& x) { return 5.0 - x; }, [](double x) { return 5.0 - x; }, "any"},
      {"rdiv 2", [](const Tensor& x) { return rdiv(x, 2.0); }, [](double x) { return 2.0 / x; }, "nonzero"},
      {"3 / x", [](const Tensor& x) { return 3.0 / x; }, [](double x) { return 3.0 / x; }, "nonzero"},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }, "any"},
      {"pow 1.3", [](const Tensor& x) { return pow(x, 1.3); }, [](double x) { return std::pow(x, 1.3); }, "positive"},
      {"pow -0.5", [](const Tensor& x) { return pow(x, -0.5); }, [](double x) { return 1.0 / std::sqrt(x); }, "positive"},
      {"clamp_min", [](const Tensor& x) { return clamp_min(x, -0.4); }, [](double x) { return x > -0.4 ? x : -0.4; }, "any"},
  };
  uint64_t seed = 7000;
  for (DType dt : kFloatTypes)
    for (const OpCase& c : cases) {
      CAPTURE(dt);
      CAPTURE(std::string(c.name));
      Tensor base = input_for(c.domain, {17, 12}, dt, ++seed);
      for (const Tensor& x : {base, base.t(), base.slice(0, 1, 17, 4)}) {
        Tensor y = c.op(x);
        CHECK(y.dtype() == dt);
        CHECK(y.shape() == x.shape());
        CHECK(y.is_contiguous());
        std::vector<double> want = host(x);
        for (double& v : want) v = c.ref(v);
        testing::check_close(host(y), want, 4 * rtol_for(dt), atol_for(dt), c.name);
      }
    }
}

TEST_CASE("binary ops of the ops API broadcast (4,1,3) with (5,3) and more") {
  struct OpCase {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    double (*ref)(double, double);
    const char* domain;
  };
  const std::vector<OpCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; }, "any"},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; }, "any"},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; }, "any"},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; }, "nonzero"},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return a > b ? a : b; }, "any"},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return a < b ? a : b; }, "any"},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [](double a, double b) { return a == b ? 1.0 : 0.0; }, "any"},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); },
       [](double a, double b) { return a > b ? 1.0 : 0.0; }, "any"},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{4, 1, 3}, {5, 3}}, {{5, 3}, {4, 1, 3}}, {{3, 1}, {1, 4}}, {{6}, {}}, {{}, {2, 2}},
      {{2, 1, 4, 1}, {3, 1, 5}}, {{7}, {7}}, {{1}, {3, 3}}, {{0, 3}, {1, 3}},
  };
  uint64_t seed = 8000;
  for (DType dt : kFloatTypes)
    for (const OpCase& c : cases)
      for (const auto& [sa, sb] : shapes) {
        CAPTURE(dt);
        CAPTURE(std::string(c.name));
        CAPTURE(to_string(sa));
        CAPTURE(to_string(sb));
        Tensor a = input_for(c.domain, sa, dt, ++seed);
        Tensor b = input_for(c.domain, sb, dt, ++seed);
        Tensor y = c.op(a, b);
        const Shape out = broadcast_shapes(sa, sb);
        CHECK(y.shape() == out);
        CHECK(y.dtype() == dt);
        const std::vector<double> av = host(a), bv = host(b);
        std::vector<double> want(static_cast<size_t>(numel_of(out)));
        for (int64_t i = 0; i < numel_of(out); ++i)
          want[i] = c.ref(av[testing::broadcast_source(i, out, sa)], bv[testing::broadcast_source(i, out, sb)]);
        testing::check_close(host(y), want, rtol_for(dt), atol_for(dt), c.name);
      }
}

TEST_CASE("binary ops read transposed and sliced operands") {
  for (DType dt : kFloatTypes) {
    Tensor a = testing::normal({8, 5}, dt, 9001);
    Tensor b = testing::normal({5, 8}, dt, 9002);
    Tensor p = a.t() * b;
    const std::vector<double> av = host(a), bv = host(b);
    std::vector<double> want(40);
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 8; ++j) want[i * 8 + j] = av[j * 5 + i] * bv[i * 8 + j];
    testing::check_close(host(p), want, rtol_for(dt), atol_for(dt), "a.t() * b");
    Tensor q = a.slice(0, 1, 8, 3) - b.t().slice(0, 0, 8, 3);
    std::vector<double> want_q;
    for (int i = 1; i < 8; i += 3)
      for (int j = 0; j < 5; ++j) want_q.push_back(av[i * 5 + j] - bv[j * 8 + (i - 1)]);
    testing::check_close(host(q), want_q, rtol_for(dt), atol_for(dt), "stepped slices");
  }
}

TEST_CASE("exp and add over sizes 1, 7, 4097 and 2^20 + 3 through the ops API") {
  for (DType dt : kFloatTypes)
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(dt);
      CAPTURE(n);
      Tensor x = testing::normal({n}, dt, 9100 + static_cast<uint64_t>(n));
      Tensor y = testing::normal({n}, dt, 9200 + static_cast<uint64_t>(n));
      const std::vector<double> xv = host(x), yv = host(y);
      std::vector<double> e(xv.size()), s(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) {
        e[i] = std::exp(xv[i]);
        s[i] = xv[i] + yv[i];
      }
      testing::check_close(host(exp(x)), e, rtol_for(dt), atol_for(dt), "exp");
      testing::check_close(host(x + y), s, rtol_for(dt), atol_for(dt), "add");
    }
}

}  // namespace lrt

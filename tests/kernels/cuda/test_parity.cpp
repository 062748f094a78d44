// CPU-vs-CUDA parity of every kernel (lrt_cuda_tests; runs only where a CUDA
// device answers, see cuda_test_main.cpp). Plain C++ over the public API:
// the same computation on Device("cuda") and on the CPU reference, over fresh
// random inputs of sizes 1, 7, 4097 and 2^20 + 3 and awkward matrix shapes,
// compared with lrt::rel_error. Outputs a kernel writes into are poisoned
// first (NaN, or an out-of-place integer) so an unwritten element shows.
//
// Tolerances. Copies, fills, casts, comparisons, argmax/argmin, max/min and
// the IEEE-exact arithmetic ops (+ - * /, sqrt, negation) must agree bit for
// bit. Transcendental float32 functions (expf, logf, tanhf, powf) differ by a
// few ulp between glibc and CUDA's libdevice (documented maxima 1-4 ulp, an
// ulp being 2^-23 relative), so 1e-5 norm-wise leaves a wide margin; float64
// functions agree to ~1e-15, checked at 1e-12. Sums accumulate in double on
// both devices in a different order: their float32 results differ by at
// most an ulp. rand is integer arithmetic and a 24-bit scaling: exact. randn
// runs Box-Muller in double, where CUDA's log/sin/cos are within 2 ulp of
// glibc's, so the float results can differ only where rounding to float
// breaks a tie the other way: one float ulp, under 1e-6 for |z| < 8.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_graph.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;
using testing::host;

namespace {

const Device kCuda("cuda");

using testing::cast_source;
using testing::kAllTypes;
using testing::kFloatTypes;

double math_tolerance(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }

// A CUDA tensor of the given shape whose every element is a poison value.
Tensor poisoned_cuda(const Shape& shape, DType dt) {
  return full(shape, is_floating(dt) ? testing::kNaN : 77.0, TensorOptions(dt).with_device(kCuda));
}

// Bitwise agreement of two tensors of any dtype, NaNs matching NaNs.
void check_same(const Tensor& cuda_result, const Tensor& cpu_result, const std::string& what) {
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  CHECK(cuda_result.dtype() == cpu_result.dtype());
  testing::check_equal(host(cuda_result), host(cpu_result), what);
}

void check_close(const Tensor& cuda_result, const Tensor& cpu_result, double tol, const std::string& what) {
  CAPTURE(what);
  CHECK(cuda_result.device().is_cuda());
  REQUIRE(cuda_result.shape() == cpu_result.shape());
  CHECK(cuda_result.dtype() == cpu_result.dtype());
  CHECK(rel_error(cuda_result, cpu_result) <= tol);
}

Tensor input_for(const std::string& domain, const Shape& shape, DType dt, uint64_t seed) {
  if (domain == "positive") return testing::uniform(shape, 0.1, 3.0, dt, seed);
  if (domain == "nonzero") return testing::away_from(shape, 0.0, 0.25, dt, seed);
  return testing::normal(shape, dt, seed) * 2.0;
}

struct UnaryCase {
  const char* name;
  UnaryOp op;
  double scalar;
  const char* domain;
  bool exact;
};

const UnaryCase kUnary[] = {
    {"neg", UnaryOp::Neg, 0, "any", true},
    {"exp", UnaryOp::Exp, 0, "any", false},
    {"log", UnaryOp::Log, 0, "positive", false},
    {"sqrt", UnaryOp::Sqrt, 0, "positive", true},
    {"rsqrt", UnaryOp::Rsqrt, 0, "positive", true},
    {"abs", UnaryOp::Abs, 0, "any", true},
    {"relu", UnaryOp::Relu, 0, "any", true},
    {"sigmoid", UnaryOp::Sigmoid, 0, "any", false},
    {"tanh", UnaryOp::Tanh, 0, "any", false},
    {"square", UnaryOp::Square, 0, "any", true},
    {"reciprocal", UnaryOp::Reciprocal, 0, "nonzero", true},
    {"sign", UnaryOp::Sign, 0, "any", true},
    {"add_scalar", UnaryOp::AddScalar, 1.75, "any", true},
    {"mul_scalar", UnaryOp::MulScalar, -2.5, "any", true},
    {"rsub_scalar", UnaryOp::RsubScalar, 3.0, "any", true},
    {"rdiv_scalar", UnaryOp::RdivScalar, -1.5, "nonzero", true},
    {"pow_scalar 2.7", UnaryOp::PowScalar, 2.7, "positive", false},
    {"pow_scalar 2", UnaryOp::PowScalar, 2.0, "any", true},
    {"pow_scalar 0.5", UnaryOp::PowScalar, 0.5, "positive", true},
    {"max_scalar", UnaryOp::MaxScalar, 0.3, "any", true},
    {"gt_scalar", UnaryOp::GtScalar, -0.2, "any", true},
};

struct BinaryCase {
  const char* name;
  BinaryOp op;
  const char* domain;
  bool exact;
};

const BinaryCase kBinary[] = {
    {"add", BinaryOp::Add, "any", true},           {"sub", BinaryOp::Sub, "any", true},
    {"mul", BinaryOp::Mul, "any", true},           {"div", BinaryOp::Div, "nonzero", true},
    {"maximum", BinaryOp::Maximum, "any", true},   {"minimum", BinaryOp::Minimum, "any", true},
    {"pow", BinaryOp::Pow, "positive", false},     {"relu_backward", BinaryOp::ReluBackward, "any", true},
    {"eq", BinaryOp::Eq, "any", true},             {"gt", BinaryOp::Gt, "any", true},
};

void check_unary(const UnaryCase& c, const Tensor& x_cpu, const Tensor& x_cuda) {
  Tensor want = empty(x_cpu.shape(), x_cpu.dtype());
  kernels::unary(c.op, x_cpu, want, c.scalar);
  Tensor got = poisoned_cuda(x_cpu.shape(), x_cpu.dtype());
  kernels::unary(c.op, x_cuda, got, c.scalar);
  if (c.exact) check_same(got, want, c.name);
  else check_close(got, want, math_tolerance(x_cpu.dtype()), c.name);
}

void check_binary(const BinaryCase& c, const Tensor& a, const Tensor& b, const Tensor& a_cuda, const Tensor& b_cuda) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor want = empty(shape, a.dtype());
  kernels::binary(c.op, a, b, want);
  Tensor got = poisoned_cuda(shape, a.dtype());
  kernels::binary(c.op, a_cuda, b_cuda, got);
  if (c.exact) check_same(got, want, c.name);
  else check_close(got, want, math_tolerance(a.dtype()), c.name);
}

}  // namespace

// ------------------------------------------------------------ moves, fill --

TEST_CASE("CUDA: tensors round-trip between host and device unchanged") {
  uint64_t seed = 10;
  for (DType dt : kAllTypes)
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(dt);
      CAPTURE(n);
      Tensor x = cast_source(dt, {n}, ++seed);
      Tensor d = x.to(kCuda);
      CHECK(d.device() == kCuda);
      CHECK(d.dtype() == dt);
      Tensor back = d.to(kCPU);
      CHECK(back.device() == kCPU);
      testing::check_equal(host(back), host(x), "round trip");
    }
  Tensor m = testing::normal({5, 7}, DType::Float32, 20);
  check_same(m.t().to(kCuda), m.t().contiguous(), "transposed to device");
  CHECK(m.to(kCuda).to(kCuda).device() == kCuda);
  CHECK(scalar_tensor(2.5, TensorOptions(DType::Float64).with_device(kCuda)).item() == 2.5);
}

TEST_CASE("CUDA: fill writes every element of every dtype, contiguous and strided") {
  for (DType dt : kAllTypes)
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(dt);
      CAPTURE(n);
      Tensor want = full({n}, 0.0, dt);
      kernels::fill(want, 42.0);
      Tensor got = poisoned_cuda({n}, dt);
      kernels::fill(got, 42.0);
      check_same(got, want, "fill");
    }
  for (DType dt : kAllTypes) {
    Tensor want = full({6, 9}, 3.0, dt);
    Tensor got = full({6, 9}, 3.0, TensorOptions(dt).with_device(kCuda));
    kernels::fill(want.slice(1, 1, 9, 3).t(), -1.0);
    kernels::fill(got.slice(1, 1, 9, 3).t(), -1.0);
    check_same(got, want, "strided fill");
  }
}

// --------------------------------------------------------------- copy/cast --

TEST_CASE("CUDA: copy casts between every pair of dtypes exactly as the CPU does") {
  uint64_t seed = 100;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes)
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(from);
        CAPTURE(to);
        CAPTURE(n);
        Tensor src = cast_source(from, {n}, ++seed);
        Tensor want = empty({n}, to);
        kernels::copy(src, want);
        Tensor got = poisoned_cuda({n}, to);
        kernels::copy(src.to(kCuda), got);
        check_same(got, want, "cast");
      }
}

TEST_CASE("CUDA: casts of NaN and out-of-range values agree with the CPU") {
  const std::vector<double> edge = {testing::kNaN, -1.0, 255.5, 256.0, 300.0, -1e30, 1e30, INFINITY, -INFINITY, 0.999};
  for (DType from : kFloatTypes)
    for (DType to : {DType::Int64, DType::UInt8}) {
      CAPTURE(from);
      CAPTURE(to);
      Tensor src = from_vector<double>(edge, {static_cast<int64_t>(edge.size())}, from);
      Tensor want = empty(src.shape(), to);
      kernels::copy(src, want);
      Tensor got = poisoned_cuda(src.shape(), to);
      kernels::copy(src.to(kCuda), got);
      check_same(got, want, "edge casts");
    }
  Tensor wide = from_vector<int64_t>({-5, 0, 255, 256, int64_t(1) << 40}, {5}, DType::Int64);
  Tensor want = empty({5}, DType::UInt8);
  kernels::copy(wide, want);
  Tensor got = poisoned_cuda({5}, DType::UInt8);
  kernels::copy(wide.to(kCuda), got);
  check_same(got, want, "int64 to uint8");
}

TEST_CASE("CUDA: copy reads strided and broadcast sources and writes strided destinations") {
  uint64_t seed = 200;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes) {
      CAPTURE(from);
      CAPTURE(to);
      Tensor src = cast_source(from, {33, 65}, ++seed);
      Tensor src_cuda = src.to(kCuda);

      Tensor want = empty({65, 33}, to);
      kernels::copy(src.t(), want);
      Tensor got = poisoned_cuda({65, 33}, to);
      kernels::copy(src_cuda.t(), got);
      check_same(got, want, "transposed source");

      Tensor want_b = empty({4, 33, 65}, to);
      kernels::copy(src, want_b);
      Tensor got_b = poisoned_cuda({4, 33, 65}, to);
      kernels::copy(src_cuda, got_b);
      check_same(got_b, want_b, "broadcast source");

      Tensor want_s = full({65, 33}, 5.0, to);
      kernels::copy(src.slice(0, 0, 33, 1), want_s.t());
      Tensor got_s = full({65, 33}, 5.0, TensorOptions(to).with_device(kCuda));
      kernels::copy(src_cuda, got_s.t());
      check_same(got_s, want_s, "transposed destination");

      Tensor want_st = empty({11, 22}, to);
      kernels::copy(src.slice(0, 0, 33, 3).slice(1, 1, 65, 3), want_st);
      Tensor got_st = poisoned_cuda({11, 22}, to);
      kernels::copy(src_cuda.slice(0, 0, 33, 3).slice(1, 1, 65, 3), got_st);
      check_same(got_st, want_st, "stepped source");
    }
}

TEST_CASE("CUDA: copies between NCHW and channels_last (tiled transposes) give the CPU's values, casts included") {
  // Shapes: tile-aligned, ragged in every direction, a 3x3 filter bank
  // (K, C, 3, 3) as cuDNN's KRSC copies take it, one pixel, one channel.
  const Shape shapes[] = {{2, 64, 8, 8}, {3, 5, 7, 9}, {96, 40, 3, 3}, {4, 33, 1, 1}, {2, 1, 5, 5}, {1, 70, 33, 2}};
  constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;
  uint64_t seed = 250;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes)
      for (const Shape& sh : shapes) {
        CAPTURE(from);
        CAPTURE(to);
        CAPTURE(to_string(sh));
        const Tensor src = cast_source(from, sh, ++seed);
        // NCHW -> NHWC: the CPU's result, compared in logical order.
        Tensor want = empty(sh, TensorOptions(to), kCL);
        kernels::copy(src, want);
        Tensor got = empty(sh, TensorOptions(to).with_device(kCuda), kCL);
        got.fill_(is_floating(to) ? testing::kNaN : 77.0);
        kernels::copy(src.to(kCuda), got);
        check_same(got, want, "to channels_last");
        // NHWC -> NCHW.
        const Tensor src_cl = src.contiguous(kCL);
        Tensor want_back = empty(sh, TensorOptions(to));
        kernels::copy(src_cl, want_back);
        Tensor got_back = poisoned_cuda(sh, to);
        kernels::copy(src_cl.to(kCuda).contiguous(kCL), got_back);
        check_same(got_back, want_back, "to NCHW");
      }
}

// ------------------------------------------------------- unary and binary --

TEST_CASE("CUDA: every UnaryOp agrees with the CPU over sizes 1 to 2^20 + 3") {
  uint64_t seed = 300;
  for (DType dt : kFloatTypes)
    for (const UnaryCase& c : kUnary)
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(dt);
        CAPTURE(std::string(c.name));
        CAPTURE(n);
        Tensor x = input_for(c.domain, {n}, dt, ++seed);
        check_unary(c, x, x.to(kCuda));
      }
}

TEST_CASE("CUDA: every UnaryOp agrees with the CPU on transposed, stepped and expanded inputs") {
  uint64_t seed = 400;
  for (DType dt : kFloatTypes)
    for (const UnaryCase& c : kUnary) {
      CAPTURE(dt);
      CAPTURE(std::string(c.name));
      Tensor x = input_for(c.domain, {37, 129}, dt, ++seed);
      Tensor xc = x.to(kCuda);
      check_unary(c, x.t(), xc.t());
      check_unary(c, x.slice(0, 1, 37, 4).slice(1, 0, 129, 5), xc.slice(0, 1, 37, 4).slice(1, 0, 129, 5));
      check_unary(c, x.slice(0, 3, 4).expand({5, 129}), xc.slice(0, 3, 4).expand({5, 129}));
    }
}

TEST_CASE("CUDA: every BinaryOp agrees with the CPU over sizes, layouts and broadcasts") {
  uint64_t seed = 500;
  for (DType dt : kFloatTypes)
    for (const BinaryCase& c : kBinary) {
      CAPTURE(dt);
      CAPTURE(std::string(c.name));
      for (int64_t n : testing::kEdgeSizes) {
        CAPTURE(n);
        seed += 2;
        Tensor a = input_for(c.domain, {n}, dt, seed), b = input_for(c.domain, {n}, dt, seed + 1);
        check_binary(c, a, b, a.to(kCuda), b.to(kCuda));
      }
      seed += 2;
      Tensor a = input_for(c.domain, {31, 70}, dt, seed), b = input_for(c.domain, {70, 31}, dt, seed + 1);
      Tensor ac = a.to(kCuda), bc = b.to(kCuda);
      check_binary(c, a, b.t(), ac, bc.t());
      check_binary(c, a.slice(1, 0, 70, 2), b.t().slice(1, 1, 70, 2), ac.slice(1, 0, 70, 2), bc.t().slice(1, 1, 70, 2));
      check_binary(c, a, a, ac, ac);
      const std::pair<Shape, Shape> broadcasts[] = {
          {{4, 1, 3}, {5, 3}}, {{3, 1}, {1, 4}}, {{}, {2, 3}}, {{2, 3, 1, 5}, {1}}, {{64, 1, 33}, {1, 129, 1}}};
      for (const auto& [sa, sb] : broadcasts) {
        CAPTURE(to_string(sa));
        CAPTURE(to_string(sb));
        seed += 2;
        Tensor x = input_for(c.domain, sa, dt, seed), y = input_for(c.domain, sb, dt, seed + 1);
        check_binary(c, x, y, x.to(kCuda), y.to(kCuda));
      }
    }
}

TEST_CASE("CUDA: NaN propagates through maximum, minimum and max_scalar as on the CPU") {
  for (DType dt : kFloatTypes) {
    Tensor a = from_vector<double>({testing::kNaN, 1.0, testing::kNaN, -2.0}, {4}, dt);
    Tensor b = from_vector<double>({0.5, testing::kNaN, testing::kNaN, -3.0}, {4}, dt);
    for (const BinaryCase& c : kBinary)
      if (c.exact) check_binary(c, a, b, a.to(kCuda), b.to(kCuda));
    check_unary(kUnary[19], a, a.to(kCuda));  // max_scalar
  }
}

TEST_CASE("CUDA: the ops API gives the CPU's results for a composite expression") {
  for (DType dt : kFloatTypes) {
    Tensor x = testing::normal({64, 33}, dt, 600), y = testing::uniform({33}, 0.5, 2.0, dt, 601);
    auto f = [](const Tensor& a, const Tensor& b) {
      return sigmoid(a) * log(b) - tanh(a / b) + sqrt(b) * relu(a) + pow(b, 1.5) - clamp_min(a, 0.1) + 3.0 / b;
    };
    check_close(f(x.to(kCuda), y.to(kCuda)), f(x, y), math_tolerance(dt), "composite");
  }
}

// -------------------------------------------------------------- reductions --

TEST_CASE("CUDA: every reduction agrees with the CPU over all elements and over each dim") {
  uint64_t seed = 700;
  auto run = [](const char* op, const Tensor& x, const int64_t* dim, bool keepdim) {
    const std::string o = op;
    if (o == "sum") return dim ? sum(x, *dim, keepdim) : sum(x);
    if (o == "mean") return dim ? mean(x, *dim, keepdim) : mean(x);
    if (o == "max") return dim ? max(x, *dim, keepdim) : max(x);
    if (o == "min") return dim ? min(x, *dim, keepdim) : min(x);
    if (o == "argmax") return dim ? argmax(x, *dim, keepdim) : argmax(x);
    return dim ? argmin(x, *dim, keepdim) : argmin(x);
  };
  const char* const ops[] = {"sum", "mean", "max", "min", "argmax", "argmin"};
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(n);
      Tensor x = testing::normal({n}, dt, ++seed);
      Tensor xc = x.to(kCuda);
      for (const char* op : ops) {
        CAPTURE(std::string(op));
        const std::string o = op;
        if (o == "sum" || o == "mean") check_close(run(op, xc, nullptr, false), run(op, x, nullptr, false), 1e-6, op);
        else check_same(run(op, xc, nullptr, false), run(op, x, nullptr, false), op);
      }
    }
    const std::vector<Shape> shapes = {{3, 4, 5}, {1, 7}, {300, 257}, {2, 4097, 3}, {5000, 70}, {1, 1}};
    for (const Shape& shape : shapes) {
      CAPTURE(to_string(shape));
      Tensor x = testing::normal(shape, dt, ++seed);
      Tensor xc = x.to(kCuda);
      for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d)
        for (bool keepdim : {false, true})
          for (const char* op : ops) {
            CAPTURE(d);
            CAPTURE(keepdim);
            CAPTURE(std::string(op));
            const std::string o = op;
            if (o == "sum" || o == "mean") check_close(run(op, xc, &d, keepdim), run(op, x, &d, keepdim), 1e-6, op);
            else check_same(run(op, xc, &d, keepdim), run(op, x, &d, keepdim), op);
          }
    }
  }
}

TEST_CASE("CUDA: argmax ties, NaN and empty sums behave as on the CPU") {
  Tensor t = from_vector<double>({1, 5, 5, 2, 5, -1, -1}, {7}, DType::Float32);
  CHECK(argmax(t.to(kCuda)).item() == 1.0);
  CHECK(argmin(t.to(kCuda)).item() == 5.0);
  // Ties spread far apart, across whatever blocks the CUDA reduction uses.
  Tensor big = testing::normal({(int64_t(1) << 20) + 3}, DType::Float32, 800);
  big.slice(0, 777777, 777778).fill_(100.0);
  big.slice(0, 1234, 1235).fill_(100.0);
  big.slice(0, 999999, 1000000).fill_(100.0);
  CHECK(argmax(big.to(kCuda)).item() == 1234.0);
  big.slice(0, 500000, 500001).fill_(testing::kNaN);
  big.slice(0, 4000, 4001).fill_(testing::kNaN);
  CHECK(argmax(big.to(kCuda)).item() == 4000.0);
  CHECK(std::isnan(max(big.to(kCuda)).item()));
  CHECK(std::isnan(sum(big.to(kCuda)).item()));
  Tensor rows = testing::normal({3, 5000}, DType::Float64, 801);
  rows.slice(0, 1, 2).slice(1, 4321, 4322).fill_(testing::kNaN);
  check_same(max(rows.to(kCuda), 1), max(rows, 1), "row max with NaN");
  check_same(argmax(rows.to(kCuda), 1), argmax(rows, 1), "row argmax with NaN");
  CHECK(sum(empty({0}, kCuda)).item() == 0.0);
  CHECK_THROWS_AS(max(empty({0}, kCuda)), Error);
}

TEST_CASE("CUDA: kernels::reduce writes scaled sums and indices into poisoned outputs") {
  Tensor x = testing::normal({6, 4097, 5}, DType::Float32, 900);
  Tensor xc = x.to(kCuda);
  Tensor want = empty({6, 5}, DType::Float32);
  kernels::reduce(ReduceOp::Sum, x, 6, 4097, 5, want, 0.125);
  Tensor got = poisoned_cuda({6, 5}, DType::Float32);
  kernels::reduce(ReduceOp::Sum, xc, 6, 4097, 5, got, 0.125);
  check_close(got, want, 1e-6, "scaled sum");
  Tensor want_i = empty({6, 5}, DType::Int64);
  kernels::reduce(ReduceOp::ArgMin, x, 6, 4097, 5, want_i, 1.0);
  Tensor got_i = poisoned_cuda({6, 5}, DType::Int64);
  kernels::reduce(ReduceOp::ArgMin, xc, 6, 4097, 5, got_i, 1.0);
  check_same(got_i, want_i, "argmin indices");
}

TEST_CASE("CUDA: a float32 sum of 2^26 values matches the CPU's double accumulation") {
  Generator g(901);
  Tensor u = rand({int64_t(1) << 26}, DType::Float32, &g);
  const double cpu = sum(u).item(), cuda = sum(u.to(kCuda)).item();
  CHECK(std::fabs(cuda - cpu) <= 1e-6 * cpu);
}

// ------------------------------------------------------------------ matmul --

TEST_CASE("CUDA: matmul agrees with the CPU on awkward sizes, all transposes, alpha and beta") {
  struct Size {
    int64_t m, k, n;
  };
  const Size sizes[] = {{1, 1, 1}, {7, 13, 5}, {65, 129, 257}, {300, 1, 300}, {1, 513, 1}, {128, 256, 64}};
  struct AlphaBeta {
    double alpha, beta;
  };
  uint64_t seed = 1000;
  for (DType dt : kFloatTypes)
    for (const Size& s : sizes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (AlphaBeta ab : {AlphaBeta{1.0, 0.0}, AlphaBeta{-0.5, 1.5}}) {
            CAPTURE(dt);
            CAPTURE(s.m);
            CAPTURE(s.k);
            CAPTURE(s.n);
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(ab.beta);
            seed += 3;
            Tensor a = testing::normal(ta ? Shape{s.k, s.m} : Shape{s.m, s.k}, dt, seed);
            Tensor b = testing::normal(tb ? Shape{s.n, s.k} : Shape{s.k, s.n}, dt, seed + 1);
            Tensor c0 = testing::normal({s.m, s.n}, dt, seed + 2);
            Tensor want = c0.clone();
            kernels::matmul(a, b, want, ta, tb, ab.alpha, ab.beta);
            Tensor got = ab.beta == 0.0 ? poisoned_cuda({s.m, s.n}, dt) : c0.to(kCuda);
            kernels::matmul(a.to(kCuda), b.to(kCuda), got, ta, tb, ab.alpha, ab.beta);
            check_close(got, want, math_tolerance(dt), "kernels::matmul");
          }
  for (DType dt : kFloatTypes) {
    Tensor a = testing::normal({129, 65}, dt, 1100), b = testing::normal({33, 129}, dt, 1101);
    check_close(matmul(a.to(kCuda).t(), b.to(kCuda).t()), matmul(a.t(), b.t()), math_tolerance(dt), "views");
    Tensor e = empty({3, 0}, TensorOptions(dt).with_device(kCuda));
    Tensor z = empty({0, 4}, TensorOptions(dt).with_device(kCuda));
    check_same(matmul(e, z), zeros({3, 4}, dt), "inner size 0");
  }
}

// ------------------------------------------------------------------ random --

TEST_CASE("CUDA: rand is bitwise equal to the CPU's for the same seed and offset; randn within 1e-6") {
  for (DType dt : kFloatTypes)
    for (int64_t n : testing::kEdgeSizes) {
      CAPTURE(dt);
      CAPTURE(n);
      Generator cpu_gen(4242), cuda_gen(4242);
      cpu_gen.set_offset(1000003);
      cuda_gen.set_offset(1000003);
      const TensorOptions host_opts(dt), dev_opts = TensorOptions(dt).with_device(kCuda);
      check_same(rand({n}, dev_opts, &cuda_gen), rand({n}, host_opts, &cpu_gen), "rand");
      CHECK(cpu_gen.offset() == cuda_gen.offset());
      Tensor zc = randn({n}, dev_opts, &cuda_gen), z = randn({n}, host_opts, &cpu_gen);
      CHECK(zc.device() == kCuda);
      CHECK(max_abs_diff(zc, z) <= 1e-6);
      CHECK(cpu_gen.offset() == cuda_gen.offset());
    }
  // A seed whose high 32 bits differ gives another stream on both devices.
  Generator g1(7), g2(7 + (uint64_t(1) << 32));
  CHECK(max_abs_diff(rand({64}, kCuda, &g1), rand({64}, kCuda, &g2)) > 0.0);
}

TEST_CASE("CUDA: kernels::fill_random fills a poisoned output like the CPU") {
  for (auto kind : {kernels::RandomKind::Uniform, kernels::RandomKind::Normal}) {
    Tensor want = empty({4097}, DType::Float32);
    kernels::fill_random(kind, want, 99, 12345);
    Tensor got = poisoned_cuda({4097}, DType::Float32);
    kernels::fill_random(kind, got, 99, 12345);
    if (kind == kernels::RandomKind::Uniform) check_same(got, want, "uniform");
    else CHECK(max_abs_diff(got, want) <= 1e-6);
  }
}

// ---------------------------------------------------------------- autograd --

TEST_CASE("CUDA: gradients of a composite expression equal the CPU's") {
  for (DType dt : kFloatTypes) {
    CAPTURE(dt);
    Tensor x0 = testing::normal({16, 12}, dt, 1200), w0 = testing::normal({12, 8}, dt, 1201);
    Tensor b0 = testing::normal({8}, dt, 1202), p0 = testing::uniform({16, 8}, 0.5, 2.0, dt, 1203);
    auto loss_of = [](const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& p) {
      Tensor h = tanh(matmul(x, w) + b);
      Tensor y = sigmoid(h) * log(p) + relu(h.t()).t() * exp(h * 0.5) / p;
      return mean(square(y - max(y, 1, true))) + sum(y.slice(0, 1, 16, 3));
    };
    std::vector<Tensor> cpu, dev;
    for (const Tensor& t : {x0, w0, b0}) {
      cpu.push_back(t.clone());
      cpu.back().set_requires_grad(true);
      dev.push_back(t.to(kCuda));
      dev.back().set_requires_grad(true);
    }
    loss_of(cpu[0], cpu[1], cpu[2], p0).backward();
    Tensor loss_cuda = loss_of(dev[0], dev[1], dev[2], p0.to(kCuda));
    CHECK(loss_cuda.device() == kCuda);
    loss_cuda.backward();
    for (size_t i = 0; i < cpu.size(); ++i) {
      CAPTURE(i);
      REQUIRE(dev[i].grad().defined());
      CHECK(dev[i].grad().device() == kCuda);
      check_close(dev[i].grad(), cpu[i].grad(), dt == DType::Float32 ? 1e-5 : 1e-12, "gradient");
    }
  }
}

TEST_CASE("CUDA: the gradient of a device move flows back to the host leaf") {
  Tensor x = testing::leaf(testing::normal({5}, DType::Float64, 1300));
  sum(x.to(kCuda) * 3.0).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device() == kCPU);
  CHECK(host(x.grad()) == std::vector<double>(5, 3.0));
}

// --------------------------------------------------------------- allocator --

TEST_CASE("CUDA: 10,000 tensor alloc/free cycles make no new cudaMalloc calls after warm-up") {
  const char* no_cache = std::getenv("LRT_CUDA_NO_CACHE");
  if (no_cache != nullptr && *no_cache != '\0' && std::string(no_cache) != "0") {
    MESSAGE("skipped: LRT_CUDA_NO_CACHE is set, so the CUDA allocator caches nothing");
    return;
  }
  Allocator& alloc = cuda_allocator(0);
  const TensorOptions opts = TensorOptions(DType::Float32).with_device(kCuda);
  auto cycle = [&](int i) {
    Tensor a = empty({1 + (i * 7919) % 5000}, opts);
    Tensor b = empty({(1 << 18) + (i * 104729) % (1 << 18)}, opts);
    Tensor c = empty({64, 1 + i % 300}, opts);
  };
  for (int i = 0; i < 10000; ++i) cycle(i);  // warm-up: creates every bucket the sequence needs
  const AllocatorStats warm = alloc.stats();
  for (int i = 0; i < 10000; ++i) cycle(i);
  const AllocatorStats after = alloc.stats();
  CHECK(after.raw_allocs == warm.raw_allocs);
  CHECK(after.reserved_bytes == warm.reserved_bytes);
  CHECK(after.current_bytes == warm.current_bytes);
  CHECK(&allocator_for(kCuda) == &alloc);
}

TEST_CASE("CUDA: an impossible allocation throws an Error naming the bytes, and the allocator recovers") {
  Allocator& alloc = cuda_allocator(0);
  const size_t pib = size_t(1) << 50;
  try {
    alloc.allocate(pib);
    FAIL("allocating 1 PiB on the device did not throw");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("1125899906842624") != std::string::npos);
    CHECK(std::string(e.what()).find("out of memory") != std::string::npos);
  }
  CHECK_THROWS_AS(empty({int64_t(1) << 48}, TensorOptions(DType::Float32).with_device(kCuda)), Error);
  Tensor ok = ones({1024}, kCuda);
  CHECK(sum(ok).item() == 1024.0);
}

// ------------------------------------------------------------------ errors --

TEST_CASE("CUDA: mixing devices in one op throws, naming both devices") {
  Tensor a = ones({3}), b = ones({3}, kCuda);
  try {
    add(a, b);
    FAIL("adding a CPU and a CUDA tensor did not throw");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("cpu") != std::string::npos);
    CHECK(msg.find("cuda:0") != std::string::npos);
  }
  CHECK_THROWS_AS(matmul(ones({2, 2}), ones({2, 2}, kCuda)), Error);
  CHECK_THROWS_AS(zeros({2}, Device("cuda:" + std::to_string(cuda_device_count()))), Error);
}

TEST_CASE("CUDA: nonfinite_flag agrees with the CPU over dtypes, sizes, positions and lists") {
  const double inf = std::numeric_limits<double>::infinity();
  uint64_t seed = 900;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(65537), int64_t(1 << 20) + 3}) {
      CAPTURE(dt);
      CAPTURE(n);
      const Tensor a = (testing::normal({n}, DType::Float64, ++seed) * 1e3).to(dt);
      const Tensor small = testing::normal({3}, DType::Float64, ++seed).to(dt);
      CHECK(nonfinite_flag({small.to(kCuda), a.to(kCuda)}).item() == 0.0);
      for (double b : {testing::kNaN, inf, -inf})
        for (int64_t at : {int64_t(0), n / 2, n - 1, std::min<int64_t>(n - 1, 65536)}) {
          CAPTURE(b);
          CAPTURE(at);
          Tensor t = a.clone();
          t.slice(0, at, at + 1).fill_(b);
          CHECK(nonfinite_flag({small, t}).item() == 1.0);
          CHECK(nonfinite_flag({small.to(kCuda), t.to(kCuda)}).item() == 1.0);
        }
    }
  // float32 not 16-byte aligned (one value a load).
  Tensor base = zeros({4099}, kCuda);
  const Tensor tail = base.slice(0, 1, 4099);
  CHECK(nonfinite_flag({tail}).item() == 0.0);
  base.slice(0, 4098, 4099).fill_(inf);
  CHECK(nonfinite_flag({tail}).item() == 1.0);
}

TEST_CASE("CUDA: nonfinite_flag over more tensors and chunks than one launch takes") {
  std::vector<Tensor> many;
  for (int i = 0; i < 300; ++i) many.push_back(full({i + 1}, 0.5, kCuda));
  CHECK(nonfinite_flag(many).item() == 0.0);
  many.back().slice(0, 299, 300).fill_(testing::kNaN);
  CHECK(nonfinite_flag(many).item() == 1.0);
  // 2^26 + 5 values: more than 1024 chunks of 65,536.
  const int64_t n = (int64_t(1) << 26) + 5;
  Tensor big = zeros({n}, kCuda);
  CHECK(nonfinite_flag({big}).item() == 0.0);
  big.slice(0, n - 1, n).fill_(-std::numeric_limits<double>::infinity());
  CHECK(nonfinite_flag({big}).item() == 1.0);
}

TEST_CASE("CUDA: a captured nonfinite_flag replays over the values the tensors hold then") {
  Tensor a = testing::normal({70000}, DType::Float32, 950).to(kCuda), b = zeros({5}, kCuda);
  Tensor flag;
  CudaGraph graph;
  graph.capture(0, [&] { flag = nonfinite_flag({a, b}); });
  REQUIRE(graph.captured());
  graph.replay();
  CHECK(flag.item() == 0.0);
  a.slice(0, 69999, 70000).fill_(testing::kNaN);
  graph.replay();
  CHECK(flag.item() == 1.0);
  a.slice(0, 69999, 70000).fill_(1.0);
  graph.replay();
  CHECK(flag.item() == 0.0);  // the captured launch zeroes the flag first
  b.slice(0, 0, 1).fill_(std::numeric_limits<double>::infinity());
  graph.replay();
  CHECK(flag.item() == 1.0);
}

TEST_CASE("CUDA: to_each casts float32 weights to bfloat16 in one launch with the bits, layouts and gradients of to()") {
  std::vector<Shape> shapes = {{64, 3, 3, 3}, {256, 64, 1, 1}, {512, 512, 3, 3}, {10, 7, 5, 3}, {7, 3}, {1, 1, 1, 1}};
  for (int i = 0; i < 150; ++i) shapes.push_back({8, 4, 3, 3});  // more tensors than one launch takes
  shapes.push_back({2049, 16, 32, 32});                           // more chunks than one launch takes
  for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
    CAPTURE(f == MemoryFormat::ChannelsLast);
    std::vector<Tensor> src;
    std::vector<MemoryFormat> formats;
    uint64_t seed = 1000;
    for (const Shape& s : shapes) {
      src.push_back(testing::normal(s, DType::Float32, ++seed).to(kCuda).set_requires_grad(true));
      formats.push_back(s.size() == 4 ? f : MemoryFormat::Contiguous);
    }
    src[3].slice(0, 0, 1).detach().fill_(testing::kNaN);  // NaN and infinities cast as to() casts them
    src[4].slice(0, 1, 2).detach().fill_(std::numeric_limits<double>::infinity());
    const std::vector<Tensor> got = to_each(src, DType::BFloat16, formats);
    for (size_t i = 0; i < src.size(); ++i) {
      CAPTURE(i);
      const Tensor want = src[i].to(DType::BFloat16, formats[i]);
      CHECK(got[i].strides() == want.strides());
      testing::check_equal(host(got[i]), host(want), "values");
      if (i < 6) {
        const Tensor g = testing::normal(src[i].shape(), DType::Float32, 77).to(kCuda).to(DType::BFloat16, formats[i]);
        got[i].backward(g);
        const Tensor via_each = src[i].grad();
        src[i].zero_grad();
        want.backward(g);
        CHECK(via_each.strides() == src[i].grad().strides());
        testing::check_equal(host(via_each), host(src[i].grad()), "gradient");
      }
    }
    // All of them in one backward: their gradients come back together at
    // the end (bfloat16 to float32 in launches of up to 128 tensors, from
    // channels_last where the copies are), with to()'s bits. Each copy's
    // gradient is fed as given, in the copy's layout, by a recorded op.
    std::vector<Tensor> gs;
    for (size_t i = 0; i < src.size(); ++i) {
      src[i].zero_grad();
      gs.push_back(testing::normal(src[i].shape(), DType::Float32, 500 + i).to(kCuda).to(DType::BFloat16, formats[i]));
    }
    auto total = [&gs](const std::vector<Tensor>& xs) {
      Tensor t;
      for (size_t i = 0; i < xs.size(); ++i) {
        Tensor term;
        {
          NoGradGuard no_grad;
          term = zeros({}, TensorOptions(DType::Float32).with_device(kCuda));
        }
        term = record("feed", term, {xs[i]}, [g = gs[i]](const Tensor&) { return std::vector<Tensor>{g}; });
        t = t.defined() ? t + term : term;
      }
      return t;
    };
    total(to_each(src, DType::BFloat16, formats)).backward();
    std::vector<Tensor> together, one_by_one;
    for (size_t i = 0; i < src.size(); ++i) {
      together.push_back(src[i].grad());
      src[i].zero_grad();
      one_by_one.push_back(src[i].to(DType::BFloat16, formats[i]));
    }
    total(one_by_one).backward();
    for (size_t i = 0; i < src.size(); ++i) {
      CAPTURE(i);
      REQUIRE(together[i].defined());
      CHECK(together[i].dtype() == DType::Float32);
      testing::check_equal(host(together[i]), host(src[i].grad()), "gradient, all in one backward");
      // and the values of widening the fed gradient by hand (in the copy's layout)
      testing::check_equal(host(together[i]), host(gs[i].to(DType::Float32)), "gradient, widened");
    }
  }
}

}  // namespace lrt

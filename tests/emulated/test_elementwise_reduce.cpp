// The CUDA elementwise and reduction kernels and their launchers
// (kernels/cuda/elementwise.cu, kernels/cuda/reduce.cu) on the emulated grid
// (emulated/grid.h), against the CPU kernels: casts between every pair of
// dtypes, strided, broadcast and misaligned sources, the tiled NCHW <->
// channels_last transposes, the multi-tensor conversions of copy_each
// (float32 -> bfloat16, KRSC included, and back), every unary and binary
// op, every reduction over short rows, long rows and columns, and the
// finiteness flag over dtypes, positions and more tensors than one launch
// takes. Outputs are poisoned first, so an unwritten element shows.
//
// Here both sides run the same per-element math (kernels/elementwise.h,
// kernels/cast.h) compiled for the CPU, so every elementwise result must be
// the CPU's bits, transcendental functions included (on a GPU those differ
// by a few ulp: tests/kernels/cuda/test_parity.cpp). Sums accumulate in
// double in another order: 1e-6 for float32 (one ulp of the result),
// 1e-12 for float64; max, min and the indices are exact.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/ops.h"
#include "emulated/checks.h"
#include "emulated/grid.h"
#include "kernels/kernels.h"
#include "testing.h"

namespace lrt {

namespace {

namespace kb = kernels;
using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;
using emulated_checks::check_close;
using emulated_checks::check_same;
using emulated_checks::poisoned;
using testing::host;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

// t's values one element past the start of a larger buffer (misaligned for
// every vector load), contiguous.
Tensor misaligned(const Tensor& t) {
  Tensor buf = empty({t.numel() + 1}, TensorOptions(t.dtype()));
  Tensor v = buf.slice(0, 1, t.numel() + 1).reshape(t.shape());
  v.copy_(t);
  return v;
}

Tensor input_for(UnaryOp op, const Shape& s, DType dt, uint64_t seed) {
  switch (op) {
    case UnaryOp::Log:
    case UnaryOp::Sqrt:
    case UnaryOp::Rsqrt:
    case UnaryOp::PowScalar: return testing::uniform(s, 0.1, 3.0, dt, seed);
    case UnaryOp::Reciprocal:
    case UnaryOp::RdivScalar: return testing::away_from(s, 0.0, 0.25, dt, seed);
    default: return testing::normal(s, dt, seed) * 2.0;
  }
}

constexpr UnaryOp kUnaryOps[] = {UnaryOp::Neg,        UnaryOp::Exp,        UnaryOp::Log,        UnaryOp::Sqrt,
                                 UnaryOp::Rsqrt,      UnaryOp::Abs,        UnaryOp::Relu,       UnaryOp::Sigmoid,
                                 UnaryOp::Tanh,       UnaryOp::Square,     UnaryOp::Reciprocal, UnaryOp::Sign,
                                 UnaryOp::AddScalar,  UnaryOp::MulScalar,  UnaryOp::RsubScalar, UnaryOp::RdivScalar,
                                 UnaryOp::PowScalar,  UnaryOp::MaxScalar,  UnaryOp::GtScalar};
constexpr BinaryOp kBinaryOps[] = {BinaryOp::Add,     BinaryOp::Sub,     BinaryOp::Mul,          BinaryOp::Div,
                                   BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Pow,          BinaryOp::ReluBackward,
                                   BinaryOp::Eq,      BinaryOp::Gt};

}  // namespace

TEST_CASE("emulated grid: CUDA copies cast, stride, broadcast and transpose to NHWC as the CPU does") {
  const emulated_grid::ScopedSmCount device(8);  // at most 128 blocks: the grid-stride loops go round
  uint64_t seed = 100;
  for (DType from : testing::kAllTypes)
    for (DType to : testing::kAllTypes) {
      CAPTURE(from);
      CAPTURE(to);
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(4097), int64_t(65539)}) {
        CAPTURE(n);
        const Tensor src = testing::cast_source(from, {n}, ++seed);
        Tensor want = empty({n}, to), got = poisoned({n}, to);
        kb::cpu::copy(src, want);
        kb::emulated::copy(src, got);
        check_same(got, want, "cast");
        if (n > 1) {
          Tensor got_m = misaligned(poisoned({n}, to));
          kb::emulated::copy(misaligned(src), got_m);
          check_same(got_m, want, "cast, misaligned");
        }
      }
      const Tensor src = testing::cast_source(from, {33, 65}, ++seed);
      Tensor want = empty({65, 33}, to), got = poisoned({65, 33}, to);
      kb::cpu::copy(src.t(), want);
      kb::emulated::copy(src.t(), got);
      check_same(got, want, "transposed source");
      Tensor want_b = empty({4, 33, 65}, to), got_b = poisoned({4, 33, 65}, to);
      kb::cpu::copy(src, want_b);
      kb::emulated::copy(src, got_b);
      check_same(got_b, want_b, "broadcast source");
      Tensor want_s = empty({11, 22}, to), got_s = poisoned({11, 22}, to);
      kb::cpu::copy(src.slice(0, 0, 33, 3).slice(1, 1, 65, 3), want_s);
      kb::emulated::copy(src.slice(0, 0, 33, 3).slice(1, 1, 65, 3), got_s);
      check_same(got_s, want_s, "stepped source");
      // NCHW <-> NHWC (tiled transposes): tile-aligned, ragged, a filter bank.
      for (const Shape& sh : {Shape{2, 64, 8, 8}, Shape{3, 5, 7, 9}, Shape{96, 40, 3, 3}, Shape{1, 70, 33, 2}}) {
        CAPTURE(to_string(sh));
        const Tensor x = testing::cast_source(from, sh, ++seed);
        Tensor want_cl = empty(sh, TensorOptions(to), kCL), got_cl = poisoned(sh, to, kCL);
        kb::cpu::copy(x, want_cl);
        kb::emulated::copy(x, got_cl);
        check_same(got_cl, want_cl, "to channels_last");
        const Tensor x_cl = x.contiguous(kCL);
        Tensor want_back = empty(sh, to), got_back = poisoned(sh, to);
        kb::cpu::copy(x_cl, want_back);
        kb::emulated::copy(x_cl, got_back);
        check_same(got_back, want_back, "to NCHW");
      }
    }
}

TEST_CASE("emulated grid: CUDA copy_each converts weights to bfloat16 (KRSC too) and back, in one launch and over several") {
  const emulated_grid::ScopedSmCount device(8);
  std::vector<Shape> shapes = {{64, 3, 3, 3}, {256, 64, 1, 1}, {10, 7, 5, 3}, {7, 3}, {1, 1, 1, 1}, {70, 40, 3, 3}};
  for (int i = 0; i < 140; ++i) shapes.push_back({3, 4, 3, 3});  // more tensors than one launch takes
  shapes.push_back({3, 4, 1, 1});
  uint64_t seed = 200;
  for (MemoryFormat f : {MemoryFormat::Contiguous, kCL}) {
    CAPTURE(f == kCL);
    std::vector<Tensor> src, narrow_want, narrow_got, wide_want, wide_got;
    for (const Shape& s : shapes) {
      const MemoryFormat fs = s.size() == 4 ? f : MemoryFormat::Contiguous;
      src.push_back(testing::normal(s, DType::Float32, ++seed) * 100.0);
      narrow_want.push_back(empty(s, TensorOptions(DType::BFloat16), fs));
      narrow_got.push_back(poisoned(s, DType::BFloat16, fs));
    }
    src[2].slice(0, 0, 1).fill_(testing::kNaN);
    src[3].slice(0, 1, 2).fill_(std::numeric_limits<double>::infinity());
    // A pair copy_each does not convert in its launch (float64 -> float32): a copy of its own.
    src.push_back(testing::normal({5, 9}, DType::Float64, ++seed));
    narrow_want.push_back(empty({5, 9}, DType::Float32));
    narrow_got.push_back(poisoned({5, 9}, DType::Float32));
    kb::cpu::copy_each(src, narrow_want);
    kb::emulated::copy_each(src, narrow_got);
    for (size_t i = 0; i < src.size(); ++i) {
      CAPTURE(i);
      CHECK(narrow_got[i].strides() == narrow_want[i].strides());
      check_same(narrow_got[i], narrow_want[i], "to bfloat16");
    }
    // And back: bfloat16 (KRSC for channels_last) into contiguous float32.
    src.pop_back();
    narrow_want.pop_back();
    for (const Tensor& b : narrow_want) {
      wide_want.push_back(empty(b.shape(), DType::Float32));
      wide_got.push_back(poisoned(b.shape(), DType::Float32));
    }
    kb::cpu::copy_each(narrow_want, wide_want);
    kb::emulated::copy_each(narrow_want, wide_got);
    for (size_t i = 0; i < wide_want.size(); ++i) {
      CAPTURE(i);
      check_same(wide_got[i], wide_want[i], "back to float32");
    }
  }
}

TEST_CASE("emulated grid: every CUDA unary and binary op gives the CPU's bits, packed, misaligned, strided, broadcast") {
  const emulated_grid::ScopedSmCount device(8);
  uint64_t seed = 300;
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    for (UnaryOp op : kUnaryOps) {
      CAPTURE(static_cast<int>(op));
      const double scalar = op == UnaryOp::PowScalar ? 2.7 : -1.25;
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(4099)}) {
        const Tensor x = input_for(op, {n}, dt, ++seed);
        Tensor want = empty({n}, dt), got = poisoned({n}, dt), got_m = poisoned({n}, dt);
        kb::cpu::unary(op, x, want, scalar);
        kb::emulated::unary(op, x, got, scalar);
        check_same(got, want, "unary");
        kb::emulated::unary(op, misaligned(x), got_m, scalar);
        check_same(got_m, want, "unary, misaligned input");
      }
      const Tensor x = input_for(op, {37, 129}, dt, ++seed);
      Tensor want = empty({129, 37}, dt), got = poisoned({129, 37}, dt);
      kb::cpu::unary(op, x.t(), want, scalar);
      kb::emulated::unary(op, x.t(), got, scalar);
      check_same(got, want, "unary, transposed input");
    }
    for (BinaryOp op : kBinaryOps) {
      CAPTURE(static_cast<int>(op));
      auto operand = [&](const Shape& s) {
        return op == BinaryOp::Pow ? testing::uniform(s, 0.1, 3.0, dt, ++seed)
               : op == BinaryOp::Div ? testing::away_from(s, 0.0, 0.25, dt, ++seed)
                                     : testing::normal(s, dt, ++seed);
      };
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(4099)}) {
        const Tensor a = operand({n}), b = operand({n});
        Tensor want = empty({n}, dt), got = poisoned({n}, dt), got_m = poisoned({n}, dt);
        kb::cpu::binary(op, a, b, want);
        kb::emulated::binary(op, a, b, got);
        check_same(got, want, "binary");
        kb::emulated::binary(op, misaligned(a), b, got_m);
        check_same(got_m, want, "binary, misaligned input");
      }
      const std::pair<Shape, Shape> broadcasts[] = {
          {{4, 1, 3}, {5, 3}}, {{3, 1}, {1, 4}}, {{}, {2, 3}}, {{64, 1, 33}, {1, 129, 1}}};
      for (const auto& [sa, sb] : broadcasts) {
        CAPTURE(to_string(sa));
        CAPTURE(to_string(sb));
        const Tensor a = operand(sa), b = operand(sb);
        const Shape s = broadcast_shapes(sa, sb);
        Tensor want = empty(s, dt), got = poisoned(s, dt);
        kb::cpu::binary(op, a, b, want);
        kb::emulated::binary(op, a, b, got);
        check_same(got, want, "binary, broadcast");
      }
      const Tensor a = operand({31, 70}), b = operand({70, 31});
      Tensor want = empty({31, 70}, dt), got = poisoned({31, 70}, dt);
      kb::cpu::binary(op, a, b.t(), want);
      kb::emulated::binary(op, a, b.t(), got);
      check_same(got, want, "binary, transposed operand");
    }
  }
}

TEST_CASE("emulated grid: every CUDA reduction agrees with the CPU over short rows, long rows and columns") {
  struct Case {
    int64_t outer, r, inner;
  };
  // Short rows (one thread a row: the global average pool's 16 values), a
  // row of 65, long rows split over blocks, columns (the pool over
  // channels_last features: (N, HW, C)), one value.
  const Case cases[] = {{300, 16, 1}, {5, 64, 1}, {3, 65, 1}, {2, 20000, 1}, {6, 4097, 5},
                        {16, 16, 64}, {2, 9000, 3}, {1, 1, 1}, {7, 1, 3}};
  const ReduceOp ops[] = {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin};
  uint64_t seed = 400;
  for (int sms : {132, 2}) {
    const emulated_grid::ScopedSmCount device(sms);
    for (DType dt : {DType::Float32, DType::Float64})
      for (const Case& c : cases)
        for (ReduceOp op : ops) {
          CAPTURE(sms);
          CAPTURE(dt);
          CAPTURE(c.outer);
          CAPTURE(c.r);
          CAPTURE(c.inner);
          CAPTURE(static_cast<int>(op));
          Tensor x = testing::normal({c.outer, c.r, c.inner}, dt, ++seed);
          if (c.r > 100) x.slice(1, c.r / 3, c.r / 3 + 1).copy_(x.slice(1, 2 * c.r / 3, 2 * c.r / 3 + 1));  // ties
          const bool index = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
          const DType out_dt = index ? DType::Int64 : dt;
          Tensor want = empty({c.outer, c.inner}, out_dt), got = poisoned({c.outer, c.inner}, out_dt);
          const double scale = op == ReduceOp::Sum ? 0.125 : 1.0;
          kb::cpu::reduce(op, x, c.outer, c.r, c.inner, want, scale);
          kb::emulated::reduce(op, x, c.outer, c.r, c.inner, got, scale);
          if (op == ReduceOp::Sum)
            check_close(got, want, dt == DType::Float32 ? 1e-6 : 1e-12, "sum");
          else
            check_same(got, want, "max, min or index");
        }
  }
}

TEST_CASE("emulated grid: the CUDA finiteness flag finds NaN and infinities anywhere, over more tensors than one launch") {
  const emulated_grid::ScopedSmCount device(8);
  const double inf = std::numeric_limits<double>::infinity();
  uint64_t seed = 500;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(65537)}) {
      CAPTURE(dt);
      CAPTURE(n);
      const Tensor a = (testing::normal({n}, DType::Float64, ++seed) * 1e3).to(dt);
      const Tensor small = testing::normal({3}, DType::Float64, ++seed).to(dt);
      Tensor flag = full({}, testing::kNaN, TensorOptions(DType::Float32));
      kb::emulated::nonfinite_flag({small, a}, flag);
      CHECK(flag.item() == 0.0);
      for (double b : {testing::kNaN, inf, -inf})
        for (int64_t at : {int64_t(0), n / 2, n - 1}) {
          CAPTURE(b);
          CAPTURE(at);
          Tensor t = a.clone();
          t.slice(0, at, at + 1).fill_(b);
          for (const Tensor& u : {t, misaligned(t)}) {
            flag.fill_(testing::kNaN);
            kb::emulated::nonfinite_flag({small, u}, flag);
            CHECK(flag.item() == 1.0);
          }
        }
    }
  std::vector<Tensor> many;
  for (int i = 0; i < 300; ++i) many.push_back(full({i + 1}, 0.5, TensorOptions(DType::Float32)));
  Tensor flag = full({}, testing::kNaN, TensorOptions(DType::Float32));
  kb::emulated::nonfinite_flag(many, flag);
  CHECK(flag.item() == 0.0);
  many.back().slice(0, 299, 300).fill_(testing::kNaN);
  kb::emulated::nonfinite_flag(many, flag);
  CHECK(flag.item() == 1.0);
}

}  // namespace lrt

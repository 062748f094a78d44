// Per-element math of the unary and binary ops, written once: the CPU loops
// (kernels/cpu/elementwise.cpp) and the CUDA kernels (kernels/cuda/
// elementwise.cu) both instantiate unary_apply / binary_apply. The op is a
// template parameter so each loop compiles to straight-line code; dispatch_*
// turns the run-time op into that parameter.
#pragma once

#include <type_traits>

#include "core/bfloat16.h"
#include "core/hd.h"
#include "kernels/math.h"

namespace lrt::kernels {

// Ops ending in Scalar take a second operand s, the same for every element.
enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Relu, Sigmoid, Tanh, Square, Reciprocal, Sign,
  AddScalar,   // x + s
  MulScalar,   // x * s
  RsubScalar,  // s - x
  RdivScalar,  // s / x
  PowScalar,   // x ^ s
  MaxScalar,   // max(x, s)
  GtScalar,    // x > s ? 1 : 0
};

enum class BinaryOp {
  Add, Sub, Mul, Div, Maximum, Minimum,
  Pow,           // a ^ b
  ReluBackward,  // (grad, x) -> x > 0 ? grad : 0
  Eq,            // a == b ? 1 : 0
  Gt,            // a > b ? 1 : 0
};

template <UnaryOp OP, class T>
LRT_HD T unary_apply(T x, T s) {
  if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::Exp) return math::exp(x);
  else if constexpr (OP == UnaryOp::Log) return math::log(x);
  else if constexpr (OP == UnaryOp::Sqrt) return math::sqrt(x);
  else if constexpr (OP == UnaryOp::Rsqrt) return T(1) / math::sqrt(x);
  else if constexpr (OP == UnaryOp::Abs) return math::abs(x);
  else if constexpr (OP == UnaryOp::Relu) return x > T(0) ? x : T(0);
  else if constexpr (OP == UnaryOp::Sigmoid) return T(1) / (T(1) + math::exp(-x));
  else if constexpr (OP == UnaryOp::Tanh) return math::tanh(x);
  else if constexpr (OP == UnaryOp::Square) return x * x;
  else if constexpr (OP == UnaryOp::Reciprocal) return T(1) / x;
  else if constexpr (OP == UnaryOp::Sign) return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  else if constexpr (OP == UnaryOp::AddScalar) return x + s;
  else if constexpr (OP == UnaryOp::MulScalar) return x * s;
  else if constexpr (OP == UnaryOp::RsubScalar) return s - x;
  else if constexpr (OP == UnaryOp::RdivScalar) return s / x;
  else if constexpr (OP == UnaryOp::PowScalar) {
    if (s == T(2)) return x * x;
    if (s == T(1)) return x;
    if (s == T(0.5)) return math::sqrt(x);
    return math::pow(x, s);
  }
  else if constexpr (OP == UnaryOp::MaxScalar) return (x > s || math::isnan(x)) ? x : s;
  else if constexpr (OP == UnaryOp::GtScalar) return x > s ? T(1) : T(0);
  else static_assert(!sizeof(T), "unhandled UnaryOp");
}

template <BinaryOp OP, class T>
LRT_HD T binary_apply(T a, T b) {
  if constexpr (OP == BinaryOp::Add) return a + b;
  else if constexpr (OP == BinaryOp::Sub) return a - b;
  else if constexpr (OP == BinaryOp::Mul) return a * b;
  else if constexpr (OP == BinaryOp::Div) return a / b;
  else if constexpr (OP == BinaryOp::Maximum) return (a > b || math::isnan(a)) ? a : b;
  else if constexpr (OP == BinaryOp::Minimum) return (a < b || math::isnan(a)) ? a : b;
  else if constexpr (OP == BinaryOp::Pow) return math::pow(a, b);
  else if constexpr (OP == BinaryOp::ReluBackward) return b > T(0) ? a : T(0);
  else if constexpr (OP == BinaryOp::Eq) return a == b ? T(1) : T(0);
  else if constexpr (OP == BinaryOp::Gt) return a > b ? T(1) : T(0);
  else static_assert(!sizeof(T), "unhandled BinaryOp");
}

// Storage and arithmetic types: bfloat16 values are computed on in float
// and rounded once per result; float and double compute in themselves.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<BFloat16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

// unary_apply / binary_apply on stored values of type T.
template <UnaryOp OP, class T>
LRT_HD T unary_at(T x, compute_t<T> s) {
  using C = compute_t<T>;
  return T(unary_apply<OP, C>(static_cast<C>(x), s));
}
template <BinaryOp OP, class T>
LRT_HD T binary_at(T a, T b) {
  using C = compute_t<T>;
  return T(binary_apply<OP, C>(static_cast<C>(a), static_cast<C>(b)));
}

template <UnaryOp OP>
using UnaryTag = std::integral_constant<UnaryOp, OP>;
template <BinaryOp OP>
using BinaryTag = std::integral_constant<BinaryOp, OP>;

// Calls f(UnaryTag<op>{}) with the op as a compile-time constant.
template <class F>
void dispatch_unary(UnaryOp op, F&& f) {
  switch (op) {
#define LRT_UNARY_CASE(name) \
  case UnaryOp::name: f(UnaryTag<UnaryOp::name>{}); return;
    LRT_UNARY_CASE(Neg) LRT_UNARY_CASE(Exp) LRT_UNARY_CASE(Log) LRT_UNARY_CASE(Sqrt)
    LRT_UNARY_CASE(Rsqrt) LRT_UNARY_CASE(Abs) LRT_UNARY_CASE(Relu) LRT_UNARY_CASE(Sigmoid)
    LRT_UNARY_CASE(Tanh) LRT_UNARY_CASE(Square) LRT_UNARY_CASE(Reciprocal) LRT_UNARY_CASE(Sign)
    LRT_UNARY_CASE(AddScalar) LRT_UNARY_CASE(MulScalar) LRT_UNARY_CASE(RsubScalar)
    LRT_UNARY_CASE(RdivScalar) LRT_UNARY_CASE(PowScalar) LRT_UNARY_CASE(MaxScalar)
    LRT_UNARY_CASE(GtScalar)
#undef LRT_UNARY_CASE
  }
}

template <class F>
void dispatch_binary(BinaryOp op, F&& f) {
  switch (op) {
#define LRT_BINARY_CASE(name) \
  case BinaryOp::name: f(BinaryTag<BinaryOp::name>{}); return;
    LRT_BINARY_CASE(Add) LRT_BINARY_CASE(Sub) LRT_BINARY_CASE(Mul) LRT_BINARY_CASE(Div)
    LRT_BINARY_CASE(Maximum) LRT_BINARY_CASE(Minimum) LRT_BINARY_CASE(Pow)
    LRT_BINARY_CASE(ReluBackward) LRT_BINARY_CASE(Eq) LRT_BINARY_CASE(Gt)
#undef LRT_BINARY_CASE
  }
}

}  // namespace lrt::kernels

// Differentiable tensor ops over the kernels in kernels/. Backward closures
// run with grad mode off and are themselves written with these ops, so every
// gradient works on every device the forward does.
#include "core/ops.h"

#include <cmath>
#include <initializer_list>

#include "core/autograd.h"
#include "kernels/kernels.h"

namespace lrt {

using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;

namespace {

using Grads = std::vector<Tensor>;

// Elementwise results keep a channels_last layout that all their inputs
// share: the kernels then run over the values in memory order.
bool all_channels_last(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (memory_format_of(*t) != MemoryFormat::ChannelsLast || t->shape() != (*ts.begin())->shape()) return false;
  return true;
}

using detail::memory_order_view;

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  LRT_CHECK(a.defined() && b.defined(), name, ": undefined tensor");
  detail::check_same_device(a, b, name);
  detail::check_same_dtype(a, b, name);
  detail::check_floating_or_bf16(a, name);
  Shape shape;
  try {
    shape = broadcast_shapes(a.shape(), b.shape());
  } catch (const Error& e) {
    LRT_THROW(name, ": ", e.message());
  }
  if (all_channels_last({&a, &b})) {
    Tensor out = empty(shape, a.options(), MemoryFormat::ChannelsLast);
    kernels::binary(op, memory_order_view(a), memory_order_view(b), memory_order_view(out));
    return out;
  }
  Tensor out = empty(shape, a.options());
  kernels::binary(op, a, b, out);
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& a, const char* name, double s = 0.0) {
  LRT_CHECK(a.defined(), name, ": undefined tensor");
  detail::check_floating_or_bf16(a, name);
  if (all_channels_last({&a})) {
    Tensor out = empty(a.shape(), a.options(), MemoryFormat::ChannelsLast);
    kernels::unary(op, memory_order_view(a), memory_order_view(out), s);
    return out;
  }
  Tensor out = empty(a.shape(), a.options());
  kernels::unary(op, a, out, s);
  return out;
}

// The gradient of an input that requires one, else undefined (skips work).
template <class F>
Tensor grad_if(const Tensor& input, F&& f) {
  return input.requires_grad() ? f() : Tensor();
}

}  // namespace

// ------------------------------------------------------------------ binary --

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b, "add");
  return record("add", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b, "sub");
  return record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b, "mul");
  return record("mul", out, {a, b}, [a, b](const Tensor& g) {
    return Grads{grad_if(a, [&] { return sum_to(g * b, a.shape()); }),
                 grad_if(b, [&] { return sum_to(g * a, b.shape()); })};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b, "div");
  return record("div", out, {a, b}, [a, b, out = out.detach()](const Tensor& g) {
    return Grads{grad_if(a, [&] { return sum_to(g / b, a.shape()); }),
                 grad_if(b, [&] { return sum_to(neg(g * out / b), b.shape()); })};
  });
}

namespace {
// Gradient share of a for maximum/minimum: 1 where a wins, 1/2 on ties.
Tensor winner_mask(const Tensor& a, const Tensor& b, bool is_max) {
  Tensor wins = is_max ? gt(a, b) : gt(b, a);
  return wins + eq(a, b) * 0.5;
}
Tensor extremum(const Tensor& a, const Tensor& b, bool is_max) {
  const char* name = is_max ? "maximum" : "minimum";
  Tensor out = binary_forward(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, a, b, name);
  return record(name, out, {a, b}, [a, b, is_max](const Tensor& g) {
    return Grads{grad_if(a, [&] { return sum_to(g * winner_mask(a, b, is_max), a.shape()); }),
                 grad_if(b, [&] { return sum_to(g * winner_mask(b, a, is_max), b.shape()); })};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Eq, a, b, "eq"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Gt, a, b, "gt"); }

// ------------------------------------------------------------------ scalar --

Tensor add(const Tensor& a, double s) {
  Tensor out = unary_forward(UnaryOp::AddScalar, a, "add", s);
  return record("add_scalar", out, {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = unary_forward(UnaryOp::MulScalar, a, "mul", s);
  return record("mul_scalar", out, {a}, [s](const Tensor& g) { return Grads{g * s}; });
}

Tensor rsub(const Tensor& a, double s) {
  Tensor out = unary_forward(UnaryOp::RsubScalar, a, "rsub", s);
  return record("rsub", out, {a}, [](const Tensor& g) { return Grads{neg(g)}; });
}

Tensor rdiv(const Tensor& a, double s) {
  Tensor out = unary_forward(UnaryOp::RdivScalar, a, "rdiv", s);
  return record("rdiv", out, {a}, [a, out = out.detach()](const Tensor& g) { return Grads{neg(g * out / a)}; });
}

Tensor pow(const Tensor& a, double p) {
  Tensor out = unary_forward(UnaryOp::PowScalar, a, "pow", p);
  return record("pow", out, {a}, [a, p](const Tensor& g) {
    return Grads{p == 0.0 ? zeros_like(a) : g * pow(a, p - 1.0) * p};
  });
}

Tensor clamp_min(const Tensor& a, double lo) {
  Tensor out = unary_forward(UnaryOp::MaxScalar, a, "clamp_min", lo);
  return record("clamp_min", out, {a}, [a, lo](const Tensor& g) {
    return Grads{g * unary_forward(UnaryOp::GtScalar, a, "clamp_min", lo)};
  });
}

// ------------------------------------------------------------------- unary --

Tensor neg(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Neg, a, "neg");
  return record("neg", out, {a}, [](const Tensor& g) { return Grads{neg(g)}; });
}

Tensor exp(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Exp, a, "exp");
  return record("exp", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{g * out}; });
}

Tensor log(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Log, a, "log");
  return record("log", out, {a}, [a](const Tensor& g) { return Grads{g / a}; });
}

Tensor sqrt(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Sqrt, a, "sqrt");
  return record("sqrt", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{g * 0.5 / out}; });
}

Tensor rsqrt(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Rsqrt, a, "rsqrt");
  return record("rsqrt", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{g * pow(out, 3.0) * -0.5}; });
}

Tensor abs(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Abs, a, "abs");
  return record("abs", out, {a}, [a](const Tensor& g) {
    return Grads{g * unary_forward(UnaryOp::Sign, a, "abs")};
  });
}

Tensor relu(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Relu, a, "relu");
  return record("relu", out, {a}, [out = out.detach()](const Tensor& g) {
    return Grads{binary_forward(BinaryOp::ReluBackward, g, out, "relu backward")};  // keeps a shared layout
  });
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Sigmoid, a, "sigmoid");
  return record("sigmoid", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{g * out * rsub(out, 1.0)}; });
}

Tensor tanh(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Tanh, a, "tanh");
  return record("tanh", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{g * rsub(square(out), 1.0)}; });
}

Tensor square(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Square, a, "square");
  return record("square", out, {a}, [a](const Tensor& g) { return Grads{g * a * 2.0}; });
}

Tensor reciprocal(const Tensor& a) {
  Tensor out = unary_forward(UnaryOp::Reciprocal, a, "reciprocal");
  return record("reciprocal", out, {a}, [out = out.detach()](const Tensor& g) { return Grads{neg(g * square(out))}; });
}

// -------------------------------------------------------------- reductions --

namespace {

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::ArgMax: return "argmax";
    case ReduceOp::ArgMin: return "argmin";
  }
  return "reduce";
}

// Reduces dimension dim (all dimensions when dim is null) without recording.
Tensor reduce_raw(ReduceOp op, const Tensor& a, const int64_t* dim, bool keepdim, double scale) {
  const char* name = reduce_name(op);
  LRT_CHECK(a.defined(), name, ": undefined tensor");
  detail::check_floating_or_bf16(a, name);
  if (a.dtype() == DType::BFloat16) {
    // The float32 reduction (summed in double by the kernels, rounded to
    // float), then rounded to bfloat16.
    NoGradGuard no_grad;
    const Tensor r = reduce_raw(op, a.to(DType::Float32), dim, keepdim, scale);
    return kernels::reduce_returns_index(op) ? r : r.to(DType::BFloat16);
  }
  Tensor in;
  {
    NoGradGuard no_grad;
    in = a.contiguous();
  }
  int64_t outer = 1, r = a.numel(), inner = 1;
  Shape out_shape;
  if (dim) {
    const int d = wrap_dim(*dim, a.dim());
    const Shape& s = a.shape();
    r = a.dim() == 0 ? 1 : s[d];
    for (int i = 0; i < d; ++i) outer *= s[i];
    for (int i = d + 1; i < a.dim(); ++i) inner *= s[i];
    out_shape = s;
    if (a.dim() > 0) {
      if (keepdim) out_shape[d] = 1;
      else out_shape.erase(out_shape.begin() + d);
    }
  } else if (keepdim) {
    out_shape.assign(a.dim(), 1);
  }
  LRT_CHECK(r > 0 || op == ReduceOp::Sum, name, " of an empty tensor of shape ", to_string(a.shape()),
            " has no identity");
  const DType out_type = kernels::reduce_returns_index(op) ? DType::Int64 : a.dtype();
  Tensor out = empty(out_shape, a.options().with_dtype(out_type));
  kernels::reduce(op, in, outer, r, inner, out, scale);
  return out;
}

// Brings a reduced gradient (or value) back to the input's shape.
Tensor unreduce(const Tensor& g, const Shape& in_shape, const int64_t* dim, bool keepdim) {
  Tensor k = g;
  if (dim && !keepdim && !in_shape.empty()) k = k.unsqueeze(wrap_dim(*dim, static_cast<int>(in_shape.size())));
  if (!dim) k = k.reshape(Shape(in_shape.size(), 1));
  return k.expand(in_shape);
}

Tensor sum_impl(const Tensor& a, const int64_t* dim, bool keepdim, bool mean) {
  int64_t r = a.numel();
  if (dim && a.dim() > 0) r = a.shape()[wrap_dim(*dim, a.dim())];
  const double scale = mean ? 1.0 / static_cast<double>(std::max<int64_t>(r, 1)) : 1.0;
  if (mean) LRT_CHECK(r > 0, "mean of an empty tensor of shape ", to_string(a.shape()));
  Tensor out = reduce_raw(ReduceOp::Sum, a, dim, keepdim, scale);
  const bool has_dim = dim != nullptr;
  const int64_t d = dim ? *dim : 0;
  return record(mean ? "mean" : "sum", out, {a}, [in_shape = a.shape(), has_dim, d, keepdim, scale](const Tensor& g) {
    Tensor gi = unreduce(g, in_shape, has_dim ? &d : nullptr, keepdim);
    return Grads{scale == 1.0 ? gi : gi * scale};
  });
}

Tensor extremum_reduce(const Tensor& a, const int64_t* dim, bool keepdim, bool is_max) {
  Tensor out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, a, dim, keepdim, 1.0);
  const bool has_dim = dim != nullptr;
  const int64_t d = dim ? *dim : 0;
  // Ties share the gradient equally (torch.amax's rule).
  return record(is_max ? "max" : "min", out, {a}, [a, out = out.detach(), has_dim, d, keepdim](const Tensor& g) {
    const int64_t* dp = has_dim ? &d : nullptr;
    Tensor mask = eq(a, unreduce(out, a.shape(), dp, keepdim));
    Tensor count = reduce_raw(ReduceOp::Sum, mask, dp, keepdim, 1.0);
    return Grads{mask * unreduce(g / count, a.shape(), dp, keepdim)};
  });
}

}  // namespace

Tensor sum(const Tensor& a) { return sum_impl(a, nullptr, false, false); }
Tensor sum(const Tensor& a, int64_t dim, bool keepdim) { return sum_impl(a, &dim, keepdim, false); }
Tensor mean(const Tensor& a) { return sum_impl(a, nullptr, false, true); }
Tensor mean(const Tensor& a, int64_t dim, bool keepdim) { return sum_impl(a, &dim, keepdim, true); }
Tensor max(const Tensor& a) { return extremum_reduce(a, nullptr, false, true); }
Tensor max(const Tensor& a, int64_t dim, bool keepdim) { return extremum_reduce(a, &dim, keepdim, true); }
Tensor min(const Tensor& a) { return extremum_reduce(a, nullptr, false, false); }
Tensor min(const Tensor& a, int64_t dim, bool keepdim) { return extremum_reduce(a, &dim, keepdim, false); }
Tensor argmax(const Tensor& a) { return reduce_raw(ReduceOp::ArgMax, a, nullptr, false, 1.0); }
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return reduce_raw(ReduceOp::ArgMax, a, &dim, keepdim, 1.0); }
Tensor argmin(const Tensor& a) { return reduce_raw(ReduceOp::ArgMin, a, nullptr, false, 1.0); }
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) { return reduce_raw(ReduceOp::ArgMin, a, &dim, keepdim, 1.0); }

std::vector<Tensor> to_each(const std::vector<Tensor>& ts, DType dt, const std::vector<MemoryFormat>& formats) {
  LRT_CHECK(ts.size() == formats.size(), "to_each: ", ts.size(), " tensors and ", formats.size(), " formats");
  std::vector<Tensor> out(ts.size());
  std::vector<Tensor> srcs, dsts;
  std::vector<size_t> at;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    const MemoryFormat f = formats[i];
    // Together: the floating conversions of a dense source; the rest as to().
    if (!t.defined() || t.dtype() == dt || !is_floating(dt) || !is_floating(t.dtype()) || !t.is_contiguous() ||
        (f == MemoryFormat::ChannelsLast && t.dim() != 4)) {
      if (t.defined()) out[i] = t.to(dt, f);
      continue;
    }
    // The layout to() gives: the source's where it is already dense in f.
    const MemoryFormat made = t.is_contiguous(f) ? memory_format_of(t) : f;
    srcs.push_back(t.detach());
    dsts.push_back(empty(t.shape(), t.options().with_dtype(dt), made));
    at.push_back(i);
  }
  kernels::copy_each(srcs, dsts);
  // The gradients go back together too, where the sources are leaves (the
  // model's weights): record_cast.
  for (size_t k = 0; k < at.size(); ++k) {
    const Tensor& t = ts[at[k]];
    out[at[k]] = record_cast("to_dtype", dsts[k], t, GradCast{t.dtype(), memory_format_of(t)});
  }
  return out;
}

Tensor nonfinite_flag(const std::vector<Tensor>& tensors) {
  LRT_CHECK(!tensors.empty(), "nonfinite_flag: no tensors given");
  std::vector<Tensor> in;
  in.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    LRT_CHECK(t.defined(), "nonfinite_flag: undefined tensor");
    in.push_back(t.detach().contiguous());
  }
  Tensor flag = empty({}, TensorOptions(DType::Float32).with_device(in[0].device()));
  kernels::nonfinite_flag(in, flag);
  return flag;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  LRT_CHECK(broadcast_shapes(shape, a.shape()) == a.shape(), "sum_to: shape ", to_string(a.shape()),
            " is not a broadcast of ", to_string(shape));
  Tensor r = a;
  const size_t lead = a.shape().size() - shape.size();
  for (size_t i = 0; i < lead; ++i) r = sum(r, 0, false);
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] == 1 && r.shape()[i] != 1) r = sum(r, static_cast<int64_t>(i), true);
  return r;
}

// ---------------------------------------------------------- linear algebra --

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  LRT_CHECK(a.defined() && b.defined(), "matmul: undefined tensor");
  LRT_CHECK(a.dim() == 2 && b.dim() == 2, "matmul: expects 2-D tensors, got shapes ", to_string(a.shape()), " and ",
            to_string(b.shape()));
  detail::check_same_device(a, b, "matmul");
  detail::check_same_dtype(a, b, "matmul");
  detail::check_floating(a, "matmul");
  const int64_t m = trans_a ? a.size(1) : a.size(0), ka = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  LRT_CHECK(ka == kb, "matmul: shapes ", to_string(a.shape()), (trans_a ? "^T" : ""), " and ", to_string(b.shape()),
            (trans_b ? "^T" : ""), " cannot be multiplied (inner sizes ", ka, " and ", kb, ")");
  // A transposed view is read as its contiguous base with the flag flipped.
  auto operand = [](const Tensor& x, bool& trans) {
    NoGradGuard no_grad;
    if (x.is_contiguous()) return x;
    Tensor xt = x.t();
    if (xt.is_contiguous()) {
      trans = !trans;
      return xt;
    }
    return x.contiguous();
  };
  bool ta = trans_a, tb = trans_b;
  Tensor ac = operand(a, ta), bc = operand(b, tb);
  Tensor out = empty({m, n}, a.options());
  kernels::matmul(ac, bc, out, ta, tb, 1.0, 0.0);
  return record("matmul", out, {a, b}, [a, b, trans_a, trans_b](const Tensor& g) {
    Tensor ga = grad_if(a, [&] { return trans_a ? matmul(b, g, trans_b, true) : matmul(g, b, false, !trans_b); });
    Tensor gb = grad_if(b, [&] { return trans_b ? matmul(g, a, true, trans_a) : matmul(a, g, !trans_a, false); });
    return Grads{ga, gb};
  });
}

// -------------------------------------------------------------- comparing --

double max_abs_diff(const Tensor& a, const Tensor& b) {
  LRT_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes ", to_string(a.shape()), " and ", to_string(b.shape()),
            " differ");
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

double rel_error(const Tensor& a, const Tensor& b) {
  LRT_CHECK(a.shape() == b.shape(), "rel_error: shapes ", to_string(a.shape()), " and ", to_string(b.shape()),
            " differ");
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  if (std::isnan(num)) return num;
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

}  // namespace lrt

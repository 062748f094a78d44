// Tensor handle: metadata, views, copies between devices and dtypes,
// factories and printing.
#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/kernels.h"

namespace lrt {

// ---------------------------------------------------------------- helpers --

namespace detail {

Tensor make_tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor memory_order_view(const Tensor& t) { return make_tensor(t.storage(), {t.numel()}, {1}, t.offset(), t.dtype()); }

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LRT_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device(), " and ", b.device(),
            "); move one with .to(device)");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  LRT_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch (", a.dtype(), " and ", b.dtype(),
            "); convert one with .to(dtype)");
}

void check_floating(const Tensor& a, const char* op) {
  LRT_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64, op, ": dtype ", a.dtype(),
            " is not supported (float32 or float64 expected)");
}

void check_floating_or_bf16(const Tensor& a, const char* op) {
  LRT_CHECK(is_floating(a.dtype()), op, ": dtype ", a.dtype(),
            " is not supported (float32, float64 or bfloat16 expected)");
}

}  // namespace detail

void Tensor::check_defined() const { LRT_CHECK(impl_ != nullptr, "operation on an undefined tensor"); }

void Tensor::check_dtype_is(DType t) const {
  check_defined();
  LRT_CHECK(impl_->dtype == t, "tensor has dtype ", impl_->dtype, " but ", dtype_name(t), " was asked for");
}

// --------------------------------------------------------------- metadata --

const Shape& Tensor::shape() const { check_defined(); return impl_->shape; }
const Strides& Tensor::strides() const { check_defined(); return impl_->strides; }
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim())]; }
int64_t Tensor::offset() const { check_defined(); return impl_->offset; }
int64_t Tensor::numel() const { return numel_of(shape()); }
DType Tensor::dtype() const { check_defined(); return impl_->dtype; }
Device Tensor::device() const { check_defined(); return impl_->storage->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { check_defined(); return impl_->storage; }

TensorOptions Tensor::options() const {
  TensorOptions o;
  o.dtype = dtype();
  o.dtype_given = true;
  o.device = device();
  return o;
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  const Shape& s = shape();
  const Strides& st = strides();
  int64_t expected = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

namespace {
Strides channels_last_strides(const Shape& s) {
  LRT_CHECK(s.size() == 4, "channels_last needs a 4-D (N, C, H, W) shape, got ", to_string(s));
  return {s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
}
}  // namespace

const char* to_string(MemoryFormat f) { return f == MemoryFormat::ChannelsLast ? "channels_last" : "contiguous"; }

bool Tensor::is_contiguous(MemoryFormat f) const {
  if (f == MemoryFormat::Contiguous) return is_contiguous();
  if (dim() != 4) return false;
  if (numel() == 0) return true;
  const Strides want = channels_last_strides(shape());
  for (size_t i = 0; i < 4; ++i)
    if (shape()[i] != 1 && strides()[i] != want[i]) return false;
  return true;
}

MemoryFormat memory_format_of(const Tensor& t) {
  return t.is_contiguous(MemoryFormat::ChannelsLast) && !t.is_contiguous() ? MemoryFormat::ChannelsLast
                                                                             : MemoryFormat::Contiguous;
}

void* Tensor::data_ptr() const {
  check_defined();
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
}

// ------------------------------------------------------------------ views --

namespace {

Tensor view_of(const Tensor& t, Shape shape, Strides strides, int64_t offset) {
  return detail::make_tensor(t.storage(), std::move(shape), std::move(strides), offset, t.dtype());
}

// Strides for viewing t (shape old) as shape new without copying, if possible
// (the algorithm of NumPy's attempt_nocopy_reshape, written for our types).
bool reshape_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape, Strides& out) {
  out.assign(new_shape.size(), 0);
  const int64_t on = static_cast<int64_t>(old_shape.size()), nn = static_cast<int64_t>(new_shape.size());
  if (numel_of(old_shape) == 0) {
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t oi = 0, oj = 1, ni = 0, nj = 1;
  // Skip size-1 dims on the old side: they may carry any stride.
  Shape os;
  Strides ost;
  for (int64_t i = 0; i < on; ++i)
    if (old_shape[i] != 1) {
      os.push_back(old_shape[i]);
      ost.push_back(old_strides[i]);
    }
  const int64_t osz = static_cast<int64_t>(os.size());
  while (ni < nn && oi < osz) {
    int64_t np = new_shape[ni], op = os[oi];
    while (np != op) {
      if (np < op) np *= new_shape[nj++];
      else op *= os[oj++];
    }
    for (int64_t k = oi; k < oj - 1; ++k)
      if (ost[k] != os[k + 1] * ost[k + 1]) return false;
    out[nj - 1] = ost[oj - 1];
    for (int64_t k = nj - 1; k > ni; --k) out[k - 1] = out[k] * new_shape[k];
    ni = nj++;
    oi = oj++;
  }
  // Trailing size-1 dims of the new shape.
  int64_t last = ni > 0 ? out[ni - 1] : 1;
  for (; ni < nn; ++ni) out[ni] = last;
  return true;
}

}  // namespace

Tensor Tensor::reshape(Shape new_shape) const {
  check_defined();
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      LRT_CHECK(infer < 0, "reshape to ", to_string(new_shape), ": only one size may be -1");
      infer = static_cast<int64_t>(i);
    } else {
      LRT_CHECK(new_shape[i] >= 0, "reshape to ", to_string(new_shape), ": negative size");
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    LRT_CHECK(known != 0 && numel() % known == 0, "cannot reshape a tensor of shape ", to_string(shape()),
              " to ", to_string(new_shape));
    new_shape[infer] = numel() / known;
  }
  check_shape(new_shape);
  LRT_CHECK(numel_of(new_shape) == numel(), "cannot reshape a tensor of shape ", to_string(shape()), " (",
            numel(), " elements) to ", to_string(new_shape), " (", numel_of(new_shape), " elements)");
  Strides st;
  Tensor out;
  if (reshape_strides(shape(), strides(), new_shape, st)) {
    out = view_of(*this, new_shape, st, offset());
  } else {
    NoGradGuard no_grad;
    Tensor c = contiguous();
    out = view_of(c, new_shape, contiguous_strides(new_shape), c.offset());
  }
  Shape old_shape = shape();
  return record("reshape", out, {*this}, [old_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(old_shape)};
  });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int n = dim();
  const int a = wrap_dim(d0, n), b = wrap_dim(d1, n);
  Shape s = shape();
  Strides st = strides();
  std::swap(s[a], s[b]);
  std::swap(st[a], st[b]);
  Tensor out = view_of(*this, s, st, offset());
  return record("transpose", out, {*this}, [a, b](const Tensor& g) {
    return std::vector<Tensor>{g.transpose(a, b)};
  });
}

Tensor Tensor::t() const {
  LRT_CHECK(dim() == 2, "t() expects a 2-D tensor, got shape ", to_string(shape()));
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t dim_, int64_t start, int64_t end, int64_t step) const {
  const int d = wrap_dim(dim_, dim());
  const int64_t n = shape()[d];
  LRT_CHECK(step > 0, "slice: step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape();
  Strides st = strides();
  s[d] = (end - start + step - 1) / step;
  const int64_t off = offset() + start * st[d];
  st[d] *= step;
  Tensor out = view_of(*this, s, st, off);
  Shape in_shape = shape();
  return record("slice", out, {*this}, [in_shape, d, start, end, step](const Tensor& g) {
    Tensor gi = zeros(in_shape, g.options());
    gi.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{gi};
  });
}

Tensor Tensor::unsqueeze(int64_t dim_) const {
  const int d = wrap_dim(dim_, dim() + 1);
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t dim_) const {
  const int d = wrap_dim(dim_, dim());
  LRT_CHECK(shape()[d] == 1, "squeeze: dimension ", dim_, " of shape ", to_string(shape()), " is not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::expand(const Shape& target) const {
  check_shape(target);
  Shape b = broadcast_shapes(shape(), target);
  LRT_CHECK(b == target, "cannot expand shape ", to_string(shape()), " to ", to_string(target));
  Strides st(target.size(), 0);
  const size_t lead = target.size() - shape().size();
  for (size_t i = 0; i < shape().size(); ++i)
    st[lead + i] = shape()[i] == target[lead + i] ? strides()[i] : 0;
  Tensor out = view_of(*this, target, st, offset());
  Shape in_shape = shape();
  return record("expand", out, {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
}

// ----------------------------------------------------------------- copies --

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::contiguous(MemoryFormat f) const {
  if (f == MemoryFormat::Contiguous) return contiguous();
  LRT_CHECK(dim() == 4, "contiguous(channels_last): expects a 4-D (N, C, H, W) tensor, got shape ",
            to_string(shape()));
  if (is_contiguous(f)) return *this;
  Tensor out = empty(shape(), options(), f);
  kernels::copy(*this, out);
  const bool was_contiguous = is_contiguous();
  return record("contiguous_channels_last", out, {*this}, [was_contiguous](const Tensor& g) {
    return std::vector<Tensor>{was_contiguous ? g.contiguous() : g};
  });
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), options());
  kernels::copy(*this, out);
  return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src;
  {
    NoGradGuard no_grad;
    src = contiguous();
  }
  Tensor out = empty(shape(), options().with_device(dev));
  copy_bytes(out.data_ptr(), dev, src.data_ptr(), device(), static_cast<size_t>(numel()) * dtype_size(dtype()));
  Device from = device();
  return record("to_device", out, {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  const MemoryFormat f = memory_format_of(*this);
  Tensor out = empty(shape(), options().with_dtype(dt), f);
  if (f == MemoryFormat::ChannelsLast)
    kernels::copy(detail::memory_order_view(*this), detail::memory_order_view(out));
  else
    kernels::copy(*this, out);
  if (!is_floating(dt) || !is_floating(dtype())) return out;  // no gradient through integer casts
  DType from = dtype();
  return record("to_dtype", out, {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType dt, MemoryFormat f) const {
  check_defined();
  if (dt == dtype()) return contiguous(f);
  LRT_CHECK(f == MemoryFormat::Contiguous || dim() == 4, "to(", dt,
            ", channels_last): expects a 4-D (N, C, H, W) tensor, got shape ", to_string(shape()));
  if (is_contiguous(f)) return to(dt);  // already laid out so: the conversion keeps it
  Tensor out = empty(shape(), options().with_dtype(dt), f);
  kernels::copy(*this, out);
  if (!is_floating(dt) || !is_floating(dtype())) return out;
  const DType from = dtype();
  const MemoryFormat from_format = memory_format_of(*this);
  return record("to_dtype", out, {*this},
                [from, from_format](const Tensor& g) { return std::vector<Tensor>{g.to(from, from_format)}; });
}

double Tensor::item() const {
  LRT_CHECK(numel() == 1, "item() needs a tensor with one element, got shape ", to_string(shape()));
  Tensor c = to(kCPU);
  switch (c.dtype()) {
    case DType::Float32: return *c.data<float>();
    case DType::Float64: return *c.data<double>();
    case DType::Int64: return static_cast<double>(*c.data<int64_t>());
    case DType::UInt8: return *c.data<uint8_t>();
    case DType::BFloat16: return static_cast<float>(*c.data<BFloat16>());
    default: LRT_THROW("item(): unknown dtype ", c.dtype());
  }
}

// --------------------------------------------------------------- in place --

namespace {
void check_inplace_allowed(const Tensor& t, const char* op) {
  LRT_CHECK(!(grad_enabled() && t.requires_grad() && t.is_leaf()), op,
            ": in-place change of a leaf tensor that requires grad; wrap it in NoGradGuard");
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_inplace_allowed(*this, "fill_");
  kernels::fill(*this, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace_allowed(*this, "copy_");
  LRT_CHECK(src.defined(), "copy_: source tensor is undefined");
  broadcast_shapes(src.shape(), shape());
  Tensor s = src;
  if (s.device() != device()) {
    NoGradGuard no_grad;
    s = s.to(device());
  }
  kernels::copy(s, *this);
  return *this;
}

// --------------------------------------------------------------- autograd --

bool Tensor::requires_grad() const { check_defined(); return impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  check_defined();
  LRT_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed (this one was produced by ",
            impl_->grad_fn->name(), "); use detach()");
  LRT_CHECK(!on || is_floating(dtype()), "set_requires_grad: only floating-point tensors can require "
            "gradients, this one is ", dtype());
  impl_->requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { check_defined(); return impl_->grad_fn == nullptr; }
const std::shared_ptr<Node>& Tensor::grad_fn() const { check_defined(); return impl_->grad_fn; }
Tensor Tensor::grad() const { check_defined(); return impl_->grad; }

void Tensor::set_grad(const Tensor& g) {
  check_defined();
  if (g.defined())
    LRT_CHECK(g.shape() == shape(), "set_grad: gradient shape ", to_string(g.shape()), " does not match tensor shape ",
              to_string(shape()));
  impl_->grad = g;
}

void Tensor::zero_grad() { check_defined(); impl_->grad = Tensor(); }

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  check_defined();
  LRT_CHECK(requires_grad(), "backward(): this tensor does not require grad and has no grad_fn");
  Tensor s = seed;
  if (!s.defined()) {
    LRT_CHECK(numel() == 1, "backward(): a seed gradient is needed for a non-scalar tensor of shape ",
              to_string(shape()));
    s = ones(shape(), options());
  } else {
    LRT_CHECK(s.shape() == shape(), "backward(): seed gradient shape ", to_string(s.shape()),
              " does not match tensor shape ", to_string(shape()));
    detail::check_same_device(s, *this, "backward()");
    detail::check_same_dtype(s, *this, "backward()");
  }
  run_backward(*this, s, retain_graph);
}

Tensor Tensor::detach() const {
  check_defined();
  return detail::make_tensor(impl_->storage, impl_->shape, impl_->strides, impl_->offset, impl_->dtype);
}

// --------------------------------------------------------------- printing --

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(shape=" << to_string(shape()) << ", dtype=" << dtype() << ", device=" << device();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  if (numel() <= 64) {
    std::vector<double> v = to_vector<double>();
    os << " [";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << std::setprecision(6) << v[i];
    os << "]";
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

// -------------------------------------------------------------- factories --

Tensor empty(const Shape& shape, TensorOptions opts) { return empty(shape, opts, MemoryFormat::Contiguous); }

Tensor empty(const Shape& shape, TensorOptions opts, MemoryFormat f) {
  check_shape(shape);
  Strides strides = f == MemoryFormat::ChannelsLast ? channels_last_strides(shape) : contiguous_strides(shape);
  const size_t nbytes = static_cast<size_t>(numel_of(shape)) * dtype_size(opts.dtype);
  auto storage = std::make_shared<Storage>(nbytes, opts.device);
  Tensor t = detail::make_tensor(std::move(storage), shape, std::move(strides), 0, opts.dtype);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  const bool rg = opts.requires_grad;
  Tensor t = empty(shape, opts.with_requires_grad(false));
  kernels::fill(t, value);
  if (rg) t.set_requires_grad(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.options()); }
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(int64_t n, TensorOptions opts) { return arange(0.0, static_cast<double>(n), 1.0, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  LRT_CHECK(step != 0.0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
            "arange: bad range start=", start, " end=", end, " step=", step);
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_vector<double>(v, {n}, opts.with_dtype(opts.dtype));  // float32 unless asked otherwise
}

namespace {
Tensor random_tensor(kernels::RandomKind kind, const Shape& shape, TensorOptions opts, Generator* gen) {
  const bool rg = opts.requires_grad;
  Tensor t = empty(shape, opts.with_requires_grad(false));
  detail::check_floating(t, kind == kernels::RandomKind::Normal ? "randn" : "rand");
  Generator& g = gen ? *gen : default_generator();
  const uint64_t offset = g.reserve(static_cast<uint64_t>(t.numel()));
  kernels::fill_random(kind, t, g.seed(), offset);
  if (rg) t.set_requires_grad(true);
  return t;
}
}  // namespace

Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  return random_tensor(kernels::RandomKind::Normal, shape, opts, gen);
}
Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) {
  return random_tensor(kernels::RandomKind::Uniform, shape, opts, gen);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts) {
  check_shape(shape);
  LRT_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ", values.size(),
            " values do not fill shape ", to_string(shape), " (", numel_of(shape), " elements)");
  const bool rg = opts.requires_grad;
  const DType src_type = dtype_of<T>::value;
  Tensor host = empty(shape, TensorOptions(src_type));
  if (!values.empty()) std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
  Tensor t = host.to(opts.dtype_given ? opts.dtype : src_type).to(opts.device);
  if (rg) t.set_requires_grad(true);
  return t;
}

template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);

}  // namespace lrt

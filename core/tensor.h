// Tensor: a shape, strides and offset over a shared Storage on one device,
// with a dtype and autograd state. Copying a Tensor copies a handle (both
// handles see the same data, as in PyTorch). Views (reshape of a contiguous
// tensor, transpose, slice, unsqueeze, squeeze) share storage; kernels read
// strided inputs and write contiguous outputs unless they say otherwise.
//
// The arithmetic lives in core/ops.h as free functions and operators; this
// header holds the handle, its views, device and dtype moves, host copy-out
// and the autograd entry points.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace lrt {

class Node;
class Generator;
struct TensorImpl;

// How the values of a 4-D (N, C, H, W) tensor lie in memory. The shape is
// (N, C, H, W) either way, as in PyTorch:
// - Contiguous: row-major over the shape (NCHW);
// - ChannelsLast: NHWC, a pixel's C values side by side (strides H*W*C, 1,
//   W*C, C), the layout cuDNN's tensor-core convolutions read and write.
// Dims of size 1 take any stride, so a tensor may be both (one channel, or
// 1x1 images).
enum class MemoryFormat { Contiguous, ChannelsLast };
const char* to_string(MemoryFormat f);

// What a new tensor should be: dtype (float32 unless given; from_vector<T>
// takes T's dtype unless one is given), device and requires_grad.
struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = kCPU;
  bool requires_grad = false;
  bool dtype_given = false;

  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t), dtype_given(true) {}
  TensorOptions(Device d) : device(d) {}
  TensorOptions(const char* d) : device(d) {}
  TensorOptions with_dtype(DType t) const { auto o = *this; o.dtype = t; o.dtype_given = true; return o; }
  TensorOptions with_device(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions with_requires_grad(bool r = true) const { auto o = *this; o.requires_grad = r; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata ----
  const Shape& shape() const;
  const Strides& strides() const;
  int dim() const { return static_cast<int>(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t offset() const;  // in elements
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  TensorOptions options() const;
  bool is_contiguous() const;
  // Contiguous in format f (ChannelsLast needs 4 dims).
  bool is_contiguous(MemoryFormat f) const;
  const std::shared_ptr<Storage>& storage() const;

  // Address of the first element (storage + offset).
  void* data_ptr() const;
  template <class T>
  T* data() const {
    check_dtype_is(dtype_of<T>::value);
    return static_cast<T*>(data_ptr());
  }

  // ---- views (differentiable; share storage) ----
  // reshape: a view when the layout allows, else a contiguous copy. One size
  // may be -1 and is inferred.
  Tensor reshape(Shape shape) const;
  Tensor flatten() const { return reshape({-1}); }
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  // Broadcast to a larger shape without copying (stride 0 where expanded).
  Tensor expand(const Shape& shape) const;

  // ---- copies (differentiable) ----
  Tensor contiguous() const;  // itself when already contiguous
  // Itself when already contiguous in format f, else a copy laid out so;
  // the gradient returns in the layout this tensor had.
  Tensor contiguous(MemoryFormat f) const;
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(Device device) const;  // itself when already there
  Tensor to(DType dtype) const;    // itself when already that dtype; keeps a channels_last layout
  // Converted and laid out in format f in one copy (itself when it already
  // is both); the gradient returns in this tensor's dtype and layout.
  Tensor to(DType dtype, MemoryFormat f) const;
  Tensor to(Device device, DType dtype) const { return to(device).to(dtype); }

  // ---- host copy-out ----
  template <class T>
  std::vector<T> to_vector() const {
    Tensor c = to(kCPU).to(dtype_of<T>::value).contiguous();
    const T* p = c.data<T>();
    return std::vector<T>(p, p + c.numel());
  }
  double item() const;  // the value of a one-element tensor, as double
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }

  // ---- in-place (not recorded by autograd) ----
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  // Copies src (broadcast to this shape, cast to this dtype, from any device).
  Tensor& copy_(const Tensor& src);

  // ---- autograd ----
  bool requires_grad() const;
  // Only leaves (tensors no op produced) may have this set by the user.
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();
  // Backpropagates from this tensor. With no seed it must hold one element
  // (the gradient seed is 1); otherwise seed has this tensor's shape. The graph
  // is freed afterwards unless retain_graph is set.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;
  // A tensor sharing this one's data, cut from the graph.
  Tensor detach() const;

  std::string str() const;  // "tensor(shape=(2, 3), dtype=float32, device=cpu)" + values when small

 private:
  void check_defined() const;
  void check_dtype_is(DType t) const;
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;
  DType dtype = DType::Float32;
  // autograd
  bool requires_grad = false;
  Tensor grad;                    // leaves only
  std::shared_ptr<Node> grad_fn;  // set on results of recorded ops
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- factories ----
// New tensor of the given shape, uninitialised.
Tensor empty(const Shape& shape, TensorOptions opts = {});
// The same, laid out in format f (ChannelsLast: a 4-D shape).
Tensor empty(const Shape& shape, TensorOptions opts, MemoryFormat f);
// The format that describes t's layout: ChannelsLast for a 4-D tensor laid
// out NHWC and not also NCHW (see MemoryFormat), Contiguous otherwise.
MemoryFormat memory_format_of(const Tensor& t);
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor zeros_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
// 0, 1, ..., n-1 and start, start+step, ... < end.
Tensor arange(int64_t n, TensorOptions opts = {});
Tensor arange(double start, double end, double step, TensorOptions opts = {});
// Philox4x32-10 draws: the same generator state gives the same numbers on CPU
// and CUDA. Without a generator the default one (lrt::manual_seed) is used.
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
// A tensor holding a copy of host values, of T's dtype unless opts names one.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});

namespace detail {
// The checks shared by ops: same device, same dtype, floating dtype.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_floating(const Tensor& a, const char* op);
// float32, float64 or bfloat16: the ops with bfloat16 kernels (elementwise
// math, convolution, batch normalisation).
void check_floating_or_bf16(const Tensor& a, const char* op);
Tensor make_tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset, DType dtype);
// A dense tensor (contiguous in some memory format) as a 1-D view of its
// values in memory order: what elementwise kernels run over when all their
// operands share a layout.
Tensor memory_order_view(const Tensor& t);
}  // namespace detail

}  // namespace lrt

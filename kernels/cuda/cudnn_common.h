// What the kernel files built on cuDNN share (conv.cu, cudnn_batch_norm.cu):
// one cudnnHandle_t per device, bound to lrt's stream; descriptors owned and
// destroyed (RAII); 4-D tensor descriptors in either memory format; the
// scaling factors cuDNN reads; workspaces from the caching allocator.
#pragma once

#include <climits>
#include <cstdint>

#include "core/per_device.h"
#include "kernels/cuda/launch.cuh"

namespace lrt::kernels::cuda::cudnn {

// The device's handle, made on first use and kept for the process.
inline cudnnHandle_t handle(int device) {
  static PerDevice<cudnnHandle_t> handles;
  return handles.get(device, [](int d) {
    DeviceGuard guard(d);
    cudnnHandle_t h = nullptr;
    CUDNN_CHECK(cudnnCreate(&h));
    CUDNN_CHECK(cudnnSetStream(h, lrt::cuda::stream(d)));
    return h;
  });
}

template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class Descriptor {
 public:
  Descriptor() { CUDNN_CHECK(Create(&d_)); }
  ~Descriptor() { Destroy(d_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  D get() const { return d_; }

 private:
  D d_ = nullptr;
};

using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;

// v as cuDNN's int, or an error naming the op and the value.
inline int to_int(int64_t v, const char* op, const char* what) {
  LRT_CHECK(v <= INT_MAX, op, ": ", what, " ", v, " exceeds cuDNN's 32-bit limit");
  return static_cast<int>(v);
}

inline cudnnTensorFormat_t format(MemoryFormat f) {
  return f == MemoryFormat::ChannelsLast ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}

// A 4-D descriptor of shape s (N, C, H, W) laid out in format f.
inline void set_tensor(const TensorDescriptor& d, cudnnDataType_t type, const Shape& s, MemoryFormat f,
                       const char* op) {
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.get(), format(f), type, to_int(s[0], op, "size"), to_int(s[1], op, "size"),
                                         to_int(s[2], op, "size"), to_int(s[3], op, "size")));
}

// Calls f with the address of 1 and of 0 in the type cuDNN reads its
// scaling factors in: double for double data, float for the rest.
template <class F>
void with_scaling(cudnnDataType_t type, F&& f) {
  if (type == CUDNN_DATA_DOUBLE) {
    const double one = 1, zero = 0;
    f(static_cast<const void*>(&one), static_cast<const void*>(&zero));
  } else {
    const float one = 1, zero = 0;
    f(static_cast<const void*>(&one), static_cast<const void*>(&zero));
  }
}

// A scratch buffer of `bytes` on the device (undefined for none), from the
// caching allocator: it may be dropped as soon as the call using it is
// queued, the allocator reusing blocks in the order of lrt's one stream.
inline Tensor workspace(size_t bytes, Device device) {
  if (bytes == 0) return Tensor();
  return empty({static_cast<int64_t>(bytes)}, TensorOptions(DType::UInt8).with_device(device));
}
inline void* ptr(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace lrt::kernels::cuda::cudnn

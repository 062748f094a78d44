// Launch helpers for the CUDA kernels: grid-stride loop bounds, the 16-byte
// Pack used for vectorised loads, and alignment checks.
#pragma once

#include <cstdint>

#include "core/cuda_context.h"
#include "core/tensor.h"

namespace lrt::kernels::cuda {

using lrt::cuda::DeviceGuard;

constexpr int kThreads = 256;

// Elements of T in one 16-byte load.
template <class T>
constexpr int kVec = 16 / sizeof(T) > 0 ? 16 / sizeof(T) : 1;

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline int device_of(const Tensor& t) { return t.device().index; }

}  // namespace lrt::kernels::cuda

// Launch helpers for the CUDA kernels: grid-stride loop bounds, the 16-byte
// Pack used for vectorised loads, and alignment checks.
#pragma once

#include <cstdint>
#include <vector>

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

// A multi-tensor kernel's launches (nonfinite_flag, copy_each): tensors are
// cut into chunks of chunk_size values, one block a chunk, and the kernel's
// metadata (Meta, passed by value, so that a captured launch replays over
// the same tensors) holds up to kTensors tensors and maps each of up to
// kBlocks blocks to its tensor slot (block_tensor) and chunk (block_chunk).
// For tensor i of sizes (those of size 0 are skipped), list(slot, i) fills
// the slot's per-tensor fields; launch(blocks) starts a kernel over the
// blocks listed so far, when the metadata is full and at the end. A tensor
// whose chunks do not fit one launch continues in the next, listed again.
template <int kTensors, int kBlocks, class Meta, class List, class Launch>
void launch_chunked(Meta& meta, const std::vector<int64_t>& sizes, int64_t chunk_size, List&& list,
                    Launch&& launch) {
  int tensors = 0, blocks = 0;
  auto flush = [&] {
    if (blocks > 0) launch(blocks);
    tensors = blocks = 0;
  };
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] <= 0) continue;
    const int64_t chunks = (sizes[i] + chunk_size - 1) / chunk_size;
    int64_t chunk = 0;
    while (chunk < chunks) {
      if (tensors == kTensors || blocks == kBlocks) flush();
      const int t = tensors++;
      list(t, i);
      for (; chunk < chunks && blocks < kBlocks; ++chunk) {
        meta.block_tensor[blocks] = static_cast<int16_t>(t);
        meta.block_chunk[blocks] = static_cast<int32_t>(chunk);
        ++blocks;
      }
    }
  }
  flush();
}

}  // namespace lrt::kernels::cuda

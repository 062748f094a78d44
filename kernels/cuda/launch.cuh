// Launch helpers for the CUDA kernels: grid-stride loop bounds, the 16-byte
// Pack used for vectorised loads, and alignment checks.
//
// With LRT_EMULATED_GRID defined (as the path of a header), a kernel file is
// built as plain C++ for the emulated grid of the tests (tests/emulated/
// grid.h): that header stands in for the CUDA runtime and supplies launch().
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#if defined(LRT_EMULATED_GRID)
#include LRT_EMULATED_GRID
#else
#include "core/cuda_context.h"
#endif
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

// Programmatic dependent launch (sm_90 and later; lrt::dependent_launch()).
// A kernel queued with launch() below may be scheduled while the kernel
// before it in the stream is still draining; so every kernel launched that
// way calls dependent_launch_enter() first, before it reads or writes any
// memory: it waits until the previous kernel has completed and its writes
// are visible (griddepcontrol.wait), then lets the next kernel be scheduled
// in turn (griddepcontrol.launch_dependents). The wait is a no-op in a
// kernel launched plainly; the release is not, but only a following kernel
// queued as a dependent launch can use it, and such a kernel waits itself.
// Code built for older GPUs has neither, and launch() queues it plainly.
__device__ __forceinline__ void dependent_launch_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#if !defined(LRT_EMULATED_GRID)
// A kernel's shared array: LRT_SHARED(float, sh, [256]) declares
// `__shared__ float sh[256]`. Kernels declare their shared arrays this way
// so that the emulated grid of the tests can give each block its own.
// (With LRT_EMULATED_CUDA, the library built over the emulated runtime of
// the tests, <cuda_runtime.h> is tests/emulated's and defines it.)
#if !defined(LRT_EMULATED_CUDA)
#define LRT_SHARED(type, name, dims) __shared__ type name dims
#endif

// Queues kernel<<<grid, block, 0, stream>>>(args...) on device dev's stream
// and checks it: as a programmatic dependent launch where
// lrt::dependent_launch_on(dev) and the kernel was built with the
// instructions above (it must begin with dependent_launch_enter()).
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, int dev, Args&&... args) {
  if (lrt::dependent_launch_on(dev) &&
      lrt::cuda::kernel_has_dependent_launch(reinterpret_cast<const void*>(kernel), dev)) {
    cudaLaunchAttribute attr[1] = {};
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = 0;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    // The status is also the thread's last error: read it once, there.
    static_cast<void>(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
  } else {
#if defined(LRT_EMULATED_CUDA)
    // C++ has no <<< >>>: the emulated runtime's plain launch is a
    // configuration without attributes.
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = stream;
    static_cast<void>(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
#else
    kernel<<<grid, block, 0, stream>>>(std::forward<Args>(args)...);
#endif
  }
  LRT_LAUNCH_CHECK();
}
#endif

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

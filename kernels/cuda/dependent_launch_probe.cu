// probe_dependent_launch (core/device.h): a producer kernel that releases
// its dependents at once, sleeps about 50 ms (the host may be slow to queue
// the consumer: a busy machine) and then writes a
// value, and a consumer queued after it with launch() that notes the time
// it began and then, after dependent_launch_enter(), reads the value. With
// dependent launch on, the consumer may begin before the producer ends but
// must still read what the producer wrote; queued plainly, it begins after.
#include "core/device.h"
#include "kernels/cuda/launch.cuh"

namespace lrt {

namespace {

__device__ __forceinline__ unsigned long long global_ns() {
#if defined(LRT_EMULATED_CUDA)
  return emulated_grid_ns();  // the emulated grid's clock (tests/emulated/grid.h)
#else
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

// out[0]: the value; out[1]: the producer's end (ns).
__global__ void probe_producer(unsigned long long* out) {
  kernels::cuda::dependent_launch_enter();
  if (threadIdx.x != 0) return;
  const unsigned long long t0 = global_ns();
  while (global_ns() - t0 < 50000000ull) __nanosleep(10000);
  out[0] = 42;
  __threadfence();
  out[1] = global_ns();
}

// out[2]: the value the consumer read; out[3]: when it began (ns).
__global__ void probe_consumer(unsigned long long* out) {
  const unsigned long long began = global_ns();  // a clock register, no memory
  kernels::cuda::dependent_launch_enter();
  if (threadIdx.x != 0) return;
  out[2] = out[0];
  out[3] = began;
}

}  // namespace

DependentLaunchProbe probe_dependent_launch(int device) {
  cuda::DeviceGuard guard(device);
  cudaStream_t s = cuda::stream(device);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(s, &capturing));
  LRT_CHECK(capturing == cudaStreamCaptureStatusNone,
            "probe_dependent_launch waits for the device, which a CUDA graph capture cannot");
  unsigned long long* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 4 * sizeof(unsigned long long)));
  unsigned long long h[4] = {};
  try {
    CUDA_CHECK(cudaMemsetAsync(d, 0, 4 * sizeof(unsigned long long), s));
    kernels::cuda::launch(probe_producer, dim3(1), dim3(32), s, device, d);
    kernels::cuda::launch(probe_consumer, dim3(1), dim3(32), s, device, d);
    CUDA_CHECK(cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  } catch (...) {
    cudaFree(d);
    throw;
  }
  CUDA_CHECK(cudaFree(d));
  const bool dependent = dependent_launch_on(device) &&
                         cuda::kernel_has_dependent_launch(reinterpret_cast<const void*>(probe_consumer), device);
  return DependentLaunchProbe{dependent, h[2] == 42, h[3] < h[1]};
}

}  // namespace lrt

// CUDA device queries, per-device streams, host/device byte copies and the
// caching allocator instances (one per device over cudaMalloc/cudaFree).
#include "core/cuda_context.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "core/allocator.h"
#include "core/per_device.h"
#include "core/storage.h"

namespace lrt {

namespace {

int query_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

void check_device_index(int device) {
  const int n = cuda_device_count();
  LRT_CHECK(n > 0, "device cuda:", device, " requested, but no CUDA device was found on this machine");
  LRT_CHECK(device >= 0 && device < n, "device cuda:", device, " requested, but this machine has ", n,
            " CUDA device(s)");
  LRT_CHECK(device < kMaxCudaDevices, "device cuda:", device, ": lrt supports at most ", kMaxCudaDevices, " devices");
}

class CudaRawMemory final : public RawMemory {
 public:
  explicit CudaRawMemory(int device) : device_(device) {}
  void* alloc(size_t nbytes) override {
    cuda::DeviceGuard guard(device_);
    void* p = nullptr;
    // cudaMalloc is not a stream operation, so a graph capture (see
    // core/cuda_graph.h) would refuse it in its default mode; a block taken
    // during a capture stays in the capture's private pool, so it is safe.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    const cudaError_t err = cudaMalloc(&p, nbytes);
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    CUDA_CHECK(err);
    return p;
  }
  void free(void* ptr) override {
    cuda::DeviceGuard guard(device_);
    // Blocks are freed only from the cache, after the stream has finished with them.
    CUDA_CHECK(cudaStreamSynchronize(cuda::stream(device_)));
    CUDA_CHECK(cudaFree(ptr));
  }

 private:
  int device_;
};

}  // namespace

int cuda_device_count() {
  static const int n = query_device_count();
  return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

bool dependent_launch_on(int device) {
  if (!lrt::dependent_launch()) return false;
  check_device_index(device);
  // The runtime must be 12.3 or later: from that version a graph capture
  // keeps a dependent launch that follows a memset, a copy or a library's
  // kernel (the training step's graph has all three); an older runtime is
  // given plain launches rather than a capture it may refuse.
  static const bool runtime_ok = [] {
    int rt = 0;
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    return rt >= 12030;
  }();
  static PerDevice<int> majors;
  return runtime_ok && majors.get(device, [](int d) {
    int major = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d));
    return major;
  }) >= 9;
}

Allocator& cuda_allocator(int device) {
  check_device_index(device);
  // Never destroyed: tensors may outlive static destruction, and the CUDA
  // runtime may already be shut down by then.
  static auto* allocs = new std::array<CachingAllocator*, kMaxCudaDevices>{};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  CachingAllocator*& slot = (*allocs)[device];
  if (!slot) {
    const char* no_cache = std::getenv("LRT_CUDA_NO_CACHE");
    const bool caching = no_cache == nullptr || *no_cache == '\0' || std::strcmp(no_cache, "0") == 0;
    slot = new CachingAllocator(*new CudaRawMemory(device), "cuda:" + std::to_string(device), caching);
  }
  return *slot;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  const int dev = dst_device.is_cuda() ? dst_device.index : src_device.index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t s = cuda::stream(dev);
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    // Finish the source device's pending work before another device reads it.
    cuda::synchronize(src_device.index);
    CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, s));
  } else {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, s));
  }
  // The host may read (device to host) or reuse (host to device) its buffer,
  // and another device may reuse the source block, as soon as this returns.
  if (dst_device.is_cpu() || src_device.is_cpu() || dst_device.index != src_device.index)
    CUDA_CHECK(cudaStreamSynchronize(s));
}

namespace cuda {

DeviceGuard::DeviceGuard(int device) {
  check_device_index(device);
  CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device) CUDA_CHECK(cudaSetDevice(device));
  else prev_ = -1;
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);
}

cudaStream_t stream(int device) {
  check_device_index(device);
  static PerDevice<cudaStream_t> streams;
  return streams.get(device, [](int d) {
    DeviceGuard guard(d);
    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  });
}

int sm_count(int device) {
  check_device_index(device);
  static PerDevice<int> counts;
  return counts.get(device, [](int d) {
    int n = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
    return n;
  });
}

bool kernel_has_dependent_launch(const void* kernel, int device) {
  static std::mutex mu;
  static auto* known = new std::map<std::pair<const void*, int>, bool>();  // never destroyed, as the allocators
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(kernel, device);
  if (auto it = known->find(key); it != known->end()) return it->second;
  DeviceGuard guard(device);
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  return (*known)[key] = attr.ptxVersion >= 90;
}

unsigned grid_for(int64_t n, int threads, int device) {
  const int64_t needed = (n + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * 16;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(needed, cap)));
}

void synchronize(int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

std::string describe(int device) {
  check_device_index(device);
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int rt = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&rt));
  const size_t cudnn = cudnnGetVersion();
  int cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
  CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &cublas_major));
  CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &cublas_minor));
  CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &cublas_patch));
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s (sm_%d%d, %d SMs, %.1f GiB), CUDA runtime %d.%d, cuDNN %zu.%zu.%zu, cuBLAS %d.%d.%d", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount,
                static_cast<double>(prop.totalGlobalMem) / double(1ull << 30), rt / 1000, (rt % 1000) / 10,
                cudnn / 10000, (cudnn % 10000) / 100, cudnn % 100, cublas_major, cublas_minor, cublas_patch);
  return buf;
}

}  // namespace cuda

}  // namespace lrt

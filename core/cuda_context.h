// CUDA runtime state for CUDA translation units: one stream per device on
// which every kernel, copy and library call of lrt is ordered (so freed
// blocks can be reused at once), the device guard, device properties read
// once, and the versions for reports. Include only where CUDA is built.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/cuda_check.h"
#include "core/device.h"

namespace lrt::cuda {

// Makes device the current one for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

cudaStream_t stream(int device);
int sm_count(int device);
// Whether kernel (a __global__ function) runs on device from code built for
// a virtual architecture of 9.0 or later, which alone carries the
// griddepcontrol instructions of kernels/cuda/launch.cuh: a build for older
// GPUs runs on a newer one JIT-compiled from its older PTX, without them.
// Asked of the runtime once per kernel and device.
bool kernel_has_dependent_launch(const void* kernel, int device);
// Blocks for a grid-stride launch over n items: enough to fill the device,
// never more than the items need.
unsigned grid_for(int64_t n, int threads, int device);
void synchronize(int device);
// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB), CUDA runtime 13.0, cuDNN 9.19.0, cuBLAS 13.0.0"
std::string describe(int device);

}  // namespace lrt::cuda

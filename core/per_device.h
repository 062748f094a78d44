// A value kept for each CUDA device (a stream, a library handle, a device
// attribute): made by the first call for that device and kept for the
// process. Threads that race on a device's first call wait for the one that
// makes it; if making it throws, the next call tries again. No CUDA here, so
// the emulated runtime of the tests shares it.
#pragma once

#include <array>
#include <mutex>

#include "core/error.h"

namespace lrt {

// The devices lrt addresses: cuda:0 to cuda:15.
inline constexpr int kMaxCudaDevices = 16;

template <class T>
class PerDevice {
 public:
  // The value for device, made with make(device) on the device's first call.
  template <class Make>
  const T& get(int device, Make&& make) {
    LRT_CHECK(device >= 0 && device < kMaxCudaDevices, "device cuda:", device,
              ": lrt supports devices cuda:0 to cuda:", kMaxCudaDevices - 1);
    const auto i = static_cast<size_t>(device);
    std::call_once(once_[i], [&] { values_[i] = make(device); });
    return values_[i];
  }

 private:
  std::array<T, kMaxCudaDevices> values_{};
  std::array<std::once_flag, kMaxCudaDevices> once_;
};

}  // namespace lrt

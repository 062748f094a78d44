// Storage: one allocation on one device, shared by a tensor and its views.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace lrt {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Copies nbytes between two allocations on any devices; synchronous with the
// host when either side is the CPU.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace lrt

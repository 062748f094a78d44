// Storage allocation through the device's allocator; CPU-only byte copies.
#include "core/storage.h"

#include <cstring>

#include "core/allocator.h"
#include "core/error.h"
#include "lrt_config.h"

namespace lrt {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device).allocate(nbytes);
}

Storage::~Storage() { allocator_for(device_).deallocate(data_); }

#if !LRT_HAVE_CUDA
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  LRT_CHECK(dst_device.is_cpu() && src_device.is_cpu(), "copy from ", src_device, " to ", dst_device,
            ": this build of lrt has no CUDA backend");
  if (nbytes) std::memcpy(dst, src, nbytes);
}
#endif

}  // namespace lrt

// Device parsing and printing; CUDA presence queries for CPU-only builds.
#include "core/device.h"

#include <cstdlib>

#include "core/error.h"
#include "lrt_config.h"

namespace lrt {

Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::CPU;
    index = 0;
    return;
  }
  if (spec == "cuda") {
    type = DeviceType::CUDA;
    index = 0;
    return;
  }
  if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5) {
    const std::string num = spec.substr(5);
    bool digits = num.size() <= 4;
    for (char c : num) digits = digits && c >= '0' && c <= '9';
    if (digits) {
      type = DeviceType::CUDA;
      index = std::atoi(num.c_str());
      return;
    }
  }
  LRT_THROW("unknown device '", spec, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

bool cuda_built() { return LRT_HAVE_CUDA; }

#if !LRT_HAVE_CUDA
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
#endif

}  // namespace lrt

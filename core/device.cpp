// Device parsing and printing; CUDA presence queries for CPU-only builds.
#include "core/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

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

bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  if (std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") == 0) return true;
  LRT_THROW(name, "='", v, "': expected 0 or 1");
}

namespace {
// -1: not yet read from LRT_PDL; else 0 or 1.
std::atomic<int> g_dependent_launch{-1};
}  // namespace

void set_dependent_launch(bool on) { g_dependent_launch.store(on ? 1 : 0, std::memory_order_relaxed); }

bool dependent_launch() {
  int v = g_dependent_launch.load(std::memory_order_relaxed);
  if (v < 0) {
    v = env_switch("LRT_PDL", false) ? 1 : 0;
    int unread = -1;
    // A concurrent set_dependent_launch wins over the environment.
    if (!g_dependent_launch.compare_exchange_strong(unread, v, std::memory_order_relaxed)) v = unread;
  }
  return v == 1;
}

#if !LRT_HAVE_CUDA
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
bool dependent_launch_on(int) { return false; }
DependentLaunchProbe probe_dependent_launch(int) {
  LRT_THROW("probe_dependent_launch needs the CUDA backend, which this build of lrt does not have");
}
#endif

}  // namespace lrt

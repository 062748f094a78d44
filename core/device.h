// Device: where a tensor lives, "cpu" or "cuda:N". Nothing moves between
// devices unless the user calls .to(device).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace lrt {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  // Parses "cpu", "cuda", "cuda:N"; throws naming the text otherwise.
  explicit Device(const std::string& spec);
  Device(const char* spec) : Device(std::string(spec)) {}

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

constexpr Device kCPU{DeviceType::CPU, 0};
std::ostream& operator<<(std::ostream& os, const Device& d);

// True when this build has the CUDA backend and at least one device answers.
bool cuda_available();
int cuda_device_count();
// Whether this library was built with the CUDA backend at all.
bool cuda_built();

// Programmatic dependent launch (CUDA devices of compute capability 9.0 and
// later): lrt's kernels (kernels::cuda::launch) are queued so that each may
// be scheduled while the kernel before it drains, and wait inside until that
// kernel's results are complete, which hides the gap between dependent
// kernels (in a CUDA graph replay too). The results are the same bits either way. Off by
// default; LRT_PDL=1 in the environment turns it on for the process (LRT_PDL=0
// or unset: off; anything else is an error naming LRT_PDL), and
// set_dependent_launch overrides it. Older devices and CPU builds ignore it.
void set_dependent_launch(bool on);
bool dependent_launch();
// Whether lrt's kernels on CUDA device `device` are queued that way now: the
// switch is on, the device has compute capability 9.0 or later and the CUDA
// runtime is 12.3 or later (false in CPU builds).
bool dependent_launch_on(int device);
// One producer-consumer pair of kernels on CUDA device `device`, queued as
// lrt queues its own: the producer releases its dependents at once, then
// sleeps about 50 ms before writing a value. dependent: the consumer was
// queued as a dependent launch (the switch, the device and the build allow
// it); saw_value: it read the producer's value (it must, queued either way);
// overlapped: it began before the producer ended (only a dependent launch
// may). It waits for the device: not for use inside a CUDA graph capture
// (refused). Throws in CPU builds.
struct DependentLaunchProbe {
  bool dependent = false;
  bool saw_value = false;
  bool overlapped = false;
};
DependentLaunchProbe probe_dependent_launch(int device);

// The switch in environment variable `name`: fallback when unset or empty,
// false for "0", true for "1"; any other value throws, naming the variable.
bool env_switch(const char* name, bool fallback);

}  // namespace lrt

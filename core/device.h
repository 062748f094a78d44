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

}  // namespace lrt

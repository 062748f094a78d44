// Element types. float32 is the compute type everywhere; float64 runs on CPU
// and CUDA for gradient checks; int64 holds indices (argmax, labels); uint8
// holds raw image bytes; bfloat16 (core/bfloat16.h), the activations of
// mixed precision, is stored, filled, copied and converted on both devices
// and taken by the elementwise ops, conv2d and batch norm, which compute in
// float; the other compute kernels take float32 and float64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "core/bfloat16.h"

namespace lrt {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8, BFloat16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool is_floating(DType t);
std::ostream& operator<<(std::ostream& os, DType t);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };

}  // namespace lrt

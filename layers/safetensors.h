// Reading and writing Hugging Face safetensors files, so weights move between
// lrt and PyTorch. A file is an 8-byte little-endian header length N, N bytes
// of UTF-8 JSON mapping each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end)} (offsets into the data buffer that follows),
// plus an optional "__metadata__" object of strings, then the data buffer:
// row-major, little-endian.
//
// The loader treats the file as untrusted: every number in the header is
// checked before it is used, and a file that breaks the format is an
// lrt::Error naming the file, the tensor and the problem. As the reference
// implementation requires, the tensors must cover the data buffer exactly:
// no overlaps, no holes, no trailing bytes (so a file cannot hide a second
// payload), and names must be unique.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lrt {

// Writes float32 (F32), float64 (F64), bfloat16 (BF16), int64 (I64) and uint8 (U8) tensors from
// any device, in the given order, packed without gaps after a header padded
// with spaces to a multiple of 8 bytes (so every tensor starts 8-byte
// aligned). Names must be unique and not "__metadata__". The file is written
// to "<path>.tmp", flushed to disk and renamed over path, so a failed or
// interrupted save leaves any existing file at path untouched.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;
};

// Reads every tensor into a CPU tensor: F32 -> float32, F64 -> float64,
// BF16 -> bfloat16, F16 -> float32 (exact), I64 and I32 -> int64, U8 -> uint8.
SafetensorsFile load_safetensors(const std::string& path);

std::map<std::string, Tensor> as_map(const SafetensorsFile& file);

}  // namespace lrt

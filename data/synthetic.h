// Synthetic CIFAR data in the real binary format, so demos and tests show
// real learning without the download (which lrt never fetches itself). Each
// class is a shape drawn in a colour (CIFAR-100: 10 shapes x 10 colours) at a
// random place and size over a noisy background, so a network must learn
// both shape and colour to separate the classes.
#pragma once

#include <cstdint>
#include <string>

#include "data/cifar.h"

namespace lrt::data {

struct SyntheticOptions {
  CifarKind kind = CifarKind::Cifar10;
  int64_t train = 5000;  // training records, spread over the 5 batch files (CIFAR-10)
  int64_t test = 1000;
  uint64_t seed = 0;
};

// Writes the files under dir/cifar-10-batches-bin (or dir/cifar-100-binary),
// with the real names and class-name files. Each file is written to a
// temporary name and renamed, so an interrupted run leaves no partial file.
// Returns the folder written.
std::string write_synthetic_cifar(const std::string& dir, const SyntheticOptions& opts = {});

// The pixels of one synthetic image of class label (bytes in the file layout).
void synthetic_image(int label, int num_classes, uint64_t seed, uint64_t index, uint8_t* out /* 3072 bytes */);

}  // namespace lrt::data

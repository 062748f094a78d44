// Per-sample and per-pixel math of the CIFAR pipeline, shared by the CPU
// loader and the GPU-resident CUDA kernel so both produce identical batches:
// the epoch's sample order (a Philox-driven Fisher-Yates shuffle), each
// sample's random crop origin and flip (Philox keyed by epoch and position in
// the epoch), and each output value (crop from the image zero-padded by 4,
// mirror, normalise per channel).
#pragma once

#include <cstdint>
#include <vector>

#include "core/hd.h"
#include "core/philox.h"
#include "data/cifar.h"

namespace lrt::data {

enum class Normalize { MeanStd, Unit };
enum class Layout { NCHW, NHWC };

constexpr int kPad = 4;  // zero padding of the random crop, in pixels

// Output value = byte * scale[c] + shift[c]: MeanStd gives (x / 255 - mean) /
// std with CIFAR-10's channel statistics, Unit gives x / 255.
struct Normalization {
  float scale[3];
  float shift[3];
};
Normalization make_normalization(Normalize n);
Normalize parse_normalize(const std::string& name);  // "meanstd" / "unit"
const char* normalize_name(Normalize n);

// Streams of the pipeline's Philox draws, so shuffling and augmentation never
// share numbers.
constexpr uint64_t kShuffleStream = 0x53485546464c4531ull;
constexpr uint64_t kAugmentStream = 0x4155474d454e5431ull;

struct SampleAug {
  int dx, dy;  // crop origin in the padded 40x40 image, 0 .. 2 * kPad
  bool flip;   // mirror the crop left to right
};

LRT_HD SampleAug sample_augmentation(uint64_t seed, uint64_t epoch, uint64_t position, bool augment) {
  if (!augment) return SampleAug{kPad, kPad, false};
  const philox::U32x4 r = philox::block(seed ^ kAugmentStream, (epoch << 32) | (position & 0xffffffffull));
  return SampleAug{static_cast<int>(r.x[0] % (2 * kPad + 1)), static_cast<int>(r.x[1] % (2 * kPad + 1)),
                   (r.x[2] & 1u) != 0};
}

// byte * scale + shift rounded once per operation on both devices (nvcc
// would otherwise fuse it into one FMA and differ from the CPU in the last
// bit; host code is built with -ffp-contract=off).
LRT_HD float scale_shift(float byte, float scale, float shift) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(byte, scale), shift);
#else
  return byte * scale + shift;
#endif
}

// Output pixel (c, y, x) of a sample whose image (3072 bytes, planes) is img.
LRT_HD float augmented_value(const uint8_t* img, int c, int y, int x, SampleAug a, const Normalization& n) {
  const int sx = a.flip ? kImageSide - 1 - x : x;
  const int py = y + a.dy - kPad, px = sx + a.dx - kPad;
  const bool inside = py >= 0 && py < kImageSide && px >= 0 && px < kImageSide;
  const float byte = inside ? static_cast<float>(img[(c * kImageSide + py) * kImageSide + px]) : 0.0f;
  return scale_shift(byte, n.scale[c], n.shift[c]);
}

// Offset of output element (b, c, y, x) in a batch of the given layout.
LRT_HD int64_t batch_offset(Layout layout, int64_t b, int c, int y, int x) {
  return layout == Layout::NCHW ? ((b * kChannels + c) * kImageSide + y) * kImageSide + x
                                : ((b * kImageSide + y) * kImageSide + x) * kChannels + c;
}

// The sample order of an epoch: 0..n-1, shuffled when asked (Fisher-Yates over
// Philox draws keyed by seed and epoch).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, uint64_t epoch, bool shuffle);

// Fills count samples (split records order[first .. first + count)) into a
// float batch of the given layout and their labels: the CPU twin of the
// GPU-resident kernel.
void fill_batch_cpu(const CifarSplit& split, const int64_t* order, int64_t first, int64_t count, uint64_t seed,
                    uint64_t epoch, bool augment, const Normalization& norm, Layout layout, float* images,
                    int64_t* labels);

}  // namespace lrt::data

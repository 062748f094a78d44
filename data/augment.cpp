// Host side of the pipeline math: normalisation constants, the epoch order,
// and the CPU batch fill.
#include "data/augment.h"

#include "core/error.h"

namespace lrt::data {

Normalization make_normalization(Normalize n) {
  Normalization out{};
  // CIFAR-10 training-set channel statistics (the usual constants).
  constexpr float kMean[3] = {0.4914f, 0.4822f, 0.4465f};
  constexpr float kStd[3] = {0.2470f, 0.2435f, 0.2616f};
  for (int c = 0; c < 3; ++c) {
    if (n == Normalize::MeanStd) {
      out.scale[c] = 1.0f / (255.0f * kStd[c]);
      out.shift[c] = -kMean[c] / kStd[c];
    } else {
      out.scale[c] = 1.0f / 255.0f;
      out.shift[c] = 0.0f;
    }
  }
  return out;
}

Normalize parse_normalize(const std::string& name) {
  if (name == "meanstd") return Normalize::MeanStd;
  if (name == "unit") return Normalize::Unit;
  LRT_THROW("unknown normalisation '", name, "' (expected meanstd or unit)");
}

const char* normalize_name(Normalize n) { return n == Normalize::MeanStd ? "meanstd" : "unit"; }

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, uint64_t epoch, bool shuffle) {
  LRT_CHECK(n >= 0, "epoch_order: negative size ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  for (int64_t i = n - 1; i > 0; --i) {
    const philox::U32x4 r = philox::block(seed ^ kShuffleStream, (epoch << 32) | static_cast<uint64_t>(i));
    const uint64_t draw = (static_cast<uint64_t>(r.x[0]) << 32) | r.x[1];
    std::swap(order[i], order[static_cast<int64_t>(draw % static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

void fill_batch_cpu(const CifarSplit& split, const int64_t* order, int64_t first, int64_t count, uint64_t seed,
                    uint64_t epoch, bool augment, const Normalization& norm, Layout layout, float* images,
                    int64_t* labels) {
#pragma omp parallel for if (count >= 32)
  for (int64_t b = 0; b < count; ++b) {
    const int64_t position = first + b;
    const int64_t record = order[position];
    const uint8_t* img = split.image(record);
    const SampleAug a = sample_augmentation(seed, epoch, static_cast<uint64_t>(position), augment);
    labels[b] = split.labels[record];
    for (int c = 0; c < kChannels; ++c)
      for (int y = 0; y < kImageSide; ++y)
        for (int x = 0; x < kImageSide; ++x)
          images[batch_offset(layout, b, c, y, x)] = augmented_value(img, c, y, x, a, norm);
  }
}

}  // namespace lrt::data

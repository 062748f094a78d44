// Synthetic CIFAR writer. Everything random comes from Philox keyed by the
// seed, with integer arithmetic only, so a (seed, index) pair gives the same
// bytes on every machine and compiler. Counter layout under one key:
//   image `index`:       counters index * 256 + 0..255 (2 parameter blocks,
//                        192 noise blocks)
//   label shuffle:       counters 2^63 + split * 2^48 + i
// Training record i is synthetic_image(label, classes, seed, i); test record j
// is synthetic_image(label, classes, seed, 2^40 + j), so the test images never
// repeat a training image and do not change with the training count.
#include "data/synthetic.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <system_error>
#include <vector>

#include "core/error.h"
#include "core/philox.h"

namespace fs = std::filesystem;

namespace lrt::data {

namespace {

constexpr uint64_t kTestIndexBase = uint64_t(1) << 40;
constexpr uint64_t kShuffleCounterBase = uint64_t(1) << 63;
constexpr uint64_t kBlocksPerImage = 256;
constexpr uint64_t kNoiseFirstBlock = 2;

constexpr int kNumShapes = 10;
constexpr int kNoiseAmplitude = 25;  // per-pixel noise in [-25, 25]
constexpr int kColourJitter = 20;    // shape colour jitter per channel in [-20, 20]
constexpr int kTint = 15;            // background tint per channel in [-15, 15]
constexpr int kMinSize = 10, kMaxSize = 22;

// Ten hues 36 degrees apart (HSV saturation 0.85, value 0.92), so colours of
// neighbouring classes differ by more than the jitter.
constexpr uint8_t kColours[10][3] = {{235, 35, 35},  {235, 155, 35}, {195, 235, 35}, {75, 235, 35},  {35, 235, 115},
                                     {35, 235, 235}, {35, 115, 235}, {75, 35, 235},  {195, 35, 235}, {235, 35, 155}};
constexpr const char* kColourNames[10] = {"red",  "orange", "lime", "green",  "spring",
                                          "cyan", "azure",  "blue", "violet", "rose"};
constexpr const char* kShapeNames[kNumShapes] = {"disc", "ring",     "frame",    "block",  "triangle",
                                                 "plus", "hstripes", "vstripes", "xcross", "checker"};

// Whether pixel (u, v) of an s x s box belongs to shape. du, dv are the
// offsets from the box centre in half pixels, so every test stays integer.
bool inside_shape(int shape, int u, int v, int s) {
  const int du = 2 * u + 1 - s, dv = 2 * v + 1 - s;
  const int d2 = du * du + dv * dv;
  switch (shape) {
    case 0:  // filled disc
      return d2 <= s * s;
    case 1: {  // ring about s/5 px thick
      const int inner = s - 2 * std::max(2, s / 5);
      return d2 <= s * s && d2 >= inner * inner;
    }
    case 2: {  // square outline
      const int t = std::max(2, s / 6);
      return u < t || v < t || u >= s - t || v >= s - t;
    }
    case 3:  // filled square
      return true;
    case 4:  // triangle pointing up, apex at the top centre
      return 2 * std::abs(du) <= 2 * v + 1;
    case 5: {  // plus, bars s/3 px wide
      const int half = std::max(3, s / 3);
      return std::abs(du) <= half || std::abs(dv) <= half;
    }
    case 6:  // horizontal stripes
      return (v / std::max(2, s / 5)) % 2 == 0;
    case 7:  // vertical stripes
      return (u / std::max(2, s / 5)) % 2 == 0;
    case 8: {  // diagonal cross (X)
      const int half = std::max(3, s / 4);
      return std::abs(du - dv) <= half || std::abs(du + dv) <= half;
    }
    default: {  // checkerboard clipped to a disc
      const int p = std::max(2, s / 4);
      return d2 <= s * s && (u / p + v / p) % 2 == 0;
    }
  }
}

uint8_t clamp_byte(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// Byte b (0..3) of word w.
int byte_of(uint32_t w, int b) { return static_cast<int>((w >> (8 * b)) & 0xFFu); }

// n labels with each class i % num_classes, shuffled by Fisher-Yates so that
// neighbouring records rarely share or follow a class.
std::vector<uint8_t> balanced_labels(int64_t n, int num_classes, uint64_t seed, uint64_t split) {
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<uint8_t>(i % num_classes);
  for (int64_t i = n - 1; i > 0; --i) {
    const philox::U32x4 r = philox::block(seed, kShuffleCounterBase + (split << 48) + static_cast<uint64_t>(i));
    const uint64_t word = (static_cast<uint64_t>(r.x[0]) << 32) | r.x[1];
    const auto j = static_cast<int64_t>(word % static_cast<uint64_t>(i + 1));  // bias below 2^-20
    std::swap(labels[static_cast<size_t>(i)], labels[static_cast<size_t>(j)]);
  }
  return labels;
}

// synthetic_image without the argument checks, for the writer's parallel
// loop (an exception must not leave an OpenMP region).
void draw_image(int label, int num_classes, uint64_t seed, uint64_t index, uint8_t* out) {
  const int shape = label % kNumShapes;
  const int colour = num_classes == 10 ? label : label / kNumShapes;

  const uint64_t base = index * kBlocksPerImage;
  const philox::U32x4 p0 = philox::block(seed, base), p1 = philox::block(seed, base + 1);
  const int grey = 70 + static_cast<int>(p0.x[0] % 116);  // 70..185: mid-tones, never near the hues' extremes
  const int size = kMinSize + static_cast<int>(p0.x[1] % (kMaxSize - kMinSize + 1));
  // Up to a quarter of the shape may fall outside the frame.
  const int lo = -(size / 4), span = kImageSide - size + 2 * (size / 4) + 1;
  const int x0 = lo + static_cast<int>(p0.x[2] % static_cast<uint32_t>(span));
  const int y0 = lo + static_cast<int>(p0.x[3] % static_cast<uint32_t>(span));
  int bg[kChannels], fg[kChannels];
  for (int c = 0; c < kChannels; ++c) {
    bg[c] = grey + byte_of(p1.x[0], c) % (2 * kTint + 1) - kTint;
    fg[c] = kColours[colour][c] + byte_of(p1.x[1], c) % (2 * kColourJitter + 1) - kColourJitter;
  }

  // One noise byte per pixel and channel, 16 per Philox block, in file order.
  uint8_t noise[kImageBytes];
  for (int b = 0; b < kImageBytes / 16; ++b) {
    const philox::U32x4 r = philox::block(seed, base + kNoiseFirstBlock + static_cast<uint64_t>(b));
    for (int k = 0; k < 16; ++k) noise[16 * b + k] = static_cast<uint8_t>(byte_of(r.x[k / 4], k % 4));
  }

  constexpr int kPlane = kImageSide * kImageSide;
  for (int y = 0; y < kImageSide; ++y)
    for (int x = 0; x < kImageSide; ++x) {
      const int u = x - x0, v = y - y0;
      const bool on_shape = u >= 0 && v >= 0 && u < size && v < size && inside_shape(shape, u, v, size);
      for (int c = 0; c < kChannels; ++c) {
        const int k = c * kPlane + y * kImageSide + x;
        const int jitter = (noise[k] * (2 * kNoiseAmplitude + 1) >> 8) - kNoiseAmplitude;
        out[k] = clamp_byte((on_shape ? fg[c] : bg[c]) + jitter);
      }
    }
}

// Writes path by way of "<path>.tmp" and a rename, so a failed or interrupted
// write never leaves a file under the real name.
void write_atomically(const fs::path& path, const std::function<void(std::ofstream&)>& body) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LRT_CHECK(out.is_open(), "cannot open '", tmp.string(), "' for writing: ", std::strerror(errno));
    try {
      body(out);
    } catch (...) {
      out.close();
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw;
    }
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      LRT_THROW("writing '", tmp.string(), "' failed: ", std::strerror(errno));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    LRT_THROW("cannot rename '", tmp.string(), "' to '", path.string(), "': ", ec.message());
  }
}

// Records of one file: labels[first .. first + count), images numbered from
// index_base + first. Images are made in parallel a chunk at a time; each
// depends only on its own (seed, index), so the bytes do not depend on the
// thread count.
void write_records(const fs::path& path, CifarKind kind, const std::vector<uint8_t>& labels, int64_t first,
                   int64_t count, uint64_t seed, uint64_t index_base) {
  const int num_classes = kind == CifarKind::Cifar10 ? 10 : 100;
  const int label_bytes = kind == CifarKind::Cifar10 ? 1 : 2;
  const int64_t rec = label_bytes + kImageBytes;
  write_atomically(path, [&](std::ofstream& out) {
    constexpr int64_t kChunk = 512;
    std::vector<uint8_t> buf(static_cast<size_t>(std::min(count, kChunk) * rec));
    for (int64_t done = 0; done < count; done += kChunk) {
      const int64_t n = std::min(kChunk, count - done);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < n; ++r) {
        const int64_t i = first + done + r;
        const int label = labels[static_cast<size_t>(i)];
        uint8_t* dst = buf.data() + r * rec;
        if (kind == CifarKind::Cifar100) dst[0] = static_cast<uint8_t>(label / 5);  // coarse = fine / 5
        dst[label_bytes - 1] = static_cast<uint8_t>(label);
        draw_image(label, num_classes, seed, index_base + static_cast<uint64_t>(i), dst + label_bytes);
      }
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n * rec));
      if (!out) return;  // write_atomically reports the failure
    }
  });
}

void write_names(const fs::path& path, const std::vector<std::string>& names) {
  write_atomically(path, [&](std::ofstream& out) {
    for (const std::string& name : names) out << name << '\n';
  });
}

}  // namespace

void synthetic_image(int label, int num_classes, uint64_t seed, uint64_t index, uint8_t* out) {
  LRT_CHECK(num_classes == 10 || num_classes == 100, "synthetic_image: num_classes is ", num_classes,
            ", expected 10 or 100");
  LRT_CHECK(label >= 0 && label < num_classes, "synthetic_image: label ", label, " outside [0, ", num_classes, ")");
  LRT_CHECK(out != nullptr, "synthetic_image: null output buffer");
  draw_image(label, num_classes, seed, index, out);
}

std::string write_synthetic_cifar(const std::string& dir, const SyntheticOptions& opts) {
  const bool c10 = opts.kind == CifarKind::Cifar10;
  const int64_t min_train = c10 ? 5 : 1;  // an empty batch file would not be a valid CIFAR file
  LRT_CHECK(opts.train >= min_train, "synthetic ", c10 ? "CIFAR-10" : "CIFAR-100", " train count is ", opts.train,
            ", expected at least ", min_train, c10 ? " (one record per batch file)" : "");
  LRT_CHECK(opts.test >= 1, "synthetic test count is ", opts.test, ", expected at least 1");

  const fs::path folder = fs::path(dir) / (c10 ? "cifar-10-batches-bin" : "cifar-100-binary");
  std::error_code ec;
  fs::create_directories(folder, ec);
  LRT_CHECK(!ec, "cannot create folder '", folder.string(), "': ", ec.message());

  const int num_classes = c10 ? 10 : 100;
  const std::vector<uint8_t> train_labels = balanced_labels(opts.train, num_classes, opts.seed, 0);
  const std::vector<uint8_t> test_labels = balanced_labels(opts.test, num_classes, opts.seed, 1);

  const std::vector<std::string> train_files = cifar_train_files(opts.kind);
  const auto files = static_cast<int64_t>(train_files.size());
  for (int64_t f = 0, first = 0; f < files; ++f) {
    const int64_t count = opts.train / files + (f < opts.train % files ? 1 : 0);  // earlier files take the remainder
    write_records(folder / train_files[static_cast<size_t>(f)], opts.kind, train_labels, first, count, opts.seed, 0);
    first += count;
  }
  write_records(folder / cifar_test_file(opts.kind), opts.kind, test_labels, 0, opts.test, opts.seed, kTestIndexBase);

  if (c10) {
    std::vector<std::string> names;
    for (int k = 0; k < 10; ++k) names.push_back(std::string(kColourNames[k]) + "_" + kShapeNames[k]);
    write_names(folder / "batches.meta.txt", names);
  } else {
    std::vector<std::string> fine, coarse;
    for (int k = 0; k < 100; ++k)
      fine.push_back(std::string(kColourNames[k / kNumShapes]) + "_" + kShapeNames[k % kNumShapes]);
    // Coarse class k holds fine classes 5k..5k+4: one colour, the first or the
    // last five shapes.
    for (int k = 0; k < 20; ++k) coarse.push_back(std::string(kColourNames[k / 2]) + (k % 2 ? "_patterns" : "_shapes"));
    write_names(folder / "fine_label_names.txt", fine);
    write_names(folder / "coarse_label_names.txt", coarse);
  }
  return folder.string();
}

}  // namespace lrt::data

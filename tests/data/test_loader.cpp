// The CIFAR batch pipeline on CPU: the file-order contract without shuffle
// or augmentation, exact normalisation, augmentation invariants (crop window,
// zero padding before normalisation, mirrored rows), epoch orders,
// determinism, drop_last, the NHWC layout and the loader's errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <vector>

#include "core/philox.h"
#include "data/augment.h"
#include "data/loader.h"
#include "lrt_config.h"

namespace lrt::data {

namespace {

// A split of n records with random pixel bytes (never all zero) and labels i % 10.
std::shared_ptr<CifarSplit> random_split(int64_t n, uint64_t seed) {
  auto s = std::make_shared<CifarSplit>();
  s->images.resize(static_cast<size_t>(n * kImageBytes));
  for (size_t i = 0; i < s->images.size(); ++i)
    s->images[i] = static_cast<uint8_t>(philox::block(seed, i / 4).x[i % 4] % 255 + 1);
  for (int64_t i = 0; i < n; ++i) s->labels.push_back(i % 10);
  return s;
}

std::vector<Batch> epoch_batches(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

LoaderOptions plain(int64_t batch) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = false;
  o.augment = false;
  return o;
}

// The sample's crop/flip recovered by matching the output against every
// candidate: returns how many candidates match exactly (1 expected).
int matching_windows(const CifarSplit& s, int64_t record, const float* out, const Normalization& n) {
  int matches = 0;
  for (int dy = 0; dy <= 2 * kPad; ++dy)
    for (int dx = 0; dx <= 2 * kPad; ++dx)
      for (bool flip : {false, true}) {
        bool same = true;
        for (int c = 0; c < 3 && same; ++c)
          for (int y = 0; y < 32 && same; ++y)
            for (int x = 0; x < 32 && same; ++x)
              same = out[(c * 32 + y) * 32 + x] == augmented_value(s.image(record), c, y, x, {dx, dy, flip}, n);
        matches += same;
      }
  return matches;
}

}  // namespace

TEST_CASE("without shuffle or augmentation batch k holds records k*B .. (k+1)*B-1 exactly normalised") {
  auto split = random_split(50, 1);
  for (Normalize nm : {Normalize::MeanStd, Normalize::Unit}) {
    LoaderOptions o = plain(16);
    o.normalize = nm;
    Loader loader(split, o);
    CHECK(loader.batches_per_epoch() == 4);
    const std::vector<Batch> batches = epoch_batches(loader, 0);
    REQUIRE(batches.size() == 4);
    CHECK(batches[3].images.shape() == Shape{2, 3, 32, 32});
    const Normalization n = make_normalization(nm);
    const double mean[3] = {0.4914, 0.4822, 0.4465}, std_[3] = {0.2470, 0.2435, 0.2616};
    for (const Batch& b : batches) {
      const auto img = b.images.to_vector<float>();
      const auto lab = b.labels.to_vector<int64_t>();
      for (int64_t i = 0; i < b.images.size(0); ++i) {
        const int64_t record = b.index * 16 + i;
        CHECK(lab[i] == split->labels[record]);
        for (int k = 0; k < kImageBytes; k += 97) {
          const int c = k / 1024;
          const double byte = split->image(record)[k];
          const double want = nm == Normalize::Unit ? byte / 255.0 : (byte / 255.0 - mean[c]) / std_[c];
          CHECK(img[i * kImageBytes + k] == doctest::Approx(want).epsilon(1e-5));
          CHECK(img[i * kImageBytes + k] == static_cast<float>(byte) * n.scale[c] + n.shift[c]);
        }
      }
    }
  }
}

TEST_CASE("augmented samples are crops of the zero-padded image, possibly mirrored") {
  auto split = random_split(40, 2);
  LoaderOptions o = plain(40);
  o.augment = true;
  o.normalize = Normalize::Unit;
  o.seed = 9;
  Loader loader(split, o);
  const std::vector<Batch> batches = epoch_batches(loader, 3);
  const auto img = batches[0].images.to_vector<float>();
  const Normalization n = make_normalization(Normalize::Unit);
  std::set<int> origins;
  int flips = 0, padded = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const SampleAug a = sample_augmentation(9, 3, static_cast<uint64_t>(i), true);
    CHECK(a.dx >= 0);
    CHECK(a.dx <= 2 * kPad);
    CHECK(a.dy >= 0);
    CHECK(a.dy <= 2 * kPad);
    origins.insert(a.dx * 9 + a.dy);
    flips += a.flip;
    // Exactly one crop window and flip reproduces the output (random bytes make others differ).
    CHECK(matching_windows(*split, i, img.data() + i * kImageBytes, n) == 1);
    // Rows outside the image are zero bytes, i.e. 0.0 under unit normalisation.
    if (a.dy < kPad) {
      ++padded;
      for (int x = 0; x < 32; ++x) CHECK(img[i * kImageBytes + x] == 0.0f);
    }
  }
  CHECK(origins.size() > 10);  // the windows vary
  CHECK(flips > 5);
  CHECK(flips < 35);
  CHECK(padded > 0);
}

TEST_CASE("a flip mirrors every row of the crop") {
  auto split = random_split(1, 3);
  const Normalization n = make_normalization(Normalize::MeanStd);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        CHECK(augmented_value(split->image(0), c, y, x, {kPad, kPad, true}, n) ==
              augmented_value(split->image(0), c, y, 31 - x, {kPad, kPad, false}, n));
      }
}

TEST_CASE("each shuffled epoch visits every record once, in an order that changes with the epoch and seed") {
  const auto a = epoch_order(1000, 5, 0, true), b = epoch_order(1000, 5, 1, true), c = epoch_order(1000, 6, 0, true);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) CHECK(sorted[i] == i);
  CHECK(a != b);
  CHECK(a != c);
  CHECK(a == epoch_order(1000, 5, 0, true));
  const auto plain_order = epoch_order(7, 5, 0, false);
  CHECK(plain_order == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("the same seed gives the same batches; another seed gives others") {
  auto split = random_split(64, 4);
  LoaderOptions o;
  o.batch_size = 32;
  o.seed = 11;
  Loader l1(split, o), l2(split, o);
  o.seed = 12;
  Loader l3(split, o);
  const auto b1 = epoch_batches(l1, 2), b2 = epoch_batches(l2, 2), b3 = epoch_batches(l3, 2);
  REQUIRE(b1.size() == 2);
  for (size_t k = 0; k < b1.size(); ++k) {
    CHECK(b1[k].images.to_vector<float>() == b2[k].images.to_vector<float>());
    CHECK(b1[k].labels.to_vector<int64_t>() == b2[k].labels.to_vector<int64_t>());
  }
  CHECK(b1[0].images.to_vector<float>() != b3[0].images.to_vector<float>());
}

TEST_CASE("shuffled batches carry each record's own label") {
  auto split = random_split(30, 5);
  for (int64_t i = 0; i < 30; ++i) split->labels[i] = (i * 7) % 10;
  LoaderOptions o = plain(8);
  o.shuffle = true;
  o.seed = 3;
  Loader loader(split, o);
  const auto order = epoch_order(30, 3, 1, true);
  const auto batches = epoch_batches(loader, 1);
  const Normalization n = make_normalization(Normalize::MeanStd);
  for (const Batch& b : batches) {
    const auto lab = b.labels.to_vector<int64_t>();
    const auto img = b.images.to_vector<float>();
    for (int64_t i = 0; i < b.labels.size(0); ++i) {
      const int64_t record = order[b.index * 8 + i];
      CHECK(lab[i] == split->labels[record]);
      CHECK(img[i * kImageBytes + 100] == augmented_value(split->image(record), 0, 3, 4, {kPad, kPad, false}, n));
    }
  }
}

TEST_CASE("drop_last drops only a short final batch") {
  auto split = random_split(50, 6);
  LoaderOptions o = plain(16);
  o.drop_last = true;
  Loader loader(split, o);
  CHECK(loader.batches_per_epoch() == 3);
  const auto batches = epoch_batches(loader, 0);
  CHECK(batches.size() == 3);
  for (const Batch& b : batches) CHECK(b.images.size(0) == 16);
  o.batch_size = 25;
  Loader exact(split, o);
  CHECK(exact.batches_per_epoch() == 2);
}

TEST_CASE("the NHWC layout holds the NCHW batch's values transposed") {
  auto split = random_split(5, 7);
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 1;
  Loader nchw(split, o);
  o.layout = Layout::NHWC;
  Loader nhwc(split, o);
  const Batch a = epoch_batches(nchw, 0)[0], b = epoch_batches(nhwc, 0)[0];
  CHECK(b.images.shape() == Shape{5, 32, 32, 3});
  CHECK(a.images.to_vector<float>() == b.images.transpose(2, 3).transpose(1, 2).contiguous().to_vector<float>());
}

TEST_CASE("epochs can be restarted and repeated mid-way with the same results") {
  auto split = random_split(40, 8);
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 2;
  Loader loader(split, o);
  loader.start_epoch(0);
  Batch first;
  REQUIRE(loader.next(first));
  const auto again = epoch_batches(loader, 0);  // restart while a batch is being prefetched
  REQUIRE(again.size() == 4);
  CHECK(again[0].images.to_vector<float>() == first.images.to_vector<float>());
}

TEST_CASE("loader errors name the problem") {
  auto split = random_split(4, 9);
  LoaderOptions o;
  o.batch_size = 0;
  CHECK_THROWS_WITH_AS(Loader(split, o), doctest::Contains("batch size"), Error);
  o.batch_size = 2;
  CHECK_THROWS_AS(Loader(std::make_shared<CifarSplit>(), o), Error);
  Loader loader(split, o);
  Batch b;
  CHECK_THROWS_WITH_AS(loader.next(b), doctest::Contains("start_epoch"), Error);
  CHECK_THROWS_AS(loader.start_epoch(-1), Error);
  CHECK_THROWS_WITH_AS(parse_normalize("zscore"), doctest::Contains("zscore"), Error);
  if (!LRT_HAVE_CUDA) {
    o.device = Device("cuda");
    CHECK_THROWS_WITH_AS(Loader(split, o), doctest::Contains("CUDA"), Error);
  }
}

}  // namespace lrt::data

// Tests of data/synthetic.*: the written CIFAR-10 / CIFAR-100 files (names,
// sizes, records) read back by data/cifar.*, balanced shuffled labels,
// byte-for-byte determinism pinned by hashes, a class signal that a
// nearest-class-mean classifier finds, and the writer's errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/cifar.h"
#include "data/synthetic.h"
#include "testing.h"

namespace lrt::data {

using testing::check_mentions;
using testing::error_of;

namespace {

struct TempDir : testing::TempDir {
  TempDir() : testing::TempDir("synthetic") {}
};

namespace fs = std::filesystem;

// The writer numbers test images from 2^40 (see data/synthetic.cpp).
constexpr uint64_t kTestIndexBase = uint64_t(1) << 40;

std::set<std::string> file_names(const fs::path& folder) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.insert(entry.path().filename().string());
  return names;
}

std::vector<char> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> image_of(int label, int num_classes, uint64_t seed, uint64_t index) {
  std::vector<uint8_t> img(kImageBytes);
  synthetic_image(label, num_classes, seed, index, img.data());
  return img;
}

// FNV-1a over the bytes: a fingerprint to pin the generator's output.
uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

// Checks that every record of split holds the image synthetic_image makes for
// its label and number, reporting the first mismatch only.
void check_records_are_synthetic(const CifarSplit& split, int num_classes, uint64_t seed, uint64_t index_base) {
  int64_t bad = 0, first_bad = -1;
  for (int64_t i = 0; i < split.size(); ++i) {
    const std::vector<uint8_t> want =
        image_of(static_cast<int>(split.labels[i]), num_classes, seed, index_base + static_cast<uint64_t>(i));
    if (!std::equal(want.begin(), want.end(), split.image(i)) && bad++ == 0) first_bad = i;
  }
  INFO(bad, " records differ from synthetic_image; first at ", first_bad);
  CHECK(bad == 0);
}

// The number of records of each class; also checks every label is in range.
std::vector<int64_t> class_counts(const CifarSplit& split, int num_classes) {
  std::vector<int64_t> counts(static_cast<size_t>(num_classes));
  for (int64_t label : split.labels) {
    REQUIRE(label >= 0);
    REQUIRE(label < num_classes);
    ++counts[static_cast<size_t>(label)];
  }
  return counts;
}

// Accuracy on test of the classifier that picks the class whose mean training
// image is nearest in raw pixels; `group` maps a class to what counts as a
// correct answer (the class itself, or e.g. its colour).
template <class Group>
double nearest_mean_accuracy(const CifarSplit& train, const CifarSplit& test, int num_classes, Group group) {
  std::vector<double> means(static_cast<size_t>(num_classes) * kImageBytes);
  std::vector<int64_t> counts(static_cast<size_t>(num_classes));
  for (int64_t i = 0; i < train.size(); ++i) {
    const auto label = static_cast<size_t>(train.labels[i]);
    ++counts[label];
    for (int k = 0; k < kImageBytes; ++k) means[label * kImageBytes + k] += train.image(i)[k];
  }
  for (size_t c = 0; c < counts.size(); ++c) {
    REQUIRE(counts[c] > 0);
    for (int k = 0; k < kImageBytes; ++k) means[c * kImageBytes + k] /= static_cast<double>(counts[c]);
  }
  int64_t right = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = 0;
    double best_d = 0.0;
    for (int c = 0; c < num_classes; ++c) {
      double d = 0.0;
      for (int k = 0; k < kImageBytes; ++k) {
        const double diff = test.image(i)[k] - means[static_cast<size_t>(c) * kImageBytes + k];
        d += diff * diff;
      }
      if (c == 0 || d < best_d) {
        best = c;
        best_d = d;
      }
    }
    right += group(best) == group(static_cast<int>(test.labels[i]));
  }
  return static_cast<double>(right) / static_cast<double>(test.size());
}

// Summed absolute differences between horizontal and between vertical
// neighbours: a horizontal edge adds to `vertical`, a vertical one to
// `horizontal`.
struct EdgeEnergy {
  int64_t horizontal = 0, vertical = 0;
};

EdgeEnergy edge_energy(const uint8_t* img) {
  EdgeEnergy e;
  for (int c = 0; c < kChannels; ++c)
    for (int y = 0; y + 1 < kImageSide; ++y)
      for (int x = 0; x + 1 < kImageSide; ++x) {
        const uint8_t* p = img + c * kImageSide * kImageSide + y * kImageSide + x;
        e.horizontal += std::abs(p[1] - p[0]);
        e.vertical += std::abs(p[kImageSide] - p[0]);
      }
  return e;
}

}  // namespace

TEST_CASE("synthetic CIFAR-10 has the real file names and sizes and reads back as the images it was made from") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.train = 103;
  opts.test = 37;
  opts.seed = 11;
  const std::string folder = write_synthetic_cifar(tmp.str(), opts);
  const fs::path dir = tmp.path() / "cifar-10-batches-bin";
  CHECK(folder == dir.string());

  // Exactly these files: no .tmp left behind.
  CHECK(file_names(dir) == std::set<std::string>{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                 "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                                 "batches.meta.txt"});
  const int64_t per_file[] = {21, 21, 21, 20, 20};
  const std::vector<std::string> train_files = cifar_train_files(CifarKind::Cifar10);
  std::vector<uint8_t> joined_images;
  for (size_t f = 0; f < 5; ++f) {
    INFO(train_files[f]);
    CHECK(fs::file_size(dir / train_files[f]) == static_cast<uintmax_t>(per_file[f] * 3073));
    const CifarSplit part = read_cifar_file((dir / train_files[f]).string(), CifarKind::Cifar10);
    joined_images.insert(joined_images.end(), part.images.begin(), part.images.end());
  }
  CHECK(fs::file_size(dir / "test_batch.bin") == 37u * 3073u);

  const CifarDataset ds = load_cifar(tmp.str());
  CHECK(ds.folder == dir.string());
  REQUIRE(ds.train.size() == 103);
  REQUIRE(ds.test.size() == 37);
  CHECK(ds.train.images == joined_images);
  check_records_are_synthetic(ds.train, 10, 11, 0);
  check_records_are_synthetic(ds.test, 10, 11, kTestIndexBase);

  REQUIRE(ds.class_names.size() == 10);
  CHECK(std::set<std::string>(ds.class_names.begin(), ds.class_names.end()).size() == 10);
  CHECK(ds.class_names[0] == "red_disc");
}

TEST_CASE("synthetic CIFAR-100 has the real files, coarse label = fine / 5, and 100 fine and 20 coarse names") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.kind = CifarKind::Cifar100;
  opts.train = 103;
  opts.test = 37;
  opts.seed = 5;
  const std::string folder = write_synthetic_cifar(tmp.str(), opts);
  const fs::path dir = tmp.path() / "cifar-100-binary";
  CHECK(folder == dir.string());
  CHECK(file_names(dir) ==
        std::set<std::string>{"train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"});
  CHECK(fs::file_size(dir / "train.bin") == 103u * 3074u);
  CHECK(fs::file_size(dir / "test.bin") == 37u * 3074u);

  CifarLoadOptions fine_opts, coarse_opts;
  fine_opts.kind = coarse_opts.kind = CifarKind::Cifar100;
  coarse_opts.coarse_labels = true;
  const CifarDataset fine = load_cifar(tmp.str(), fine_opts);
  const CifarDataset coarse = load_cifar(tmp.str(), coarse_opts);
  REQUIRE(fine.train.size() == 103);
  REQUIRE(coarse.train.size() == 103);
  for (int64_t i = 0; i < 103; ++i) CHECK(coarse.train.labels[i] == fine.train.labels[i] / 5);
  for (int64_t i = 0; i < 37; ++i) CHECK(coarse.test.labels[i] == fine.test.labels[i] / 5);
  check_records_are_synthetic(fine.train, 100, 5, 0);
  check_records_are_synthetic(fine.test, 100, 5, kTestIndexBase);

  REQUIRE(fine.class_names.size() == 100);
  CHECK(std::set<std::string>(fine.class_names.begin(), fine.class_names.end()).size() == 100);
  CHECK(fine.class_names[0] == "red_disc");
  CHECK(fine.class_names[17] == "orange_vstripes");
  REQUIRE(coarse.class_names.size() == 20);
  CHECK(std::set<std::string>(coarse.class_names.begin(), coarse.class_names.end()).size() == 20);
}

TEST_CASE("synthetic labels are balanced, in range and shuffled") {
  for (const CifarKind kind : {CifarKind::Cifar10, CifarKind::Cifar100}) {
    const int num_classes = kind == CifarKind::Cifar10 ? 10 : 100;
    INFO(cifar_kind_name(kind));
    TempDir tmp;
    SyntheticOptions opts;
    opts.kind = kind;
    opts.train = 1003;
    opts.test = 250;
    write_synthetic_cifar(tmp.str(), opts);
    CifarLoadOptions load_opts;
    load_opts.kind = kind;
    const CifarDataset ds = load_cifar(tmp.str(), load_opts);

    // Record i is given class i % num_classes before the shuffle, so the
    // counts are exact.
    const std::vector<int64_t> train_counts = class_counts(ds.train, num_classes);
    const std::vector<int64_t> test_counts = class_counts(ds.test, num_classes);
    for (int c = 0; c < num_classes; ++c) {
      CHECK(train_counts[static_cast<size_t>(c)] == 1003 / num_classes + (c < 1003 % num_classes ? 1 : 0));
      CHECK(test_counts[static_cast<size_t>(c)] == 250 / num_classes + (c < 250 % num_classes ? 1 : 0));
    }

    // Unshuffled, every neighbour would be the next class; shuffled, about
    // one in num_classes is.
    int64_t in_sequence = 0;
    for (int64_t i = 0; i + 1 < ds.train.size(); ++i)
      in_sequence += ds.train.labels[i + 1] == (ds.train.labels[i] + 1) % num_classes;
    CHECK(in_sequence < ds.train.size() / 5);
  }
}

TEST_CASE("the same seed writes identical bytes and a different seed different ones") {
  TempDir a, b, c;
  SyntheticOptions opts;
  opts.train = 60;
  opts.test = 20;
  opts.seed = 3;
  write_synthetic_cifar(a.str(), opts);
  write_synthetic_cifar(b.str(), opts);
  opts.seed = 4;
  write_synthetic_cifar(c.str(), opts);

  const fs::path sub = "cifar-10-batches-bin";
  for (const std::string& name : file_names(a.path() / sub)) {
    INFO(name);
    const std::vector<char> bytes = file_bytes(a.path() / sub / name);
    CHECK(!bytes.empty());
    CHECK(bytes == file_bytes(b.path() / sub / name));
    if (name != "batches.meta.txt") CHECK(bytes != file_bytes(c.path() / sub / name));
  }

  CHECK(image_of(4, 10, 9, 123) == image_of(4, 10, 9, 123));
  CHECK(image_of(4, 10, 9, 123) != image_of(4, 10, 9, 124));
  CHECK(image_of(4, 10, 9, 123) != image_of(4, 10, 8, 123));
}

TEST_CASE("synthetic_image gives the same bytes on every machine") {
  // Pinned fingerprints: a change here changes every synthetic data set.
  CHECK(fnv1a(image_of(3, 10, 42, 7)) == 0x16b67ea53f84586eull);
  const std::vector<uint8_t> img = image_of(57, 100, 42, kTestIndexBase + 1);
  CHECK(fnv1a(img) == 0x6880d55e7ac14e1eull);
  CHECK(img[0] == 158);
  CHECK(img[100] == 54);
  CHECK(img[1500] == 170);
  CHECK(img[3071] == 206);
}

TEST_CASE("synthetic images are noisy, all different, and a nearest-class-mean classifier beats chance") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.train = 1000;
  opts.test = 300;
  opts.seed = 21;
  write_synthetic_cifar(tmp.str(), opts);
  const CifarDataset ds = load_cifar(tmp.str());

  std::set<uint64_t> distinct;
  int64_t flat = 0;
  for (int64_t i = 0; i < ds.train.size(); ++i) {
    const uint8_t* img = ds.train.image(i);
    distinct.insert(fnv1a(std::vector<uint8_t>(img, img + kImageBytes)));
    for (int c = 0; c < kChannels; ++c) {
      const auto [lo, hi] = std::minmax_element(img + c * 1024, img + (c + 1) * 1024);
      flat += *hi - *lo < 40;
    }
  }
  CHECK(flat == 0);
  CHECK(distinct.size() == 1000u);

  // Chance is 0.1; the images carry class colour and shape, so raw-pixel
  // class means separate the classes well above it.
  const double accuracy = nearest_mean_accuracy(ds.train, ds.test, 10, [](int c) { return c; });
  INFO("nearest-class-mean accuracy ", accuracy);
  CHECK(accuracy > 0.25);
}

TEST_CASE("synthetic CIFAR-100 classes differ by colour and by shape") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.kind = CifarKind::Cifar100;
  opts.train = 2000;
  opts.test = 500;
  opts.seed = 8;
  write_synthetic_cifar(tmp.str(), opts);
  CifarLoadOptions load_opts;
  load_opts.kind = CifarKind::Cifar100;
  const CifarDataset ds = load_cifar(tmp.str(), load_opts);

  // Chance: 0.01 for the class, 0.1 for its colour (label / 10).
  const double accuracy = nearest_mean_accuracy(ds.train, ds.test, 100, [](int c) { return c; });
  const double colour_accuracy = nearest_mean_accuracy(ds.train, ds.test, 100, [](int c) { return c / 10; });
  INFO("accuracy ", accuracy, ", colour accuracy ", colour_accuracy);
  CHECK(accuracy > 0.025);
  CHECK(colour_accuracy > 0.25);

  // Shape, whatever the colour: horizontal stripes (shape 6) put their edge
  // energy between rows, vertical stripes (shape 7) between columns.
  int64_t h_stripes_right = 0, v_stripes_right = 0, n = 0;
  for (int colour = 0; colour < 10; ++colour)
    for (uint64_t i = 0; i < 20; ++i, ++n) {
      const std::vector<uint8_t> h = image_of(colour * 10 + 6, 100, 8, 1000 * static_cast<uint64_t>(colour) + i);
      const std::vector<uint8_t> v = image_of(colour * 10 + 7, 100, 8, 1000 * static_cast<uint64_t>(colour) + i);
      const EdgeEnergy eh = edge_energy(h.data()), ev = edge_energy(v.data());
      h_stripes_right += eh.vertical > eh.horizontal;
      v_stripes_right += ev.horizontal > ev.vertical;
    }
  CHECK(h_stripes_right >= n * 9 / 10);
  CHECK(v_stripes_right >= n * 9 / 10);
}

TEST_CASE("write_synthetic_cifar rejects counts too small for valid files, naming the value") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.train = 4;
  check_mentions(error_of([&] { write_synthetic_cifar(tmp.str(), opts); }), {"train count is 4", "at least 5"});
  opts.train = 10;
  opts.test = 0;
  check_mentions(error_of([&] { write_synthetic_cifar(tmp.str(), opts); }), {"test count is 0"});
  opts.kind = CifarKind::Cifar100;
  opts.train = -3;
  opts.test = 5;
  check_mentions(error_of([&] { write_synthetic_cifar(tmp.str(), opts); }), {"train count is -3", "at least 1"});
  CHECK(fs::is_empty(tmp.path()));
}

TEST_CASE("write_synthetic_cifar errors name the folder it cannot create and the file it cannot write") {
  TempDir tmp;
  SyntheticOptions opts;
  opts.train = 10;
  opts.test = 5;

  // A plain file where the parent folder should be.
  const fs::path blocker = tmp.path() / "blocker";
  std::ofstream(blocker) << "x";
  check_mentions(error_of([&] { write_synthetic_cifar(blocker.string(), opts); }),
                 {"cannot create folder", (blocker / "cifar-10-batches-bin").string()});

  // A folder where the temporary file should go: opening it fails.
  const fs::path dir = tmp.path() / "out" / "cifar-10-batches-bin";
  fs::create_directories(dir / "test_batch.bin.tmp");
  check_mentions(error_of([&] { write_synthetic_cifar((tmp.path() / "out").string(), opts); }),
                 {(dir / "test_batch.bin.tmp").string(), "cannot open"});
  CHECK(!fs::exists(dir / "test_batch.bin"));
  fs::remove(dir / "test_batch.bin.tmp");

  // A non-empty folder where the final file should go: the rename fails and
  // the temporary file is removed.
  fs::remove(dir / "data_batch_2.bin");
  fs::create_directories(dir / "data_batch_2.bin" / "inside");
  check_mentions(error_of([&] { write_synthetic_cifar((tmp.path() / "out").string(), opts); }),
                 {(dir / "data_batch_2.bin").string(), "rename"});
  CHECK(!fs::exists(dir / "data_batch_2.bin.tmp"));
}

TEST_CASE("synthetic_image rejects a label out of range and an unsupported class count") {
  std::vector<uint8_t> img(kImageBytes);
  check_mentions(error_of([&] { synthetic_image(10, 10, 0, 0, img.data()); }), {"label 10", "[0, 10)"});
  check_mentions(error_of([&] { synthetic_image(-1, 100, 0, 0, img.data()); }), {"label -1", "[0, 100)"});
  check_mentions(error_of([&] { synthetic_image(0, 7, 0, 0, img.data()); }), {"num_classes is 7"});
}

}  // namespace lrt::data

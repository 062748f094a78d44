// Tests of data/cifar.*: exact decoding of hand-made CIFAR-10 and CIFAR-100
// binary files (labels, R/G/B planes, row order), folder lookup, the order
// the five training files are joined in, subsets, class names, and every
// validation error with a message naming the file and what was wrong.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/cifar.h"
#include "testing.h"

namespace lrt::data {

using testing::check_mentions;
using testing::error_of;

namespace {

struct TempDir : testing::TempDir {
  TempDir() : testing::TempDir("cifar") {}
};

namespace fs = std::filesystem;

// The pixel a hand-made record holds at plane c, row y, column x: every
// plane, row and column gives a different byte, so a swapped plane, a
// flipped row order or a transposed image all show.
uint8_t pattern(int c, int y, int x, int offset) { return static_cast<uint8_t>((c * 7 + y * 3 + x + offset) % 256); }

std::vector<uint8_t> pattern_image(int offset) {
  std::vector<uint8_t> img;
  for (int c = 0; c < kChannels; ++c)
    for (int y = 0; y < kImageSide; ++y)
      for (int x = 0; x < kImageSide; ++x) img.push_back(pattern(c, y, x, offset));
  return img;
}

// A record: its label bytes, then the pattern image for offset.
std::vector<uint8_t> record(std::vector<uint8_t> label_bytes, int offset) {
  const std::vector<uint8_t> img = pattern_image(offset);
  label_bytes.insert(label_bytes.end(), img.begin(), img.end());
  return label_bytes;
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::vector<uint8_t> concat(const std::vector<std::vector<uint8_t>>& records) {
  std::vector<uint8_t> out;
  for (const auto& r : records) out.insert(out.end(), r.begin(), r.end());
  return out;
}

// CIFAR-10 training file f (0-based) gets f + 1 records, record r with label
// (f + r) % 10 and pattern offset 16 f + r, so the joined split shows which
// file and record every entry came from. The test file has 2 records.
constexpr int kTrainRecords = 1 + 2 + 3 + 4 + 5;

void write_cifar10_set(const fs::path& folder) {
  fs::create_directories(folder);
  const std::vector<std::string> files = cifar_train_files(CifarKind::Cifar10);
  for (int f = 0; f < 5; ++f) {
    std::vector<std::vector<uint8_t>> recs;
    for (int r = 0; r <= f; ++r) recs.push_back(record({static_cast<uint8_t>((f + r) % 10)}, 16 * f + r));
    write_bytes(folder / files[static_cast<size_t>(f)], concat(recs));
  }
  write_bytes(folder / "test_batch.bin", concat({record({7}, 200), record({2}, 201)}));
}

// (file, record) of each entry of the joined training split, in order.
std::vector<std::pair<int, int>> expected_train_order() {
  std::vector<std::pair<int, int>> order;
  for (int f = 0; f < 5; ++f)
    for (int r = 0; r <= f; ++r) order.emplace_back(f, r);
  return order;
}

void write_cifar100_set(const fs::path& folder) {
  fs::create_directories(folder);
  write_bytes(folder / "train.bin", concat({record({3, 17}, 0), record({19, 99}, 1), record({0, 0}, 2)}));
  write_bytes(folder / "test.bin", concat({record({8, 42}, 100)}));
}

void check_image(const CifarSplit& split, int64_t i, int offset) {
  const std::vector<uint8_t> want = pattern_image(offset);
  INFO("record ", i, ", pattern offset ", offset);
  CHECK(std::equal(want.begin(), want.end(), split.image(i)));
}

}  // namespace

TEST_CASE("read_cifar_file decodes CIFAR-10 labels and the R, G, B planes with rows top to bottom") {
  TempDir tmp;
  const fs::path file = tmp.path() / "data_batch_1.bin";
  write_bytes(file, concat({record({3}, 0), record({0}, 50), record({9}, 100)}));

  const CifarSplit s = read_cifar_file(file.string(), CifarKind::Cifar10);
  REQUIRE(s.size() == 3);
  CHECK(s.labels == std::vector<int64_t>{3, 0, 9});
  REQUIRE(s.images.size() == 3u * kImageBytes);
  check_image(s, 0, 0);
  check_image(s, 1, 50);
  check_image(s, 2, 100);
  // Spot checks in the documented layout: plane c, row y, column x at
  // c * 1024 + y * 32 + x.
  CHECK(s.image(1)[0] == 50);                                                // R, top-left
  CHECK(s.image(1)[1 * 1024 + 2 * 32 + 5] == 7 + 6 + 5 + 50);                // G, row 2, column 5
  CHECK(s.image(2)[2 * 1024 + 31 * 32 + 31] == (14 + 93 + 31 + 100) % 256);  // B, bottom-right
}

TEST_CASE("read_cifar_file decodes CIFAR-100 records as fine labels by default and coarse labels on request") {
  TempDir tmp;
  const fs::path file = tmp.path() / "train.bin";
  write_cifar100_set(tmp.path());

  const CifarSplit fine = read_cifar_file(file.string(), CifarKind::Cifar100);
  REQUIRE(fine.size() == 3);
  CHECK(fine.labels == std::vector<int64_t>{17, 99, 0});
  check_image(fine, 0, 0);
  check_image(fine, 1, 1);
  check_image(fine, 2, 2);

  const CifarSplit coarse = read_cifar_file(file.string(), CifarKind::Cifar100, true);
  CHECK(coarse.labels == std::vector<int64_t>{3, 19, 0});
  CHECK(coarse.images == fine.images);
}

TEST_CASE("read_cifar_file reads only the first max_records records, all when fewer are there") {
  TempDir tmp;
  const fs::path file = tmp.path() / "data_batch_1.bin";
  write_bytes(file, concat({record({3}, 0), record({0}, 50), record({9}, 100)}));

  const CifarSplit two = read_cifar_file(file.string(), CifarKind::Cifar10, false, 2);
  CHECK(two.labels == std::vector<int64_t>{3, 0});
  CHECK(two.images.size() == 2u * kImageBytes);
  check_image(two, 1, 50);
  CHECK(read_cifar_file(file.string(), CifarKind::Cifar10, false, 10).size() == 3);
  CHECK(read_cifar_file(file.string(), CifarKind::Cifar10, false, 0).size() == 0);
}

TEST_CASE("load_cifar accepts the archive folder itself or the folder holding it") {
  TempDir tmp;
  const fs::path archive = tmp.path() / "cifar-10-batches-bin";
  write_cifar10_set(archive);

  for (const fs::path& dir : {tmp.path(), archive}) {
    INFO("dir: ", dir.string());
    CHECK(locate_cifar_folder(dir.string(), CifarKind::Cifar10) == archive.string());
    const CifarDataset ds = load_cifar(dir.string());
    CHECK(ds.folder == archive.string());
    CHECK(ds.kind == CifarKind::Cifar10);
    CHECK(ds.train.size() == kTrainRecords);
    CHECK(ds.test.size() == 2);
  }

  TempDir tmp100;
  const fs::path archive100 = tmp100.path() / "cifar-100-binary";
  write_cifar100_set(archive100);
  CifarLoadOptions opts;
  opts.kind = CifarKind::Cifar100;
  for (const fs::path& dir : {tmp100.path(), archive100}) {
    const CifarDataset ds = load_cifar(dir.string(), opts);
    CHECK(ds.folder == archive100.string());
    CHECK(ds.train.labels == std::vector<int64_t>{17, 99, 0});
    CHECK(ds.test.labels == std::vector<int64_t>{42});
  }
}

TEST_CASE("load_cifar joins the CIFAR-10 training files in the order data_batch_1 to data_batch_5") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  const CifarDataset ds = load_cifar(tmp.str());

  const auto order = expected_train_order();
  REQUIRE(ds.train.size() == static_cast<int64_t>(order.size()));
  REQUIRE(ds.train.images.size() == order.size() * kImageBytes);
  for (size_t i = 0; i < order.size(); ++i) {
    const auto [f, r] = order[i];
    CHECK(ds.train.labels[i] == (f + r) % 10);
    check_image(ds.train, static_cast<int64_t>(i), 16 * f + r);
  }
  CHECK(ds.test.labels == std::vector<int64_t>{7, 2});
  check_image(ds.test, 0, 200);
  check_image(ds.test, 1, 201);
}

TEST_CASE("load_cifar subsets take the first records across files and are clamped to the data") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  const auto order = expected_train_order();

  for (int64_t n : {0, 1, 4, 6, 7, kTrainRecords}) {
    CifarLoadOptions opts;
    opts.train_subset = n;
    opts.test_subset = 1;
    const CifarDataset ds = load_cifar(tmp.str(), opts);
    INFO("train_subset ", n);
    REQUIRE(ds.train.size() == n);
    CHECK(ds.train.images.size() == static_cast<size_t>(n) * kImageBytes);
    for (int64_t i = 0; i < n; ++i) check_image(ds.train, i, 16 * order[i].first + order[i].second);
    CHECK(ds.test.labels == std::vector<int64_t>{7});
  }

  CifarLoadOptions big;
  big.train_subset = 1000;
  big.test_subset = 1000;
  const CifarDataset ds = load_cifar(tmp.str(), big);
  CHECK(ds.train.size() == kTrainRecords);
  CHECK(ds.test.size() == 2);
}

TEST_CASE("CIFAR-10 class names come from batches.meta.txt, skipping blank lines, else the standard names") {
  TempDir tmp;
  write_cifar10_set(tmp.path());

  const CifarDataset standard = load_cifar(tmp.str());
  CHECK(standard.num_classes == 10);
  CHECK(standard.class_names == std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                         "horse", "ship", "truck"});

  write_text(tmp.path() / "batches.meta.txt", "c0\nc1\n\nc2\r\nc3\nc4\n   \nc5\nc6\nc7\nc8\nc9\n\n\n");
  const CifarDataset named = load_cifar(tmp.str());
  CHECK(named.class_names == std::vector<std::string>{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"});
}

TEST_CASE("CIFAR-100 class names come from the fine or coarse name file, else class_<i>") {
  TempDir tmp;
  write_cifar100_set(tmp.path());
  CifarLoadOptions fine_opts, coarse_opts;
  fine_opts.kind = coarse_opts.kind = CifarKind::Cifar100;
  coarse_opts.coarse_labels = true;

  const CifarDataset fine_default = load_cifar(tmp.str(), fine_opts);
  CHECK(fine_default.num_classes == 100);
  REQUIRE(fine_default.class_names.size() == 100);
  CHECK(fine_default.class_names[0] == "class_0");
  CHECK(fine_default.class_names[99] == "class_99");
  const CifarDataset coarse_default = load_cifar(tmp.str(), coarse_opts);
  CHECK(coarse_default.num_classes == 20);
  REQUIRE(coarse_default.class_names.size() == 20);
  CHECK(coarse_default.class_names[19] == "class_19");
  CHECK(coarse_default.train.labels == std::vector<int64_t>{3, 19, 0});

  std::string fine_text, coarse_text;
  for (int i = 0; i < 100; ++i) fine_text += "fine" + std::to_string(i) + "\n" + (i % 7 == 0 ? "\n" : "");
  for (int i = 0; i < 20; ++i) coarse_text += "coarse" + std::to_string(i) + "\n";
  write_text(tmp.path() / "fine_label_names.txt", fine_text);
  write_text(tmp.path() / "coarse_label_names.txt", coarse_text);
  const CifarDataset fine = load_cifar(tmp.str(), fine_opts);
  REQUIRE(fine.class_names.size() == 100);
  CHECK(fine.class_names[17] == "fine17");
  CHECK(fine.class_names[99] == "fine99");
  const CifarDataset coarse = load_cifar(tmp.str(), coarse_opts);
  REQUIRE(coarse.class_names.size() == 20);
  CHECK(coarse.class_names[3] == "coarse3");
}

TEST_CASE("the kind names and file names of CIFAR-10 and CIFAR-100") {
  CHECK(parse_cifar_kind("cifar10") == CifarKind::Cifar10);
  CHECK(parse_cifar_kind("cifar100") == CifarKind::Cifar100);
  CHECK(std::string(cifar_kind_name(CifarKind::Cifar10)) == "cifar10");
  CHECK(std::string(cifar_kind_name(CifarKind::Cifar100)) == "cifar100");
  CHECK(cifar_train_files(CifarKind::Cifar10) == std::vector<std::string>{"data_batch_1.bin", "data_batch_2.bin",
                                                                          "data_batch_3.bin", "data_batch_4.bin",
                                                                          "data_batch_5.bin"});
  CHECK(cifar_train_files(CifarKind::Cifar100) == std::vector<std::string>{"train.bin"});
  CHECK(cifar_test_file(CifarKind::Cifar10) == "test_batch.bin");
  CHECK(cifar_test_file(CifarKind::Cifar100) == "test.bin");
}

TEST_CASE("parse_cifar_kind rejects an unknown name, naming it and the accepted names") {
  check_mentions(error_of([] { parse_cifar_kind("x"); }), {"'x'", "cifar10", "cifar100"});
  check_mentions(error_of([] { parse_cifar_kind("CIFAR-10"); }), {"'CIFAR-10'"});
}

TEST_CASE("a missing folder is an error naming it") {
  TempDir tmp;
  const std::string dir = (tmp.path() / "nowhere").string();
  check_mentions(error_of([&] { load_cifar(dir); }), {dir, "does not exist"});
  check_mentions(error_of([&] { locate_cifar_folder(dir, CifarKind::Cifar100); }), {dir, "CIFAR-100"});
  write_text(tmp.path() / "plain_file", "x");
  check_mentions(error_of([&] { load_cifar((tmp.path() / "plain_file").string()); }), {"plain_file", "not a folder"});
}

TEST_CASE("missing files are an error listing the expected names and asking for the binary version") {
  TempDir tmp;
  check_mentions(error_of([&] { load_cifar(tmp.str()); }),
                 {tmp.str(), "data_batch_1.bin", "data_batch_5.bin", "test_batch.bin", "CIFAR-10 binary version",
                  "cifar-10-batches-bin", "Python", "MATLAB"});
  CifarLoadOptions opts100;
  opts100.kind = CifarKind::Cifar100;
  check_mentions(error_of([&] { load_cifar(tmp.str(), opts100); }),
                 {tmp.str(), "train.bin", "test.bin", "CIFAR-100 binary version", "cifar-100-binary"});

  // Some files present in the archive folder: the error names that folder
  // and the missing file.
  const fs::path archive = tmp.path() / "cifar-10-batches-bin";
  write_cifar10_set(archive);
  fs::remove(archive / "data_batch_3.bin");
  const std::string msg = error_of([&] { load_cifar(tmp.str()); });
  check_mentions(msg, {archive.string(), "missing", "data_batch_3.bin", "binary version"});
  CHECK(msg.find("missing in '" + archive.string() + "': data_batch_3.bin.") != std::string::npos);
}

TEST_CASE("a folder holding the Python version of CIFAR-10 is told so") {
  TempDir tmp;
  fs::create_directories(tmp.path() / "cifar-10-batches-py");
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"Python version", "binary version"});
}

TEST_CASE("a file whose size is not a whole number of records is an error naming the file and the sizes") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  std::vector<uint8_t> bytes = concat({record({1}, 0), record({2}, 0)});
  bytes.resize(bytes.size() + 5);  // 6151 bytes
  write_bytes(tmp.path() / "data_batch_4.bin", bytes);
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"data_batch_4.bin", "6151 bytes", "3073-byte records"});

  TempDir tmp100;
  write_cifar100_set(tmp100.path());
  write_bytes(tmp100.path() / "test.bin", std::vector<uint8_t>(3074 * 3 - 1));
  CifarLoadOptions opts;
  opts.kind = CifarKind::Cifar100;
  check_mentions(error_of([&] { load_cifar(tmp100.str(), opts); }), {"test.bin", "9221 bytes", "3074-byte records"});
}

TEST_CASE("an empty file is an error naming it") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  write_bytes(tmp.path() / "test_batch.bin", {});
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"test_batch.bin", "empty"});
  check_mentions(error_of([&] { read_cifar_file((tmp.path() / "test_batch.bin").string(), CifarKind::Cifar10); }),
                 {"test_batch.bin", "empty"});
}

TEST_CASE("a label out of range is an error naming the file, the record index and the value") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  write_bytes(tmp.path() / "data_batch_2.bin", concat({record({1}, 0), record({9}, 0), record({10}, 0)}));
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"data_batch_2.bin", "record 2", "label 10", "[0, 10)"});

  TempDir tmp100;
  write_cifar100_set(tmp100.path());
  CifarLoadOptions opts;
  opts.kind = CifarKind::Cifar100;
  write_bytes(tmp100.path() / "train.bin", concat({record({19, 99}, 0), record({2, 100}, 0)}));
  check_mentions(error_of([&] { load_cifar(tmp100.str(), opts); }),
                 {"train.bin", "record 1", "fine label 100", "[0, 100)"});
  write_bytes(tmp100.path() / "train.bin", concat({record({20, 5}, 0)}));
  check_mentions(error_of([&] { load_cifar(tmp100.str(), opts); }),
                 {"train.bin", "record 0", "coarse label 20", "[0, 20)"});
}

TEST_CASE("a folder in place of a data file or a name file is an error naming it") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  fs::remove(tmp.path() / "test_batch.bin");
  fs::create_directories(tmp.path() / "test_batch.bin");
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"test_batch.bin", "cannot read", "folder"});

  TempDir tmp2;
  write_cifar10_set(tmp2.path());
  fs::create_directories(tmp2.path() / "batches.meta.txt");
  check_mentions(error_of([&] { load_cifar(tmp2.str()); }), {"batches.meta.txt", "folder"});

  const std::string gone = (tmp.path() / "no_such.bin").string();
  check_mentions(error_of([&] { read_cifar_file(gone, CifarKind::Cifar10); }), {gone, "does not exist"});
}

TEST_CASE("a class-name file with the wrong number of names is an error naming it") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  write_text(tmp.path() / "batches.meta.txt", "a\nb\nc\n");
  check_mentions(error_of([&] { load_cifar(tmp.str()); }), {"batches.meta.txt", "3 class names", "expected 10"});
}

TEST_CASE("a negative subset other than -1 is an error naming the value") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  CifarLoadOptions train_opts;
  train_opts.train_subset = -2;
  check_mentions(error_of([&] { load_cifar(tmp.str(), train_opts); }), {"train_subset", "-2"});
  CifarLoadOptions test_opts;
  test_opts.test_subset = -7;
  check_mentions(error_of([&] { load_cifar(tmp.str(), test_opts); }), {"test_subset", "-7"});
  check_mentions(
      error_of([&] { read_cifar_file((tmp.path() / "test_batch.bin").string(), CifarKind::Cifar10, false, -3); }),
      {"max_records", "-3"});
}

TEST_CASE("coarse labels asked of CIFAR-10 are an error") {
  TempDir tmp;
  write_cifar10_set(tmp.path());
  CifarLoadOptions opts;
  opts.coarse_labels = true;
  check_mentions(error_of([&] { load_cifar(tmp.str(), opts); }), {"coarse", "CIFAR-100"});
}

}  // namespace lrt::data

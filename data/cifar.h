// CIFAR-10 / CIFAR-100 binary-version reader. A split holds its images as raw
// bytes in the files' own layout: per record 3072 bytes, the red, green and
// blue 32x32 planes, rows top to bottom. Every problem with the files is an
// lrt::Error naming the file (and the record, for a bad label).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrt::data {

enum class CifarKind { Cifar10, Cifar100 };

constexpr int kImageSide = 32;
constexpr int kChannels = 3;
constexpr int kImageBytes = kChannels * kImageSide * kImageSide;  // 3072

struct CifarSplit {
  std::vector<uint8_t> images;  // (N, 3, 32, 32) bytes
  std::vector<int64_t> labels;  // (N)
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  const uint8_t* image(int64_t i) const { return images.data() + i * kImageBytes; }
};

struct CifarDataset {
  CifarKind kind = CifarKind::Cifar10;
  std::string folder;                    // the folder the files were read from
  int num_classes = 10;
  std::vector<std::string> class_names;  // num_classes names
  CifarSplit train, test;
};

struct CifarLoadOptions {
  CifarKind kind = CifarKind::Cifar10;
  int64_t train_subset = -1;  // the first N training records (fewer if the data has fewer); -1 for all
  int64_t test_subset = -1;   // the first M test records (fewer if the data has fewer); -1 for all
  bool coarse_labels = false;  // CIFAR-100: the 20 coarse classes instead of the 100 fine ones
};

// The folder holding the binary files: dir itself, or the archive's folder
// inside it (cifar-10-batches-bin, cifar-100-binary). Throws, listing the
// expected file names, when neither has them.
std::string locate_cifar_folder(const std::string& dir, CifarKind kind);

// Reads train and test splits and the class names (batches.meta.txt /
// fine_label_names.txt / coarse_label_names.txt when present, else the
// standard CIFAR-10 names or "class_<i>").
CifarDataset load_cifar(const std::string& dir, const CifarLoadOptions& opts = {});

// Reads one binary file: records of 1 label byte (CIFAR-10) or a coarse and a
// fine label byte (CIFAR-100) followed by 3072 pixel bytes. At most max_records
// are read (-1 for all).
CifarSplit read_cifar_file(const std::string& path, CifarKind kind, bool coarse_labels = false,
                           int64_t max_records = -1);

// The training files of a kind, in the order their records are concatenated.
std::vector<std::string> cifar_train_files(CifarKind kind);
std::string cifar_test_file(CifarKind kind);
const char* cifar_kind_name(CifarKind kind);  // "cifar10" / "cifar100"
// Parses "cifar10" / "cifar100"; throws naming the text otherwise.
CifarKind parse_cifar_kind(const std::string& name);

}  // namespace lrt::data

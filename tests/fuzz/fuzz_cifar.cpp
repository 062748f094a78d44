// The CIFAR binary reader on untrusted bytes: read_cifar_file on one file, or
// load_cifar on a folder (files directly in it or in the archive's folder
// inside it, with or without a class-name file), with a record limit or
// subsets; what it accepts then goes through one epoch of the Loader.
//
// Input: a mode byte (bit 0 CIFAR-100, bit 1 coarse labels, bit 2 a folder,
// bit 3 the archive's folder, bit 4 each file gets its own slice of the
// payload instead of all of it, bits 5-7 the record limit or subsets), a
// batch byte (bits 0-2 batch size - 1, bit 3 shuffle, bit 4 augment, bit 5
// unit normalisation); in folder mode a length byte and that many bytes of
// class names; the rest is the file contents.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "data/loader.h"
#include "fuzz.h"

namespace {

using namespace lrt;
using namespace lrt::data;
namespace fs = std::filesystem;

constexpr int64_t kLimits[] = {-1, 0, 1, 2, 3, 5, 1000, -2};

int64_t record_bytes(CifarKind kind) { return (kind == CifarKind::Cifar10 ? 1 : 2) + kImageBytes; }

void check_split(const CifarSplit& s, int num_classes) {
  LRT_FUZZ_CHECK(s.images.size() == static_cast<size_t>(s.size()) * kImageBytes);
  for (int64_t label : s.labels) LRT_FUZZ_CHECK(label >= 0 && label < num_classes);
}

// One epoch of batches; every record must arrive once.
void run_loader(const CifarSplit& split, uint8_t batch_byte) {
  if (split.size() == 0) return;
  LoaderOptions lo;
  lo.batch_size = 1 + (batch_byte & 7);
  lo.shuffle = batch_byte & 8;
  lo.augment = batch_byte & 16;
  lo.normalize = batch_byte & 32 ? Normalize::Unit : Normalize::MeanStd;
  Loader loader(std::make_shared<const CifarSplit>(split), lo);
  loader.start_epoch(0);
  Batch b;
  int64_t seen = 0;
  while (loader.next(b)) {
    LRT_FUZZ_CHECK(b.images.dim() == 4 && b.images.size(0) == b.labels.size(0));
    seen += b.labels.size(0);
  }
  LRT_FUZZ_CHECK(seen == split.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t mode = in.byte(), batch_byte = in.byte();
  const CifarKind kind = mode & 1 ? CifarKind::Cifar100 : CifarKind::Cifar10;
  const bool coarse = mode & 2;
  const int64_t limit = kLimits[(mode >> 5) & 7];

  if (!(mode & 4)) {
    const std::string path = fuzz::scratch_path("data.bin");
    fuzz::write_file(path, in.rest(), in.rest_size());
    CifarSplit split;
    if (!fuzz::accepts([&] { split = read_cifar_file(path, kind, coarse, limit); })) return 0;
    const int64_t records = static_cast<int64_t>(in.rest_size()) / record_bytes(kind);
    LRT_FUZZ_CHECK(split.size() == (limit < 0 ? records : std::min(records, limit)));
    check_split(split, kind == CifarKind::Cifar10 ? 10 : coarse ? 20 : 100);
    fuzz::accepts([&] { run_loader(split, batch_byte); });
    return 0;
  }

  const std::string names(in.bytes(in.byte()));
  const fs::path root = fuzz::scratch_path("cifar");
  fs::remove_all(root);
  const fs::path folder =
      mode & 8 ? root / (kind == CifarKind::Cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary") : root;
  fs::create_directories(folder);
  std::vector<std::string> files = cifar_train_files(kind);
  files.push_back(cifar_test_file(kind));
  for (size_t i = 0; i < files.size(); ++i) {
    size_t begin = 0, end = in.rest_size();
    if (mode & 16) {
      begin = in.rest_size() * i / files.size();
      end = in.rest_size() * (i + 1) / files.size();
    }
    fuzz::write_file((folder / files[i]).string(), in.rest() + begin, end - begin);
  }
  if (!names.empty()) {
    const char* names_file = kind == CifarKind::Cifar10 ? "batches.meta.txt"
                             : coarse                   ? "coarse_label_names.txt"
                                                        : "fine_label_names.txt";
    fuzz::write_file((folder / names_file).string(), reinterpret_cast<const uint8_t*>(names.data()), names.size());
  }
  CifarLoadOptions opts;
  opts.kind = kind;
  opts.coarse_labels = coarse;
  opts.train_subset = limit;
  opts.test_subset = limit < 0 ? limit : limit / 2;
  CifarDataset ds;
  if (!fuzz::accepts([&] { ds = load_cifar(root.string(), opts); })) return 0;
  LRT_FUZZ_CHECK(fs::equivalent(ds.folder, folder));
  LRT_FUZZ_CHECK(ds.class_names.size() == static_cast<size_t>(ds.num_classes));
  check_split(ds.train, ds.num_classes);
  check_split(ds.test, ds.num_classes);
  if (opts.train_subset >= 0) LRT_FUZZ_CHECK(ds.train.size() <= opts.train_subset);
  if (opts.test_subset >= 0) LRT_FUZZ_CHECK(ds.test.size() <= opts.test_subset);
  fuzz::accepts([&] { run_loader(ds.train, batch_byte); });
  return 0;
}

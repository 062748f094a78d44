// CIFAR-10 / CIFAR-100 binary-version reader. Files are read in chunks of
// whole records straight into the split's preallocated buffers, so the full
// 150 MB set costs one pass and no second copy, and a subset stops reading
// once it has its records. A subset larger than the data is clamped to the
// records there are, not an error, so one command line serves a full set and
// a small synthetic one. Record indices in messages count from 0 within the
// named file.
#include "data/cifar.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace fs = std::filesystem;

namespace lrt::data {

namespace {

constexpr const char* kCifar10Names[] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                         "dog",      "frog",       "horse", "ship", "truck"};

const char* dataset_title(CifarKind kind) { return kind == CifarKind::Cifar10 ? "CIFAR-10" : "CIFAR-100"; }

const char* archive_folder(CifarKind kind) {
  return kind == CifarKind::Cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary";
}

// What the Python version of each dataset unpacks to (its folder and its
// first training file), so a user who fetched the wrong version is told so.
const char* python_archive_folder(CifarKind kind) {
  return kind == CifarKind::Cifar10 ? "cifar-10-batches-py" : "cifar-100-python";
}
const char* python_train_file(CifarKind kind) { return kind == CifarKind::Cifar10 ? "data_batch_1" : "train"; }

int64_t record_bytes(CifarKind kind) { return (kind == CifarKind::Cifar10 ? 1 : 2) + kImageBytes; }

std::vector<std::string> required_files(CifarKind kind) {
  std::vector<std::string> files = cifar_train_files(kind);
  files.push_back(cifar_test_file(kind));
  return files;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool path_is_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

std::vector<std::string> missing_files(const fs::path& folder, CifarKind kind) {
  std::vector<std::string> missing;
  for (const std::string& f : required_files(kind))
    if (!path_exists(folder / f)) missing.push_back(f);
  return missing;
}

void check_subset(int64_t n, const char* what) {
  LRT_CHECK(n >= -1, what, " is ", n, ": it must be a record count >= 0, or -1 for all records");
}

// The number of whole records in path, after checking that it is a readable
// regular file holding a non-zero whole number of records.
int64_t count_records(const std::string& path, CifarKind kind) {
  const int64_t rec = record_bytes(kind);
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  LRT_CHECK(st.type() != fs::file_type::not_found, dataset_title(kind), " file '", path, "' does not exist");
  LRT_CHECK(!ec, "cannot read '", path, "': ", ec.message());
  LRT_CHECK(!fs::is_directory(st), "cannot read '", path, "': it is a folder, not a ", dataset_title(kind),
            " binary file");
  LRT_CHECK(fs::is_regular_file(st), "cannot read '", path, "': it is not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  LRT_CHECK(!ec, "cannot read the size of '", path, "': ", ec.message());
  LRT_CHECK(size > 0, dataset_title(kind), " file '", path, "' is empty");
  const auto urec = static_cast<uintmax_t>(rec);
  LRT_CHECK(size % urec == 0, dataset_title(kind), " file '", path, "' is ", size, " bytes, not a whole number of ",
            rec, "-byte records (", size / urec, " records and ", size % urec,
            " bytes left over): the file is truncated or not a ", dataset_title(kind), " binary-version file");
  return static_cast<int64_t>(size / urec);
}

// Appends the first `take` records of path (checked by count_records) to out,
// whose buffers the caller has reserved, so growing them never reallocates.
void append_records(const std::string& path, CifarKind kind, bool coarse_labels, int64_t take, CifarSplit& out) {
  if (take == 0) return;
  const int64_t rec = record_bytes(kind);
  const int label_bytes = kind == CifarKind::Cifar10 ? 1 : 2;
  std::ifstream in(path, std::ios::binary);
  LRT_CHECK(in.is_open(), "cannot open '", path, "' for reading: ", std::strerror(errno));

  const int64_t first = out.size();
  out.labels.resize(static_cast<size_t>(first + take));
  out.images.resize(static_cast<size_t>((first + take) * kImageBytes));

  constexpr int64_t kChunkRecords = 1024;  // 3 MB per read
  std::vector<char> chunk(static_cast<size_t>(std::min(take, kChunkRecords) * rec));
  for (int64_t done = 0; done < take;) {
    const int64_t n = std::min(take - done, kChunkRecords);
    in.read(chunk.data(), static_cast<std::streamsize>(n * rec));
    LRT_CHECK(in.gcount() == static_cast<std::streamsize>(n * rec), "reading '", path, "' failed at record ",
              done + in.gcount() / rec, " of ", take, " (", std::strerror(errno), ")");
    for (int64_t r = 0; r < n; ++r) {
      const auto* src = reinterpret_cast<const uint8_t*>(chunk.data()) + r * rec;
      const int64_t index = done + r;
      if (kind == CifarKind::Cifar10) {
        LRT_CHECK(src[0] < 10, "CIFAR-10 file '", path, "': record ", index, " has label ", int(src[0]),
                  ", outside [0, 10)");
      } else {
        LRT_CHECK(src[0] < 20, "CIFAR-100 file '", path, "': record ", index, " has coarse label ", int(src[0]),
                  ", outside [0, 20)");
        LRT_CHECK(src[1] < 100, "CIFAR-100 file '", path, "': record ", index, " has fine label ", int(src[1]),
                  ", outside [0, 100)");
      }
      const uint8_t label = (kind == CifarKind::Cifar100 && !coarse_labels) ? src[1] : src[0];
      out.labels[static_cast<size_t>(first + index)] = label;
      std::memcpy(out.images.data() + (first + index) * kImageBytes, src + label_bytes, kImageBytes);
    }
    done += n;
  }
}

// Reads the files in order until `subset` records are in (all for -1).
CifarSplit read_split(const fs::path& folder, const std::vector<std::string>& files, CifarKind kind, bool coarse_labels,
                      int64_t subset) {
  std::vector<std::pair<std::string, int64_t>> plan;  // (path, records to take)
  int64_t total = 0;
  for (const std::string& f : files) {
    if (subset >= 0 && total >= subset) break;
    const std::string path = (folder / f).string();
    const int64_t available = count_records(path, kind);
    const int64_t take = subset < 0 ? available : std::min(available, subset - total);
    plan.emplace_back(path, take);
    total += take;
  }
  CifarSplit split;
  split.labels.reserve(static_cast<size_t>(total));
  split.images.reserve(static_cast<size_t>(total * kImageBytes));
  for (const auto& [path, take] : plan) append_records(path, kind, coarse_labels, take, split);
  return split;
}

// Non-blank lines of a class-name file, trimmed; the file's absence gives an
// empty list.
std::vector<std::string> read_names(const fs::path& path, size_t expected) {
  if (!path_exists(path)) return {};
  LRT_CHECK(!path_is_folder(path), "cannot read class names from '", path.string(), "': it is a folder");
  std::ifstream in(path, std::ios::binary);
  LRT_CHECK(in.is_open(), "cannot open '", path.string(), "' for reading: ", std::strerror(errno));
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    const size_t e = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(b, e - b + 1));
  }
  LRT_CHECK(!in.bad(), "reading '", path.string(), "' failed");
  LRT_CHECK(names.size() == expected, "'", path.string(), "' has ", names.size(), " class names, expected ", expected,
            " (one per line)");
  return names;
}

}  // namespace

std::vector<std::string> cifar_train_files(CifarKind kind) {
  if (kind == CifarKind::Cifar100) return {"train.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

std::string cifar_test_file(CifarKind kind) { return kind == CifarKind::Cifar10 ? "test_batch.bin" : "test.bin"; }

const char* cifar_kind_name(CifarKind kind) { return kind == CifarKind::Cifar10 ? "cifar10" : "cifar100"; }

CifarKind parse_cifar_kind(const std::string& name) {
  if (name == "cifar10") return CifarKind::Cifar10;
  if (name == "cifar100") return CifarKind::Cifar100;
  LRT_THROW("unknown dataset '", name, "': expected cifar10 or cifar100");
}

std::string locate_cifar_folder(const std::string& dir, CifarKind kind) {
  LRT_CHECK(path_exists(dir), dataset_title(kind), " folder '", dir, "' does not exist");
  LRT_CHECK(path_is_folder(dir), dataset_title(kind), " folder '", dir, "' is not a folder");
  const fs::path here(dir), inside = here / archive_folder(kind);
  const std::vector<std::string> missing_here = missing_files(here, kind);
  if (missing_here.empty()) return here.string();
  const bool has_inside = path_is_folder(inside);
  const std::vector<std::string> missing_inside = has_inside ? missing_files(inside, kind) : missing_here;
  if (has_inside && missing_inside.empty()) return inside.string();

  const bool python_version = path_exists(here / python_archive_folder(kind)) ||
                              path_exists(here / python_train_file(kind)) ||
                              path_exists(inside / python_train_file(kind));
  const std::string advice =
      detail::cat(python_version ? "This looks like the Python version of the data, which lrt cannot read. " : "",
                  "lrt reads the \"", dataset_title(kind), " binary version\" from the ", dataset_title(kind),
                  " dataset page (not the Python or MATLAB versions); give the extracted ", archive_folder(kind),
                  " folder or its parent.");
  const std::string expected = join(required_files(kind), ", ");
  const size_t all = required_files(kind).size();
  if (missing_here.size() == all && missing_inside.size() == all)
    LRT_THROW("no ", dataset_title(kind), " files in '", here.string(), "'",
              has_inside ? " nor in '" + inside.string() + "'"
                         : std::string(" (nor a ") + archive_folder(kind) + " folder inside it)",
              ": expected ", expected, ". ", advice);
  // Some files are there: name the folder holding more of them and what it lacks.
  const bool report_inside = has_inside && missing_inside.size() <= missing_here.size();
  LRT_THROW(dataset_title(kind), " files missing in '", (report_inside ? inside : here).string(),
            "': ", join(report_inside ? missing_inside : missing_here, ", "), ". Expected ", expected, ". ", advice);
}

CifarSplit read_cifar_file(const std::string& path, CifarKind kind, bool coarse_labels, int64_t max_records) {
  check_subset(max_records, "max_records");
  const int64_t available = count_records(path, kind);
  const int64_t take = max_records < 0 ? available : std::min(available, max_records);
  CifarSplit split;
  split.labels.reserve(static_cast<size_t>(take));
  split.images.reserve(static_cast<size_t>(take * kImageBytes));
  append_records(path, kind, coarse_labels, take, split);
  return split;
}

CifarDataset load_cifar(const std::string& dir, const CifarLoadOptions& opts) {
  check_subset(opts.train_subset, "train_subset");
  check_subset(opts.test_subset, "test_subset");
  LRT_CHECK(!(opts.coarse_labels && opts.kind == CifarKind::Cifar10),
            "coarse labels exist only in CIFAR-100, not in CIFAR-10");
  CifarDataset ds;
  ds.kind = opts.kind;
  ds.folder = locate_cifar_folder(dir, opts.kind);
  const fs::path folder(ds.folder);
  ds.train = read_split(folder, cifar_train_files(opts.kind), opts.kind, opts.coarse_labels, opts.train_subset);
  ds.test = read_split(folder, {cifar_test_file(opts.kind)}, opts.kind, opts.coarse_labels, opts.test_subset);

  if (opts.kind == CifarKind::Cifar10) {
    ds.num_classes = 10;
    ds.class_names = read_names(folder / "batches.meta.txt", 10);
    if (ds.class_names.empty()) ds.class_names.assign(std::begin(kCifar10Names), std::end(kCifar10Names));
  } else {
    ds.num_classes = opts.coarse_labels ? 20 : 100;
    ds.class_names = read_names(folder / (opts.coarse_labels ? "coarse_label_names.txt" : "fine_label_names.txt"),
                                static_cast<size_t>(ds.num_classes));
    if (ds.class_names.empty())
      for (int i = 0; i < ds.num_classes; ++i) ds.class_names.push_back("class_" + std::to_string(i));
  }
  return ds;
}

}  // namespace lrt::data

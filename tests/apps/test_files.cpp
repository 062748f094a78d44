// The training app's output-file helpers (apps/resnet50_cifar/files.h):
// folders and files are checked without creating anything, and text files
// are replaced atomically, leaving no temporary file behind on failure.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <stdexcept>
#include <string>

#include "apps/resnet50_cifar/files.h"
#include "core/error.h"
#include "testing.h"

namespace lrt::app {

namespace fs = std::filesystem;
using testing::check_mentions;
using testing::error_of;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

TEST_CASE("check_writable_dir accepts a creatable folder without creating it, and names what refuses") {
  TempDir dir("files");
  const std::string deep = dir.str() + "/a/b/c";
  CHECK_NOTHROW(check_writable_dir(deep, "--checkpoint-dir"));
  CHECK_FALSE(fs::exists(dir.path() / "a"));
  CHECK(fs::is_empty(dir.path()));  // the write probe is gone too

  write_bytes(dir.path() / "file", "x");
  check_mentions(error_of([&] { check_writable_dir(dir.str() + "/file", "--checkpoint-dir"); }),
                 {"--checkpoint-dir", "/file", "is not a folder"});
  check_mentions(error_of([&] { check_writable_dir(dir.str() + "/file/ck", "--checkpoint-dir"); }),
                 {"--checkpoint-dir", "cannot create folder", "/file' is not a folder"});
  // Nobody can create a file in /proc, root included.
  check_mentions(error_of([] { check_writable_dir("/proc/lrt-ck", "--snapshots"); }),
                 {"--snapshots", "cannot create folder '/proc/lrt-ck'", "'/proc' is not writable"});

  make_dir(deep, "--checkpoint-dir");
  CHECK(fs::is_directory(deep));
}

TEST_CASE("check_writable_file refuses a missing folder, a folder and an unwritable folder") {
  TempDir dir("files");
  CHECK_NOTHROW(check_writable_file(dir.str() + "/out.csv", "--out"));
  CHECK_FALSE(fs::exists(dir.path() / "out.csv"));
  check_mentions(error_of([&] { check_writable_file(dir.str() + "/nowhere/out.csv", "--out"); }),
                 {"--out", "/nowhere'", "does not exist"});
  check_mentions(error_of([&] { check_writable_file(dir.str(), "--log"); }), {"--log", "is a folder"});
  check_mentions(error_of([] { check_writable_file("/proc/out.csv", "--out"); }),
                 {"--out", "folder '/proc' is not writable"});
}

TEST_CASE("write_text_atomically replaces the file whole, or leaves it and no temporary file") {
  TempDir dir("files");
  const std::string path = dir.str() + "/out.csv";
  write_text_atomically(path, "--out", [](std::ostream& out) { out << "a,b\n1,2\n"; });
  CHECK(read_bytes(path) == "a,b\n1,2\n");
  write_text_atomically(path, "--out", [](std::ostream& out) { out << "c\n"; });
  CHECK(read_bytes(path) == "c\n");

  // A writer that fails half-way: the old file stays, the temporary goes.
  CHECK_THROWS_AS(write_text_atomically(path, "--out",
                                        [](std::ostream& out) {
                                          out << "partial";
                                          LRT_THROW("stopped");
                                        }),
                  Error);
  CHECK(read_bytes(path) == "c\n");
  CHECK_FALSE(fs::exists(path + ".tmp"));

  // The rename fails (the target is a non-empty folder): an Error naming
  // the flag and both paths, and no temporary file left.
  fs::create_directories(dir.path() / "taken" / "inside");
  const std::string taken = (dir.path() / "taken").string();
  check_mentions(error_of([&] { write_text_atomically(taken, "--out", [](std::ostream& out) { out << "x"; }); }),
                 {"--out", "cannot rename", "taken.tmp", "'" + taken + "'"});
  CHECK_FALSE(fs::exists(taken + ".tmp"));

  // The temporary file cannot be created.
  check_mentions(error_of([] { write_text_atomically("/proc/out.csv", "--out", [](std::ostream&) {}); }),
                 {"--out", "cannot write '/proc/out.csv.tmp'"});
}

}  // namespace lrt::app

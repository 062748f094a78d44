// Output file checks and atomic text writes for the training app.
#include "apps/resnet50_cifar/files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace lrt::app {

namespace fs = std::filesystem;

namespace {

// Empty when a file can be created in the folder, else why not. A real
// attempt, because access(W_OK) says yes to root for a chmod 555 folder and
// to anyone for folders where no file can be created (/proc).
std::string why_folder_refuses_a_file(const fs::path& folder) {
  const std::string probe = (folder / (".lrt-write-test-" + std::to_string(::getpid()))).string();
  std::FILE* f = std::fopen(probe.c_str(), "w");
  if (f == nullptr) return std::strerror(errno);
  std::fclose(f);
  std::remove(probe.c_str());
  return "";
}

}  // namespace

void check_writable_dir(const std::string& dir, const char* flag) {
  std::error_code ec;
  fs::path existing(dir);
  while (!fs::exists(existing, ec) && existing.has_relative_path() && existing.has_parent_path())
    existing = existing.parent_path();
  if (!fs::exists(existing, ec)) existing = ".";
  const bool is_dir = existing == fs::path(dir);
  LRT_CHECK(fs::is_directory(existing, ec), flag, is_dir ? ": '" : ": cannot create folder '", dir,
            is_dir ? "' is not a folder" : "': '" + existing.string() + "' is not a folder");
  const std::string why = why_folder_refuses_a_file(existing);
  LRT_CHECK(why.empty(), flag, is_dir ? ": folder '" : ": cannot create folder '", dir,
            is_dir ? "' is not writable: " : "': '" + existing.string() + "' is not writable: ", why);
}

void make_dir(const std::string& dir, const char* flag) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  LRT_CHECK(fs::is_directory(dir, ec), flag, ": cannot create folder '", dir, "'",
            ec ? ": " + ec.message() : std::string());
}

void check_writable_file(const std::string& path, const char* flag) {
  std::error_code ec;
  const fs::path p(path);
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  LRT_CHECK(fs::is_directory(parent, ec), flag, ": folder '", parent.string(), "' does not exist");
  LRT_CHECK(!fs::is_directory(p, ec), flag, ": '", path, "' is a folder");
  const std::string why = why_folder_refuses_a_file(parent);
  LRT_CHECK(why.empty(), flag, ": folder '", parent.string(), "' is not writable: ", why);
}

void write_text_atomically(const std::string& path, const char* flag,
                           const std::function<void(std::ostream&)>& write) {
  const std::string tmp = path + ".tmp";
  bool done = false;
  struct RemoveUnlessDone {
    const std::string& tmp;
    const bool& done;
    ~RemoveUnlessDone() {
      if (!done) std::remove(tmp.c_str());
    }
  } guard{tmp, done};
  {
    std::ofstream out(tmp);
    LRT_CHECK(out.good(), flag, ": cannot write '", tmp, "': ", std::strerror(errno));
    write(out);
    out.flush();
    LRT_CHECK(out.good(), flag, ": writing '", tmp, "' failed: ", std::strerror(errno));
    out.close();
    LRT_CHECK(!out.fail(), flag, ": writing '", tmp, "' failed: ", std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  LRT_CHECK(!ec, flag, ": cannot rename '", tmp, "' to '", path, "': ", ec.message());
  done = true;
}

}  // namespace lrt::app

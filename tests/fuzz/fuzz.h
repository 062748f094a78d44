// What the fuzz targets share. lrt::Error is the one accepted way to refuse an
// input: each target catches it and nothing else, so another exception ends
// the run (std::terminate, a libFuzzer crash), as do a sanitizer report, a
// failed invariant (LRT_FUZZ_CHECK) and a hang. The readers take paths, so
// inputs go through files in a scratch folder: $LRT_FUZZ_SCRATCH when set
// (tools/fuzz.sh points it at memory-backed /dev/shm and removes it), else the
// system's temporary folder; each process writes in its own folder there.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"

// An invariant of an accepted input; a failure is a finding.
#define LRT_FUZZ_CHECK(cond)                                                                 \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace lrt::fuzz {

// This process's scratch folder (created on first use).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const char* env = std::getenv("LRT_FUZZ_SCRATCH");
    const fs::path base = env && *env ? fs::path(env) : fs::temp_directory_path();
    const fs::path d = base / ("lrt-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

inline std::string scratch_path(const std::string& name) { return scratch_dir() + "/" + name; }

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  LRT_FUZZ_CHECK(f != nullptr);
  LRT_FUZZ_CHECK(size == 0 || std::fwrite(data, 1, size, f) == size);
  LRT_FUZZ_CHECK(std::fclose(f) == 0);
}

// Reads the input front to back: single bytes for choices, the rest as a
// payload.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  // The next byte, or 0 once the input is used up.
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // The next n bytes (fewer at the end).
  std::string_view bytes(size_t n) {
    n = std::min(n, size_ - pos_);
    const std::string_view out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  const uint8_t* rest() const { return data_ + pos_; }
  size_t rest_size() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Runs f; an lrt::Error is the expected refusal and returns false.
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace lrt::fuzz

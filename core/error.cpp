// lrt::Error: message formatted as "file:line: message".
#include "core/error.h"

namespace lrt {

namespace {
const char* basename_of(const char* path) {
  const char* base = path;
  for (const char* p = path; *p; ++p)
    if (*p == '/' || *p == '\\') base = p + 1;
  return base;
}
}  // namespace

Error::Error(const char* file, int line, const std::string& msg)
    : std::runtime_error(std::string(basename_of(file)) + ":" + std::to_string(line) + ": " + msg),
      msg_(msg),
      file_(file),
      line_(line) {}

namespace detail {
void throw_error(const char* file, int line, const std::string& msg) { throw Error(file, line, msg); }
}  // namespace detail

}  // namespace lrt

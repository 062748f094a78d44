// Command-line helpers shared by the benchmark programs: a one-line error with
// exit code 2, and bounded integer parsing that names the flag and the text.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lrt::bench {

[[noreturn]] inline void die(const char* program, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", program, msg.c_str());
  std::exit(2);
}

inline int64_t parse_int(const char* program, const std::string& flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno || !end || end == text || *end || v < lo || v > hi)
    die(program, flag + " expects an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got '" +
                     text + "'");
  return v;
}

}  // namespace lrt::bench

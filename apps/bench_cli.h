// Helpers shared by the benchmark programs: a one-line error with exit code
// 2, bounded integer parsing that names the flag and the text, and the median
// of timings.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

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

// The median (the mean of the middle two for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace lrt::bench

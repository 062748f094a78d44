// A double as JSON text that every reader takes back as a floating-point
// number: nine significant digits, "null" for NaN and the infinities (JSON has
// neither), and ".0" added where printf gives an integer ("23859084" would
// read back as an int in Python and as an integer in most JSON libraries, so a
// loss or an accuracy would change type with its value).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace lrt {

inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  std::string out = buf;
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

}  // namespace lrt

// Values as JSON text: numbers and strings.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace lrt {

// A string as JSON text: quoted, with quotes and backslashes escaped and
// control characters as \u00XX.
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// A double as JSON text that every reader takes back as a floating-point
// number: nine significant digits, "null" for NaN and the infinities (JSON has
// neither), and ".0" added where printf gives an integer ("23859084" would
// read back as an int in Python and as an integer in most JSON libraries, so a
// loss or an accuracy would change type with its value).
inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  std::string out = buf;
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

}  // namespace lrt

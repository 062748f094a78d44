// apps/json_number.h: the numbers the apps write into JSON (the trainer's log,
// bench_resnet50's report) read back as floating-point numbers whatever their
// value, to nine significant digits, and NaN and the infinities as null.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/json_number.h"

namespace lrt {

TEST_CASE("json_number: whole values keep a fraction so a reader takes them as floats") {
  // A loss of 23859084 (bench_resnet50 under --kernel-repeat) or an accuracy
  // of exactly 1 once came out as integers.
  for (double v : {23859084.0, 2.0, 1.0, 0.0, -3.0, 1e8, 123456789.0}) {
    const std::string text = json_number(v);
    CAPTURE(text);
    const auto parsed = nlohmann::json::parse(text);
    CHECK(parsed.is_number_float());
    CHECK(parsed.get<double>() == v);
  }
  CHECK(json_number(2.0) == "2.0");
  CHECK(json_number(-0.0) == "-0.0");
}

TEST_CASE("json_number: nine significant digits, exponents as printf writes them, non-finite as null") {
  CHECK(json_number(0.5) == "0.5");
  CHECK(json_number(2.302585093) == "2.30258509");
  CHECK(json_number(1e20) == "1e+20");
  CHECK(json_number(-1.5e-7) == "-1.5e-07");
  for (double v : {1e20, -1.5e-7, 1234567890123.0}) {
    const auto parsed = nlohmann::json::parse(json_number(v));
    CHECK(parsed.is_number_float());
    CHECK(parsed.get<double>() == doctest::Approx(v).epsilon(1e-8));
  }
  CHECK(json_number(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(json_number(std::numeric_limits<double>::infinity()) == "null");
  CHECK(json_number(-std::numeric_limits<double>::infinity()) == "null");
}

}  // namespace lrt

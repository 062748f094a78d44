// Parameter groups: the prefix rule, group cuts in registration order,
// K prefixes -> K + 1 groups, multipliers as a list or START:STOP spread
// geometrically, and the errors for bad prefixes and multipliers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>

#include "optim/param_groups.h"

namespace lrt::optim {

namespace {
std::vector<NamedParameter> named(const std::vector<std::string>& names) {
  std::vector<NamedParameter> out;
  for (const std::string& n : names) out.push_back({n, zeros({2}), {}});
  return out;
}
std::vector<std::string> names_of(const ParamGroup& g) {
  std::vector<std::string> out;
  for (const NamedParameter& p : g.params) out.push_back(p.name);
  return out;
}
}  // namespace

TEST_CASE("a prefix matches its own name and names continuing with a dot only") {
  CHECK(name_matches_prefix("fc.weight", "fc"));
  CHECK(name_matches_prefix("fc", "fc"));
  CHECK_FALSE(name_matches_prefix("fc_start.weight", "fc"));
  CHECK(name_matches_prefix("layer3.0.conv1.weight", "layer3.0.conv1"));
  CHECK_FALSE(name_matches_prefix("layer3.0.conv10.weight", "layer3.0.conv1"));
  CHECK(name_matches_prefix("layer3.0.conv1.weight", "layer3"));
  CHECK_FALSE(name_matches_prefix("layer", "layer3"));
}

TEST_CASE("split points cut the parameters in registration order, as the Keras original") {
  const auto params = named({"conv1.weight", "bn1.weight", "layer2.0.conv1.weight", "layer3.0.conv1.weight",
                             "layer3.0.bn1.weight", "layer4.0.conv1.weight", "fc_start.weight", "fc_start.bias",
                             "fc_mid.weight", "fc.weight", "fc.bias"});
  const auto groups = make_param_groups(params, {"layer3.0.conv1", "fc_start"}, {1e-5, 1e-2, 1.0});
  REQUIRE(groups.size() == 3);
  CHECK(names_of(groups[0]) == std::vector<std::string>{"conv1.weight", "bn1.weight", "layer2.0.conv1.weight"});
  CHECK(names_of(groups[1]) ==
        std::vector<std::string>{"layer3.0.conv1.weight", "layer3.0.bn1.weight", "layer4.0.conv1.weight"});
  CHECK(names_of(groups[2]) ==
        std::vector<std::string>{"fc_start.weight", "fc_start.bias", "fc_mid.weight", "fc.weight", "fc.bias"});
  CHECK(groups[0].multiplier == 1e-5);
  CHECK(groups[1].multiplier == 1e-2);
  CHECK(groups[2].multiplier == 1.0);
  const auto one = make_param_groups(params, {});
  REQUIRE(one.size() == 1);
  CHECK(one[0].params.size() == params.size());
  CHECK(one[0].multiplier == 1.0);
}

TEST_CASE("--lr-mults takes a list or START:STOP spread geometrically") {
  CHECK(parse_lr_mults("1e-5,1e-2,1", 3) == std::vector<double>{1e-5, 1e-2, 1.0});
  const auto g = parse_lr_mults("1e-4:1", 5);
  REQUIRE(g.size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(g[i] == doctest::Approx(std::pow(10.0, -4.0 + static_cast<double>(i))));
  CHECK(g.back() == 1.0);
  CHECK(parse_lr_mults("0.1:1", 1) == std::vector<double>{1.0});
  // Ends so far apart that STOP / START is not a double (found by fuzzing:
  // the inner multipliers came out infinite or 0).
  for (const std::string spec : {"1e-300:1e300", "1e300:1e-300", "2.3e-308:1.7e308"}) {
    INFO(spec);
    const auto wide = parse_lr_mults(spec, 5);
    REQUIRE(wide.size() == 5);
    for (double m : wide) CHECK((std::isfinite(m) && m > 0.0));
    CHECK(wide.front() == std::strtod(spec.c_str(), nullptr));
  }
  const auto up = parse_lr_mults("1e-300:1e300", 3);
  CHECK(up[1] == doctest::Approx(1.0));
  CHECK(parse_lr_mults("0,1", 2) == std::vector<double>{0.0, 1.0});
  CHECK(parse_lr_groups("layer3.0.conv1,fc_start") == std::vector<std::string>{"layer3.0.conv1", "fc_start"});
  CHECK(parse_lr_groups("").empty());
}

TEST_CASE("bad group and multiplier specs are errors naming the flag and the value") {
  const auto params = named({"conv1.weight", "layer3.0.conv1.weight", "fc.weight"});
  CHECK_THROWS_WITH_AS(make_param_groups(params, {"layer9"}), doctest::Contains("'layer9' matches no parameter"),
                       Error);
  CHECK_THROWS_WITH_AS(make_param_groups(params, {"fc", "layer3.0.conv1"}), doctest::Contains("'layer3.0.conv1'"),
                       Error);
  CHECK_THROWS_WITH_AS(make_param_groups(params, {"conv1"}), doctest::Contains("--lr-groups"), Error);
  CHECK_THROWS_WITH_AS(make_param_groups(params, {"fc"}, {1.0}), doctest::Contains("--lr-mults"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_mults("1,2", 3), doctest::Contains("2 multipliers for 3"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_mults("1,-2,3", 3), doctest::Contains("-2"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_mults("1,x,3", 3), doctest::Contains("'x' is not a number"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_mults("1,nan,3", 3), doctest::Contains("'nan' is not a number"), Error);
  // Beyond a double's range, or so small it would be rounded to a subnormal
  // or to 0 (freezing the group): named as out of range.
  for (const char* bad : {"1e999", "inf", "4.9e-324", "1e-400"}) {
    INFO(std::string(bad));
    CHECK_THROWS_WITH_AS(parse_lr_mults(std::string("1,") + bad, 2), doctest::Contains("out of range"), Error);
  }
  CHECK_THROWS_WITH_AS(parse_lr_mults("0:1", 3), doctest::Contains("> 0"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_mults("1:", 3), doctest::Contains("--lr-mults"), Error);
  CHECK_THROWS_WITH_AS(parse_lr_groups("a,,b"), doctest::Contains("empty prefix"), Error);
}

}  // namespace lrt::optim

// --lr-groups and --lr-mults (optim/param_groups.h) on untrusted text, cut
// against ResNet50's parameter names (both stems and heads) or names from
// the input. Invariants: the groups partition the parameters in order, each
// group after the first starts at the first match of its prefix, and every
// multiplier is finite and >= 0, START:STOP ones > 0 with START and STOP
// exactly at the ends.
//
// Input: a byte choosing the parameter names (bits 0-2: 0-3 ResNet50 with
// the CIFAR or ImageNet stem and the linear or seed head, 4 the
// comma-separated third line, 5-7 none) and a group count for parse_lr_mults
// alone (bits 3-7, plus one), then lines: the --lr-groups spec, the
// --lr-mults spec, names.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz.h"
#include "layers/resnet50_spec.h"
#include "optim/param_groups.h"

namespace {

using namespace lrt;

std::vector<std::string> lines(std::string_view text, size_t n) {
  std::vector<std::string> out;
  while (out.size() + 1 < n) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    out.emplace_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  out.emplace_back(text);
  out.resize(n);
  return out;
}

std::vector<NamedParameter> params_of(uint8_t choice, const std::string& names) {
  std::vector<NamedParameter> params;
  if (choice < 4) {
    for (const ParamShape& p : resnet50_parameter_shapes(choice & 1 ? ResNetStem::ImageNet : ResNetStem::Cifar,
                                                         choice & 2 ? ResNetHead::Seed : ResNetHead::Linear))
      params.push_back({p.name, Tensor(), {}});
  } else if (choice == 4 && !names.empty()) {
    size_t start = 0;
    for (;;) {
      const size_t comma = names.find(',', start);
      params.push_back(
          {names.substr(start, comma == std::string::npos ? std::string::npos : comma - start), Tensor(), {}});
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return params;
}

// A number as parse_lr_mults reads it, for the START:STOP ends.
double number(const std::string& text) { return std::strtod(text.c_str(), nullptr); }

void check_mults(const std::vector<double>& mults, const std::string& spec, size_t groups) {
  LRT_FUZZ_CHECK(mults.size() == groups);
  for (double m : mults) LRT_FUZZ_CHECK(std::isfinite(m) && m >= 0.0);
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return;
  for (double m : mults) LRT_FUZZ_CHECK(m > 0.0);
  LRT_FUZZ_CHECK(mults.back() == number(spec.substr(colon + 1)));
  if (groups > 1) LRT_FUZZ_CHECK(mults.front() == number(spec.substr(0, colon)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t choice = in.byte();
  const std::vector<std::string> spec = lines(in.bytes(in.rest_size()), 3);
  const std::string &groups_spec = spec[0], &mults_spec = spec[1];

  const size_t count = 1 + (choice >> 3);
  std::vector<double> mults;
  if (fuzz::accepts([&] { mults = optim::parse_lr_mults(mults_spec, count); })) check_mults(mults, mults_spec, count);

  std::vector<std::string> prefixes;
  if (!fuzz::accepts([&] { prefixes = optim::parse_lr_groups(groups_spec); })) return 0;
  for (const std::string& p : prefixes) LRT_FUZZ_CHECK(!p.empty());
  mults.clear();
  if (!mults_spec.empty()) {
    if (!fuzz::accepts([&] { mults = optim::parse_lr_mults(mults_spec, prefixes.size() + 1); })) return 0;
    check_mults(mults, mults_spec, prefixes.size() + 1);
  }

  const std::vector<NamedParameter> params = params_of(choice & 7, spec[2]);
  std::vector<optim::ParamGroup> groups;
  if (!fuzz::accepts([&] { groups = optim::make_param_groups(params, prefixes, mults); })) return 0;
  LRT_FUZZ_CHECK(groups.size() == prefixes.size() + 1);
  size_t at = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    LRT_FUZZ_CHECK(groups[g].multiplier == (mults.empty() ? 1.0 : mults[g]));
    if (g > 0) {
      LRT_FUZZ_CHECK(!groups[g].params.empty());
      LRT_FUZZ_CHECK(optim::name_matches_prefix(groups[g].params.front().name, prefixes[g - 1]));
      for (size_t i = 0; i < at; ++i) LRT_FUZZ_CHECK(!optim::name_matches_prefix(params[i].name, prefixes[g - 1]));
    }
    for (const NamedParameter& p : groups[g].params) LRT_FUZZ_CHECK(at < params.size() && p.name == params[at++].name);
  }
  LRT_FUZZ_CHECK(at == params.size());
  return 0;
}

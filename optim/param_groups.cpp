// Group construction and the parsing of --lr-groups / --lr-mults.
#include "optim/param_groups.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace lrt::optim {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

double parse_mult(const std::string& text, const std::string& spec) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  LRT_CHECK(!text.empty() && end && *end == '\0' && !std::isnan(v), "--lr-mults '", spec, "': '", text,
            "' is not a number");
  // Overflow, and underflow into the subnormals or to 0 (which would freeze
  // a group the user meant to train slowly).
  LRT_CHECK(errno != ERANGE && std::isfinite(v), "--lr-mults '", spec, "': '", text,
            "' is out of range (non-zero multipliers must lie within 2.3e-308 and 1.7e308)");
  LRT_CHECK(v >= 0.0, "--lr-mults '", spec, "': multiplier ", text, " is negative");
  return v;
}

}  // namespace

bool name_matches_prefix(const std::string& name, const std::string& prefix) {
  return name.size() >= prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
         (name.size() == prefix.size() || name[prefix.size()] == '.');
}

std::vector<std::string> parse_lr_groups(const std::string& spec) {
  if (spec.empty()) return {};
  std::vector<std::string> prefixes = split(spec, ',');
  for (const std::string& p : prefixes)
    LRT_CHECK(!p.empty(), "--lr-groups '", spec, "': empty prefix (expected P1,P2,... such as layer3.0.conv1,fc_start)");
  return prefixes;
}

std::vector<double> parse_lr_mults(const std::string& spec, size_t groups) {
  LRT_CHECK(groups > 0, "--lr-mults: no parameter groups");
  const size_t colon = spec.find(':');
  if (colon != std::string::npos) {
    const double start = parse_mult(spec.substr(0, colon), spec), stop = parse_mult(spec.substr(colon + 1), spec);
    LRT_CHECK(start > 0.0 && stop > 0.0, "--lr-mults '", spec, "': START:STOP needs both values > 0");
    if (groups == 1) return {stop};
    // Spread in log space: stop / start itself overflows to infinity or
    // underflows to 0 for far-apart ends (1e-300:1e300), which made the
    // inner multipliers infinite or 0, freezing their groups.
    const double log_start = std::log(start), log_stop = std::log(stop);
    std::vector<double> out(groups);
    for (size_t i = 0; i < groups; ++i)
      out[i] = std::exp(log_start + (log_stop - log_start) * static_cast<double>(i) / static_cast<double>(groups - 1));
    out.front() = start;
    out.back() = stop;
    return out;
  }
  std::vector<double> out;
  for (const std::string& item : split(spec, ',')) out.push_back(parse_mult(item, spec));
  LRT_CHECK(out.size() == groups, "--lr-mults '", spec, "' gives ", out.size(), " multipliers for ", groups,
            " parameter groups (--lr-groups with K prefixes makes K + 1 groups)");
  return out;
}

std::vector<ParamGroup> make_param_groups(const std::vector<NamedParameter>& params,
                                          const std::vector<std::string>& prefixes,
                                          const std::vector<double>& multipliers) {
  const size_t n_groups = prefixes.size() + 1;
  LRT_CHECK(multipliers.empty() || multipliers.size() == n_groups, "--lr-mults: ", multipliers.size(),
            " multipliers for ", n_groups, " parameter groups");
  // Where each group starts: group 0 at 0, group k at the first match of prefix k-1.
  std::vector<size_t> starts{0};
  for (const std::string& prefix : prefixes) {
    size_t first = params.size();
    for (size_t i = 0; i < params.size(); ++i)
      if (name_matches_prefix(params[i].name, prefix)) {
        first = i;
        break;
      }
    LRT_CHECK(first < params.size(), "--lr-groups: prefix '", prefix, "' matches no parameter (names look like '",
              params.empty() ? std::string("conv1.weight") : params.front().name, "')");
    LRT_CHECK(first > starts.back(), "--lr-groups: prefix '", prefix,
              "' starts at parameter ", first, " ('", params[first].name,
              "'), not after the previous split point; give prefixes in registration order, each after the "
              "first parameter");
    starts.push_back(first);
  }
  std::vector<ParamGroup> groups(n_groups);
  for (size_t g = 0; g < n_groups; ++g) {
    groups[g].multiplier = multipliers.empty() ? 1.0 : multipliers[g];
    const size_t end = g + 1 < n_groups ? starts[g + 1] : params.size();
    groups[g].params.assign(params.begin() + static_cast<std::ptrdiff_t>(starts[g]),
                            params.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return groups;
}

}  // namespace lrt::optim

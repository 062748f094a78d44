// Parameter groups for differential learning rates. Groups are cut from the
// parameters in registration order at split points given as name prefixes: a
// prefix matches a name equal to it or starting with it followed by '.', so
// "fc" matches "fc.weight" but not "fc_start.weight". Each split point starts
// a new group at the first parameter it matches; K split points give K + 1
// groups, each with a learning-rate multiplier. The Keras original split
// ResNet50 at "layer3.0.conv1" and "fc_start" with multipliers 1e-5, 1e-2, 1
// on a base rate of 1e-2.
#pragma once

#include <string>
#include <vector>

#include "layers/parameter.h"

namespace lrt::optim {

struct ParamGroup {
  std::vector<NamedParameter> params;
  double multiplier = 1.0;  // 0 freezes the group
};

bool name_matches_prefix(const std::string& name, const std::string& prefix);

// "layer3.0.conv1,fc_start" -> prefixes; "" -> none. Throws on empty items.
std::vector<std::string> parse_lr_groups(const std::string& spec);

// Multipliers for `groups` groups: a comma list with exactly `groups` values,
// or "START:STOP" spread geometrically from START (first group) to STOP (last
// group), as fastai's slice. Every value must be finite and >= 0 (START and
// STOP > 0). Errors name the flag --lr-mults and the value.
std::vector<double> parse_lr_mults(const std::string& spec, size_t groups);

// Cuts params into prefixes.size() + 1 groups with the given multipliers (one
// per group; empty means all 1). Every prefix must match a parameter, later
// than where the previous group starts; errors name the prefix (--lr-groups).
std::vector<ParamGroup> make_param_groups(const std::vector<NamedParameter>& params,
                                          const std::vector<std::string>& prefixes,
                                          const std::vector<double>& multipliers = {});

}  // namespace lrt::optim

// The module tree: registration, dotted names, mode switches, device moves and
// state_dict save/load with strict and non-strict matching.
#include "layers/module.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "layers/checksum.h"
#include "layers/safetensors.h"

namespace lrt {

namespace {

bool matches_prefix(const std::string& name, const std::string& prefix) {
  if (prefix.empty()) return true;
  return name == prefix || (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
                            name[prefix.size()] == '.');
}

bool is_step_counter(const std::string& name) {
  const std::string suffix = "num_batches_tracked";
  return name == suffix ||
         (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          name[name.size() - suffix.size() - 1] == '.');
}

void append_list(std::ostringstream& os, const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return;
  os << "; " << what << " (" << names.size() << "): ";
  const size_t shown = std::min<size_t>(names.size(), 4);
  for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << names[i];
  if (shown < names.size()) os << ", ...";
}

}  // namespace

std::string LoadReport::summary() const {
  std::ostringstream os;
  os << "loaded " << loaded.size() << " tensors";
  append_list(os, "missing from the file", missing);
  append_list(os, "not in the model", unexpected);
  append_list(os, "shape mismatch", mismatched);
  return os.str();
}

// ---------------------------------------------------------------- the tree --

Tensor* Module::register_parameter(const std::string& name, Tensor t, ParamSpec spec) {
  LRT_CHECK(t.defined(), "register_parameter: '", name, "' is undefined");
  for (const Slot& s : slots_) LRT_CHECK(s.name != name, "register_parameter: '", name, "' registered twice");
  t = t.detach();
  t.set_requires_grad(spec.lr_mult != 0.0);
  slots_.push_back({name, t, spec, false, false});
  return &slots_.back().tensor;
}

Tensor* Module::register_buffer(const std::string& name, Tensor t, bool host) {
  LRT_CHECK(t.defined(), "register_buffer: '", name, "' is undefined");
  for (const Slot& s : slots_) LRT_CHECK(s.name != name, "register_buffer: '", name, "' registered twice");
  slots_.push_back({name, t.detach(), {}, true, host});
  return &slots_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  LRT_CHECK(m != nullptr, "register_module: '", name, "' is null");
  for (const auto& c : children_) LRT_CHECK(c.first != name, "register_module: '", name, "' registered twice");
  m->train(training_);
  children_.emplace_back(name, std::move(m));
}

template <class F>
void Module::walk(const std::string& prefix, F&& f) const {
  for (Slot& s : slots_) f(prefix + s.name, s);
  for (const auto& [name, child] : children_) child->walk(prefix + name + ".", f);
}

template <class F>
void Module::walk_modules(F&& f) {
  f(*this);
  for (auto& c : children_) c.second->walk_modules(f);
}

void Module::train(bool on) {
  walk_modules([on](Module& m) {
    m.training_ = on;
    m.on_mode_change();
  });
}

void Module::replayed_forward() {
  walk_modules([](Module& m) { m.on_replayed_forward(); });
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  walk("", [&](const std::string& name, Slot& s) {
    if (!s.buffer) out.push_back({name, s.tensor, s.spec});
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

TensorList Module::named_buffers() const {
  TensorList out;
  walk("", [&](const std::string& name, Slot& s) {
    if (s.buffer) out.emplace_back(name, s.tensor);
  });
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

TensorList Module::state_dict() const {
  TensorList out;
  // Per module: parameters, then buffers, then children (torch's order).
  std::function<void(const Module&, const std::string&)> visit = [&](const Module& m, const std::string& prefix) {
    for (const Slot& s : m.slots_)
      if (!s.buffer) out.emplace_back(prefix + s.name, s.tensor);
    for (const Slot& s : m.slots_)
      if (s.buffer) out.emplace_back(prefix + s.name, s.tensor);
    for (const auto& [name, child] : m.children_) visit(*child, prefix + name + ".");
  };
  visit(*this, "");
  return out;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& tensors, bool strict) {
  LoadReport report;
  struct Item {
    std::string name;
    Slot* slot;
    const Tensor* src;
  };
  std::vector<Item> plan;
  std::map<std::string, bool> used;
  walk("", [&](const std::string& name, Slot& s) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (!is_step_counter(name)) report.missing.push_back(name);
      return;
    }
    used[name] = true;
    const Tensor& src = it->second;
    LRT_CHECK(src.defined(), "load_state_dict: '", name, "' is undefined");
    if (src.shape() != s.tensor.shape()) {
      report.mismatched.push_back(name + ": file " + to_string(src.shape()) + " vs model " +
                                  to_string(s.tensor.shape()));
      return;
    }
    LRT_CHECK(is_floating(src.dtype()) == is_floating(s.tensor.dtype()), "load_state_dict: '", name, "' has dtype ",
              dtype_name(src.dtype()), " where the model holds ", dtype_name(s.tensor.dtype()));
    plan.push_back({name, &s, &src});
  });
  for (const auto& [name, t] : tensors)
    if (!used.count(name)) report.unexpected.push_back(name);
  if (strict && !report.complete()) LRT_THROW("load_state_dict (strict): ", report.summary());

  NoGradGuard no_grad;
  for (const Item& item : plan) {
    item.slot->tensor.copy_(*item.src);
    report.loaded.push_back(item.name);
  }
  return report;
}

void Module::to(Device device) {
  walk("", [&](const std::string&, Slot& s) {
    if (s.host) return;
    const bool rg = s.tensor.requires_grad();
    Tensor moved = s.tensor.detach().to(device);
    if (moved.impl() == s.tensor.impl()) return;
    if (!s.buffer) moved.set_requires_grad(rg);
    s.tensor = moved;
  });
}

void Module::to(DType dtype) {
  LRT_CHECK(is_floating(dtype), "Module::to: ", dtype_name(dtype), " is not a floating dtype");
  walk("", [&](const std::string&, Slot& s) {
    if (!is_floating(s.tensor.dtype()) || s.tensor.dtype() == dtype) return;
    const bool rg = s.tensor.requires_grad();
    Tensor cast = s.tensor.detach().to(dtype);
    if (!s.buffer) cast.set_requires_grad(rg);
    s.tensor = cast;
  });
}

void Module::zero_grad() {
  walk("", [](const std::string&, Slot& s) {
    if (!s.buffer) s.tensor.zero_grad();
  });
}

int Module::set_param_spec(const std::string& prefix, const ParamSpec& spec) {
  LRT_CHECK(spec.lr_mult >= 0.0 && spec.decay_mult >= 0.0, "set_param_spec: multipliers must be >= 0, got lr_mult ",
            spec.lr_mult, ", decay_mult ", spec.decay_mult);
  int n = 0;
  walk("", [&](const std::string& name, Slot& s) {
    if (s.buffer || !matches_prefix(name, prefix)) return;
    s.spec = spec;
    s.tensor.set_requires_grad(spec.lr_mult != 0.0);
    if (spec.lr_mult == 0.0) s.tensor.set_grad(Tensor());
    ++n;
  });
  LRT_CHECK(n > 0, "set_param_spec: no parameter matches '", prefix, "'");
  return n;
}

// ------------------------------------------------------------------ files --

void save_weights(const Module& m, const std::string& path, const std::map<std::string, std::string>& metadata) {
  // One host copy (none for a CPU model) serves both the checksum and the
  // write, so a GPU model is not copied to the host twice.
  TensorList host;
  for (const auto& [name, t] : m.state_dict()) host.emplace_back(name, t.to(kCPU).contiguous());
  std::map<std::string, std::string> md = metadata;
  md[kWeightsChecksumKey] = checksum_hex(tensors_checksum(host));
  save_safetensors(path, host, md);
}

LoadReport load_weights(Module& m, const std::string& path, bool strict) {
  const SafetensorsFile file = load_safetensors(path);
  // Files written by lrt carry a checksum; files from other tools do not
  // and are taken on their header's validation alone.
  const auto stored = file.metadata.find(kWeightsChecksumKey);
  if (stored != file.metadata.end())
    LRT_CHECK(stored->second == checksum_hex(tensors_checksum(file.tensors)), path,
              ": checksum mismatch (file is corrupted): its tensors do not match the checksum stored when it was "
              "saved");
  try {
    return m.load_state_dict(as_map(file), strict);
  } catch (const Error& e) {
    LRT_THROW(path, ": ", e.message());
  }
}

}  // namespace lrt

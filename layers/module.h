// Module: the building block of models, as torch.nn.Module. A module owns
// named parameters (with a ParamSpec each), named buffers (running
// statistics) and named child modules, all in registration order. Dotted
// names ("layer1.0.conv2.weight") come from walking that tree, so a model
// built with torchvision's child names has torchvision's state_dict names.
//
// Tensors live in the module's slots; layers keep pointers to them (slots
// never move), so to(device) and load_state_dict replace or overwrite the
// tensors behind every layer at once.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "layers/parameter.h"

namespace lrt {

using TensorList = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict did: the names it loaded, the model's names the file
// lacked, the file's names the model lacks, and names whose shapes differ
// ("name: file (1000, 2048) vs model (10, 2048)").
struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // "loaded 320 tensors; skipped: ..." on one line
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Training mode (batch statistics, dropout) or evaluation mode, for this
  // module and every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Parameters of the whole tree in registration order (a module's own
  // first, then each child's), with dotted names and their ParamSpecs.
  std::vector<NamedParameter> named_parameters() const;
  std::vector<Tensor> parameters() const;
  TensorList named_buffers() const;
  int64_t num_parameters() const;
  // Names and tensors as torch's state_dict orders them: for each module its
  // parameters, then its buffers, then its children.
  TensorList state_dict() const;

  // Copies tensors from `tensors` (any device; floating dtypes are cast) into
  // the model. Strict: every model tensor must be present with its shape and
  // nothing else may be in tensors, else an lrt::Error naming the culprits
  // and nothing is changed. Non-strict: loads the names that match in shape
  // and reports the rest. A BatchNorm's num_batches_tracked may be absent.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& tensors, bool strict = true);

  // Moves (or casts, for floating tensors) every parameter and buffer;
  // requires_grad is kept and gradients are dropped.
  void to(Device device);
  void to(DType dtype);
  void zero_grad();

  // Sets the ParamSpec of every parameter whose name matches prefix (equal,
  // or followed by '.'; "" matches all). lr_mult 0 freezes: the parameter no
  // longer requires grad, so no gradient is computed for it. Returns how many
  // matched; none is an error naming the prefix.
  int set_param_spec(const std::string& prefix, const ParamSpec& spec);

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // A CUDA graph (core/cuda_graph.h) replays the device work of a captured
  // forward but none of its host-side effects: call this once after each
  // replay, so host state advances as an eager forward would have moved it
  // (BatchNorm's num_batches_tracked in training mode).
  void replayed_forward();

 protected:
  // Registers a parameter (it will require grad unless spec.lr_mult == 0).
  Tensor* register_parameter(const std::string& name, Tensor t, ParamSpec spec = {});
  // Buffers are saved and loaded with the parameters but never trained.
  // host: stays on the CPU when the module moves (a step counter).
  Tensor* register_buffer(const std::string& name, Tensor t, bool host = false);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  // Called on every module of the tree after train()/eval().
  virtual void on_mode_change() {}
  // Called on every module of the tree by replayed_forward().
  virtual void on_replayed_forward() {}

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    ParamSpec spec;
    bool buffer = false;
    bool host = false;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  template <class F>
  void walk(const std::string& prefix, F&& f) const;  // f(full_name, Slot&)
  template <class F>
  void walk_modules(F&& f);

  mutable std::deque<Slot> slots_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// The metadata key under which save_weights stores the FNV-1a 64 checksum of
// the state_dict (layers/checksum.h).
inline constexpr const char* kWeightsChecksumKey = "lrt.checksum";

// Writes a module's state_dict as safetensors (atomically: temporary file,
// flush, rename), with metadata plus its checksum under kWeightsChecksumKey.
void save_weights(const Module& m, const std::string& path, const std::map<std::string, std::string>& metadata = {});
// Reads a safetensors file into a module (strict or not, as load_state_dict);
// errors name the file. A file with a checksum (any file save_weights wrote)
// must match it, so a flipped bit anywhere in its tensors is refused; files
// from other tools (PyTorch's safetensors) have none and load as they are.
LoadReport load_weights(Module& m, const std::string& path, bool strict = true);

}  // namespace lrt

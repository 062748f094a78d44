// The training checkpoint reader (apps/resnet50_cifar/checkpoint.h) on
// untrusted bytes, into a small conv + BN + linear model and a two-group
// optimizer. Random bytes rarely get past the checksums, so an input can ask
// for them to be recomputed first: then the metadata parsing and the model
// and optimizer restores see arbitrary content.
//
// Input: a mode byte (bit 0 SGD with momentum instead of Adam, bit 1 AMSGrad
// for Adam, bit 2 recompute both checksums of a readable safetensors file),
// then the file. Invariants: a refused file leaves the model and the
// optimizer exactly as they were; an accepted one saves and loads again to
// the same state, options, weights and optimizer state.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "apps/resnet50_cifar/checkpoint.h"
#include "core/random.h"
#include "fuzz.h"
#include "layers/modules.h"
#include "layers/safetensors.h"
#include "../small_net.h"
#include "optim/param_groups.h"

namespace {

using namespace lrt;
using namespace lrt::app;

// The seeded conv + BN + linear model of tests/small_net.h.
std::shared_ptr<Sequential> small_net() { return testing::small_net(7); }

std::unique_ptr<optim::Optimizer> make_opt(const Module& net, uint8_t mode) {
  optim::OptimizerConfig c;
  c.kind = mode & 1 ? optim::OptimizerKind::Sgd : optim::OptimizerKind::Adam;
  c.momentum = mode & 1 ? 0.9 : 0.0;
  c.amsgrad = !(mode & 1) && (mode & 2);
  c.weight_decay = 1e-4;
  return std::make_unique<optim::Optimizer>(optim::make_param_groups(net.named_parameters(), {"head"}, {0.5, 1.0}),
                                            c);
}

TensorList snapshot(const TensorList& tensors) {
  TensorList out;
  for (const auto& [name, t] : tensors) out.emplace_back(name, t.detach().contiguous().clone());
  return out;
}

bool identical(const TensorList& a, const TensorList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor x = a[i].second.contiguous(), y = b[i].second.contiguous();
    if (a[i].first != b[i].first || x.dtype() != y.dtype() || x.shape() != y.shape()) return false;
    const size_t n = static_cast<size_t>(x.numel()) * dtype_size(x.dtype());
    if (n && std::memcmp(x.data_ptr(), y.data_ptr(), n) != 0) return false;
  }
  return true;
}

bool same_state(const TrainState& a, const TrainState& b) {
  return a.step == b.step && a.epoch == b.epoch && a.batch_in_epoch == b.batch_in_epoch &&
         a.data_seed == b.data_seed && a.dropout_seed == b.dropout_seed && a.dropout_offset == b.dropout_offset &&
         a.skipped_steps == b.skipped_steps;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// Loads path into a fresh model and optimizer and checks the invariants.
void check_load(const std::string& path, uint8_t mode) {
  auto net = small_net();
  auto opt = make_opt(*net, mode);
  const TensorList model_before = snapshot(net->state_dict()), opt_before = snapshot(opt->state());
  Checkpoint ck;
  if (!fuzz::accepts([&] { ck = load_checkpoint(path, *net, *opt); })) {
    LRT_FUZZ_CHECK(identical(net->state_dict(), model_before));
    LRT_FUZZ_CHECK(identical(opt->state(), opt_before));
    return;
  }
  LRT_FUZZ_CHECK(ck.state.step >= 0 && ck.state.epoch >= 0 && ck.state.batch_in_epoch >= 0 &&
                 ck.state.skipped_steps >= 0);
  const std::string again = fuzz::scratch_path("again.safetensors");
  save_checkpoint(again, *net, *opt, ck);
  auto net2 = small_net();
  auto opt2 = make_opt(*net2, mode);
  const Checkpoint ck2 = load_checkpoint(again, *net2, *opt2);
  LRT_FUZZ_CHECK(same_state(ck2.state, ck.state));
  LRT_FUZZ_CHECK(ck2.options == ck.options);
  LRT_FUZZ_CHECK(identical(net2->state_dict(), net->state_dict()));
  LRT_FUZZ_CHECK(identical(opt2->state(), opt->state()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t mode = in.byte();
  const std::string path = fuzz::scratch_path("in.safetensors");
  fuzz::write_file(path, in.rest(), in.rest_size());
  if (!(mode & 4)) {
    check_load(path, mode);
    return 0;
  }
  SafetensorsFile file;
  if (!fuzz::accepts([&] { file = load_safetensors(path); })) return 0;
  file.metadata["checksum"] = hex16(checkpoint_checksum(file.tensors));
  file.metadata["metadata_checksum"] = hex16(checkpoint_metadata_checksum(file.metadata));
  const std::string fixed = fuzz::scratch_path("fixed.safetensors");
  save_safetensors(fixed, file.tensors, file.metadata);
  check_load(fixed, mode);
  return 0;
}

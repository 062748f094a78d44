// Training checkpoints: everything needed to continue a run exactly, in one
// safetensors file. Tensors "model.<state_dict name>" (weights and BN
// buffers) and "optim.<optimizer state name>" (moments and step counters);
// __metadata__ holds the training position and RNG state (TrainState, as
// decimal strings), the options that must match on resume, a format version,
// "checksum": FNV-1a 64 over every tensor's name, dtype, shape and bytes in
// file order, and "metadata_checksum": FNV-1a 64 over every other metadata
// entry, so a flipped digit in the training position is caught as surely as
// one in a weight. Both are 16 lowercase hex digits.
//
// Saving writes "<path>.tmp", flushes it to disk and renames it over path
// (save_safetensors), so a crash or a full disk never leaves a half-written
// checkpoint under the final name; the previous checkpoint stays intact.
// Loading validates the file (layers/safetensors.h), both checksums and the
// format version, and every error names the file and the problem. A path
// naming a folder means the kCheckpointFile inside it, for saving and loading.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"
#include "optim/optimizer.h"

namespace lrt::app {

struct TrainState {
  int64_t step = 0;            // optimizer steps completed
  int64_t epoch = 0;           // epoch in progress (0-based)
  int64_t batch_in_epoch = 0;  // batches of that epoch already consumed
  uint64_t data_seed = 0;      // the loader's seed
  uint64_t dropout_seed = 0;   // the model's dropout generator
  uint64_t dropout_offset = 0;
  int64_t skipped_steps = 0;   // non-finite steps skipped so far
};

struct Checkpoint {
  TrainState state;
  // Options recorded when saving ("stem", "head", "dataset", "optimizer",
  // "lr_groups", ...): the caller compares them with the resumed run's.
  std::map<std::string, std::string> options;
};

// The checkpoint file name inside a checkpoint folder.
inline const char* kCheckpointFile = "checkpoint.safetensors";

void save_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& opt,
                     const Checkpoint& ck);

// Restores model and optimizer in place (strictly: every tensor present,
// shapes matching) and returns the state and options. Everything is checked
// before anything is copied: on any error model and optimizer are unchanged.
Checkpoint load_checkpoint(const std::string& path, Module& model, optim::Optimizer& opt);

// The FNV-1a 64 checksum described above, over tensors in the given order.
uint64_t checkpoint_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors);
// FNV-1a 64 over the metadata entries in key order, each as its key and value
// with their lengths (little-endian int64) in front; "metadata_checksum"
// itself is left out.
uint64_t checkpoint_metadata_checksum(const std::map<std::string, std::string>& metadata);

}  // namespace lrt::app

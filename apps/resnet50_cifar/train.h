// The subcommands that train: train (epochs of SGD-family steps with the
// schedule, evaluation, logs, checkpoints, snapshots, resume) and lr-find
// (the LR range test on the same setup), plus evaluation helpers shared with
// eval and predict.
#pragma once

#include <cstdint>
#include <string>

#include "apps/resnet50_cifar/options.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "layers/resnet50.h"

namespace lrt::app {

// Exit codes beyond 0 (success) and 2 (bad input or a failed run).
constexpr int kExitNonFinite = 3;    // stopped on a non-finite loss or gradient
constexpr int kExitInterrupted = 130;  // SIGINT (SIGTERM: 143), after saving a checkpoint

int run_train(RunOptions o);

struct LrFindFlags {
  double start_lr = 1e-7, end_lr = 10.0;
  int64_t steps = 100;
  std::string out = "lr_find.csv";
};
int run_lr_find(RunOptions o, const LrFindFlags& f);

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction correct
  int64_t count = 0;
  Tensor probs;           // (count, classes) float32 on the CPU, when asked for
  Tensor labels;          // (count) int64 on the CPU, when asked for
  int64_t graph_batches = 0;  // batches run by a CUDA graph (the captured one and the replays)
};
// Runs the model in evaluation mode over one epoch of loader (restoring the
// model's mode afterwards). cuda_graph, on CUDA with GPU-resident batches:
// the first batch of a size runs eagerly, the second is captured as a CUDA
// graph and replayed for every later batch of that size (the same values;
// GraphPlan in graph_plan.h).
EvalResult evaluate(ResNet50& model, data::Loader& loader, bool keep_probs = false, bool cuda_graph = false);

}  // namespace lrt::app

// What train, lr-find, eval and predict share: picking the device, finding
// (or, for the demo, generating) the data, building the model, the
// optimizer's parameter groups and configuration, and the schedule. Every
// bad value is an lrt::Error naming its flag.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/options.h"
#include "core/device.h"
#include "data/cifar.h"
#include "data/loader.h"
#include "layers/resnet50.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace lrt::app {

// "auto" -> cuda:0 when usable, else cpu; "cuda" without a GPU is an error.
// Prints the choice ("device: ...") unless quiet.
Device resolve_device(const std::string& flag, bool quiet = false);

// The folder of the demo's synthetic data: $LRT_CACHE_DIR, else
// $XDG_CACHE_HOME/lrt, else $HOME/.cache/lrt, + "/synthetic-<dataset>".
std::string demo_data_dir(const std::string& dataset);

// True when train/lr-find run the built-in demo (no --data).
inline bool is_demo(const RunOptions& o) { return o.data.empty(); }
// The demo's defaults for fields the user did not give (a run of about three
// minutes on two CPU cores).
void apply_demo_defaults(RunOptions& o);

// Reads --data (or, with no --data, the demo data, generated on first use).
data::CifarDataset load_dataset(const RunOptions& o);

// The activations' dtype --precision asks for on dev: bfloat16 for bf16
// (and auto on CUDA), float32 for fp32, tf32 (and auto on the CPU). tf32
// also lets CUDA float32 convolutions use TF32 tensor cores (PyTorch's
// float32 default); build_model and load_model set that.
DType compute_dtype(const RunOptions& o, Device dev);
// What a run on dev computes in: "bf16", "tf32" (CUDA only) or "fp32".
std::string precision_name(const RunOptions& o, Device dev);
// Whether the features are channels_last on dev: --channels-last,
// --no-channels-last, or by default on CUDA (where cuDNN's tensor-core
// convolutions read it directly) and not on the CPU (where it adds copies).
bool use_channels_last(const RunOptions& o, Device dev);
// Whether train replays its step as a CUDA graph on dev: --cuda-graph (which
// train checks the run allows), --no-cuda-graph, or by default on CUDA unless
// the run uses --skip-nonfinite or the seed head's dropout.
bool use_cuda_graph(const RunOptions& o, Device dev);
// Whether the test batches (train's test pass, eval, predict) replay CUDA
// graphs on dev: by default on CUDA, not with --no-cuda-graph. --cuda-graph
// on another device is refused, naming the device.
bool use_test_graph(const RunOptions& o, Device dev);

// ResNet50 of --stem/--head for `classes`, computing in compute_dtype(o, dev), seeded by --seed, with
// --init-weights loaded (printing what a non-strict load skipped), on dev.
std::unique_ptr<ResNet50> build_model(const RunOptions& o, int64_t classes, Device dev, bool quiet = false);

// Loads weights for eval/predict: strict, errors name the file.
std::unique_ptr<ResNet50> load_model(const RunOptions& o, const std::string& weights, int64_t classes, Device dev);

std::vector<optim::ParamGroup> build_groups(const RunOptions& o, const ResNet50& model);
optim::OptimizerConfig optimizer_config(const RunOptions& o);
optim::ScheduleConfig schedule_config(const RunOptions& o, int64_t steps_per_epoch, int64_t total_steps);

data::LoaderOptions train_loader_options(const RunOptions& o, Device dev);
data::LoaderOptions test_loader_options(const RunOptions& o, Device dev);

}  // namespace lrt::app

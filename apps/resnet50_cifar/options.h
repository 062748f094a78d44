// Every option of resnet50_cifar's train, lr-find, eval and predict
// commands, with its default; the flag is the field name with '-' for '_'
// (--train-subset is train_subset). Presets fill fields that were not given
// on the command line (explicit flags win).
#pragma once

#include <cstdint>
#include <set>
#include <string>

namespace lrt::app {

// A feature a flag pair turns on (--name) or off (--no-name); without either
// it is on where it pays (Auto; each field says where).
enum class Switch { Auto, On, Off };

struct RunOptions {
  // ---- data ----
  std::string data;               // folder with the CIFAR binary files; empty: synthetic demo data
  std::string dataset = "cifar10";  // cifar10 | cifar100
  int64_t train_subset = 0;       // first N training images (0: all)
  int64_t test_subset = 0;        // first N test images (0: all)
  bool no_shuffle = false;
  bool no_augment = false;
  std::string normalize = "meanstd";  // meanstd | unit
  uint64_t seed = 0;

  // ---- model ----
  std::string stem = "cifar";     // cifar | imagenet
  std::string head = "linear";    // linear | seed
  std::string init_weights;       // safetensors to start from
  bool no_strict = false;         // load init_weights non-strictly

  // ---- device ----
  std::string device = "auto";    // auto | cpu | cuda
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | bf16 | tf32 | fp32
  Switch channels_last = Switch::Auto;  // NHWC features (ResNet50Options::channels_last); auto: on CUDA
  bool deterministic = false;     // CUDA: deterministic convolution algorithms only
  bool cudnn_benchmark = false;   // CUDA: timed algorithm search instead of heuristics
  bool cudnn_bn = false;          // CUDA: cuDNN's batch norm instead of lrt's kernels (set_bn_cudnn)

  // ---- length ----
  int64_t epochs = 30;
  int64_t batch_size = 128;
  int64_t max_steps = 0;          // stop after this many optimizer steps in total (0: no limit)

  // ---- optimizer ----
  std::string optimizer = "adam";  // adam | adamw | sgd
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.9;          // sgd
  bool nesterov = false, amsgrad = false, no_decay_bn_bias = false;

  // ---- learning-rate techniques ----
  std::string lr_groups;          // split prefixes, e.g. layer3.0.conv1,fc_start
  std::string lr_mults;           // one multiplier per group, or START:STOP
  std::string schedule = "constant";  // constant | sgdr | onecycle
  double sgdr_t0 = 1.0;
  int64_t sgdr_t0_steps = 0;
  double sgdr_tmult = 1.0, sgdr_eta_min = 0.0, sgdr_decay = 1.0;
  int64_t warmup_steps = 0;

  // ---- output ----
  std::string log;                // JSONL file
  std::string save_weights;       // final weights (safetensors)
  std::string checkpoint_dir;
  std::string resume;             // checkpoint file (or a checkpoint folder: its latest)
  bool snapshots = false;         // weights at each SGDR cycle end
  bool skip_nonfinite = false;    // skip steps with a non-finite loss or gradient instead of stopping
  int64_t sync_every = 0;         // read the loss, accuracy and finiteness back every N steps (0: 1 on CPU, 10 on CUDA)
  Switch cuda_graph = Switch::Auto;  // replay the training step (and the test batches; eval and predict:
                                     // the test batches) as captured CUDA graphs; auto: on CUDA where the
                                     // run allows (see use_cuda_graph)

  std::string preset;             // keras-seed | cifar (empty: none)

  // Names of the fields set explicitly on the command line ("lr",
  // "batch_size", ...), so presets do not override them.
  std::set<std::string> given;
};

// Applies the preset named in o.preset to every field not in o.given.
// Throws lrt::Error naming --preset for an unknown name.
void apply_preset(RunOptions& o);

}  // namespace lrt::app

// The flags of train / lr-find / eval / predict, and the presets.
#include "apps/resnet50_cifar/flags.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace lrt::app {

namespace {

// CLI11's PositiveNumber prints the whole double range in its message.
const CLI::Validator kPositive(
    [](std::string& text) {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || !(v > 0.0) || !std::isfinite(v))
        return "must be a positive number, got '" + text + "'";
      return std::string();
    },
    "POSITIVE");

std::string field_of(const std::string& flag) {
  std::string f = flag.substr(2);
  for (char& c : f)
    if (c == '-') c = '_';
  return f;
}

}  // namespace

template <class T>
CLI::Option* FlagSet::add(const std::string& flag, T& field, const std::string& help) {
  CLI::Option* opt = app_->add_option(flag, field, help)->capture_default_str();
  options_.emplace_back(field_of(flag), opt);
  return opt;
}

CLI::Option* FlagSet::add_flag(const std::string& flag, bool& field, const std::string& help) {
  CLI::Option* opt = app_->add_flag(flag, field, help);
  options_.emplace_back(field_of(flag), opt);
  return opt;
}

void FlagSet::add_switch(const std::string& name, Switch& field, const std::string& on_help,
                         const std::string& off_help) {
  CLI::Option* on = app_->add_flag_callback("--" + name, [&field] { field = Switch::On; }, on_help);
  CLI::Option* off = app_->add_flag_callback("--no-" + name, [&field] { field = Switch::Off; }, off_help);
  on->excludes(off);
  options_.emplace_back(field_of("--" + name), on);
  options_.emplace_back(field_of("--" + name), off);
}

FlagSet::FlagSet(CLI::App* app, RunOptions& o, unsigned groups) : app_(app), o_(o) {
  if (groups & kDataFlags) {
    add("--data", o.data,
        "folder with the CIFAR binary files (cifar-10-batches-bin or its parent); without it train and lr-find "
        "use synthetic demo data");
    add("--dataset", o.dataset, "cifar10 or cifar100")->check(CLI::IsMember({"cifar10", "cifar100"}));
    add("--train-subset", o.train_subset, "use the first N training images (0: all)")->check(CLI::NonNegativeNumber);
    add("--test-subset", o.test_subset, "use the first N test images (0: all)")->check(CLI::NonNegativeNumber);
    add_flag("--no-shuffle", o.no_shuffle, "keep the training images in file order");
    add_flag("--no-augment", o.no_augment, "no random crop (padding 4) and horizontal flip");
    add("--normalize", o.normalize, "meanstd (CIFAR channel mean/std) or unit (pixels / 255)")
        ->check(CLI::IsMember({"meanstd", "unit"}));
    add("--seed", o.seed, "seed of the initial weights, data order, augmentation and dropout");
  }
  if (groups & (kModelFlags | kArchFlags)) {
    add("--stem", o.stem, "cifar (3x3 conv, no max-pool) or imagenet (torchvision's 7x7 conv + max-pool)")
        ->check(CLI::IsMember({"cifar", "imagenet"}));
    add("--head", o.head, "linear (fc) or seed (the Keras original's fc_start/fc_mid/fc_bn/fc with dropout)")
        ->check(CLI::IsMember({"linear", "seed"}));
  }
  if (groups & kModelFlags) {
    add("--init-weights", o.init_weights, "safetensors weights to start from (torchvision names)");
    add_flag("--no-strict", o.no_strict,
             "with --init-weights: load the tensors that match and report the rest (e.g. an ImageNet fc)");
  }
  if (groups & kDeviceFlags) {
    add("--device", o.device, "cpu, cuda, or auto (cuda when a GPU is usable)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    add("--precision", o.precision,
        "bf16 (mixed precision: bfloat16 activations, float32 weights, optimizer and loss), fp32, tf32 (float32 "
        "with TF32 tensor-core convolutions on CUDA, PyTorch's float32 default; fp32 on the CPU), or auto "
        "(bf16 on CUDA, fp32 on the CPU, where bfloat16 is emulated and slower)")
        ->check(CLI::IsMember({"auto", "bf16", "tf32", "fp32"}));
    add_switch("channels-last", o.channels_last,
               "keep the features in the channels_last (NHWC) memory format, which cuDNN's tensor-core "
               "convolutions read and write without transposing (same values; checkpoints unaffected). The "
               "default on CUDA; on the CPU it only adds layout copies",
               "keep the features NCHW (the default on the CPU)");
    add_flag("--cudnn-benchmark", o.cudnn_benchmark,
             "CUDA: choose each convolution's algorithms by timing cuDNN's candidates once per shape (cached for "
             "the run; torch.backends.cudnn.benchmark) instead of cuDNN's heuristics; the first step of each "
             "shape takes longer");
    CLI::Option* deterministic =
        add_flag("--deterministic", o.deterministic,
                 "CUDA: only convolution algorithms cuDNN reports as deterministic, so that the same run repeats to "
                 "the bit (some of the fastest backward algorithms sum with atomics); may be slower. The CPU always "
                 "repeats");
    add_flag("--cudnn-bn", o.cudnn_bn,
             "CUDA: training-mode batch norm through cuDNN's own (its legacy functions with the fused ReLU and "
             "residual add, as PyTorch's cuDNN batch norm) instead of lrt's kernels, which give the CPU's results "
             "to the last bits; for measuring which is faster. Not with --deterministic")
        ->excludes(deterministic);
  }
  if (groups & kLengthFlags) add("--epochs", o.epochs, "training epochs")->check(CLI::Range(int64_t(1), int64_t(1000000)));
  if (groups & (kLengthFlags | kBatchFlag))
    add("--batch-size", o.batch_size, "images per step")->check(CLI::Range(int64_t(1), int64_t(65536)));
  if (groups & kLengthFlags) {
    add("--max-steps", o.max_steps, "stop after this many optimizer steps in total (0: no limit)")
        ->check(CLI::NonNegativeNumber);
  }
  if (groups & kOptimFlags) {
    add("--optimizer", o.optimizer, "adam, adamw or sgd")->check(CLI::IsMember({"adam", "adamw", "sgd"}));
    add("--lr", o.lr, "base (maximum) learning rate")->check(kPositive);
    add("--beta1", o.beta1, "Adam beta1");
    add("--beta2", o.beta2, "Adam beta2");
    add("--eps", o.eps, "Adam epsilon");
    add("--weight-decay", o.weight_decay, "L2 penalty (adam, sgd) or decoupled decay (adamw)");
    add("--momentum", o.momentum, "SGD momentum");
    add_flag("--nesterov", o.nesterov, "SGD: Nesterov momentum");
    add_flag("--amsgrad", o.amsgrad, "Adam/AdamW: the AMSGrad variant");
    add_flag("--no-decay-bn-bias", o.no_decay_bn_bias, "no weight decay on BatchNorm parameters and biases");
  }
  if (groups & kLrFlags) {
    add("--lr-groups", o.lr_groups,
        "split points P1,P2,... as parameter-name prefixes (e.g. layer3.0.conv1,fc_start); K prefixes make K+1 "
        "groups (default: one group)");
    add("--lr-mults", o.lr_mults,
        "group multipliers M0,M1,... (one per group) or START:STOP spread geometrically (default: all 1)");
    add("--schedule", o.schedule, "constant, sgdr (cosine annealing with warm restarts) or onecycle")
        ->check(CLI::IsMember({"constant", "sgdr", "onecycle"}));
    add("--sgdr-t0", o.sgdr_t0, "SGDR: first cycle length in epochs");
    add("--sgdr-t0-steps", o.sgdr_t0_steps, "SGDR: first cycle length in steps (overrides --sgdr-t0 when > 0)");
    add("--sgdr-tmult", o.sgdr_tmult, "SGDR: each cycle is this many times longer than the previous (>= 1)");
    add("--sgdr-eta-min", o.sgdr_eta_min, "SGDR: minimum learning rate");
    add("--sgdr-decay", o.sgdr_decay, "SGDR: the peak of cycle i is lr * decay^i, decay in (0, 1]");
    add("--warmup-steps", o.warmup_steps, "linear warm-up steps before the schedule starts")
        ->check(CLI::Range(int64_t(0), int64_t(1000000000)));
  }
  if (groups & kOutputFlags) {
    add("--log", o.log, "write one JSON object per step, epoch and cycle end to this file (JSONL)");
    add("--save-weights", o.save_weights, "save the final weights here (safetensors)");
    add("--checkpoint-dir", o.checkpoint_dir,
        "save a checkpoint here at each epoch end and on Ctrl-C/SIGTERM (checkpoint.safetensors)");
    add("--resume", o.resume, "continue the run saved in this checkpoint file or checkpoint folder");
    add_flag("--snapshots", o.snapshots,
             "SGDR: save the weights at each cycle end (snapshot-cycleK.safetensors in --checkpoint-dir, or "
             "beside --save-weights, or the current folder)");
    add_flag("--skip-nonfinite", o.skip_nonfinite,
             "skip a step whose loss or gradient is not finite (counted in the log) instead of stopping");
    add("--sync-every", o.sync_every,
        "read the loss, accuracy and finiteness back from the device every N steps (0: every step on the CPU, "
        "every 10 on CUDA); the device runs ahead in between and every step is still logged "
        "(--skip-nonfinite reads back every step)")
        ->check(CLI::Range(int64_t(0), int64_t(1000000)));
    add_switch("cuda-graph", o.cuda_graph,
               "CUDA: capture the whole training step (forward, backward, optimizer) once as a CUDA graph and "
               "replay it for every full batch, which removes the host's cost of issuing a thousand kernels a "
               "step; the schedule's learning rates are read from device memory. The default on CUDA except with "
               "--skip-nonfinite or the seed head's dropout, which it cannot replay. The test pass after each "
               "epoch replays a graph of its own unless --no-cuda-graph",
               "CUDA: issue every step's and every test batch's kernels from the host (eager)");
  }
  if (groups & kEvalGraphFlag)
    add_switch("cuda-graph", o.cuda_graph,
               "CUDA: capture the forward pass of a full test batch once as a CUDA graph and replay it for every "
               "later full batch, which removes the host's cost of issuing its kernels (the same results). The "
               "default on CUDA",
               "CUDA: issue every test batch's kernels from the host (eager)");
  if (groups & kPresetFlag)
    add("--preset", o.preset,
        "keras-seed (the Keras original's recipe) or cifar (a strong from-scratch recipe); explicit flags win")
        ->check(CLI::IsMember({"keras-seed", "cifar"}));
}

void FlagSet::collect_given() {
  o_.given.clear();
  for (const auto& [field, opt] : options_)
    if (opt->count() > 0) o_.given.insert(field);
}

void apply_preset(RunOptions& o) {
  if (o.preset.empty()) return;
  auto set = [&](const char* field, auto& member, auto value) {
    if (!o.given.count(field)) member = value;
  };
  if (o.preset == "keras-seed") {
    // The Keras original's test.py: ImageNet-style ResNet50 with its own head,
    // Adam at 1e-2 with three groups scaled 1e-5, 1e-2, 1, SGDR restarting
    // after 1, 2, 4 ... epochs, batch 8, 5 epochs, pixels / 255, no augmentation.
    set("stem", o.stem, std::string("imagenet"));
    set("head", o.head, std::string("seed"));
    set("optimizer", o.optimizer, std::string("adam"));
    set("lr", o.lr, 1e-2);
    set("lr_groups", o.lr_groups, std::string("layer3.0.conv1,fc_start"));
    set("lr_mults", o.lr_mults, std::string("1e-5,1e-2,1"));
    set("schedule", o.schedule, std::string("sgdr"));
    set("sgdr_t0", o.sgdr_t0, 1.0);
    set("sgdr_tmult", o.sgdr_tmult, 2.0);
    set("sgdr_eta_min", o.sgdr_eta_min, 0.0);
    set("batch_size", o.batch_size, int64_t(8));
    set("epochs", o.epochs, int64_t(5));
    set("normalize", o.normalize, std::string("unit"));
    set("no_augment", o.no_augment, true);
  } else if (o.preset == "cifar") {
    // From scratch on CIFAR (see the README for the reasons): CIFAR stem,
    // augmentation, AdamW with decoupled decay off BN/bias, and SGDR cycles of 2, 4, 8 and 16 epochs ending exactly at epoch 30,
    // so each cycle end gives a snapshot for the ensemble.
    set("stem", o.stem, std::string("cifar"));
    set("head", o.head, std::string("linear"));
    set("optimizer", o.optimizer, std::string("adamw"));
    set("lr", o.lr, 2e-3);
    set("weight_decay", o.weight_decay, 0.05);
    set("no_decay_bn_bias", o.no_decay_bn_bias, true);
    set("schedule", o.schedule, std::string("sgdr"));
    set("sgdr_t0", o.sgdr_t0, 2.0);
    set("sgdr_tmult", o.sgdr_tmult, 2.0);
    set("sgdr_eta_min", o.sgdr_eta_min, 1e-6);
    set("batch_size", o.batch_size, int64_t(256));
    set("epochs", o.epochs, int64_t(30));
    set("normalize", o.normalize, std::string("meanstd"));
    set("no_augment", o.no_augment, false);
  } else {
    LRT_THROW("--preset: unknown preset '", o.preset, "' (expected keras-seed or cifar)");
  }
}

}  // namespace lrt::app

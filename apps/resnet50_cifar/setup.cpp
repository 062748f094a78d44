// Shared construction for the subcommands.
#include "apps/resnet50_cifar/setup.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "data/synthetic.h"
#include "layers/functional.h"
#include "layers/module.h"
#include "lrt_config.h"
#include "optim/param_groups.h"

#if LRT_HAVE_CUDA
#include "core/cuda_context.h"
#endif

namespace lrt::app {

Device resolve_device(const std::string& flag, bool quiet) {
  Device dev = kCPU;
  if (flag == "cuda" || flag == "auto") {
    if (cuda_available()) {
      dev = Device("cuda:0");
    } else if (flag == "cuda") {
      LRT_THROW("--device cuda: ", cuda_built() ? "no usable CUDA device found" : "this build has no CUDA backend",
                " (use --device cpu)");
    }
  } else if (flag != "cpu") {
    LRT_THROW("--device: unknown device '", flag, "' (expected auto, cpu or cuda)");
  }
  if (!quiet) {
#if LRT_HAVE_CUDA
    if (dev.is_cuda()) {
      std::printf("device: %s (%s)\n", dev.str().c_str(), cuda::describe(dev.index).c_str());
      return dev;
    }
#endif
    std::printf("device: cpu (%u threads)%s\n", std::thread::hardware_concurrency(),
                flag == "auto" ? (cuda_built() ? "; no usable GPU found" : "; built without CUDA") : "");
  }
  return dev;
}

std::string demo_data_dir(const std::string& dataset) {
  std::string base;
  if (const char* d = std::getenv("LRT_CACHE_DIR"); d && *d) {
    base = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    base = std::string(x) + "/lrt";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    base = std::string(h) + "/.cache/lrt";
  } else {
    base = std::filesystem::temp_directory_path().string() + "/lrt-cache";
  }
  return base + "/synthetic-" + dataset;
}

void apply_demo_defaults(RunOptions& o) {
  auto set = [&](const char* field, auto& member, auto value) {
    if (!o.given.count(field)) member = value;
  };
  // Two epochs over 768 images at ~11 images/s on two cores, with a warm
  // restart between them; the synthetic classes are colour and shape, so the
  // first epoch already ends well above chance.
  set("epochs", o.epochs, int64_t(2));
  set("batch_size", o.batch_size, int64_t(32));
  set("train_subset", o.train_subset, int64_t(768));
  set("test_subset", o.test_subset, int64_t(256));
  set("lr", o.lr, 2e-3);
  set("schedule", o.schedule, std::string("sgdr"));
  set("sgdr_t0", o.sgdr_t0, 1.0);
  set("sgdr_tmult", o.sgdr_tmult, 1.0);
}

data::CifarDataset load_dataset(const RunOptions& o) {
  const data::CifarKind kind = data::parse_cifar_kind(o.dataset);
  std::string dir = o.data;
  if (dir.empty()) {
    dir = demo_data_dir(o.dataset);
    bool present = true;
    try {
      data::locate_cifar_folder(dir, kind);
    } catch (const Error&) {
      present = false;
    }
    if (!present) {
      std::printf("generating synthetic %s data in %s (once)\n", o.dataset.c_str(), dir.c_str());
      data::SyntheticOptions so;
      so.kind = kind;
      so.train = 5000;
      so.test = 1000;
      data::write_synthetic_cifar(dir, so);
    }
  } else {
    LRT_CHECK(std::filesystem::is_directory(dir), "--data: '", dir, "' is not a folder");
  }
  data::CifarLoadOptions lo;
  lo.kind = kind;
  lo.train_subset = o.train_subset > 0 ? o.train_subset : -1;
  lo.test_subset = o.test_subset > 0 ? o.test_subset : -1;
  try {
    return data::load_cifar(dir, lo);
  } catch (const Error& e) {
    LRT_THROW("--data: ", e.message());
  }
}

bool use_channels_last(const RunOptions& o, Device dev) {
  return o.channels_last == Switch::Auto ? dev.is_cuda() : o.channels_last == Switch::On;
}

bool use_cuda_graph(const RunOptions& o, Device dev) {
  if (o.cuda_graph != Switch::Auto) return o.cuda_graph == Switch::On;
  return dev.is_cuda() && !o.skip_nonfinite && o.head != "seed";
}

bool use_test_graph(const RunOptions& o, Device dev) {
  LRT_CHECK(o.cuda_graph != Switch::On || dev.is_cuda(),
            "--cuda-graph needs a CUDA device (--device cuda); this run is on ", dev.str());
  return dev.is_cuda() && o.cuda_graph != Switch::Off;
}

namespace {

ResNet50Options model_options(const RunOptions& o, int64_t classes, Device dev) {
  // Process-wide settings of the convolutions, set with the model they serve.
  set_conv_allow_tf32(o.precision == "tf32");
  set_conv_deterministic(o.deterministic);
  set_conv_benchmark(o.cudnn_benchmark);
  set_bn_cudnn(o.cudnn_bn);
  ResNet50Options mo;
  mo.compute_dtype = compute_dtype(o, dev);
  mo.channels_last = use_channels_last(o, dev);
  mo.stem = parse_resnet_stem(o.stem);
  mo.head = parse_resnet_head(o.head);
  mo.classes = classes;
  mo.seed = o.seed;
  return mo;
}

}  // namespace

DType compute_dtype(const RunOptions& o, Device dev) {
  if (o.precision == "bf16") return DType::BFloat16;
  if (o.precision == "fp32" || o.precision == "tf32") return DType::Float32;
  LRT_CHECK(o.precision == "auto", "--precision: unknown value '", o.precision, "' (auto, bf16, tf32 or fp32)");
  return dev.is_cuda() ? DType::BFloat16 : DType::Float32;
}

std::string precision_name(const RunOptions& o, Device dev) {
  if (compute_dtype(o, dev) == DType::BFloat16) return "bf16";
  return o.precision == "tf32" && dev.is_cuda() ? "tf32" : "fp32";
}

std::unique_ptr<ResNet50> build_model(const RunOptions& o, int64_t classes, Device dev, bool quiet) {
  auto model = std::make_unique<ResNet50>(model_options(o, classes, dev));
  if (!o.init_weights.empty()) {
    LoadReport r;
    try {
      r = load_weights(*model, o.init_weights, !o.no_strict);
    } catch (const Error& e) {
      LRT_THROW("--init-weights: ", e.message(), o.no_strict ? "" : " (--no-strict loads what matches)");
    }
    if (!quiet) std::printf("init weights %s: %s\n", o.init_weights.c_str(), r.summary().c_str());
  } else {
    LRT_CHECK(!o.no_strict, "--no-strict needs --init-weights");
  }
  model->to(dev);
  return model;
}

std::unique_ptr<ResNet50> load_model(const RunOptions& o, const std::string& weights, int64_t classes, Device dev) {
  auto model = std::make_unique<ResNet50>(model_options(o, classes, dev));
  try {
    load_weights(*model, weights, /*strict=*/true);
  } catch (const Error& e) {
    LRT_THROW("--weights: ", e.message(), " (are --stem ", o.stem, ", --head ", o.head, " and --dataset ",
              o.dataset, " the ones it was trained with?)");
  }
  model->to(dev);
  model->eval();
  return model;
}

std::vector<optim::ParamGroup> build_groups(const RunOptions& o, const ResNet50& model) {
  const std::vector<std::string> prefixes = optim::parse_lr_groups(o.lr_groups);
  const std::vector<double> mults = o.lr_mults.empty() ? std::vector<double>(prefixes.size() + 1, 1.0)
                                                       : optim::parse_lr_mults(o.lr_mults, prefixes.size() + 1);
  return optim::make_param_groups(model.named_parameters(), prefixes, mults);
}

optim::OptimizerConfig optimizer_config(const RunOptions& o) {
  optim::OptimizerConfig c;
  c.kind = optim::parse_optimizer_kind(o.optimizer);
  c.beta1 = o.beta1;
  c.beta2 = o.beta2;
  c.eps = o.eps;
  c.weight_decay = o.weight_decay;
  c.momentum = o.momentum;
  c.nesterov = o.nesterov;
  c.amsgrad = o.amsgrad;
  c.no_decay_bn_bias = o.no_decay_bn_bias;
  return c;
}

optim::ScheduleConfig schedule_config(const RunOptions& o, int64_t steps_per_epoch, int64_t total_steps) {
  // Checked here as well as by the Schedule, because the step count below
  // subtracts it first.
  LRT_CHECK(o.warmup_steps >= 0, "--warmup-steps must be >= 0, got ", o.warmup_steps);
  optim::ScheduleConfig c;
  c.kind = optim::parse_schedule_kind(o.schedule);
  c.lr = o.lr;
  c.steps_per_epoch = steps_per_epoch;
  c.warmup_steps = o.warmup_steps;
  c.sgdr_t0 = o.sgdr_t0;
  c.sgdr_t0_steps = o.sgdr_t0_steps;
  c.sgdr_tmult = o.sgdr_tmult;
  c.sgdr_eta_min = o.sgdr_eta_min;
  c.sgdr_decay = o.sgdr_decay;
  c.total_steps = std::max<int64_t>(1, total_steps - o.warmup_steps);
  return c;
}

data::LoaderOptions train_loader_options(const RunOptions& o, Device dev) {
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = !o.no_shuffle;
  lo.augment = !o.no_augment;
  lo.normalize = data::parse_normalize(o.normalize);
  lo.seed = o.seed;
  lo.device = dev;
  return lo;
}

data::LoaderOptions test_loader_options(const RunOptions& o, Device dev) {
  data::LoaderOptions lo = train_loader_options(o, dev);
  lo.shuffle = false;
  lo.augment = false;
  return lo;
}

}  // namespace lrt::app

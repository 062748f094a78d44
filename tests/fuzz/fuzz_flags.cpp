// resnet50_cifar's command line on untrusted argument lists: the train,
// lr-find, eval and predict flags (apps/resnet50_cifar/flags.h) parsed by
// CLI11 as main() does, then what the commands work out from the options
// before they read data or build a model: presets, the demo defaults, the
// dataset, normalisation, stem and head names, ResNet50's parameter groups
// from --lr-groups/--lr-mults, the optimizer, and the schedule over the
// run's steps, evaluated at its first, middle and last steps. A
// CLI::ParseError (main prints it as a usage error) and lrt::Error are the
// accepted refusals. Invariant: every learning rate is finite and >= 0.
//
// Input: the arguments after the program name, one per line.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "apps/resnet50_cifar/evaluate.h"
#include "apps/resnet50_cifar/flags.h"
#include "apps/resnet50_cifar/setup.h"
#include "apps/resnet50_cifar/train.h"
#include "core/ops.h"
#include "data/augment.h"
#include "fuzz.h"
#include "layers/resnet50_spec.h"
#include "optim/optimizer.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"

namespace {

using namespace lrt;
using namespace lrt::app;

constexpr size_t kMaxArgs = 64;

// What run_train and run_lr_find work out from their options before reading
// data, for the CIFAR-10 training set (or the demo's subset of it).
void derive_training(RunOptions o) {
  apply_preset(o);
  if (is_demo(o)) apply_demo_defaults(o);
  const data::CifarKind kind = data::parse_cifar_kind(o.dataset);
  const int64_t classes = kind == data::CifarKind::Cifar10 ? 10 : 100;
  const data::LoaderOptions lo = train_loader_options(o, kCPU);
  LRT_FUZZ_CHECK(lo.batch_size >= 1);

  // The groups over ResNet50's parameters, each a one-element tensor.
  std::vector<NamedParameter> params;
  for (const ParamShape& p : resnet50_parameter_shapes(parse_resnet_stem(o.stem), parse_resnet_head(o.head), classes))
    params.push_back({p.name, zeros({1}), {}});
  const std::vector<std::string> prefixes = optim::parse_lr_groups(o.lr_groups);
  const std::vector<double> mults = o.lr_mults.empty() ? std::vector<double>(prefixes.size() + 1, 1.0)
                                                       : optim::parse_lr_mults(o.lr_mults, prefixes.size() + 1);
  const optim::Optimizer opt(optim::make_param_groups(params, prefixes, mults), optimizer_config(o));

  const int64_t images = o.train_subset > 0 ? std::min<int64_t>(o.train_subset, 50000) : 50000;
  const int64_t spe = (images + o.batch_size - 1) / o.batch_size;
  const int64_t total_steps = o.max_steps > 0 ? std::min(o.max_steps, o.epochs * spe) : o.epochs * spe;
  const optim::Schedule sched(schedule_config(o, spe, total_steps));
  const int64_t last = o.warmup_steps + total_steps;
  for (int64_t step : {int64_t(1), std::max<int64_t>(1, last / 2), std::max<int64_t>(1, last)}) {
    const double lr = sched.lr_at_step(step);
    LRT_FUZZ_CHECK(std::isfinite(lr) && lr >= 0.0);
    LRT_FUZZ_CHECK(sched.cycle_at_step(step) >= 0);
    sched.is_cycle_end(step);
  }
}

void derive_eval(const RunOptions& o, const std::string& weights) {
  for (const std::string& f : split_list(weights, "--weights")) LRT_FUZZ_CHECK(!f.empty());
  data::parse_cifar_kind(o.dataset);
  data::parse_normalize(o.normalize);
  parse_resnet_stem(o.stem);
  parse_resnet_head(o.head);
  LRT_FUZZ_CHECK(o.batch_size >= 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"resnet50_cifar"};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (!text.empty() && args.size() <= kMaxArgs) {
    const size_t nl = text.find('\n');
    args.emplace_back(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());

  // The subcommands and their flags as main() sets them up.
  CLI::App app{"resnet50_cifar"};
  app.require_subcommand(1);
  RunOptions train_o, lf_o, ev_o, pr_o;
  LrFindFlags lf;
  std::string ev_weights, pr_weights, pr_out;
  CLI::App* train = app.add_subcommand("train", "");
  FlagSet train_flags(train, train_o, kAllTrainFlags);
  CLI::App* lr_find = app.add_subcommand("lr-find", "");
  FlagSet lf_flags(lr_find, lf_o, kAllTrainFlags & ~kOutputFlags);
  lr_find->add_option("--start-lr", lf.start_lr, "");
  lr_find->add_option("--end-lr", lf.end_lr, "");
  lr_find->add_option("--steps", lf.steps, "")->check(CLI::Range(int64_t(2), int64_t(100000)));
  lr_find->add_option("--out", lf.out, "");
  CLI::App* eval = app.add_subcommand("eval", "");
  eval->add_option("--weights", ev_weights, "")->required();
  FlagSet ev_flags(eval, ev_o, kDataFlags | kArchFlags | kDeviceFlags | kBatchFlag | kEvalGraphFlag);
  CLI::App* predict = app.add_subcommand("predict", "");
  predict->add_option("--weights", pr_weights, "")->required();
  predict->add_option("--out", pr_out, "")->required();
  FlagSet pr_flags(predict, pr_o, kDataFlags | kArchFlags | kDeviceFlags | kBatchFlag | kEvalGraphFlag);

  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
    return 0;
  }
  fuzz::accepts([&] {
    if (*train) {
      train_flags.collect_given();
      derive_training(train_o);
    } else if (*lr_find) {
      lf_flags.collect_given();
      derive_training(lf_o);
    } else if (*eval) {
      derive_eval(ev_o, ev_weights);
    } else if (*predict) {
      derive_eval(pr_o, pr_weights);
    }
  });
  return 0;
}

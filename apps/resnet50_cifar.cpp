// resnet50_cifar: the command-line app. Subcommands so far:
//   schedule        print every group's learning rate at every step as CSV,
//                   from the same flags training will take
//   make-synthetic  write synthetic CIFAR data in the real binary format
// Bad input is one line on stderr naming the flag or file, exit code 2.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "layers/resnet50_spec.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"

namespace {

using namespace lrt;

struct ScheduleFlags {
  std::string stem = "cifar", head = "linear";
  double lr = 1e-3;
  std::string lr_groups, lr_mults;
  std::string schedule = "constant";
  double sgdr_t0 = 1.0;
  int64_t sgdr_t0_steps = 0;
  double sgdr_tmult = 1.0, sgdr_eta_min = 0.0, sgdr_decay = 1.0;
  int64_t warmup_steps = 0;
  int64_t steps_per_epoch = 391;
  double epochs = 1.0;
};

void add_schedule_flags(CLI::App* app, ScheduleFlags& f) {
  app->add_option("--stem", f.stem, "ResNet50 stem: cifar (3x3 conv, no max-pool) or imagenet")->capture_default_str();
  app->add_option("--head", f.head, "head: linear (fc) or seed (the Keras original's fc_start/fc_mid/fc_bn/fc)")
      ->capture_default_str();
  app->add_option("--lr", f.lr, "base (maximum) learning rate")->capture_default_str();
  app->add_option("--lr-groups", f.lr_groups,
                  "split points P1,P2,... as parameter-name prefixes (e.g. layer3.0.conv1,fc_start); K prefixes "
                  "make K+1 groups (default: one group)");
  app->add_option("--lr-mults", f.lr_mults,
                  "group multipliers M0,M1,... (one per group) or START:STOP spread geometrically (default: all 1)");
  app->add_option("--schedule", f.schedule, "constant, sgdr or onecycle")->capture_default_str();
  app->add_option("--sgdr-t0", f.sgdr_t0, "SGDR: first cycle in epochs (real > 0)")->capture_default_str();
  app->add_option("--sgdr-t0-steps", f.sgdr_t0_steps, "SGDR: first cycle in steps (overrides --sgdr-t0 when > 0)")
      ->capture_default_str();
  app->add_option("--sgdr-tmult", f.sgdr_tmult, "SGDR: cycle length multiplier (real >= 1)")->capture_default_str();
  app->add_option("--sgdr-eta-min", f.sgdr_eta_min, "SGDR: minimum learning rate")->capture_default_str();
  app->add_option("--sgdr-decay", f.sgdr_decay, "SGDR: peak of cycle i is lr * decay^i, decay in (0, 1]")
      ->capture_default_str();
  app->add_option("--warmup-steps", f.warmup_steps, "linear warm-up steps before the schedule")
      ->capture_default_str();
  app->add_option("--steps-per-epoch", f.steps_per_epoch,
                  "optimizer steps per epoch (391 = 50,000 CIFAR-10 images at batch 128)")
      ->capture_default_str();
  app->add_option("--epochs", f.epochs, "epochs to print (real > 0)")->capture_default_str();
}

int run_schedule(const ScheduleFlags& f) {
  LRT_CHECK(f.epochs > 0 && f.epochs < 1e6, "--epochs must be > 0, got ", f.epochs);
  LRT_CHECK(f.steps_per_epoch > 0, "--steps-per-epoch must be > 0, got ", f.steps_per_epoch);
  std::vector<NamedParameter> params;
  for (const ParamShape& p : resnet50_parameter_shapes(parse_resnet_stem(f.stem), parse_resnet_head(f.head)))
    params.push_back({p.name, Tensor(), {}});
  const std::vector<std::string> prefixes = optim::parse_lr_groups(f.lr_groups);
  const std::vector<double> mults =
      f.lr_mults.empty() ? std::vector<double>(prefixes.size() + 1, 1.0)
                         : optim::parse_lr_mults(f.lr_mults, prefixes.size() + 1);
  optim::make_param_groups(params, prefixes, mults);  // validates the split points against the model's names

  const int64_t run_steps = static_cast<int64_t>(f.epochs * static_cast<double>(f.steps_per_epoch) + 0.5);
  LRT_CHECK(run_steps > 0, "--epochs ", f.epochs, " x --steps-per-epoch ", f.steps_per_epoch, " is no step");
  optim::ScheduleConfig c;
  c.kind = optim::parse_schedule_kind(f.schedule);
  c.lr = f.lr;
  c.steps_per_epoch = f.steps_per_epoch;
  c.warmup_steps = f.warmup_steps;
  c.sgdr_t0 = f.sgdr_t0;
  c.sgdr_t0_steps = f.sgdr_t0_steps;
  c.sgdr_tmult = f.sgdr_tmult;
  c.sgdr_eta_min = f.sgdr_eta_min;
  c.sgdr_decay = f.sgdr_decay;
  c.total_steps = run_steps;
  const optim::Schedule sched(c);

  std::string line = "step,epoch";
  for (size_t g = 0; g < mults.size(); ++g) line += ",lr" + std::to_string(g);
  std::puts(line.c_str());
  char buf[64];
  for (int64_t n = 1; n <= f.warmup_steps + run_steps; ++n) {
    const double lr = sched.lr_at_step(n);
    std::snprintf(buf, sizeof buf, "%lld,%.6f", static_cast<long long>(n), sched.epoch_at_step(n));
    line = buf;
    for (double m : mults) {
      std::snprintf(buf, sizeof buf, ",%.9g", lr * m);
      line += buf;
    }
    std::puts(line.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"resnet50_cifar: ResNet50 on CIFAR with differential learning rates and SGDR"};
  app.require_subcommand(1);
  ScheduleFlags sf;
  CLI::App* schedule = app.add_subcommand(
      "schedule", "Print the learning rate of every parameter group at every step as CSV (step,epoch,lr0,lr1,...)");
  add_schedule_flags(schedule, sf);

  data::SyntheticOptions so;
  std::string out_dir, dataset = "cifar10";
  CLI::App* synth = app.add_subcommand(
      "make-synthetic", "Write synthetic CIFAR data in the real binary format (coloured shapes over noise)");
  synth->add_option("--out", out_dir, "folder to write (the archive folder is created inside it)")->required();
  synth->add_option("--dataset", dataset, "cifar10 or cifar100")->capture_default_str();
  synth->add_option("--train", so.train, "training images")->capture_default_str();
  synth->add_option("--test", so.test, "test images")->capture_default_str();
  synth->add_option("--seed", so.seed, "random seed")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "resnet50_cifar: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (*schedule) return run_schedule(sf);
    so.kind = data::parse_cifar_kind(dataset);
    const std::string folder = data::write_synthetic_cifar(out_dir, so);
    std::printf("wrote %lld training and %lld test images to %s\n", static_cast<long long>(so.train),
                static_cast<long long>(so.test), folder.c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "resnet50_cifar: %s\n", e.message().c_str());
    return 2;
  }
}

// resnet50_cifar: the command-line app.
//   train           train ResNet50 (differential learning rates, SGDR,
//                   checkpoints, snapshots); without --data, a short demo
//   lr-find         the learning-rate range test, as CSV
//   eval            accuracy of weights files and of their ensemble
//   predict         class probabilities of every test image, as CSV
//   schedule        every group's learning rate at every step, as CSV
//   make-synthetic  synthetic CIFAR data in the real binary format
// Bad input is one line on stderr naming the flag or file, exit code 2.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/evaluate.h"
#include "apps/resnet50_cifar/flags.h"
#include "apps/resnet50_cifar/setup.h"
#include "apps/resnet50_cifar/train.h"
#include "data/synthetic.h"
#include "layers/resnet50_spec.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"

namespace {

using namespace lrt;

// The schedule command's flags: the training flags that shape the learning
// rate, plus the run's length in steps.
struct ScheduleFlags {
  app::RunOptions o;
  int64_t steps_per_epoch = 391;
  double epochs = 1.0;
};

void add_schedule_flags(CLI::App* app, ScheduleFlags& f) {
  app->add_option("--stem", f.o.stem, "ResNet50 stem: cifar (3x3 conv, no max-pool) or imagenet")->capture_default_str();
  app->add_option("--head", f.o.head, "head: linear (fc) or seed (the Keras original's fc_start/fc_mid/fc_bn/fc)")
      ->capture_default_str();
  app->add_option("--lr", f.o.lr, "base (maximum) learning rate")->capture_default_str();
  app->add_option("--lr-groups", f.o.lr_groups,
                  "split points P1,P2,... as parameter-name prefixes (e.g. layer3.0.conv1,fc_start); K prefixes "
                  "make K+1 groups (default: one group)");
  app->add_option("--lr-mults", f.o.lr_mults,
                  "group multipliers M0,M1,... (one per group) or START:STOP spread geometrically (default: all 1)");
  app->add_option("--schedule", f.o.schedule, "constant, sgdr or onecycle")->capture_default_str();
  app->add_option("--sgdr-t0", f.o.sgdr_t0, "SGDR: first cycle in epochs (real > 0)")->capture_default_str();
  app->add_option("--sgdr-t0-steps", f.o.sgdr_t0_steps, "SGDR: first cycle in steps (overrides --sgdr-t0 when > 0)")
      ->capture_default_str();
  app->add_option("--sgdr-tmult", f.o.sgdr_tmult, "SGDR: cycle length multiplier (real >= 1)")->capture_default_str();
  app->add_option("--sgdr-eta-min", f.o.sgdr_eta_min, "SGDR: minimum learning rate")->capture_default_str();
  app->add_option("--sgdr-decay", f.o.sgdr_decay, "SGDR: peak of cycle i is lr * decay^i, decay in (0, 1]")
      ->capture_default_str();
  app->add_option("--warmup-steps", f.o.warmup_steps, "linear warm-up steps before the schedule")
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
  for (const ParamShape& p : resnet50_parameter_shapes(parse_resnet_stem(f.o.stem), parse_resnet_head(f.o.head)))
    params.push_back({p.name, Tensor(), {}});
  const std::vector<std::string> prefixes = optim::parse_lr_groups(f.o.lr_groups);
  const std::vector<double> mults =
      f.o.lr_mults.empty() ? std::vector<double>(prefixes.size() + 1, 1.0)
                           : optim::parse_lr_mults(f.o.lr_mults, prefixes.size() + 1);
  optim::make_param_groups(params, prefixes, mults);  // validates the split points against the model's names

  const int64_t run_steps = static_cast<int64_t>(f.epochs * static_cast<double>(f.steps_per_epoch) + 0.5);
  LRT_CHECK(run_steps > 0, "--epochs ", f.epochs, " x --steps-per-epoch ", f.steps_per_epoch, " is no step");
  const optim::Schedule sched(app::schedule_config(f.o, f.steps_per_epoch, f.o.warmup_steps + run_steps));

  std::string line = "step,epoch";
  for (size_t g = 0; g < mults.size(); ++g) line += ",lr" + std::to_string(g);
  std::puts(line.c_str());
  char buf[64];
  for (int64_t n = 1; n <= f.o.warmup_steps + run_steps; ++n) {
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
  // A write past the file-size limit (ulimit -f) would otherwise kill the
  // process with SIGXFSZ in the middle of a save. Ignored, the write fails
  // with EFBIG instead, and the save reports it, removes its temporary file
  // and leaves the previous checkpoint as it was.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"resnet50_cifar: ResNet50 on CIFAR with differential learning rates and SGDR"};
  app.require_subcommand(1);
  app.footer(
      "Run `resnet50_cifar train` with no flags for a three-minute demo on synthetic data.\n"
      "Exit codes: 0 done, 2 bad input or a failed run, 3 stopped on a non-finite loss or gradient,\n"
      "130/143 interrupted by SIGINT/SIGTERM (after saving a checkpoint when --checkpoint-dir is set).");

  app::RunOptions train_o;
  CLI::App* train = app.add_subcommand(
      "train", "Train ResNet50 on CIFAR; without --data, a short demo on synthetic data (generated once)");
  app::FlagSet train_flags(train, train_o, app::kAllTrainFlags);
  train->footer(
      "Without --data: a demo on synthetic data generated once in ~/.cache/lrt (or $LRT_CACHE_DIR): 2 epochs over\n"
      "768 images, batch 32, Adam at 2e-3 with SGDR restarting every epoch, 256 test images; any flag you give wins.");

  app::RunOptions lf_o;
  app::LrFindFlags lf;
  CLI::App* lr_find = app.add_subcommand(
      "lr-find", "LR range test: train with an exponentially growing rate, write lr,loss,smoothed CSV and suggest a rate");
  app::FlagSet lf_flags(lr_find, lf_o, app::kAllTrainFlags & ~app::kOutputFlags);
  lr_find->add_option("--start-lr", lf.start_lr, "first rate (> 0)")->capture_default_str();
  lr_find->add_option("--end-lr", lf.end_lr, "last rate (> --start-lr)")->capture_default_str();
  lr_find->add_option("--steps", lf.steps, "steps (stops early when the loss diverges)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(100000)));
  lr_find->add_option("--out", lf.out, "CSV to write")->capture_default_str();

  app::RunOptions ev_o;
  std::string ev_weights;
  CLI::App* eval = app.add_subcommand(
      "eval", "Accuracy of each weights file on the test split, and of their averaged-softmax ensemble");
  eval->add_option("--weights", ev_weights, "weights files A,B,C (safetensors)")->required();
  app::FlagSet ev_flags(eval, ev_o,
                        app::kDataFlags | app::kArchFlags | app::kDeviceFlags | app::kBatchFlag | app::kEvalGraphFlag);

  app::RunOptions pr_o;
  std::string pr_weights, pr_out;
  CLI::App* predict = app.add_subcommand(
      "predict", "Class probabilities of every test image as CSV (index,label,pred,p0,p1,...)");
  predict->add_option("--weights", pr_weights, "weights file (safetensors)")->required();
  predict->add_option("--out", pr_out, "CSV to write")->required();
  app::FlagSet pr_flags(predict, pr_o,
                        app::kDataFlags | app::kArchFlags | app::kDeviceFlags | app::kBatchFlag | app::kEvalGraphFlag);

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

  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr,
                   "resnet50_cifar: unknown command '%s' (expected train, lr-find, eval, predict, schedule or "
                   "make-synthetic; see --help)\n",
                   argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "resnet50_cifar: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    dependent_launch();  // a bad LRT_PDL is refused before anything runs
    if (*train) {
      train_flags.collect_given();
      return app::run_train(train_o);
    }
    if (*lr_find) {
      lf_flags.collect_given();
      return app::run_lr_find(lf_o, lf);
    }
    if (*eval) return app::run_eval(ev_o, ev_weights);
    if (*predict) return app::run_predict(pr_o, pr_weights, pr_out);
    if (*schedule) return run_schedule(sf);
    so.kind = data::parse_cifar_kind(dataset);
    const std::string folder = data::write_synthetic_cifar(out_dir, so);
    std::printf("wrote %lld training and %lld test images to %s\n", static_cast<long long>(so.train),
                static_cast<long long>(so.test), folder.c_str());
    return 0;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "resnet50_cifar: %s\n", e.message().c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "resnet50_cifar: out of host memory (try a smaller --batch-size)\n");
    return 2;
  } catch (const std::exception& e) {
    // Everything lrt checks is an lrt::Error; anything else (a system error
    // from the standard library) is still one line and exit code 2.
    std::fflush(stdout);
    std::fprintf(stderr, "resnet50_cifar: %s\n", e.what());
    return 2;
  }
}

// resnet50_cifar's flags (apps/resnet50_cifar/flags.*) and the schedule
// configuration made from them (setup.*): ranges checked when the command
// line is parsed, before any arithmetic on the values.
#include <doctest/doctest.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/flags.h"
#include "apps/resnet50_cifar/setup.h"
#include "core/error.h"

namespace lrt::app {

namespace {

// Parses args (after the program name) with the training flags.
RunOptions parse_train_flags(std::vector<std::string> args) {
  CLI::App app{"test"};
  RunOptions o;
  FlagSet flags(&app, o, kAllTrainFlags);
  args.insert(args.begin(), "test");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  flags.collect_given();
  return o;
}

}  // namespace

TEST_CASE("--channels-last and --cuda-graph are switches: auto unless given, on, off, not both") {
  CHECK(parse_train_flags({}).channels_last == Switch::Auto);
  CHECK(parse_train_flags({"--channels-last"}).channels_last == Switch::On);
  CHECK(parse_train_flags({"--no-channels-last"}).channels_last == Switch::Off);
  CHECK(parse_train_flags({}).cuda_graph == Switch::Auto);
  CHECK(parse_train_flags({"--cuda-graph"}).cuda_graph == Switch::On);
  CHECK(parse_train_flags({"--no-cuda-graph"}).cuda_graph == Switch::Off);
  CHECK(parse_train_flags({"--no-cuda-graph"}).given.count("cuda_graph") == 1);
  CHECK_THROWS_AS(parse_train_flags({"--channels-last", "--no-channels-last"}), CLI::ParseError);
  CHECK_THROWS_AS(parse_train_flags({"--cuda-graph", "--no-cuda-graph"}), CLI::ParseError);
  CHECK_THROWS_AS(parse_train_flags({"--channels-last=maybe"}), CLI::ParseError);
  CHECK_FALSE(parse_train_flags({}).deterministic);
  CHECK(parse_train_flags({"--deterministic"}).deterministic);
  CHECK_FALSE(parse_train_flags({}).cudnn_benchmark);
  CHECK(parse_train_flags({"--cudnn-benchmark"}).cudnn_benchmark);
  CHECK_FALSE(parse_train_flags({}).cudnn_bn);
  CHECK(parse_train_flags({"--cudnn-bn"}).cudnn_bn);
  // cuDNN's batch norm sums in its own order: not a deterministic run.
  CHECK_THROWS_AS(parse_train_flags({"--cudnn-bn", "--deterministic"}), CLI::ParseError);
}

TEST_CASE("the switches' defaults follow the device and what the run allows") {
  const Device cuda("cuda");  // only named: no device is touched
  RunOptions o;
  CHECK(use_channels_last(o, cuda));
  CHECK_FALSE(use_channels_last(o, kCPU));
  CHECK(use_cuda_graph(o, cuda));
  CHECK_FALSE(use_cuda_graph(o, kCPU));
  RunOptions skip = o;
  skip.skip_nonfinite = true;
  CHECK_FALSE(use_cuda_graph(skip, cuda));
  RunOptions seed = o;
  seed.head = "seed";
  CHECK_FALSE(use_cuda_graph(seed, cuda));
  o.channels_last = Switch::On;
  o.cuda_graph = Switch::On;
  CHECK(use_channels_last(o, kCPU));
  CHECK(use_cuda_graph(o, kCPU));  // asked for: train then refuses it on the CPU with a clear error
  o.channels_last = Switch::Off;
  o.cuda_graph = Switch::Off;
  CHECK_FALSE(use_channels_last(o, cuda));
  CHECK_FALSE(use_cuda_graph(o, cuda));
}

TEST_CASE("--warmup-steps is refused outside [0, 1e9] when parsed") {
  CHECK(parse_train_flags({"--warmup-steps", "500"}).warmup_steps == 500);
  CHECK(parse_train_flags({"--warmup-steps", "1000000000"}).warmup_steps == 1000000000);
  // Found by fuzzing: the step counts add and subtract the warm-up, which
  // overflowed int64 for values near its ends.
  for (const char* bad : {"-1", "-9223372036854775808", "9223372036854775807", "1000000001"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_train_flags({"--warmup-steps", bad}), CLI::ParseError);
  }
}

TEST_CASE("schedule_config refuses a negative warm-up before computing the step count with it") {
  RunOptions o;
  o.schedule = "onecycle";
  o.warmup_steps = 10;
  CHECK(schedule_config(o, 5, 100).total_steps == 90);
  o.warmup_steps = std::numeric_limits<int64_t>::min();
  CHECK_THROWS_WITH_AS(schedule_config(o, 5, 100), doctest::Contains("--warmup-steps must be >= 0"), Error);
}

}  // namespace lrt::app

// Registers RunOptions' fields as command-line flags on a CLI11 subcommand,
// each with its help text and default, and records which ones the user gave
// (RunOptions::given) so presets fill in only the rest.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/options.h"

namespace lrt::app {

// Which groups of flags a subcommand takes.
enum FlagGroups : unsigned {
  kDataFlags = 1,       // --data, --dataset, subsets, shuffle/augment, --normalize, --seed
  kModelFlags = 2,      // --stem, --head, --init-weights, --no-strict
  kDeviceFlags = 4,     // --device, --precision
  kLengthFlags = 8,     // --epochs, --batch-size, --max-steps
  kOptimFlags = 16,     // --optimizer ... --no-decay-bn-bias
  kLrFlags = 32,        // --lr-groups ... --warmup-steps
  kOutputFlags = 64,    // --log, --save-weights, --checkpoint-dir, --resume, --snapshots, --skip-nonfinite
  kPresetFlag = 128,    // --preset
  kAllTrainFlags = 255,
  kArchFlags = 256,     // --stem, --head only
  kBatchFlag = 512,     // --batch-size only
  kEvalGraphFlag = 1024,  // --cuda-graph / --no-cuda-graph for eval and predict
};

class FlagSet {
 public:
  FlagSet(CLI::App* app, RunOptions& o, unsigned groups);
  // Call after parsing: fills o.given with the fields set on the command line.
  void collect_given();

 private:
  template <class T>
  CLI::Option* add(const std::string& flag, T& field, const std::string& help);
  CLI::Option* add_flag(const std::string& flag, bool& field, const std::string& help);
  // --name sets field On, --no-name Off (not both).
  void add_switch(const std::string& name, Switch& field, const std::string& on_help, const std::string& off_help);

  CLI::App* app_;
  RunOptions& o_;
  std::vector<std::pair<std::string, CLI::Option*>> options_;  // field name, option
};

}  // namespace lrt::app

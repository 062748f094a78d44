// resnet50_cifar train, end to end on the CPU over tiny synthetic data
// (apps/resnet50_cifar/train.*): the loss falls, the JSONL log follows its
// schema, presets fill only what the user did not give, and a run stopped
// half-way and resumed from its checkpoint ends with weights bit-identical to
// an uninterrupted run (data order, augmentation, dropout, BN statistics and
// Adam moments all continue exactly).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/options.h"
#include "apps/resnet50_cifar/setup.h"
#include "apps/resnet50_cifar/train.h"
#include "core/ops.h"
#include "data/synthetic.h"
#include "kernels/kernels.h"
#include "layers/functional.h"
#include "layers/safetensors.h"
#include "testing.h"

namespace lrt::app {

using testing::TempDir;

namespace {

// Synthetic CIFAR-10 of n training and m test images in dir.
std::string make_data(const TempDir& dir, int64_t n, int64_t m) {
  data::SyntheticOptions so;
  so.train = n;
  so.test = m;
  so.seed = 3;
  data::write_synthetic_cifar(dir.str() + "/data", so);
  return dir.str() + "/data";
}

RunOptions tiny(const std::string& data) {
  RunOptions o;
  o.data = data;
  o.device = "cpu";
  o.batch_size = 4;
  o.epochs = 2;
  o.lr = 1e-3;
  return o;
}

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(f, line)) {
    INFO("line: ", line);
    out.push_back(nlohmann::json::parse(line));  // throws (fails the test) on a malformed line
  }
  return out;
}

std::map<std::string, Tensor> weights(const std::string& path) { return as_map(load_safetensors(path)); }

}  // namespace

TEST_CASE("train: the loss falls on a small synthetic set and the log follows its schema") {
  TempDir dir("train-loss");
  RunOptions o = tiny(make_data(dir, 16, 8));
  o.epochs = 4;
  o.no_augment = true;
  o.schedule = "sgdr";
  o.sgdr_t0 = 1;
  o.sgdr_tmult = 2;
  o.lr_groups = "layer3";
  o.lr_mults = "0.1,1";
  o.log = dir.str() + "/run.jsonl";
  o.save_weights = dir.str() + "/final.safetensors";
  REQUIRE(run_train(o) == 0);

  const auto log = read_log(o.log);
  std::vector<nlohmann::json> steps, epochs, cycles;
  for (const auto& j : log) {
    REQUIRE(j.contains("event"));
    if (j["event"] == "step") steps.push_back(j);
    if (j["event"] == "epoch") epochs.push_back(j);
    if (j["event"] == "cycle_end") cycles.push_back(j);
  }
  REQUIRE(log.front()["event"] == "start");
  CHECK(log.front()["cpu_gemm"].get<std::string>().find(kernels::cpu::gemm_backend()) == 0);
  REQUIRE(steps.size() == 16);  // 4 epochs of 4 batches
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    CHECK(s["step"].get<int64_t>() == int64_t(i) + 1);
    CHECK(s["epoch"].get<double>() == doctest::Approx(double(i) / 4.0));
    CHECK(std::isfinite(s["loss"].get<double>()));
    REQUIRE(s["lr"].is_array());
    REQUIRE(s["lr"].size() == 2);
    CHECK(s["lr"][0].get<double>() == doctest::Approx(0.1 * s["lr"][1].get<double>()));
  }
  CHECK(steps[0]["lr"][1].get<double>() == doctest::Approx(1e-3));  // cycle start: the full rate
  CHECK(steps[4]["lr"][1].get<double>() == doctest::Approx(1e-3));  // restart after the 1-epoch cycle
  REQUIRE(epochs.size() == 4);
  double weight_mib = 0;  // the trained parameters' bytes (not the running statistics)
  for (const auto& [name, t] : weights(o.save_weights)) {
    const bool param = name.size() > 7 && (name.ends_with(".weight") || name.ends_with(".bias"));
    if (param) weight_mib += static_cast<double>(t.numel()) * 4 / (1024.0 * 1024.0);
  }
  CHECK(weight_mib > 80);  // ResNet50: some 23.5 M parameters
  for (size_t k = 0; k < epochs.size(); ++k) {
    const auto& e = epochs[k];
    CHECK(e["epoch"].get<int64_t>() == int64_t(k) + 1);
    for (const char* key : {"train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "train_seconds", "seconds"}) {
      INFO(key);
      CHECK(e[key].is_number());
    }
    CHECK(e["test_acc"].get<double>() >= 0.0);
    CHECK(e["test_acc"].get<double>() <= 1.0);
    // Where the epoch's training time went: on the CPU every step is eager.
    const auto& t = e["time_split_ms"];
    REQUIRE(t.is_object());
    CHECK(t["eager"]["steps"] == 4);
    CHECK_FALSE(t.contains("captured"));
    CHECK_FALSE(t.contains("replayed"));
    CHECK(t["eager"]["total"].get<double>() > 0.0);
    CHECK(t["eager"]["median"].get<double>() > 0.0);
    CHECK(t["eager"]["median"].get<double>() <= t["eager"]["total"].get<double>());
    CHECK(t["between_steps"].get<double>() >= 0.0);
    // The steps and what lies between them tile the span, which lies within
    // the epoch's training time.
    CHECK(t["span"].get<double>() ==
          doctest::Approx(t["between_steps"].get<double>() + t["eager"]["total"].get<double>()));
    CHECK(t["span"].get<double>() <= 1e3 * e["train_seconds"].get<double>());
    // Memory: at the optimizer's step the weights, their gradients and
    // Adam's two moments (float32 each) are all live, so the epoch's peak is
    // at least four times the weights' bytes; at the epoch's end the
    // allocator still holds the weights and the moments (a caching
    // allocator holds its peak too, but one that caches nothing, as under
    // AddressSanitizer, holds only what is live).
    INFO("peak ", e["peak_memory_mib"], " MiB, reserved ", e["reserved_memory_mib"], " MiB, weights ", weight_mib,
         " MiB");
    CHECK(e["peak_memory_mib"].get<double>() >= 4 * weight_mib);
    CHECK(e["reserved_memory_mib"].get<double>() >= 3 * weight_mib);
    CHECK(e["reserved_memory_mib"].get<double>() <= 64 * e["peak_memory_mib"].get<double>());
  }
  // Cycles of 1 and 2 epochs end at steps 4 and 12.
  REQUIRE(cycles.size() == 2);
  CHECK(cycles[0]["cycle"].get<int64_t>() == 1);
  CHECK(cycles[0]["step"].get<int64_t>() == 4);
  CHECK(cycles[1]["step"].get<int64_t>() == 12);
  CHECK(cycles[0]["snapshot"].is_null());
  // Four passes over the same 16 images: the training loss must fall.
  CHECK(epochs.back()["train_loss"].get<double>() < 0.8 * epochs.front()["train_loss"].get<double>());
  const auto w = weights(o.save_weights);
  CHECK(w.count("layer4.2.bn3.running_var") == 1);
  CHECK(w.at("fc.weight").shape() == Shape{10, 2048});
}

TEST_CASE("train: N steps straight equal N/2 steps, a checkpoint, and N/2 more, bit for bit") {
  TempDir dir("train-resume");
  const std::string data = make_data(dir, 20, 4);
  RunOptions o = tiny(data);
  o.head = "seed";  // dropout: its generator's position must carry over
  o.epochs = 3;
  o.lr = 1e-3;
  o.schedule = "sgdr";
  o.sgdr_t0_steps = 3;
  o.optimizer = "adamw";
  o.weight_decay = 1e-2;
  o.batch_size = 6;  // 4 batches per epoch, the last one short
  o.seed = 9;

  RunOptions straight = o;
  straight.max_steps = 7;
  straight.save_weights = dir.str() + "/straight.safetensors";
  REQUIRE(run_train(straight) == 0);

  RunOptions first = o;
  first.max_steps = 3;  // stops inside epoch 1
  first.checkpoint_dir = dir.str() + "/ck";
  REQUIRE(run_train(first) == 0);
  RunOptions second = o;
  second.max_steps = 7;
  second.resume = dir.str() + "/ck";
  second.checkpoint_dir = dir.str() + "/ck";
  second.save_weights = dir.str() + "/resumed.safetensors";
  REQUIRE(run_train(second) == 0);

  const auto a = weights(straight.save_weights), b = weights(second.save_weights);
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) {
    INFO(name);
    REQUIRE(b.count(name) == 1);
    CHECK(max_abs_diff(t, b.at(name)) == 0.0);
  }
  // A different run (another seed) does differ, so the comparison can fail.
  RunOptions other = straight;
  other.seed = 10;
  other.save_weights = dir.str() + "/other.safetensors";
  REQUIRE(run_train(other) == 0);
  CHECK(max_abs_diff(a.at("conv1.weight"), weights(other.save_weights).at("conv1.weight")) > 0.0);
}

namespace {

// The log without its timing fields, which differ from run to run, and with
// snapshot paths cut to their file names (the runs write to other folders).
std::vector<nlohmann::json> untimed(std::vector<nlohmann::json> log) {
  for (auto& e : log) {
    for (const char* k : {"seconds", "train_seconds", "images_per_s", "time_split_ms", "peak_memory_mib",
                          "reserved_memory_mib"})
      e.erase(k);
    if (e.contains("snapshot") && e["snapshot"].is_string())
      e["snapshot"] = std::filesystem::path(e["snapshot"].get<std::string>()).filename().string();
  }
  return log;
}

}  // namespace

TEST_CASE("train: reading back every 7 steps logs and trains exactly as reading back every step") {
  TempDir dir("train-sync");
  RunOptions o = tiny(make_data(dir, 24, 4));
  o.epochs = 3;  // 6 steps an epoch: read-backs fall inside epochs and across cycle ends
  o.schedule = "sgdr";
  o.sgdr_t0_steps = 4;
  o.snapshots = true;
  std::vector<std::vector<nlohmann::json>> logs;
  std::vector<std::map<std::string, Tensor>> finals;
  // Every step and every 7 read the pending steps' outcomes in one transfer;
  // --skip-nonfinite reads each value of each step on its own, before the
  // optimizer runs (no step here is skipped): the logs must agree.
  struct Run {
    int64_t every;
    bool skip_nonfinite;
    const char* tag;
  };
  for (const Run& run : {Run{1, false, "1"}, Run{7, false, "7"}, Run{0, true, "skip"}}) {
    CAPTURE(run.tag);
    RunOptions r = o;
    r.sync_every = run.every;
    r.skip_nonfinite = run.skip_nonfinite;
    r.checkpoint_dir = dir.str() + "/ck" + run.tag;
    r.log = dir.str() + "/run" + run.tag + ".jsonl";
    r.save_weights = dir.str() + "/final" + run.tag + ".safetensors";
    REQUIRE(run_train(r) == 0);
    logs.push_back(untimed(read_log(r.log)));
    finals.push_back(weights(r.save_weights));
    // The snapshot at the first cycle end holds the weights after step 4.
    CHECK(std::filesystem::exists(r.checkpoint_dir + "/snapshot-cycle1.safetensors"));
  }
  CHECK(logs[0].size() > 18);
  for (size_t k = 1; k < logs.size(); ++k) {
    CAPTURE(k);
    CHECK(logs[0] == logs[k]);
    for (const auto& [name, t] : finals[0]) {
      INFO(name);
      CHECK(max_abs_diff(t, finals[k].at(name)) == 0.0);
    }
  }
  // The epochs' training accuracy comes from the correct counts read back.
  for (const auto& j : logs[0])
    if (j["event"] == "epoch") {
      const double correct = j["train_acc"].get<double>() * 24;
      CHECK(correct == doctest::Approx(std::round(correct)));
    }
  CHECK(max_abs_diff(weights(dir.str() + "/ck1/snapshot-cycle1.safetensors").at("fc.weight"),
                     weights(dir.str() + "/ck7/snapshot-cycle1.safetensors").at("fc.weight")) == 0.0);
}

TEST_CASE("train: --channels-last trains the same bits on the CPU and logs the memory format") {
  TempDir dir("train-channels-last");
  const RunOptions o = tiny(make_data(dir, 12, 4));
  RunOptions flag = o;
  CHECK_FALSE(build_model(flag, 10, kCPU, /*quiet=*/true)->options().channels_last);
  flag.channels_last = Switch::On;
  CHECK(build_model(flag, 10, kCPU, /*quiet=*/true)->options().channels_last);
  std::vector<std::vector<nlohmann::json>> logs;
  std::vector<std::map<std::string, Tensor>> finals;
  for (bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    RunOptions r = o;
    r.channels_last = channels_last ? Switch::On : Switch::Off;
    const std::string tag = channels_last ? "nhwc" : "nchw";
    r.log = dir.str() + "/run-" + tag + ".jsonl";
    r.save_weights = dir.str() + "/final-" + tag + ".safetensors";
    REQUIRE(run_train(r) == 0);
    auto log = read_log(r.log);
    REQUIRE(!log.empty());
    CHECK(log.front()["memory_format"] == (channels_last ? "channels_last" : "contiguous"));
    log.front().erase("memory_format");
    logs.push_back(untimed(log));
    finals.push_back(weights(r.save_weights));
  }
  CHECK(logs[0].size() > 6);
  CHECK(logs[0] == logs[1]);
  for (const auto& [name, t] : finals[0]) {
    INFO(name);
    CHECK(max_abs_diff(t, finals[1].at(name)) == 0.0);
  }
}

TEST_CASE("train: a non-finite step stops the run at that step however seldom the device is read") {
  TempDir dir("train-nonfinite");
  RunOptions o = tiny(make_data(dir, 24, 4));
  o.lr = 1e38;  // the first update overflows the weights; a later loss is NaN
  o.epochs = 1;
  std::vector<std::vector<nlohmann::json>> logs;
  for (int64_t every : {1, 5}) {
    CAPTURE(every);
    RunOptions r = o;
    r.sync_every = every;
    r.log = dir.str() + "/run" + std::to_string(every) + ".jsonl";
    CHECK(run_train(r) == kExitNonFinite);
    logs.push_back(untimed(read_log(r.log)));
  }
  CHECK(logs[0] == logs[1]);
  REQUIRE(!logs[0].empty());
  CHECK(logs[0].back()["event"] == "nonfinite");
  CHECK(logs[0].back()["step"].get<int64_t>() < 6);  // stopped inside the epoch, before its read-back
}

TEST_CASE("train: --precision bf16 trains with float32 weights, resumes in fp32, and auto is fp32 on the CPU") {
  RunOptions d;
  CHECK(compute_dtype(d, kCPU) == DType::Float32);  // auto
  CHECK(compute_dtype(d, Device("cuda:0")) == DType::BFloat16);
  d.precision = "fp32";
  CHECK(compute_dtype(d, Device("cuda:0")) == DType::Float32);
  CHECK(precision_name(d, Device("cuda:0")) == "fp32");
  d.precision = "tf32";  // float32 tensors; TF32 convolutions on CUDA only
  CHECK(compute_dtype(d, Device("cuda:0")) == DType::Float32);
  CHECK(precision_name(d, Device("cuda:0")) == "tf32");
  CHECK(precision_name(d, kCPU) == "fp32");
  // Building the model sets the convolutions' TF32 switch to match.
  build_model(d, 10, kCPU, /*quiet=*/true);
  CHECK(conv_allow_tf32());
  d.precision = "fp32";
  build_model(d, 10, kCPU, /*quiet=*/true);
  CHECK_FALSE(conv_allow_tf32());
  d.precision = "bf16";
  CHECK(compute_dtype(d, kCPU) == DType::BFloat16);
  CHECK(precision_name(d, kCPU) == "bf16");
  d.precision = "fp16";
  testing::check_mentions(testing::error_of([&] { compute_dtype(d, kCPU); }), {"--precision", "fp16"});

  TempDir dir("train-bf16");
  RunOptions o = tiny(make_data(dir, 8, 4));
  o.precision = "bf16";
  o.epochs = 2;
  o.max_steps = 2;
  o.no_augment = true;
  o.checkpoint_dir = dir.str() + "/ck";
  o.log = dir.str() + "/run.jsonl";
  o.save_weights = dir.str() + "/final.safetensors";
  REQUIRE(run_train(o) == 0);
  const auto log = read_log(o.log);
  REQUIRE(!log.empty());
  CHECK(log.front()["event"] == "start");
  CHECK(log.front()["precision"] == "bf16");
  int steps = 0;
  for (const auto& j : log)
    if (j["event"] == "step") {
      ++steps;
      CHECK(std::isfinite(j["loss"].get<double>()));
    }
  CHECK(steps == 2);
  // The saved weights are the float32 masters the optimizer updated.
  const auto w = weights(o.save_weights);
  for (const auto& [name, t] : w) {
    INFO(name);
    CHECK((t.dtype() == DType::Float32 || name.find("num_batches_tracked") != std::string::npos));
  }
  // The checkpoint resumes in the other precision.
  RunOptions r = o;
  r.precision = "fp32";
  r.max_steps = 3;
  r.epochs = 2;
  r.resume = o.checkpoint_dir;
  r.log = dir.str() + "/resumed.jsonl";
  r.save_weights = dir.str() + "/resumed.safetensors";
  REQUIRE(run_train(r) == 0);
  const auto resumed = read_log(r.log);
  CHECK(resumed.front()["precision"] == "fp32");
  CHECK(max_abs_diff(weights(r.save_weights).at("fc.weight"), w.at("fc.weight")) > 0.0);  // it trained on
}

TEST_CASE("train: resuming with another architecture or batch size is refused, naming the option") {
  TempDir dir("train-resume-mismatch");
  RunOptions o = tiny(make_data(dir, 8, 4));
  o.max_steps = 1;
  o.checkpoint_dir = dir.str() + "/ck";
  REQUIRE(run_train(o) == 0);
  RunOptions other = o;
  other.resume = dir.str() + "/ck";
  other.batch_size = 2;
  testing::check_mentions(testing::error_of([&] { run_train(other); }), {"--resume", "batch_size", "4", "2"});
  RunOptions head = o;
  head.resume = dir.str() + "/ck";
  head.head = "seed";
  testing::check_mentions(testing::error_of([&] { run_train(head); }), {"--resume"});
}

TEST_CASE("train: --cuda-graph is refused on the CPU, with --skip-nonfinite and with the seed head's dropout") {
  TempDir dir("train-graph-refused");
  RunOptions o = tiny(make_data(dir, 8, 4));
  o.cuda_graph = Switch::On;
  o.log = dir.str() + "/run.jsonl";
  testing::check_mentions(testing::error_of([&] { run_train(o); }), {"--cuda-graph", "CUDA", "cpu"});
  RunOptions skip = o;
  skip.skip_nonfinite = true;
  testing::check_mentions(testing::error_of([&] { run_train(skip); }), {"--cuda-graph", "--skip-nonfinite"});
  RunOptions seed = o;
  seed.head = "seed";
  testing::check_mentions(testing::error_of([&] { run_train(seed); }), {"--cuda-graph", "dropout", "--head linear"});
  // Refused before any file is touched.
  CHECK_FALSE(std::filesystem::exists(o.log));
}

TEST_CASE("presets fill what was not given; explicit flags win") {
  RunOptions o;
  o.preset = "keras-seed";
  o.lr = 5e-3;
  o.given = {"lr"};
  apply_preset(o);
  CHECK(o.stem == "imagenet");
  CHECK(o.head == "seed");
  CHECK(o.lr == 5e-3);
  CHECK(o.lr_groups == "layer3.0.conv1,fc_start");
  CHECK(o.lr_mults == "1e-5,1e-2,1");
  CHECK(o.schedule == "sgdr");
  CHECK(o.sgdr_t0 == 1.0);
  CHECK(o.sgdr_tmult == 2.0);
  CHECK(o.batch_size == 8);
  CHECK(o.epochs == 5);
  CHECK(o.normalize == "unit");
  CHECK(o.no_augment);

  RunOptions c;
  c.preset = "cifar";
  apply_preset(c);
  CHECK(c.stem == "cifar");
  CHECK(c.schedule == "sgdr");
  CHECK(c.epochs == 30);  // cycles of 2 + 4 + 8 + 16 epochs
  CHECK(c.sgdr_t0 * (1 + c.sgdr_tmult + c.sgdr_tmult * c.sgdr_tmult + c.sgdr_tmult * c.sgdr_tmult * c.sgdr_tmult) ==
        doctest::Approx(30.0));

  RunOptions bad;
  bad.preset = "imagenet";
  testing::check_mentions(testing::error_of([&] { apply_preset(bad); }), {"--preset", "imagenet"});
}

}  // namespace lrt::app

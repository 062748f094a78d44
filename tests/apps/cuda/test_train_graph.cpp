// resnet50_cifar train --cuda-graph on a CUDA device, against the same run
// without it, under an SGDR schedule whose rate changes every step: the
// graph runs every full batch after the first (the smaller last batch of
// each epoch runs eagerly), its losses, final weights and Adam moments match
// the eager run's (they would not if a replay kept the captured rate), and
// BatchNorm's batch counters and Adam's step counts in the checkpoint are
// the eager run's exactly; the same with channels_last features.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/options.h"
#include "apps/resnet50_cifar/train.h"
#include "core/ops.h"
#include "data/synthetic.h"
#include "layers/safetensors.h"
#include "testing.h"

namespace lrt::app {

namespace {

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("CUDA train --cuda-graph: the schedule's rates, the eager run's losses, weights and counters") {
  testing::TempDir dir("train-graph");
  data::SyntheticOptions so;
  so.train = 26;  // batches of 4: six full ones and one of 2 an epoch
  so.test = 8;
  so.seed = 5;
  data::write_synthetic_cifar(dir.str() + "/data", so);
  RunOptions o;
  o.data = dir.str() + "/data";
  o.device = "cuda";
  o.precision = "fp32";  // the comparison is of graph against eager, not of precisions
  o.batch_size = 4;
  o.epochs = 2;
  o.lr = 1e-3;
  o.schedule = "sgdr";
  o.sgdr_t0_steps = 5;  // restarts inside an epoch: the rate changes every step
  // Eager, graphed, and graphed with channels_last features.
  struct Mode {
    const char* tag;
    bool graph, channels_last;
  };
  const Mode modes[] = {{"eager", false, false}, {"graph", true, false}, {"graph-nhwc", true, true}};
  std::map<std::string, std::vector<nlohmann::json>> logs;
  std::map<std::string, std::map<std::string, Tensor>> ck;
  for (const Mode& m : modes) {
    CAPTURE(m.tag);
    RunOptions r = o;
    r.cuda_graph = m.graph;
    r.channels_last = m.channels_last;
    r.log = dir.str() + "/" + m.tag + ".jsonl";
    r.checkpoint_dir = dir.str() + "/ck-" + m.tag;
    REQUIRE(run_train(r) == 0);
    logs[m.tag] = read_log(r.log);
    ck[m.tag] = as_map(load_safetensors(r.checkpoint_dir + "/checkpoint.safetensors"));
  }
  const auto& e = logs["eager"];
  CHECK_FALSE(e.back().contains("cuda_graph_steps"));
  for (const Mode& m : modes) {
    if (!m.graph) continue;
    CAPTURE(m.tag);
    const auto& g = logs[m.tag];
    REQUIRE(e.size() == g.size());
    int steps = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      CAPTURE(i);
      REQUIRE(e[i]["event"] == g[i]["event"]);
      if (e[i]["event"] != "step") continue;
      ++steps;
      CHECK(e[i]["step"] == g[i]["step"]);
      CHECK(g[i]["loss"].get<double>() == doctest::Approx(e[i]["loss"].get<double>()).epsilon(1e-3));
    }
    CHECK(steps == 14);
    // Epoch 1: the first batch warms up, the second is captured and run, four
    // replays; epoch 2: six replays. The batches of 2 run eagerly.
    CHECK(g.back()["event"] == "end");
    CHECK(g.back()["cuda_graph_steps"] == 11);
    const auto& want = ck["eager"];
    const auto& got = ck[m.tag];
    REQUIRE(want.size() == got.size());
    for (const auto& [name, t] : want) {
      CAPTURE(name);
      REQUIRE(got.count(name) == 1);
      const Tensor& u = got.at(name);
      if (t.dtype() == DType::Int64) {
        CHECK(t.to_vector<double>() == u.to_vector<double>());  // BN batch counters, Adam step counts
      } else if ((t.dtype() == DType::Float32 || t.dtype() == DType::Float64) && !m.channels_last) {
        const double scale = std::max(1.0, max_abs_diff(t, zeros_like(t)));
        CHECK(max_abs_diff(t, u) <= 1e-3 * scale);
      } else if (t.dtype() == DType::Float32 || t.dtype() == DType::Float64) {
        // Other convolution algorithms: gradients differ in the last bits,
        // which Adam turns into update differences of up to lr for values
        // near zero; held norm-wise per tensor.
        CHECK(rel_error(u, t) <= 1e-3);
      }
    }
    CHECK(got.at("model.bn1.num_batches_tracked").item() == 14.0);
  }
}

}  // namespace lrt::app

// resnet50_cifar train --cuda-graph on a CUDA device, against the same run
// without it, under an SGDR schedule whose rate changes every step: a graph
// runs every full batch after the first, and another the smaller last batch
// of each epoch after the first epoch's (captured in the second epoch,
// replayed in the third). The runs use deterministic convolution
// algorithms (--deterministic): otherwise cuDNN's atomic backward sums make
// two eager runs differ in the last bits, and training at batch 4 amplifies
// that to whole percents within a few steps. With them an eager run repeats
// to the bit (checked), and so must the graphed run: its losses, final
// weights, Adam moments and counters are the eager run's exactly (they
// would not be if a replay kept the captured rate). The same with
// channels_last features, against an eager channels_last run (other
// convolution algorithms: the same rounding only within one layout). The
// test pass of each epoch replays a graph of its own in the graphed runs
// and must give the eager run's test loss and accuracy to the bit.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/resnet50_cifar/evaluate.h"
#include "apps/resnet50_cifar/options.h"
#include "apps/resnet50_cifar/setup.h"
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
  const testing::ConvSwitches restore;  // the app sets them from its options
  testing::TempDir dir("train-graph");
  data::SyntheticOptions so;
  so.train = 26;  // batches of 4: six full ones and one of 2 an epoch
  so.test = 14;  // three test batches of 4 and one of 2
  so.seed = 5;
  data::write_synthetic_cifar(dir.str() + "/data", so);
  RunOptions o;
  o.data = dir.str() + "/data";
  o.device = "cuda";
  o.precision = "fp32";  // the comparison is of graph against eager, not of precisions
  o.batch_size = 4;
  o.epochs = 3;
  o.lr = 1e-3;
  o.schedule = "sgdr";
  o.sgdr_t0_steps = 5;  // restarts inside an epoch: the rate changes every step
  o.deterministic = true;
  struct Mode {
    const char* tag;
    Switch graph;
    bool channels_last;
    const char* reference;  // the run this one must repeat to the bit
    bool skip_nonfinite = false;
  };
  // "test-graph": the default (Auto) with --skip-nonfinite, whose step runs
  // eagerly while the test pass replays its graph.
  const Mode modes[] = {{"eager", Switch::Off, false, nullptr},
                        {"eager-again", Switch::Off, false, "eager"},
                        {"graph", Switch::On, false, "eager"},
                        {"test-graph", Switch::Auto, false, "eager", true},
                        {"eager-nhwc", Switch::Off, true, nullptr},
                        {"graph-nhwc", Switch::On, true, "eager-nhwc"}};
  std::map<std::string, std::vector<nlohmann::json>> logs;
  std::map<std::string, std::map<std::string, Tensor>> ck;
  for (const Mode& m : modes) {
    CAPTURE(m.tag);
    RunOptions r = o;
    r.cuda_graph = m.graph;
    r.skip_nonfinite = m.skip_nonfinite;
    r.channels_last = m.channels_last ? Switch::On : Switch::Off;
    r.log = dir.str() + "/" + m.tag + ".jsonl";
    r.checkpoint_dir = dir.str() + "/ck-" + m.tag;
    REQUIRE(run_train(r) == 0);
    logs[m.tag] = read_log(r.log);
    ck[m.tag] = as_map(load_safetensors(r.checkpoint_dir + "/checkpoint.safetensors"));
  }
  CHECK_FALSE(logs["eager"].back().contains("cuda_graph_steps"));
  CHECK_FALSE(logs["eager"].back().contains("cuda_graph_test_batches"));
  CHECK(logs["eager"].front()["deterministic"] == true);
  // The layouts agree on the first step's loss (the same weights; the sums
  // of other algorithms).
  auto first_loss = [](const std::vector<nlohmann::json>& log) {
    for (const auto& j : log)
      if (j["event"] == "step") return j["loss"].get<double>();
    FAIL("no step in the log");
    return 0.0;
  };
  CHECK(first_loss(logs["eager-nhwc"]) == doctest::Approx(first_loss(logs["eager"])).epsilon(1e-4));
  for (const Mode& m : modes) {
    if (!m.reference) continue;
    CAPTURE(m.tag);
    const auto& e = logs[m.reference];
    const auto& g = logs[m.tag];
    REQUIRE(e.size() == g.size());
    int steps = 0, first_diff = -1, epochs = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      CAPTURE(i);
      REQUIRE(e[i]["event"] == g[i]["event"]);
      if (e[i]["event"] == "epoch") {
        ++epochs;
        CHECK(g[i]["test_loss"].get<double>() == e[i]["test_loss"].get<double>());
        CHECK(g[i]["test_acc"].get<double>() == e[i]["test_acc"].get<double>());
      }
      if (e[i]["event"] != "step") continue;
      ++steps;
      CHECK(e[i]["step"] == g[i]["step"]);
      if (first_diff < 0 && g[i]["loss"].get<double>() != e[i]["loss"].get<double>()) first_diff = steps;
    }
    CHECK(steps == 21);
    CHECK(epochs == 3);
    CHECK(first_diff == -1);  // the first step whose loss differs, if any
    CHECK(g.back()["event"] == "end");
    if (m.graph == Switch::Auto) {
      CHECK_FALSE(g.back().contains("cuda_graph_steps"));
      CHECK(g.back()["cuda_graph_test_batches"] == 10);
    }
    if (m.graph == Switch::On) {
      // Epoch 1: the first batch warms up, the second is captured and run,
      // four replays, and the batch of 2 warms up its size; epoch 2: six
      // replays, and the batch of 2 is captured and run; epoch 3: seven
      // replays.
      CHECK(g.back()["cuda_graph_steps"] == 5 + 7 + 7);
      // The test passes, likewise: in epoch 1 the first batch of 4 warms
      // up, the second is captured and run, the third replayed, and the
      // batch of 2 runs eagerly; in epoch 2 the three batches of 4 are
      // replayed and the batch of 2 is captured and run; in epoch 3 all four
      // replay.
      CHECK(g.back()["cuda_graph_test_batches"] == 2 + 4 + 4);
      // The epochs' time split counts the steps the same way.
      std::vector<nlohmann::json> splits;
      for (const auto& j : g)
        if (j["event"] == "epoch") splits.push_back(j["time_split_ms"]);
      REQUIRE(splits.size() == 3);
      CHECK(splits[0]["eager"]["steps"] == 2);
      CHECK(splits[0]["captured"]["steps"] == 1);
      CHECK(splits[0]["replayed"]["steps"] == 4);
      CHECK_FALSE(splits[1].contains("eager"));
      CHECK(splits[1]["captured"]["steps"] == 1);
      CHECK(splits[1]["replayed"]["steps"] == 6);
      CHECK_FALSE(splits[2].contains("eager"));
      CHECK_FALSE(splits[2].contains("captured"));
      CHECK(splits[2]["replayed"]["steps"] == 7);
      for (const auto& t : splits) {
        double parts = t["between_steps"].get<double>();
        for (const char* k : {"eager", "captured", "replayed"})
          if (t.contains(k)) {
            CHECK(t[k]["total"].get<double>() > 0.0);
            CHECK(t[k]["median"].get<double>() <= t[k]["total"].get<double>());
            parts += t[k]["total"].get<double>();
          }
        // The intervals tile the span (each event timestamp is rounded to
        // about half a microsecond).
        CHECK(t["span"].get<double>() == doctest::Approx(parts).epsilon(1e-3));
      }
    }
    const auto& want = ck[m.reference];
    const auto& got = ck[m.tag];
    REQUIRE(want.size() == got.size());
    for (const auto& [name, t] : want) {
      CAPTURE(name);
      REQUIRE(got.count(name) == 1);
      const Tensor& u = got.at(name);
      CHECK(t.to_vector<double>() == u.to_vector<double>());  // weights, moments, BN counters, step counts
    }
    CHECK(got.at("model.bn1.num_batches_tracked").item() == 21.0);
  }
}

// eval and predict replay a graph of the test batches' forward pass (and
// softmax) on CUDA: the same loss, accuracy and probabilities as the eager
// pass, to the bit. 14 test images in batches of 4: the first runs eagerly,
// the second is captured, the third replays and the last (2) runs eagerly.
TEST_CASE("CUDA eval and predict --cuda-graph: the eager pass's loss, accuracy and probabilities to the bit") {
  const testing::ConvSwitches restore;  // the app sets them from its options
  testing::TempDir dir("eval-graph");
  data::SyntheticOptions so;
  so.train = 8;
  so.test = 14;
  so.seed = 6;
  data::write_synthetic_cifar(dir.str() + "/data", so);
  RunOptions o;
  o.data = dir.str() + "/data";
  o.device = "cuda";
  o.batch_size = 4;
  o.epochs = 1;
  o.deterministic = true;
  o.save_weights = dir.str() + "/w.safetensors";
  REQUIRE(run_train(o) == 0);
  RunOptions e;  // as the eval and predict commands fill them
  e.data = o.data;
  e.device = "cuda";
  e.batch_size = 4;
  e.deterministic = true;

  const Device dev("cuda");
  const data::CifarDataset ds = load_dataset(e);
  data::Loader loader(std::make_shared<const data::CifarSplit>(ds.test), test_loader_options(e, dev));
  auto model = load_model(e, o.save_weights, ds.num_classes, dev);
  const EvalResult eager = evaluate(*model, loader, /*keep_probs=*/true, /*cuda_graph=*/false);
  const EvalResult graphed = evaluate(*model, loader, /*keep_probs=*/true, /*cuda_graph=*/true);
  REQUIRE(eager.count == 14);
  CHECK(graphed.count == 14);
  CHECK(eager.graph_batches == 0);
  CHECK(graphed.graph_batches == 2);  // the captured second batch and the replayed third
  CHECK(graphed.loss == eager.loss);
  CHECK(graphed.accuracy == eager.accuracy);
  CHECK(graphed.probs.to_vector<double>() == eager.probs.to_vector<double>());
  CHECK(graphed.labels.to_vector<double>() == eager.labels.to_vector<double>());

  auto read = [](const std::string& path) {
    std::ifstream f(path);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  std::map<Switch, std::string> csv;
  for (Switch g : {Switch::Off, Switch::On}) {
    RunOptions p = e;
    p.cuda_graph = g;
    const std::string out = dir.str() + (g == Switch::On ? "/graph.csv" : "/eager.csv");
    REQUIRE(run_predict(p, o.save_weights, out) == 0);
    csv[g] = read(out);
  }
  CHECK(csv[Switch::On].size() > 14 * 10);
  CHECK(csv[Switch::On] == csv[Switch::Off]);
  // An ensemble: one graph a weights file, each captured and destroyed in turn.
  RunOptions v = e;
  v.cuda_graph = Switch::On;
  CHECK(run_eval(v, o.save_weights + "," + o.save_weights) == 0);
}

}  // namespace lrt::app
